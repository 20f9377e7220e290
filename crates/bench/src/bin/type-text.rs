//! `type-text`: the typing scene of the `capture` benchmark runs this in a
//! 120x40 xterm with an editor's colours. It types call notes into the
//! terminal at a typist's pace, with a caret that blinks as a desktop's
//! does, until its terminal goes away.
//!
//! - **Pace:** one character every 90-330 ms (about 4.8 a second, a
//!   58-words-a-minute typist), a pause of 0.6-1.6 s after a sentence, as
//!   someone thinking about the next one; a line is wrapped at a word
//!   before column 100.
//! - **Caret:** shown and hidden every [`BLINK`] (Windows' default caret
//!   blink time), by the terminal's own show/hide cursor sequences, so it
//!   blinks whether or not the terminal has the focus (there is no window
//!   manager to give it one). Typing shows it at once, as editors do.
//! - The words and times come from a fixed-seed generator: every run types
//!   the same text at the same moments.

use std::io::Write;
use std::time::{Duration, Instant};

use deskrec_bench::synth::Rng;

/// Caret on, then off, for this long each.
const BLINK: Duration = Duration::from_millis(530);
/// Shortest and longest time between two keys, ms.
const KEY_MS: (u64, u64) = (90, 330);
/// Shortest and longest pause after a sentence, ms.
const SENTENCE_MS: (u64, u64) = (600, 1600);
/// A line is wrapped before this column.
const WRAP: usize = 100;

const SHOW: &str = "\x1b[?25h";
const HIDE: &str = "\x1b[?25l";

const SENTENCES: &[&str] = &[
    "Customer called about the invoice for last month.",
    "She was charged twice for the same order.",
    "Checked the order history and found the duplicate payment.",
    "Raised a refund ticket for the second charge.",
    "Told her the refund takes three to five working days.",
    "She asked for a callback if it is not there by Friday.",
    "Updated her email address and phone number.",
    "Confirmed the delivery address for the replacement.",
    "No further questions, call wrapped up politely.",
    "Escalated to the billing team with the ticket number.",
];

fn main() {
    // An error is the terminal closing: the benchmark is over.
    let _ = type_notes(&mut std::io::stdout().lock());
}

/// Types the notes into `out`, forever.
fn type_notes(out: &mut impl Write) -> std::io::Result<()> {
    let mut rng = Rng(0x7e_2026);
    let mut column = 0;
    let mut caret_on = true;
    let mut next_blink = Instant::now() + BLINK;
    for sentence in (0..).map(|n| SENTENCES[n % SENTENCES.len()]) {
        for word in sentence.split(' ') {
            let mut text = String::from(word);
            if column + text.len() + 1 >= WRAP {
                text.insert_str(0, "\r\n");
                column = 0;
            } else if column > 0 {
                text.insert(0, ' ');
            }
            for key in text.chars() {
                let wait = rng.below((KEY_MS.1 - KEY_MS.0) as usize) as u64 + KEY_MS.0;
                let key_at = Instant::now() + Duration::from_millis(wait);
                blink_until(out, key_at, &mut caret_on, &mut next_blink)?;
                // Typing shows the caret and restarts its blink.
                let shown = if caret_on { "" } else { SHOW };
                write!(out, "{key}{shown}")?;
                out.flush()?;
                caret_on = true;
                next_blink = Instant::now() + BLINK;
                if key != '\r' && key != '\n' {
                    column += 1;
                }
            }
        }
        let pause = rng.below((SENTENCE_MS.1 - SENTENCE_MS.0) as usize) as u64 + SENTENCE_MS.0;
        let resume_at = Instant::now() + Duration::from_millis(pause);
        blink_until(out, resume_at, &mut caret_on, &mut next_blink)?;
    }
    Ok(())
}

/// Blinks the caret until `until`.
fn blink_until(
    out: &mut impl Write,
    until: Instant,
    caret_on: &mut bool,
    next_blink: &mut Instant,
) -> std::io::Result<()> {
    while *next_blink < until {
        std::thread::sleep(next_blink.saturating_duration_since(Instant::now()));
        *caret_on = !*caret_on;
        let sequence = if *caret_on { SHOW } else { HIDE };
        out.write_all(sequence.as_bytes())?;
        out.flush()?;
        *next_blink += BLINK;
    }
    std::thread::sleep(until.saturating_duration_since(Instant::now()));
    Ok(())
}

//! `scroll-lines`: the busy scene of the `capture` benchmark runs this in a
//! 150x50 xterm. It prints log-like lines in seven ANSI colours, 50 a
//! second, until its terminal goes away.
//!
//! The lines come in bursts of 10 (one write each) every 200 ms on average,
//! so the screen holds still between bursts: a recorder capturing at 5 fps
//! scrolls by about 10 lines a frame, as with a steady 50 lines/s, and the
//! benchmark's lossless reference recording (10 fps) has a picture of the
//! very screen each recorder captured. Each burst is moved off the 200 ms
//! grid by up to ±[`JITTER`] (the schedule itself does not drift), so a
//! recorder that also ticks every 200 ms does not catch xterm drawing a
//! burst at every frame, only now and then. Words and jitter come from a
//! fixed-seed generator: every run prints the same.

use std::io::Write;
use std::time::{Duration, Instant};

use deskrec_bench::synth::Rng;

/// Lines per burst.
const BURST: usize = 10;
/// Time between bursts on average: 10 lines every 200 ms is 50 lines a
/// second.
const PERIOD: Duration = Duration::from_millis(200);
/// Largest shift of a burst off the [`PERIOD`] grid, either way (ms).
const JITTER: u64 = 30;
/// Characters of text after the line number: with it, 139 columns, so no
/// line wraps in the 150-column terminal.
const TEXT_WIDTH: usize = 130;

const WORDS: &[&str] = &[
    "agent", "contact", "queue", "call", "transfer", "hold", "resume", "ticket", "customer",
    "order", "refund", "invoice", "status", "update", "error", "warning", "info", "debug",
    "latency", "session", "wrap-up", "callback", "escalate", "note",
];

fn main() {
    let mut rng = Rng(0x5c_2011);
    let mut out = std::io::stdout().lock();
    let mut burst = String::new();
    let start = Instant::now();
    for (burst_number, n) in (0u64..).step_by(BURST).enumerate() {
        burst.clear();
        for k in n..n + BURST as u64 {
            burst.push_str(&line(k, &mut rng));
        }
        // The terminal closed: the benchmark is over.
        if out.write_all(burst.as_bytes()).is_err() || out.flush().is_err() {
            return;
        }
        let shift = rng.below(2 * JITTER as usize + 1) as u64;
        let next = start + PERIOD * (burst_number as u32 + 1) + Duration::from_millis(shift)
            - Duration::from_millis(JITTER);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// Line `n`: its number in one of the colours 31-37, then random words.
fn line(n: u64, rng: &mut Rng) -> String {
    let mut text = String::with_capacity(TEXT_WIDTH + 8);
    while text.len() < TEXT_WIDTH {
        text.push_str(WORDS[rng.below(WORDS.len())]);
        text.push(' ');
    }
    text.truncate(TEXT_WIDTH);
    format!("\x1b[{}m{n:07}\x1b[0m {}\n", 31 + n % 7, text.trim_end())
}

//! `scroll-page`: the scroll scene of the `capture` benchmark runs this on
//! its X display. It shows a long web-like page (headings, paragraphs of
//! text, links, pictures) in a 1280x1080 window and scrolls it the way a
//! reader does, until it is killed.
//!
//! - **The page** is drawn once, into a pixmap 1280 px wide and
//!   [`PAGE_HEIGHT`] tall, in the server's built-in `fixed` font: a column
//!   of text 800 px wide with a navigation bar beside it, headings, blue
//!   links, and pictures of tiles in many colours (photographs cost a
//!   recorder more than flat colour).
//! - **The reader** reads for 1.5-4 s, then turns the wheel: 2-6 notches
//!   of [`NOTCH`] px, [`NOTCH_GAP`] apart, each a jump (a browser without
//!   smooth scrolling). At the end of the page it goes back to the top at
//!   once, as the Home key does.
//! - Why jumps and not a browser's 60 Hz animation: the benchmark measures
//!   picture quality against a lossless 10 fps recording of the same
//!   screen, and a picture that was on the screen for 16 ms is in neither
//!   recorder's nor the reference's frames but by chance (with animation,
//!   a quarter of the frames of both recorders were 12-25 dB off every
//!   reference picture). Each position here stays at least 250 ms.
//! - Each step copies the visible part of the pixmap to the window
//!   (`CopyArea`), so drawing costs the X server little and nothing here.
//! - Times and page come from a fixed-seed generator: every run scrolls
//!   the same page at the same moments.

use std::time::Duration;

use anyhow::{Context, Result};
use deskrec_bench::synth::Rng;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ChangeGCAux, ConnectionExt as _, CreateGCAux, CreateWindowAux, Drawable, Gcontext, Rectangle,
    WindowClass,
};
use x11rb::rust_connection::RustConnection;

/// Window and page width, px.
const WIDTH: u16 = 1280;
/// Window height: the whole screen's.
const HEIGHT: u16 = 1080;
/// Where the window is: the middle of a 1920 px screen.
const LEFT: i16 = 320;
/// Page height, px.
const PAGE_HEIGHT: u16 = 9000;
/// One wheel notch, px (Chromium's 100 px).
const NOTCH: u32 = 100;
/// Time between two notches of one turn of the wheel.
const NOTCH_GAP: Duration = Duration::from_millis(250);
/// Reading time between flicks, ms.
const READ_MS: (u64, u64) = (1500, 4000);

/// The `fixed` font's cell.
const CHAR_W: i16 = 6;
const LINE_H: i16 = 15;

const WHITE: u32 = 0xff_ffff;
const TEXT: u32 = 0x20_2124;
const LINK: u32 = 0x1a_0dab;
const NAV: u32 = 0xf1_f3f4;
const RULE: u32 = 0xda_dce0;

const WORDS: &[&str] = &[
    "the", "customer", "account", "billing", "refund", "order", "delivery", "policy", "agent",
    "support", "payment", "card", "contact", "centre", "team", "update", "service", "request",
    "ticket", "status", "and", "of", "to", "for", "with", "on", "a", "is", "your",
];

fn main() -> Result<()> {
    let (conn, screen_num) = RustConnection::connect(None).context("connecting to $DISPLAY")?;
    let screen = &conn.setup().roots[screen_num];
    let (root, depth) = (screen.root, screen.root_depth);
    let window = conn.generate_id()?;
    conn.create_window(
        depth,
        window,
        root,
        LEFT,
        0,
        WIDTH,
        HEIGHT,
        0,
        WindowClass::INPUT_OUTPUT,
        screen.root_visual,
        &CreateWindowAux::new().background_pixel(WHITE),
    )?;
    let page = conn.generate_id()?;
    conn.create_pixmap(depth, page, window, WIDTH, PAGE_HEIGHT)?;
    let font = conn.generate_id()?;
    conn.open_font(font, b"fixed")?;
    let gc = conn.generate_id()?;
    conn.create_gc(gc, page, &CreateGCAux::new().font(font).foreground(WHITE))?;
    Painter {
        conn: &conn,
        page,
        gc,
    }
    .draw_page(&mut Rng(0x5c_0011))?;
    conn.map_window(window)?;
    conn.flush()?;

    let mut rng = Rng(0x5c_0012);
    let max_top = u32::from(PAGE_HEIGHT - HEIGHT);
    let mut top = 0u32;
    let show = |top: u32| -> Result<()> {
        let y = i16::try_from(top)?;
        conn.copy_area(page, window, gc, 0, y, 0, 0, WIDTH, HEIGHT)?;
        conn.flush()?;
        Ok(())
    };
    loop {
        show(top)?;
        std::thread::sleep(Duration::from_millis(between(&mut rng, READ_MS)));
        if top == max_top {
            top = 0;
            continue;
        }
        for _ in 0..between(&mut rng, (2, 7)) {
            top = (top + NOTCH).min(max_top);
            show(top)?;
            std::thread::sleep(NOTCH_GAP);
        }
    }
}

/// A number in `[lo, hi)`.
fn between(rng: &mut Rng, (lo, hi): (u64, u64)) -> u64 {
    lo + rng.below((hi - lo) as usize) as u64
}

/// Draws the page into its pixmap.
struct Painter<'a> {
    conn: &'a RustConnection,
    page: Drawable,
    gc: Gcontext,
}

impl Painter<'_> {
    fn draw_page(&self, rng: &mut Rng) -> Result<()> {
        self.fill(WHITE, 0, 0, WIDTH, PAGE_HEIGHT)?;
        // The navigation bar on the left, with its links.
        self.fill(NAV, 0, 0, 300, PAGE_HEIGHT)?;
        for (n, y) in (60..i16::try_from(PAGE_HEIGHT)? - 40)
            .step_by(28)
            .enumerate()
        {
            self.text(
                (LINK, NAV),
                24,
                y,
                &format!("Section {} - {}", n + 1, words(rng, 3)),
            )?;
        }
        let (left, right) = (360i16, 1160i16);
        let mut y = 60i16;
        while y < i16::try_from(PAGE_HEIGHT)? - 400 {
            // A heading: bold by drawing it twice a pixel apart, and a rule.
            let heading = words(rng, 5).to_uppercase();
            self.text((TEXT, WHITE), left, y, &heading)?;
            self.text((TEXT, WHITE), left + 1, y, &heading)?;
            self.fill(RULE, left, y + 8, 800, 1)?;
            y += 3 * LINE_H;
            for _ in 0..between(rng, (2, 4)) {
                y = self.paragraph(rng, left, right, y)?;
            }
            if rng.below(2) == 0 {
                y = self.picture(rng, left, y)?;
            }
        }
        Ok(())
    }

    /// A paragraph of 3-8 lines from `y`; returns the `y` below it.
    fn paragraph(&self, rng: &mut Rng, left: i16, right: i16, mut y: i16) -> Result<i16> {
        let columns = ((right - left) / CHAR_W) as usize;
        for _ in 0..between(rng, (3, 9)) {
            let mut line = String::new();
            while line.len() < columns - 12 {
                line.push_str(WORDS[rng.below(WORDS.len())]);
                line.push(' ');
            }
            // One line in four carries a link.
            let colour = if rng.below(4) == 0 { LINK } else { TEXT };
            self.text((colour, WHITE), left, y, line.trim_end())?;
            y += LINE_H;
        }
        Ok(y + LINE_H)
    }

    /// A picture 800 px wide of 16 px tiles in random colours, with a
    /// caption; returns the `y` below it.
    fn picture(&self, rng: &mut Rng, left: i16, y: i16) -> Result<i16> {
        let height = between(rng, (10, 20)) as i16 * 16;
        for ty in (0..height).step_by(16) {
            for tx in (0..800).step_by(16) {
                let colour = (rng.next_u64() & 0xff_ffff) as u32;
                self.fill(colour, left + tx, y + ty, 16, 16)?;
            }
        }
        self.text((TEXT, WHITE), left, y + height + LINE_H, &words(rng, 8))?;
        Ok(y + height + 3 * LINE_H)
    }

    fn fill(&self, colour: u32, x: i16, y: i16, width: u16, height: u16) -> Result<()> {
        self.conn
            .change_gc(self.gc, &ChangeGCAux::new().foreground(colour))?;
        let rect = Rectangle {
            x,
            y,
            width,
            height,
        };
        self.conn.poly_fill_rectangle(self.page, self.gc, &[rect])?;
        Ok(())
    }

    /// `text` in `colour` on `background` with its baseline at `y`.
    fn text(&self, (colour, background): (u32, u32), x: i16, y: i16, text: &str) -> Result<()> {
        let colours = ChangeGCAux::new().foreground(colour).background(background);
        self.conn.change_gc(self.gc, &colours)?;
        for (n, chunk) in text.as_bytes().chunks(250).enumerate() {
            let x = x + i16::try_from(n * 250)? * CHAR_W;
            self.conn.image_text8(self.page, self.gc, x, y, chunk)?;
        }
        Ok(())
    }
}

/// `n` random words.
fn words(rng: &mut Rng, n: usize) -> String {
    let words: Vec<&str> = (0..n).map(|_| WORDS[rng.below(WORDS.len())]).collect();
    words.join(" ")
}

//! The `encoder` benchmark: Deskrec's OpenH264 on its own, on synthetic
//! 1080p pictures that change a little, encoded with the change maps the
//! recorder hands it and without them, in the same run.
//!
//! It answers two questions the whole-recorder `capture` benchmark cannot
//! answer quickly or quietly enough:
//!
//! - what a picture whose change is a few macroblocks costs against the
//!   same picture encoded whole (the issue's "a small fraction of a full
//!   frame"), in the encoding thread's own CPU time, without X11, ffmpeg
//!   or the recorder's other threads;
//! - whether a patch to the vendored OpenH264 (`third_party/openh264-sys2`)
//!   that should only save work still writes the same stream: each scene
//!   reports a hash of its mapped stream, to compare before and after.
//!
//! The scenes: `typing`, a glyph-sized change (6x14 px) typed at a moving
//! place on a desktop with a window full of text, one a picture; and
//! `scroll`, the same with the window's text scrolled by 40 lines every
//! fifth picture. The pictures are made untimed; only `encode_yuv_frame`
//! is timed, and not on the first picture (the keyframe).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use deskrec_capture::{ChangeMap, EncoderConfig, Frame, H264Encoder, YuvFrame};
use sha2::{Digest, Sha256};

use crate::report::{Goal, Report};
use crate::timing;

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;
/// Pictures a scene encodes each time, the keyframe included.
const PICTURES: usize = 200;
/// Measured rounds of each variant, alternated (`timing::interleaved`).
const ROUNDS: usize = 3;
/// The window of text: columns and rows.
const WINDOW_X: std::ops::Range<u32> = 20..1200;
const WINDOW_Y: std::ops::Range<u32> = 12..900;
/// How far the `scroll` scene scrolls, and how often.
const SCROLL_LINES: u32 = 40;
const SCROLL_EVERY: usize = 5;

/// The encoder's cost of a picture that changes in a few macroblocks
/// against the same pictures encoded whole: "a small fraction".
const TYPING_COST_GOAL: f64 = 0.25;

#[derive(Clone, Copy)]
enum Scene {
    Typing,
    Scroll,
}

impl Scene {
    fn name(self) -> &'static str {
        match self {
            Scene::Typing => "typing",
            Scene::Scroll => "scroll",
        }
    }

    /// How far the window's text is scrolled in picture `index`.
    fn scrolled(self, index: usize) -> u32 {
        match self {
            Scene::Typing => 0,
            Scene::Scroll => SCROLL_LINES * (index / SCROLL_EVERY) as u32,
        }
    }
}

/// Runs both scenes.
pub fn run(_work: &Path) -> Result<Report> {
    let mut report = Report::default();
    let page = Page::new(SCROLL_LINES * (PICTURES / SCROLL_EVERY) as u32);
    for scene in [Scene::Typing, Scene::Scroll] {
        measure(scene, &page, &mut report)
            .with_context(|| format!("the encoder benchmark's {} scene", scene.name()))?;
    }
    report.note(format!(
        "{PICTURES} pictures of {WIDTH}x{HEIGHT} a scene, mapped and unmapped alternated, \
         {ROUNDS} rounds each (the median); CPU time of the encoding thread, keyframe excluded"
    ));
    report.note(
        "SCENE_stream_hash: the first 48 bits of the mapped stream's SHA-256; \
         an OpenH264 patch that only saves work must leave it as it is",
    );
    Ok(report)
}

/// What one encoding of a scene gave.
#[derive(Default, Clone, Copy)]
struct Encoded {
    cpu: Duration,
    bytes: usize,
    hash: u64,
    unchanged: u64,
}

fn measure(scene: Scene, page: &Page, report: &mut Report) -> Result<()> {
    let mut mapped = Encoded::default();
    let mut unmapped = Encoded::default();
    let mut with_maps = || {
        mapped = encode(scene, page, true)?;
        Ok(mapped.cpu)
    };
    let mut without = || {
        unmapped = encode(scene, page, false)?;
        Ok(unmapped.cpu)
    };
    let medians = timing::interleaved(0, ROUNDS, &mut [&mut with_maps, &mut without])?;
    let per_picture = |seconds: f64| seconds * 1000.0 / (PICTURES - 1) as f64;
    let (mapped_ms, unmapped_ms) = (per_picture(medians[0]), per_picture(medians[1]));
    let name = scene.name();
    report.add(
        format!("{name}_mapped_ms"),
        mapped_ms,
        "ms",
        "encoder CPU a picture, with change maps",
    );
    report.add(
        format!("{name}_unmapped_ms"),
        unmapped_ms,
        "ms",
        "encoder CPU a picture, the same pictures without maps",
    );
    let ratio = mapped_ms / unmapped_ms;
    let about = "mapped against unmapped encoder CPU";
    match scene {
        Scene::Typing => report.add_goal(
            format!("{name}_cost_ratio"),
            ratio,
            Goal::AtMost(TYPING_COST_GOAL),
            about,
        ),
        Scene::Scroll => report.add(format!("{name}_cost_ratio"), ratio, "ratio", about),
    }
    report.add(
        format!("{name}_bytes"),
        mapped.bytes as f64,
        "B",
        "the mapped stream",
    );
    report.add(
        format!("{name}_unmapped_bytes"),
        unmapped.bytes as f64,
        "B",
        "the unmapped stream",
    );
    report.add(
        format!("{name}_stream_hash"),
        mapped.hash as f64,
        "",
        "the mapped stream's hash",
    );
    let macroblocks = (WIDTH.div_ceil(16) * HEIGHT.div_ceil(16)) as f64 * (PICTURES - 1) as f64;
    report.add(
        format!("{name}_unchanged_share"),
        mapped.unchanged as f64 / macroblocks,
        "share",
        "macroblocks the maps said unchanged",
    );
    Ok(())
}

/// Encodes the scene's pictures once, with or without change maps.
fn encode(scene: Scene, page: &Page, with_maps: bool) -> Result<Encoded> {
    let config = EncoderConfig {
        // One keyframe, the first picture: the scene is about P pictures.
        gop: Duration::from_secs(3600),
        ..EncoderConfig::new(WIDTH, HEIGHT)
    };
    let mut encoder = H264Encoder::new(config)?;
    let start = std::time::Instant::now();
    let mut last: Option<(Frame, YuvFrame)> = None;
    let mut out = Encoded::default();
    let mut stream = Sha256::new();
    for index in 0..PICTURES {
        let captured_at = start + Duration::from_millis(200 * index as u64);
        let frame = Frame::new(
            WIDTH,
            HEIGHT,
            WIDTH as usize * 4,
            page.picture(scene, index),
            captured_at,
        )?;
        let picture = match (&last, with_maps) {
            (Some((last_frame, last_picture)), true) => YuvFrame::from_bgra_changes(
                last_picture,
                ChangeMap::between(last_frame, &frame),
                frame.size(),
                frame.stride(),
                frame.pixels(),
                captured_at,
            )?,
            _ => YuvFrame::from_frame(&frame)?,
        };
        let before = thread_cpu();
        let encoded = encoder.encode_yuv_frame(&picture, index == 0)?;
        if index > 0 {
            out.cpu += thread_cpu().saturating_sub(before);
        }
        out.bytes += encoded.data.len();
        stream.update(&encoded.data);
        last = Some((frame, picture));
    }
    out.unchanged = encoder.unchanged_macroblocks();
    // 48 bits: a JSON number holds them exactly.
    let digest = stream.finalize();
    out.hash = digest[..6]
        .iter()
        .fold(0, |hash, &b| hash << 8 | u64::from(b));
    Ok(out)
}

/// The desktop and the window's text, taller than the screen by what the
/// `scroll` scene scrolls.
struct Page {
    desktop: Vec<u8>,
    text: Vec<u8>,
}

impl Page {
    fn new(extra_rows: u32) -> Self {
        let rows = HEIGHT + extra_rows;
        let mut text = Vec::with_capacity((WIDTH * rows * 4) as usize);
        for y in 0..rows {
            for x in 0..WIDTH {
                // Rows of "glyphs", paragraphs of two text lines then a gap.
                let line = (y / 9) % 2 == 1 && (y / 160) % 3 != 2;
                let ink = line && (x * 7 + y * 3 + (y / 18) * 5) % 11 < 4;
                let v = if ink { 30 } else { 240 };
                text.extend_from_slice(&[v, v, v, 255]);
            }
        }
        let desktop = [110, 110, 150, 255].repeat((WIDTH * HEIGHT) as usize);
        Self { desktop, text }
    }

    /// Picture `index` of `scene`: the window's text, scrolled, and a
    /// glyph typed at a place that moves along the lines.
    fn picture(&self, scene: Scene, index: usize) -> Vec<u8> {
        let mut pixels = self.desktop.clone();
        let row_bytes = WIDTH as usize * 4;
        let (left, right) = (WINDOW_X.start as usize * 4, WINDOW_X.end as usize * 4);
        let scrolled = scene.scrolled(index);
        for y in WINDOW_Y {
            let at = y as usize * row_bytes;
            let from = (y + scrolled) as usize * row_bytes;
            pixels[at + left..at + right].copy_from_slice(&self.text[from + left..from + right]);
        }
        let step = index as u32 * 7;
        let (x, y) = (40 + step % 1100, 300 + 20 * (step / 1100 % 20));
        for dy in 0..14 {
            let at = ((y + dy) * WIDTH + x) as usize * 4;
            pixels[at..at + 6 * 4].copy_from_slice(&[20, 20, 20, 255].repeat(6));
        }
        pixels
    }
}

/// The calling thread's CPU time.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for clock_gettime to write.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(
        rc, 0,
        "CLOCK_THREAD_CPUTIME_ID is always available on Linux"
    );
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The macroblocks that differ between pictures `a` and `b` of `scene`.
    fn changed(page: &Page, scene: Scene, a: usize, b: usize) -> usize {
        let frame = |i| {
            let now = std::time::Instant::now();
            Frame::new(
                WIDTH,
                HEIGHT,
                WIDTH as usize * 4,
                page.picture(scene, i),
                now,
            )
            .unwrap()
        };
        ChangeMap::between(&frame(a), &frame(b)).changed_count()
    }

    #[test]
    fn typing_changes_a_few_macroblocks_and_scrolling_the_window() {
        let page = Page::new(SCROLL_LINES * 2);
        // The glyph before and the glyph now: each within 2x2 macroblocks.
        let typed = changed(&page, Scene::Typing, 0, 1);
        assert!((1..=8).contains(&typed), "{typed} macroblocks changed");
        let between_scrolls = changed(&page, Scene::Scroll, 1, 2);
        assert!(
            (1..=8).contains(&between_scrolls),
            "{between_scrolls} macroblocks changed"
        );
        // A scroll moves the window's text: most of its macroblocks.
        let window = (WINDOW_X.len() / 16) * (WINDOW_Y.len() / 16);
        let scrolled = changed(&page, Scene::Scroll, SCROLL_EVERY - 1, SCROLL_EVERY);
        assert!(
            scrolled > window / 2,
            "{scrolled} of ~{window} macroblocks changed"
        );
    }
}

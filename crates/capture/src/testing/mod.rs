//! Test support (feature `test-utils`): on Linux a virtual X server, a
//! client that paints known pictures into it, ffmpeg decoding of the
//! recorded video back into picture numbers, and a small filesystem to fill;
//! on Windows (and wine) a window of the test's own to bring to the front.
//!
//! Not part of the capture API: it exists so the capture, recorder and CLI
//! tests share one fixture instead of copies. Everything here panics on
//! failure, as test code does.
//!
//! ```no_run
//! use deskrec_capture::testing::{Painter, Xvfb};
//! use deskrec_capture::FrameSource;
//!
//! let Some(xvfb) = Xvfb::start(640, 480) else {
//!     return; // Xvfb not installed, and not on CI: skipped with a message
//! };
//! let painter = Painter::new(&xvfb);
//! painter.show(42); // `synthetic::render(640x480, 42)` is now on screen
//! let frame = xvfb.source().next_frame().unwrap();
//! assert_eq!(deskrec_capture::read_frame_number_bgra(&frame), Some(42));
//! ```
//!
//! - [`Xvfb`]: an `Xvfb` server on a free display, gone when dropped.
//! - [`Painter`]: a window over the whole screen that shows numbered
//!   pictures ([`synthetic::render`](crate::synthetic::render)) or coloured
//!   rectangles, and reconfigures the screen through RandR (monitors,
//!   resolution).
//! - [`DecodedVideo`]: a video file decoded by `ffmpeg` into grey pictures
//!   with their presentation times (`ffprobe`), read back with
//!   [`read_frame_number`](crate::read_frame_number).
//! - [`WindowManager`]: top-level windows with a title, class and pid,
//!   one of them named in `_NET_ACTIVE_WINDOW`, for the foreground-window
//!   probe (Xvfb has no window manager).
//! - [`Tmpfs`]: a small filesystem to fill up (full-disk tests).
//! - [`require_program`]: the skip-or-fail rule for missing tools.
//! - [`ffprobe_duration`]: a media file's duration as ffprobe reads it.
//! - `TestWindow` (Windows only): a top-level window with a known title
//!   and class, brought to the front, for the foreground-window probe and
//!   the agent's pause rules under wine.

#[cfg(target_os = "linux")]
mod painter;
#[cfg(windows)]
mod test_window;
#[cfg(target_os = "linux")]
mod tmpfs;
#[cfg(target_os = "linux")]
mod video;
#[cfg(target_os = "linux")]
mod window_manager;
#[cfg(target_os = "linux")]
mod xvfb;

#[cfg(target_os = "linux")]
pub use painter::Painter;
#[cfg(windows)]
pub use test_window::{TEST_WINDOW_CLASS, TestWindow};
#[cfg(target_os = "linux")]
pub use tmpfs::Tmpfs;
#[cfg(target_os = "linux")]
pub use video::{DecodedFrame, DecodedVideo};
#[cfg(target_os = "linux")]
pub use window_manager::WindowManager;
#[cfg(target_os = "linux")]
pub use xvfb::{Xvfb, free_display_number};

/// Whether `program` is on `PATH`. When it is not, a test that needs it
/// should be skipped: this prints `skipped: ...` (naming the Debian
/// `package` to install) and returns `false`; but under CI (the `CI`
/// environment variable set) a missing tool is a broken runner, so it
/// panics instead.
pub fn require_program(program: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    if !found {
        let why = format!("{program} is not installed (Debian: apt-get install {package})");
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("skipped: {why}");
    }
    found
}

/// The duration of a media file as ffprobe reads it (its container's),
/// in seconds.
///
/// # Panics
///
/// When ffprobe is missing or cannot read the file.
#[must_use]
pub fn ffprobe_duration(path: &std::path::Path) -> f64 {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe is installed (cargo xtask setup)");
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("ffprobe's duration {text:?}: {e}"))
}

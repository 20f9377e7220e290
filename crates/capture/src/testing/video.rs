//! [`DecodedVideo`]: what a player shows of a video file, read with
//! `ffprobe` (times) and `ffmpeg` (pictures).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crate::synthetic::read_frame_number;
use crate::{FrameSize, Monitor};

/// Every picture a video file shows, in order, as 8-bit grey (luma), with
/// its presentation time. Edit lists are applied, as a player would: frames
/// decoded only to reach the first shown one are not listed.
///
/// Needs `ffmpeg` and `ffprobe` (check with
/// [`require_program`](super::require_program)).
#[derive(Debug, Clone)]
pub struct DecodedVideo {
    /// The picture size.
    pub size: FrameSize,
    /// The pictures shown.
    pub frames: Vec<DecodedFrame>,
}

/// One picture of a [`DecodedVideo`].
#[derive(Debug, Clone)]
pub struct DecodedFrame {
    /// When it is shown, in µs from the start of the video (ffprobe's
    /// `pts_time`).
    pub time_us: i64,
    /// The picture size.
    pub size: FrameSize,
    /// Luma, `size.height` rows of `size.width` bytes.
    pub gray: Vec<u8>,
}

impl DecodedVideo {
    /// Decodes the first video stream of `path`.
    ///
    /// # Panics
    ///
    /// When ffmpeg or ffprobe cannot be run or fail, or they disagree on
    /// the number of frames.
    #[must_use]
    pub fn decode(path: &Path) -> Self {
        let probed = probe_frames(path);
        let size = probed.first().map_or(FrameSize::new(0, 0), |f| f.1);
        assert!(
            probed.iter().all(|f| f.1 == size),
            "{}: the picture size changes",
            path.display()
        );
        let pictures = decode_gray(path, size);
        assert_eq!(
            pictures.len(),
            probed.len(),
            "{}: ffmpeg decodes {} pictures, ffprobe lists {} frames",
            path.display(),
            pictures.len(),
            probed.len()
        );
        let frames = probed
            .into_iter()
            .zip(pictures)
            .map(|((time_us, size), gray)| DecodedFrame {
                time_us,
                size,
                gray,
            })
            .collect();
        Self { size, frames }
    }
}

impl DecodedFrame {
    /// The number of the synthetic picture that fills the frame (its code
    /// at the top-left corner), if one is readable.
    #[must_use]
    pub fn number(&self) -> Option<u32> {
        read_frame_number(
            &self.gray,
            self.size.width as usize,
            self.size.height as usize,
        )
    }

    /// Whether the frame shows `text` as [`Painter::write`] wrote it at
    /// (`x`, `y`) and `scale`: inside its box, the glyphs' pixels are much
    /// brighter than the rest (by more than half the luma range), however
    /// the codec blurred the edges.
    ///
    /// [`Painter::write`]: super::Painter::write
    #[must_use]
    pub fn shows_text(&self, text: &str, (x, y): (usize, usize), scale: usize) -> bool {
        let (w, h) = crate::lettering::text_size(text, scale);
        let width = self.size.width as usize;
        let (mut ink, mut paper) = ((0u64, 0u64), (0u64, 0u64));
        for ty in 0..h.min((self.size.height as usize).saturating_sub(y)) {
            for tx in 0..w.min(width.saturating_sub(x)) {
                let luma = u64::from(self.gray[(y + ty) * width + x + tx]);
                let sum = if crate::lettering::is_ink(text, scale, tx, ty) {
                    &mut ink
                } else {
                    &mut paper
                };
                *sum = (sum.0 + luma, sum.1 + 1);
            }
        }
        let mean = |(sum, n): (u64, u64)| sum.checked_div(n).unwrap_or(0);
        ink.1 > 0 && mean(ink) > mean(paper) + 110
    }

    /// The number of the synthetic picture shown in `area` of the frame
    /// (e.g. one monitor, see [`Painter::show_on`](super::Painter::show_on)).
    ///
    /// # Panics
    ///
    /// When `area` is not inside the frame.
    #[must_use]
    pub fn number_in(&self, area: &Monitor) -> Option<u32> {
        let (x, y) = (area.x as usize, area.y as usize);
        let (width, height) = (area.width as usize, area.height as usize);
        let stride = self.size.width as usize;
        assert!(
            x + width <= stride && y + height <= self.size.height as usize,
            "{area:?} is not inside a {} frame",
            self.size
        );
        let crop: Vec<u8> = (y..y + height)
            .flat_map(|row| &self.gray[row * stride + x..][..width])
            .copied()
            .collect();
        read_frame_number(&crop, width, height)
    }
}

/// Each frame's presentation time (µs) and size, from ffprobe.
fn probe_frames(path: &Path) -> Vec<(i64, FrameSize)> {
    let text = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .arg("frame=pts_time,best_effort_timestamp_time,width,height")
        .args(["-of", "compact=p=0"])
        .arg(path));
    String::from_utf8(text)
        .expect("ffprobe writes UTF-8")
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: HashMap<&str, &str> =
                line.split('|').filter_map(|f| f.split_once('=')).collect();
            let number = |key: &str| fields.get(key).and_then(|v| v.parse::<f64>().ok());
            let seconds = number("pts_time")
                .or_else(|| number("best_effort_timestamp_time"))
                .unwrap_or_else(|| panic!("no time in ffprobe's {line:?}"));
            let side = |key: &str| {
                number(key).unwrap_or_else(|| panic!("no {key} in ffprobe's {line:?}")) as u32
            };
            (
                (seconds * 1e6).round() as i64,
                FrameSize::new(side("width"), side("height")),
            )
        })
        .collect()
}

/// Every shown picture as grey bytes, from ffmpeg (one output picture per
/// decoded frame: `-fps_mode passthrough`).
fn decode_gray(path: &Path, size: FrameSize) -> Vec<Vec<u8>> {
    let raw = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-fps_mode", "passthrough", "-f", "rawvideo"])
        .args(["-pix_fmt", "gray", "-"]));
    let picture = size.width as usize * size.height as usize;
    if picture == 0 {
        return Vec::new();
    }
    assert_eq!(raw.len() % picture, 0, "ffmpeg wrote a partial picture");
    raw.chunks_exact(picture).map(<[u8]>::to_vec).collect()
}

/// Runs a command to completion and returns its standard output.
fn run(command: &mut Command) -> Vec<u8> {
    let program = command.get_program().to_string_lossy().into_owned();
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (cargo xtask setup installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

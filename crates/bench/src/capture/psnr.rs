//! Picture quality against what was on the screen: PSNR of a recording's
//! frames against a lossless reference recording of the same screen made
//! at the same time.
//!
//! The recorders capture at moments of their own, so a frame is compared
//! with the reference frame, among those captured within [`WINDOW_US`] of
//! it, that matches it best (lowest luma error): the reference runs at
//! twice the recorders' rate and the scenes hold still between their
//! updates, so that is a picture of the very screen the recorder saw, and
//! what remains is the recorder's loss (colour conversion, chroma
//! subsampling, encoding).
//!
//! A frame captured while an xterm was redrawing (a burst of lines, `top`'s
//! refresh) shows a screen that no reference frame has. That is rare (the
//! scroller's bursts are jittered so it is not systematic), and such frames
//! are counted ([`Psnr::low_frames`]).
//!
//! Everything is compared as decoded RGB (ffmpeg's swscale converts each
//! recording with the colour matrix its recorder encoded with), frame by
//! frame, in full 1920x1080: black background included, as a viewer sees
//! it. Two measures:
//!
//! - luma: Y' from R'G'B' with the recorder's own matrix, in limited range
//!   (16-235, peak 255), so it equals the PSNR of the Y plane a codec
//!   comparison reports;
//! - RGB: all three channels, chroma subsampling's loss included.
//!
//! Each is given as the mean of the frames' PSNRs (x264's "mean" PSNR: a
//! rare unmatched frame moves it little) and luma also as the PSNR of the
//! mean squared error over all frames (x264's "global" PSNR, ffmpeg's
//! `psnr` filter: dominated by the worst frames).

use std::collections::VecDeque;
use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};

use anyhow::{Context, Result, bail, ensure};

use super::probe;

/// How far from a recorder's frame (µs) reference frames are considered.
pub const WINDOW_US: i64 = 150_000;

/// How a recording's pixels map to R'G'B'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    /// Stored as RGB (the lossless reference).
    Rgb,
    /// Limited-range Y'CbCr with this matrix.
    Yuv(Matrix),
}

/// A Y'CbCr matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matrix {
    /// ITU-R BT.601: swscale's default, so what ffmpeg's x11grab + libx264
    /// encodes with.
    Bt601,
    /// ITU-R BT.709: what Deskrec encodes with (and signals).
    Bt709,
}

impl Matrix {
    /// Luma weights (Kr, Kg, Kb).
    fn weights(self) -> [f32; 3] {
        match self {
            Matrix::Bt601 => [0.299, 0.587, 0.114],
            Matrix::Bt709 => [0.2126, 0.7152, 0.0722],
        }
    }

    /// swscale's name for it.
    fn swscale(self) -> &'static str {
        match self {
            Matrix::Bt601 => "bt601",
            Matrix::Bt709 => "bt709",
        }
    }
}

/// A recording to decode.
#[derive(Debug, Clone)]
pub struct Video {
    /// The file (MP4 or Matroska).
    pub path: PathBuf,
    /// Wall-clock time (UTC µs) of presentation time 0.
    pub start_us: i64,
    /// How its pixels are stored.
    pub colour: Colour,
    /// Picture width.
    pub width: usize,
    /// Picture height.
    pub height: usize,
}

/// Frames whose luma PSNR is below this (dB) are counted as low: a
/// different screen (a capture mid-drawing) rather than coding loss.
pub const LOW_FRAME_DB: f64 = 30.0;

/// PSNR of one recording against the reference.
#[derive(Debug, Clone, Copy)]
pub struct Psnr {
    /// Frames compared: every frame of the recording.
    pub frames: usize,
    /// Mean of the frames' luma PSNRs, dB.
    pub luma_db: f64,
    /// Luma PSNR of the mean squared error over all frames, dB.
    pub luma_global_db: f64,
    /// Mean of the frames' RGB PSNRs, dB.
    pub rgb_db: f64,
    /// Luma PSNR of the worst frame, dB.
    pub worst_luma_db: f64,
    /// Frames below [`LOW_FRAME_DB`].
    pub low_frames: usize,
}

/// Compares every frame of `tested` with the best-matching nearby frame of
/// `reference` (see the module docs).
pub fn compare(reference: &Video, tested: &Video) -> Result<Psnr> {
    let Colour::Yuv(matrix) = tested.colour else {
        bail!("{} is not a Y'CbCr recording", tested.path.display());
    };
    ensure!(
        (reference.width, reference.height) == (tested.width, tested.height),
        "{} and {} differ in picture size",
        reference.path.display(),
        tested.path.display()
    );
    let weights = matrix.weights();
    let mut refs = Frames::open(reference)?;
    let mut window: VecDeque<(i64, Picture)> = VecDeque::new();
    let mut per_frame: Vec<FrameError> = Vec::new();
    let mut frames = Frames::open(tested)?;
    while let Some((time, rgb)) = frames.next_frame()? {
        let picture = Picture::new(rgb, weights);
        // Times only increase: what is too old now stays too old.
        while window.front().is_some_and(|(t, _)| *t < time - WINDOW_US) {
            window.pop_front();
        }
        while window.back().is_none_or(|(t, _)| *t <= time + WINDOW_US) {
            let Some((t, rgb)) = refs.next_frame()? else {
                break;
            };
            if t >= time - WINDOW_US {
                window.push_back((t, Picture::new(rgb, weights)));
            }
        }
        let best = window
            .iter()
            .filter(|(t, _)| *t <= time + WINDOW_US)
            .map(|(_, r)| (picture.luma_sse(r), r))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let Some((luma_sse, best)) = best else {
            bail!(
                "{}: no reference frame within {} ms of the frame at {time} µs",
                tested.path.display(),
                WINDOW_US / 1000
            );
        };
        per_frame.push(FrameError {
            luma_mse: luma_sse / picture.luma.len() as f64,
            rgb_mse: picture.rgb_sse(best) as f64 / picture.rgb.len() as f64,
        });
    }
    frames.finish()?;
    refs.finish()?;
    ensure!(
        !per_frame.is_empty(),
        "{} has no frames",
        tested.path.display()
    );
    Ok(summarise(&per_frame))
}

/// One frame's mean squared errors.
#[derive(Debug, Clone, Copy)]
struct FrameError {
    luma_mse: f64,
    rgb_mse: f64,
}

fn summarise(frames: &[FrameError]) -> Psnr {
    let n = frames.len() as f64;
    let mean = |f: fn(&FrameError) -> f64| frames.iter().map(f).sum::<f64>() / n;
    let worst_mse = frames.iter().map(|f| f.luma_mse).fold(0.0, f64::max);
    Psnr {
        frames: frames.len(),
        luma_db: mean(|f| psnr(f.luma_mse)),
        luma_global_db: psnr(mean(|f| f.luma_mse)),
        rgb_db: mean(|f| psnr(f.rgb_mse)),
        worst_luma_db: psnr(worst_mse),
        low_frames: frames
            .iter()
            .filter(|f| psnr(f.luma_mse) < LOW_FRAME_DB)
            .count(),
    }
}

/// PSNR in dB of a mean squared error on 8-bit samples (capped at 100 dB
/// for identical pictures).
fn psnr(mse: f64) -> f64 {
    if mse <= 0.0 {
        return 100.0;
    }
    (10.0 * (255.0f64 * 255.0 / mse).log10()).min(100.0)
}

/// A decoded frame: packed RGB and its limited-range luma.
struct Picture {
    rgb: Vec<u8>,
    luma: Vec<f32>,
}

impl Picture {
    fn new(rgb: Vec<u8>, [kr, kg, kb]: [f32; 3]) -> Self {
        // Limited range: 219 luma steps for 255 RGB steps.
        let scale = 219.0 / 255.0;
        let (kr, kg, kb) = (kr * scale, kg * scale, kb * scale);
        let luma = rgb
            .chunks_exact(3)
            .map(|p| kr * f32::from(p[0]) + kg * f32::from(p[1]) + kb * f32::from(p[2]))
            .collect();
        Self { rgb, luma }
    }

    fn luma_sse(&self, other: &Picture) -> f64 {
        self.luma
            .chunks(4096)
            .zip(other.luma.chunks(4096))
            .map(|(a, b)| {
                let block: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
                f64::from(block)
            })
            .sum()
    }

    fn rgb_sse(&self, other: &Picture) -> u64 {
        // Blocks of 4096 samples keep each partial sum within u32.
        self.rgb
            .chunks(4096)
            .zip(other.rgb.chunks(4096))
            .map(|(a, b)| {
                let block: u32 = a
                    .iter()
                    .zip(b)
                    .map(|(&x, &y)| u32::from(x.abs_diff(y)).pow(2))
                    .sum();
                u64::from(block)
            })
            .sum()
    }
}

/// A recording's frames in presentation order, decoded to packed RGB by
/// ffmpeg (one picture per coded frame), with their wall-clock times.
struct Frames {
    path: PathBuf,
    times: std::vec::IntoIter<i64>,
    decoder: Child,
    pixels: BufReader<ChildStdout>,
    frame_bytes: usize,
}

impl Frames {
    fn open(video: &Video) -> Result<Self> {
        let times: Vec<i64> = probe::packets(&video.path)?
            .into_iter()
            .map(|p| video.start_us + p.time_us)
            .collect();
        let scale = match video.colour {
            Colour::Rgb => "format=rgb24".to_string(),
            Colour::Yuv(m) => format!(
                "scale=in_color_matrix={}:in_range=tv:flags=bicubic+accurate_rnd+full_chroma_int,\
                 format=rgb24",
                m.swscale()
            ),
        };
        let mut decoder = Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-i"])
            .arg(&video.path)
            .args(["-map", "0:v:0", "-fps_mode", "passthrough", "-vf", &scale])
            .args(["-f", "rawvideo", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting ffmpeg to decode")?;
        let pixels = BufReader::with_capacity(1 << 20, decoder.stdout.take().expect("piped"));
        Ok(Self {
            path: video.path.clone(),
            times: times.into_iter(),
            decoder,
            pixels,
            frame_bytes: video.width * video.height * 3,
        })
    }

    /// The next frame's time and pixels; `None` after the last.
    fn next_frame(&mut self) -> Result<Option<(i64, Vec<u8>)>> {
        let Some(time) = self.times.next() else {
            return Ok(None);
        };
        let mut rgb = vec![0; self.frame_bytes];
        self.pixels.read_exact(&mut rgb).with_context(|| {
            format!(
                "{}: ffmpeg decoded fewer frames than ffprobe lists",
                self.path.display()
            )
        })?;
        Ok(Some((time, rgb)))
    }

    /// Stops the decoder (the reference has frames left over).
    fn finish(mut self) -> Result<()> {
        let _ = self.decoder.kill();
        self.decoder.wait()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bad_frame_moves_the_mean_little_and_the_global_much() {
        let good = FrameError {
            luma_mse: 1.0,
            rgb_mse: 1.0,
        };
        let bad = FrameError {
            luma_mse: 1000.0,
            rgb_mse: 1000.0,
        };
        let mut frames = vec![good; 99];
        frames.push(bad);
        let p = summarise(&frames);
        assert_eq!((p.frames, p.low_frames), (100, 1));
        assert!((p.luma_db - 47.83).abs() < 0.01, "{p:?}");
        assert!((p.luma_global_db - 37.72).abs() < 0.01, "{p:?}");
        assert!((p.worst_luma_db - 18.13).abs() < 0.01, "{p:?}");
    }

    #[test]
    fn psnr_of_known_errors() {
        assert_eq!(psnr(0.0), 100.0);
        assert!((psnr(1.0) - 48.13).abs() < 0.01);
        let a = Picture::new(vec![10, 20, 30, 40, 50, 60], Matrix::Bt709.weights());
        let b = Picture::new(vec![12, 20, 30, 40, 50, 63], Matrix::Bt709.weights());
        assert_eq!(a.rgb_sse(&b), 4 + 9);
        // Grey differs by the same in every channel: luma by 219/255 of it.
        let g1 = Picture::new(vec![100; 3], Matrix::Bt601.weights());
        let g2 = Picture::new(vec![110; 3], Matrix::Bt601.weights());
        let expected = (10.0f64 * 219.0 / 255.0).powi(2);
        assert!((g1.luma_sse(&g2) - expected).abs() < 1e-3);
    }
}

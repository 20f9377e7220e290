//! How much of a video's P-pictures the encoder skipped: ffmpeg's H.264
//! decoder prints the type of every macroblock (`-debug mb_type`), and a
//! skipped one (P_Skip: no motion vector difference, no residual) is `S`.
//! A recorder whose cost follows the change skips nearly every macroblock
//! of a picture where a caret blinked.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};

/// Macroblock counts over the P-pictures of a video.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MbTypes {
    /// P-pictures seen.
    pub p_frames: u64,
    /// Macroblocks in them.
    pub macroblocks: u64,
    /// Of which skipped.
    pub skipped: u64,
}

impl MbTypes {
    /// The share of the P-pictures' macroblocks that were skipped.
    pub fn skip_share(&self) -> f64 {
        self.skipped as f64 / self.macroblocks.max(1) as f64
    }
}

/// Decodes `video` with ffmpeg (one thread, so its log is in frame order)
/// and counts its P-pictures' macroblock types.
pub fn count(video: &Path) -> Result<MbTypes> {
    let out = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-hide_banner",
            "-threads",
            "1",
            "-debug",
            "mb_type",
            "-i",
        ])
        .arg(video)
        .args(["-f", "null", "-"])
        .output()
        .context("starting ffmpeg")?;
    ensure!(
        out.status.success(),
        "ffmpeg could not decode {}: {}",
        video.display(),
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("")
    );
    let counts = parse(&String::from_utf8_lossy(&out.stderr));
    ensure!(
        counts.p_frames > 0,
        "ffmpeg printed no macroblock types for {}",
        video.display()
    );
    Ok(counts)
}

/// Counts the log's P-pictures' macroblocks. After `New frame, type: P`
/// come the picture's rows, each `[h264 @ 0x...] ` and three characters a
/// macroblock, the first its type.
fn parse(log: &str) -> MbTypes {
    let mut counts = MbTypes::default();
    let mut in_p_frame = false;
    for line in log.lines() {
        let Some(rest) = line.strip_prefix("[h264 @ ") else {
            in_p_frame = false;
            continue;
        };
        let Some((_, text)) = rest.split_once("] ") else {
            continue;
        };
        if let Some(kind) = text.strip_prefix("New frame, type: ") {
            in_p_frame = kind.trim() == "P";
            if in_p_frame {
                counts.p_frames += 1;
            }
            continue;
        }
        if !(in_p_frame && is_mb_row(text)) {
            // Any other line of the decoder's ends the picture's rows.
            in_p_frame = false;
            continue;
        }
        for mb in text.as_bytes().chunks(3) {
            counts.macroblocks += 1;
            counts.skipped += u64::from(mb[0] == b'S');
        }
    }
    counts
}

/// Whether `text` is a row of macroblock types: three-character cells.
fn is_mb_row(text: &str) -> bool {
    !text.is_empty() && text.len().is_multiple_of(3) && !text.contains(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_skipped_macroblocks_of_p_pictures_only() {
        let log = "\
[h264 @ 0x55] New frame, type: I
[h264 @ 0x55] I  I  i  i  
[h264 @ 0x55] i  I  I  i  
[h264 @ 0x55] nal_unit_type: 1(Coded slice of a non-IDR picture), nal_ref_idc: 2
[h264 @ 0x55] New frame, type: P
[h264 @ 0x55] S  S  >- S  
[h264 @ 0x55] S  S  S  i  
frame=    2 fps=0.0 q=-0.0 size=N/A
[h264 @ 0x55] New frame, type: P
[h264 @ 0x55] S  S  S  S  
[h264 @ 0x55] S  S  S  S  
";
        let counts = parse(log);
        assert_eq!(
            counts,
            MbTypes {
                p_frames: 2,
                macroblocks: 16,
                skipped: 14
            }
        );
        assert!((counts.skip_share() - 14.0 / 16.0).abs() < 1e-9);
    }
}

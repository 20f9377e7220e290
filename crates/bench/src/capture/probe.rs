//! A video file's packets, as ffprobe lists them (no decoding).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};

/// One coded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// Presentation time, µs from the file's time 0.
    pub time_us: i64,
    /// Coded size in bytes.
    pub bytes: u64,
    /// Whether it is a keyframe.
    pub keyframe: bool,
}

/// The packets of the first video stream of `path`, in presentation order
/// (the order ffmpeg outputs decoded pictures in).
pub fn packets(path: &Path) -> Result<Vec<Packet>> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=pts_time,size,flags"])
        .args(["-of", "compact=p=0"])
        .arg(path)
        .output()
        .context("starting ffprobe")?;
    ensure!(
        out.status.success(),
        "ffprobe {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut packets = String::from_utf8(out.stdout)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_line)
        .collect::<Result<Vec<_>>>()?;
    packets.sort_by_key(|p| p.time_us);
    Ok(packets)
}

/// `pts_time=1.200000|size=5321|flags=K__`.
fn parse_line(line: &str) -> Result<Packet> {
    let fields: HashMap<&str, &str> = line.split('|').filter_map(|f| f.split_once('=')).collect();
    let field = |key: &str| {
        fields
            .get(key)
            .copied()
            .with_context(|| format!("no {key} in ffprobe's {line:?}"))
    };
    let seconds: f64 = field("pts_time")?.parse()?;
    Ok(Packet {
        time_us: (seconds * 1e6).round() as i64,
        bytes: field("size")?.parse()?,
        keyframe: field("flags")?.starts_with('K'),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffprobe_lines_parse() {
        let p = parse_line("pts_time=1.200000|size=5321|flags=K__").unwrap();
        assert_eq!(
            p,
            Packet {
                time_us: 1_200_000,
                bytes: 5321,
                keyframe: true
            }
        );
        assert!(
            !parse_line("pts_time=0.4|size=9|flags=___")
                .unwrap()
                .keyframe
        );
        assert!(parse_line("size=9").is_err());
    }
}

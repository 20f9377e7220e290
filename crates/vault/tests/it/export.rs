//! Export to MP4 with real H.264: ffprobe's duration and the decoded
//! pictures match the requested range.

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use deskrec_capture::{
    EncoderConfig, FrameSource, H264Encoder, SyntheticSource, read_frame_number,
};
use deskrec_vault::*;

const W: u32 = 640;
const H: u32 = 360;

/// Three 8-second segments of numbered pictures at 5 fps with a 4 s GOP;
/// picture `n` is on screen from `T0 + n * 200 ms`.
fn three_segments(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut cfg = EncoderConfig::new(W, H);
    cfg.gop = Duration::from_secs(4);
    let mut enc = H264Encoder::new(cfg).unwrap();
    let mut src = SyntheticSource::new(W, H)
        .unwrap()
        .with_fixed_clock(Instant::now(), Duration::from_millis(200));
    let mut paths = Vec::new();
    for s in 0..3 {
        let mut frames = Vec::new();
        for i in 0..40 {
            let n = s * 40 + i;
            let picture = src.next_frame().unwrap();
            // A new segment starts with a keyframe.
            let encoded = enc.encode(&picture, i == 0).unwrap();
            frames.push(Frame {
                pts: T0 + n as i64 * FRAME_US,
                duration: FRAME_US as u32,
                keyframe: encoded.keyframe,
                data: encoded.data,
                pause: None,
            });
        }
        let path = dir.join(format!("{s}.seg"));
        let params = SegmentParams {
            device_id: DEVICE.into(),
            started_at: frames[0].pts,
            width: W,
            height: H,
            frame_rate: 5.0,
        };
        let mut w = SegmentWriter::create(&path, &params, keys().server.public()).unwrap();
        for c in chunked(frames, 10) {
            w.append_chunk(&c).unwrap();
        }
        w.finish().unwrap();
        paths.push(path);
    }
    paths
}

/// Every picture ffmpeg shows, as its synthetic frame number.
fn decoded_numbers(mp4: &std::path::Path) -> Vec<u32> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(mp4)
        .args([
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ])
        .output()
        .expect("ffmpeg is installed (cargo xtask setup)");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = (W * H) as usize;
    out.stdout
        .chunks_exact(size)
        .map(|pic| read_frame_number(pic, W as usize, H as usize).expect("a numbered picture"))
        .collect()
}

#[test]
#[cfg_attr(windows, ignore = "needs ffprobe and ffmpeg; the native run covers it")]
fn a_mid_gop_range_across_three_segments_exports_to_the_exact_duration() {
    let dir = tempfile::tempdir().unwrap();
    let segments = three_segments(dir.path());
    let rec = dir.path().join("contact.dskr");
    // 5.1 s .. 19.7 s: mid-GOP in segment 0 (keyframe at 4 s), through
    // segment 1, into segment 2.
    let (start, end) = (T0 + 5_100_000, T0 + 19_700_000);
    let spliced = splice(&request(segments, start, end), &keys().device, &rec).unwrap();
    assert_eq!(spliced.manifest.segments.len(), 3);

    let mp4 = dir.path().join("contact.mp4");
    let exported = export_mp4(&rec, &keyring(), device(), &mp4).unwrap();
    assert_eq!(
        exported.preroll, 5,
        "frames 20..24 decode but are not shown"
    );

    let duration = deskrec_capture::testing::ffprobe_duration(&mp4);
    let wanted = (end - start) as f64 / 1e6;
    assert!(
        (duration - wanted).abs() <= FRAME_US as f64 / 1e6,
        "ffprobe says {duration} s, the contact is {wanted} s"
    );
    // The first picture shown is the one on screen at the start (frame 25,
    // 5.0-5.2 s); the last, the one at the end (frame 98, 19.6-19.8 s); none
    // is missing or repeated in between.
    let numbers = decoded_numbers(&mp4);
    assert_eq!(numbers.first(), Some(&25), "{numbers:?}");
    assert_eq!(numbers.last(), Some(&98), "{numbers:?}");
    assert_eq!(numbers, (25..=98).collect::<Vec<_>>());
}

#[test]
fn nothing_is_written_when_verification_fails() {
    let dir = tempfile::tempdir().unwrap();
    let segments = three_segments(dir.path());
    let rec = dir.path().join("contact.dskr");
    splice(&request(segments, T0, T0 + 3_000_000), &keys().device, &rec).unwrap();
    let mut bytes = std::fs::read(&rec).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x10;
    std::fs::write(&rec, bytes).unwrap();
    let mp4 = dir.path().join("contact.mp4");
    assert!(export_mp4(&rec, &keyring(), device(), &mp4).is_err());
    assert!(!mp4.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "no partial file is left behind");
}

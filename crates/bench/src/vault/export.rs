//! Verifying and exporting an hour of recording to MP4.
//!
//! The exporter parses real H.264 (SPS and PPS go into the MP4's `avcC`),
//! so the hour is built from real frames: one keyframe interval (50 frames,
//! 10 s) of 1080p pictures from `deskrec-capture`'s `SyntheticSource`,
//! encoded by its `H264Encoder` (OpenH264, the agent's settings), repeated
//! 360 times with shifted timestamps. Encoding a whole hour would take
//! minutes; repeating whole keyframe intervals keeps the stream valid.
//!
//! The synthetic picture compresses far better than a busy desktop (about
//! 1.5 MB a minute against 6), and verifying and exporting cost per byte,
//! so each frame is padded to the busy-screen size the splice benchmark
//! uses with an H.264 filler-data NAL unit, which decoders skip and the
//! vault and the exporter carry like picture data.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use deskrec_capture::{EncodedFrame, EncoderConfig, FrameSource, H264Encoder, SyntheticSource};
use deskrec_vault::{
    DeviceIdentity, Exported, Keyring, PrivateKey, SpliceRequest, export_mp4, splice,
    verify_recording,
};

use super::remove_file;
use crate::report::Report;
use crate::synth::{self, FRAME_US, GOP_FRAMES, HEIGHT, Payload, Rng, WIDTH};
use crate::timing::{interleaved, timed};

/// Unrecorded rounds before the measured ones.
const WARMUP: usize = 1;
/// Measured rounds; figures are their medians.
const RUNS: usize = 3;

/// Frame `n` of a segment is frame `n % len` of the clip, padded to a
/// busy screen's frame size.
struct ClipPayload {
    clip: Vec<EncodedFrame>,
    rng: Rng,
}

impl Payload for ClipPayload {
    fn frame(&mut self, n: usize) -> (bool, Vec<u8>) {
        let f = &self.clip[n % self.clip.len()];
        let mut data = f.data.clone();
        pad_with_filler(&mut data, synth::busy_frame_len(n, &mut self.rng));
        (f.keyframe, data)
    }
}

/// Appends a filler-data NAL unit (type 12: `0xff` bytes, then the RBSP
/// stop bit) so `data` grows to `len` bytes; does nothing if it is as
/// large already.
fn pad_with_filler(data: &mut Vec<u8>, len: usize) {
    const FILLER_HEAD: [u8; 5] = [0, 0, 0, 1, 0x0c];
    if data.len() + FILLER_HEAD.len() + 1 >= len {
        return;
    }
    data.extend_from_slice(&FILLER_HEAD);
    data.resize(len - 1, 0xff);
    data.push(0x80);
}

/// Builds the hour in `dir`, measures, adds `verify_s_per_hour`,
/// `export_s_per_hour` and `export_mb`, and removes `dir`.
pub fn run(
    dir: &Path,
    server: &PrivateKey,
    device: &PrivateKey,
    report: &mut Report,
) -> Result<()> {
    eprintln!("vault bench: encoding a {GOP_FRAMES}-frame H.264 clip");
    let clip = h264_clip()?;
    let clip_note = describe_clip(&clip);
    eprintln!("vault bench: writing an hour of segments (repeated clip)");
    let mut payload = ClipPayload {
        clip,
        rng: Rng(0x5eed),
    };
    let segments = synth::write_hour(&dir.join("segments"), server.public(), &mut payload)?;
    let recording = dir.join("hour.dskr");
    let request = SpliceRequest {
        contact_id: "bench-contact".into(),
        agent: "BENCH\\agent".into(),
        requested: synth::hour(),
        segments,
        clock_offset: 0,
    };
    let recording_mb = splice(&request, device, &recording)?.bytes as f64 / 1e6;

    let keyring = Keyring::from(server.clone());
    let who = DeviceIdentity {
        id: synth::DEVICE_ID,
        key: device.public(),
    };
    let mp4 = dir.join("hour.mp4");
    let mut exported: Option<Exported> = None;
    eprintln!("vault bench: verify and export, {RUNS} rounds");
    let mut verify_case = || {
        timed(|| {
            verify_recording(&recording, &keyring, who)?;
            Ok(())
        })
    };
    let mut export_case = || {
        remove_file(&mp4)?;
        timed(|| {
            exported = Some(export_mp4(&recording, &keyring, who, &mp4)?);
            Ok(())
        })
    };
    let medians = interleaved(WARMUP, RUNS, &mut [&mut verify_case, &mut export_case])?;
    let (verify_s, export_s) = (medians[0], medians[1]);
    let exported = exported.expect("the export ran");
    let frames = 3600 * synth::FPS as u64;
    ensure!(
        exported.samples == frames && exported.preroll == 0,
        "the export wrote {} frames ({} pre-roll), not the hour's {frames}",
        exported.samples,
        exported.preroll
    );
    std::fs::remove_dir_all(dir)?;

    let hours = exported.trim.duration() as f64 / 3.6e9;
    report.add(
        "verify_s_per_hour",
        verify_s / hours,
        "s",
        "verify_recording of 1 h (MACs, decrypt, signature)",
    );
    report.add(
        "export_s_per_hour",
        export_s / hours,
        "s",
        "export_mp4 of 1 h (verify + write MP4)",
    );
    report.add(
        "export_mb",
        recording_mb,
        "MB",
        "size of the exported hour's recording",
    );
    report.add(
        "export_mp4_mb",
        exported.bytes as f64 / 1e6,
        "MB",
        "size of its MP4",
    );
    report.note(format!(
        "export: the hour repeats one {GOP_FRAMES}-frame real H.264 clip 360 times with shifted \
         timestamps ({clip_note}), each frame padded with a filler NAL unit to the splice's \
         busy-screen sizes; medians of {RUNS} interleaved rounds after {WARMUP} warm-up"
    ));
    Ok(())
}

/// One keyframe interval of real 1080p H.264 at the agent's settings.
fn h264_clip() -> Result<Vec<EncodedFrame>> {
    let interval = Duration::from_micros(FRAME_US as u64);
    let mut source =
        SyntheticSource::new(WIDTH, HEIGHT)?.with_fixed_clock(Instant::now(), interval);
    let mut encoder = H264Encoder::new(EncoderConfig::new(WIDTH, HEIGHT))?;
    (0..GOP_FRAMES)
        .map(|i| Ok(encoder.encode(&source.next_frame()?, i == 0)?))
        .collect()
}

/// Sizes of the clip's frames, for the notes.
fn describe_clip(clip: &[EncodedFrame]) -> String {
    let total: usize = clip.iter().map(|f| f.data.len()).sum();
    let key: usize = clip
        .iter()
        .filter(|f| f.keyframe)
        .map(|f| f.data.len())
        .sum();
    let keyframes = clip.iter().filter(|f| f.keyframe).count();
    let mb_per_min = total as f64 / 1e6 * 60.0 / (clip.len() as f64 / synth::FPS as f64);
    format!(
        "OpenH264 1920x1080 SyntheticSource: {keyframes} keyframe(s) of {} KB total, P-frames {:.1} KB \
         on average, {mb_per_min:.1} MB per minute",
        key / 1000,
        (total - key) as f64 / 1000.0 / (clip.len() - keyframes).max(1) as f64
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filler_pads_to_the_size_asked_and_ends_with_the_stop_bit() {
        let mut data = vec![0, 0, 0, 1, 0x41, 0x9a];
        pad_with_filler(&mut data, 100);
        assert_eq!(data.len(), 100);
        assert_eq!(data[6..11], [0, 0, 0, 1, 0x0c]);
        assert!(data[11..99].iter().all(|&b| b == 0xff));
        assert_eq!(data[99], 0x80);
        let mut big = vec![1; 50];
        pad_with_filler(&mut big, 40);
        assert_eq!(big, vec![1; 50]);
    }
}

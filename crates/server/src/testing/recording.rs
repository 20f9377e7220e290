//! Real recordings for tests: OpenH264 pictures of the synthetic source in
//! an encrypted segment (for the test server key), spliced and signed with
//! a device's key the way an agent does it.

// Each test binary uses part of the fixture.
#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use deskrec_capture::{EncoderConfig, FrameSource, H264Encoder, SyntheticSource};
use deskrec_vault::{
    Frame, PrivateKey, SegmentParams, SegmentWriter, SpliceRequest, TimeRange, splice,
};

/// When the recorded pictures start: 2030-11-25T09:00:00Z, in µs. In the
/// future, so the login sessions of devices the tests enroll (open since
/// their enrollment) cover the contacts recorded then.
pub const T0: i64 = 1_921_827_600_000_000;
/// A second in µs.
pub const SECOND: i64 = 1_000_000;
/// One picture every 200 ms (5 fps) for 8 s, a keyframe every 2 s.
const FRAME_US: i64 = 200_000;
const FRAMES: i64 = 40;
const W: u32 = 640;
const H: u32 = 360;

/// The encoded pictures, made once per test binary (encoding is the slow
/// part; encrypting, splicing and signing are per recording).
fn frames() -> &'static [Frame] {
    static FRAMES_H264: OnceLock<Vec<Frame>> = OnceLock::new();
    FRAMES_H264.get_or_init(|| {
        let mut cfg = EncoderConfig::new(W, H);
        cfg.gop = Duration::from_secs(2);
        let mut enc = H264Encoder::new(cfg).unwrap();
        let mut src = SyntheticSource::new(W, H)
            .unwrap()
            .with_fixed_clock(Instant::now(), Duration::from_millis(200));
        (0..FRAMES)
            .map(|n| {
                let encoded = enc.encode(&src.next_frame().unwrap(), n == 0).unwrap();
                Frame {
                    pts: T0 + n * FRAME_US,
                    duration: FRAME_US as u32,
                    keyframe: encoded.keyframe,
                    data: encoded.data,
                    pause: None,
                }
            })
            .collect()
    })
}

/// What an agent records and splices.
pub struct Take<'a> {
    /// The recording device (named in the segment and the manifest).
    pub device_id: &'a str,
    /// Its signing key.
    pub device_key: &'a PrivateKey,
    /// The contact.
    pub contact_id: &'a str,
    /// The agent's Windows login.
    pub agent: &'a str,
    /// The range to splice, inside `T0 .. T0 + 8 s`.
    pub requested: TimeRange,
    /// Server clock minus the device's, signed into the manifest.
    pub clock_offset: i64,
}

impl Take<'_> {
    /// The recording file's bytes.
    pub fn record(&self) -> Vec<u8> {
        self.record_skipping(None)
    }

    /// [`Take::record`] with the `skip`th chunk (2 s of pictures) left
    /// out, as when the agent paused recording: the recording has a gap.
    pub fn record_skipping(&self, skip: Option<usize>) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let seg = dir.path().join("segment.dsk");
        let params = SegmentParams {
            device_id: self.device_id.into(),
            started_at: T0,
            width: W,
            height: H,
            frame_rate: 5.0,
        };
        let mut w = SegmentWriter::create(&seg, &params, super::test_key().public()).unwrap();
        // A chunk per GOP, as the recorder cuts them.
        let mut chunk: Vec<Frame> = Vec::new();
        let mut n = 0;
        for f in frames() {
            if f.keyframe && !chunk.is_empty() {
                let taken = std::mem::take(&mut chunk);
                if skip != Some(n) {
                    w.append_chunk(&taken).unwrap();
                }
                n += 1;
            }
            chunk.push(f.clone());
        }
        if skip != Some(n) {
            w.append_chunk(&chunk).unwrap();
        }
        w.finish().unwrap();
        let out = dir.path().join("recording.dskr");
        let req = SpliceRequest {
            contact_id: self.contact_id.into(),
            agent: self.agent.into(),
            requested: self.requested,
            segments: vec![seg],
            clock_offset: self.clock_offset,
        };
        splice(&req, self.device_key, &out).unwrap();
        std::fs::read(&out).unwrap()
    }
}

//! What the recorder needs to know: where, how often, how much.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::RecorderError;

/// Recording settings. The defaults are the policy defaults of the
/// architecture: 5 fps, a keyframe every 10 s, 10-minute segments, a chunk
/// flushed at least every 2 s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecorderConfig {
    /// Directory the segments are written to.
    pub segment_dir: PathBuf,
    /// This device's id, written into every segment header.
    pub device_id: String,
    /// Frames per second captured.
    pub fps: f32,
    /// Longest time between keyframes, in seconds.
    pub gop_seconds: f64,
    /// Segment length in seconds; segments are aligned to multiples of it
    /// on the UTC clock (10:00, 10:10, ...), so PCs' segments line up.
    pub segment_seconds: f64,
    /// Longest time frames wait in memory before they are encrypted and
    /// written: what a crash can lose.
    pub chunk_seconds: f64,
    /// Bit rate the encoder aims for.
    pub max_bitrate_bps: u32,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            segment_dir: PathBuf::from("segments"),
            device_id: "local-pc".into(),
            fps: 5.0,
            gop_seconds: 10.0,
            segment_seconds: 600.0,
            chunk_seconds: 2.0,
            max_bitrate_bps: deskrec_capture::EncoderConfig::DEFAULT_MAX_BITRATE_BPS,
        }
    }
}

impl RecorderConfig {
    /// Checks the values, naming the first bad one.
    pub fn validate(&self) -> Result<(), RecorderError> {
        let bad = |m: String| Err(RecorderError::Config(m));
        if !deskrec_capture::encoder::FPS_RANGE.contains(&self.fps) {
            return bad(format!(
                "fps {} is outside {:?}",
                self.fps,
                deskrec_capture::encoder::FPS_RANGE
            ));
        }
        if !positive(self.gop_seconds) {
            return bad(format!("gop_seconds {} must be positive", self.gop_seconds));
        }
        if !positive(self.chunk_seconds) || self.chunk_seconds > self.gop_seconds {
            return bad(format!(
                "chunk_seconds {} must be positive and at most gop_seconds ({})",
                self.chunk_seconds, self.gop_seconds
            ));
        }
        if !positive(self.segment_seconds) || self.segment_seconds < self.gop_seconds {
            return bad(format!(
                "segment_seconds {} must be at least gop_seconds ({})",
                self.segment_seconds, self.gop_seconds
            ));
        }
        if self.device_id.is_empty() {
            return bad("device_id must not be empty".into());
        }
        Ok(())
    }

    /// Time between two captures, to the microsecond (the timeline's
    /// unit): `fps` is an `f32`, and 0.2 is not exact in one, so the plain
    /// reciprocal would tick every 4.999999925 s.
    pub fn frame_interval(&self) -> Duration {
        Duration::from_micros((1e6 / f64::from(self.fps)).round() as u64)
    }
}

/// A finite number above zero (NaN is not).
fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RecorderConfig {
        RecorderConfig {
            device_id: "pc-1".into(),
            ..RecorderConfig::default()
        }
    }

    #[test]
    fn the_default_with_a_device_is_valid_and_each_bad_value_is_named() {
        config().validate().expect("the defaults are valid");
        type Spoil = fn(&mut RecorderConfig);
        let cases: [(&str, Spoil); 7] = [
            ("fps", |c| c.fps = 0.0),
            ("fps", |c| c.fps = 61.0),
            ("gop_seconds", |c| c.gop_seconds = f64::NAN),
            ("chunk_seconds", |c| c.chunk_seconds = c.gop_seconds * 2.0),
            ("chunk_seconds", |c| c.chunk_seconds = 0.0),
            ("segment_seconds", |c| {
                c.segment_seconds = c.gop_seconds / 2.0
            }),
            ("device_id", |c| c.device_id.clear()),
        ];
        for (named, spoil) in cases {
            let mut c = config();
            spoil(&mut c);
            match c.validate() {
                Err(RecorderError::Config(m)) => assert!(m.contains(named), "{named}: {m}"),
                other => panic!("{named}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_frame_interval_follows_the_rate() {
        let mut c = config();
        c.fps = 5.0;
        assert_eq!(c.frame_interval(), Duration::from_millis(200));
        c.fps = 0.2;
        assert_eq!(c.frame_interval(), Duration::from_secs(5));
    }
}

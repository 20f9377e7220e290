//! Encoded video frames and their layout inside a chunk's plaintext.
//!
//! ```text
//! plaintext: frame*
//! frame:     pts i64 (UTC µs) | duration u32 (µs) | flags u8 (bit 0: keyframe)
//!            | len u32 | data (H.264 Annex B access unit)
//! ```

use crate::time::{Micros, TimeRange};
use crate::wire::{Get, Put};

/// One encoded video frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// When the picture was on screen (UTC microseconds).
    pub pts: Micros,
    /// How long it stayed there, in microseconds: up to the next frame's
    /// time (unchanged frames that were skipped extend it).
    pub duration: u32,
    /// Whether the frame is an IDR picture that decoding can start from.
    pub keyframe: bool,
    /// The H.264 access unit in Annex B form (start codes).
    pub data: Vec<u8>,
}

impl Frame {
    /// The time the frame covers.
    pub fn range(&self) -> TimeRange {
        TimeRange::new(self.pts, self.pts.saturating_add(self.duration as Micros))
    }
}

/// Serialises frames into a chunk's plaintext.
pub fn encode_frames(frames: &[Frame]) -> Vec<u8> {
    let size = frames.iter().map(|f| f.data.len() + 17).sum();
    let mut p = Put(Vec::with_capacity(size));
    for f in frames {
        let len = u32::try_from(f.data.len()).expect("frame over 4 GiB");
        p.i64(f.pts)
            .u32(f.duration)
            .u8(f.keyframe as u8)
            .u32(len)
            .bytes(&f.data);
    }
    p.0
}

/// Parses a chunk's plaintext.
pub fn decode_frames(mut plain: &[u8]) -> Result<Vec<Frame>, String> {
    let mut frames = Vec::new();
    while !plain.is_empty() {
        let mut g = Get::new(plain);
        let pts = g.i64()?;
        let duration = g.u32()?;
        let flags = g.u8()?;
        if flags & !1 != 0 {
            return Err(format!(
                "frame {} has unknown flags {flags:#x}",
                frames.len()
            ));
        }
        let len = g.u32()? as usize;
        let data = g.take(len)?.to_vec();
        frames.push(Frame {
            pts,
            duration,
            keyframe: flags & 1 == 1,
            data,
        });
        plain = g.rest();
    }
    Ok(frames)
}

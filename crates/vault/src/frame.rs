//! Encoded video frames and their layout inside a chunk's plaintext.
//!
//! ```text
//! plaintext: frame*
//! frame:     pts i64 (UTC µs) | duration u32 (µs)
//!            | flags u8 (bit 0: keyframe, bit 1: paused)
//!            | [reason_len u8 | reason (UTF-8)]   (only when paused; version 2)
//!            | len u32 | data (H.264 Annex B access unit)
//! ```
//!
//! A paused frame is a blank picture recorded instead of the screen while
//! recording was paused (card data on screen, a rule, the agent's own
//! pause); it carries why, so players can show the span and its reason.

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
    /// Set when recording was paused: the picture is a blank "paused"
    /// mark, not the screen, and this says why (at most
    /// [`MAX_PAUSE_REASON`] bytes).
    pub pause: Option<String>,
}

/// The longest pause reason a frame carries, in bytes.
pub const MAX_PAUSE_REASON: usize = 64;
/// Flag bits.
const KEYFRAME: u8 = 1;
const PAUSED: u8 = 2;

/// Whether `reason` is one a paused frame can carry whole: not blank, at
/// most [`MAX_PAUSE_REASON`] bytes. The one rule the agent, the server's
/// API and its settings check.
pub fn valid_pause_reason(reason: &str) -> bool {
    !reason.trim().is_empty() && reason.len() <= MAX_PAUSE_REASON
}

/// `reason` cut to [`MAX_PAUSE_REASON`] bytes on a character boundary.
pub fn pause_reason(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_PAUSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
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
        let flags =
            if f.keyframe { KEYFRAME } else { 0 } | if f.pause.is_some() { PAUSED } else { 0 };
        p.i64(f.pts).u32(f.duration).u8(flags);
        if let Some(reason) = &f.pause {
            let reason = pause_reason(reason);
            p.u8(reason.len() as u8).bytes(reason.as_bytes());
        }
        p.u32(len).bytes(&f.data);
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
        if flags & !(KEYFRAME | PAUSED) != 0 {
            return Err(format!(
                "frame {} has unknown flags {flags:#x}",
                frames.len()
            ));
        }
        let pause = if flags & PAUSED != 0 {
            let len = g.u8()? as usize;
            // The writer never writes more (it cuts longer reasons), so a
            // longer one is damage, and would not re-encode to its bytes.
            if len > MAX_PAUSE_REASON {
                return Err(format!(
                    "frame {}'s pause reason has {len} bytes, more than {MAX_PAUSE_REASON}",
                    frames.len()
                ));
            }
            let reason = std::str::from_utf8(g.take(len)?)
                .map_err(|_| format!("frame {}'s pause reason is not UTF-8", frames.len()))?;
            Some(reason.to_owned())
        } else {
            None
        };
        let len = g.u32()? as usize;
        let data = g.take(len)?.to_vec();
        frames.push(Frame {
            pts,
            duration,
            keyframe: flags & KEYFRAME != 0,
            data,
            pause,
        });
        plain = g.rest();
    }
    Ok(frames)
}

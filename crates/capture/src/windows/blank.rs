//! Marked blank pictures: what the Windows source records where it may not
//! or cannot show the screen (the secure desktop, a monitor Windows refuses
//! to capture for a moment), instead of failing and stopping the recording.
//!
//! A blank area is filled with [`BLANK_BGRA`], a dark slate blue that the
//! desktop itself practically never shows as a whole screen, so a frame that
//! is entirely that colour is recognisably "not captured on purpose"
//! ([`is_blank_frame`]) rather than a black screen. Protected (DRM) content,
//! which Windows itself paints black in captures, is not blanked further.

use std::fmt;

use crate::Frame;
use crate::frame::BYTES_PER_PIXEL;

/// The colour of blanked areas, as BGRA: red 0x20, green 0x20, blue 0x40.
pub const BLANK_BGRA: [u8; 4] = [0x40, 0x20, 0x20, 0xFF];

/// The colour of frame areas that no monitor covers (the bounding box of
/// monitors of different sizes): black.
pub const GAP_BGRA: [u8; 4] = [0x00, 0x00, 0x00, 0xFF];

/// Why (part of) a frame is blank instead of showing the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlankReason {
    /// Another desktop than the user's has the input: the secure desktop
    /// (UAC prompt, Ctrl+Alt+Del, the lock screen). Windows does not let a
    /// user's process capture it, and what it shows is not the agent's work.
    SecureDesktop,
    /// Windows refused or lost the capture of a monitor for now (access
    /// denied, session disconnected, display mode changing, capture failed
    /// to restart). The source retries on every frame.
    Unavailable {
        /// The monitor's name, or `"desktop"` when it concerns all.
        monitor: String,
        /// What Windows said.
        detail: String,
    },
    /// The monitor has not delivered its first picture yet.
    NoPictureYet {
        /// The monitor's name.
        monitor: String,
    },
}

impl fmt::Display for BlankReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SecureDesktop => {
                f.write_str("the secure desktop (UAC, Ctrl+Alt+Del, lock screen) is shown")
            }
            Self::Unavailable { monitor, detail } => {
                write!(f, "{monitor} cannot be captured right now: {detail}")
            }
            Self::NoPictureYet { monitor } => {
                write!(f, "{monitor} has not delivered a picture yet")
            }
        }
    }
}

/// Whether every pixel of `frame` is [`BLANK_BGRA`] (alpha ignored): a frame
/// blanked as a whole, e.g. while the secure desktop was shown.
#[must_use]
pub fn is_blank_frame(frame: &Frame) -> bool {
    (0..frame.height()).all(|y| {
        frame
            .row(y)
            .chunks_exact(BYTES_PER_PIXEL)
            .all(|px| px[..3] == BLANK_BGRA[..3])
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn frame_of(colour: [u8; 4]) -> Frame {
        Frame::new(4, 2, 16, colour.repeat(8), Instant::now()).unwrap()
    }

    #[test]
    fn recognises_blank_frames_only() {
        assert!(is_blank_frame(&frame_of(BLANK_BGRA)));
        // Alpha does not matter.
        assert!(is_blank_frame(&frame_of([0x40, 0x20, 0x20, 0])));
        assert!(!is_blank_frame(&frame_of(GAP_BGRA)));
        let mut pixels = BLANK_BGRA.repeat(8);
        pixels[29] = 0x21;
        let one_off = Frame::new(4, 2, 16, pixels, Instant::now()).unwrap();
        assert!(!is_blank_frame(&one_off));
    }

    #[test]
    fn reasons_read_well() {
        let reason = BlankReason::Unavailable {
            monitor: r"\\.\DISPLAY2".into(),
            detail: "access denied".into(),
        };
        assert_eq!(
            reason.to_string(),
            r"\\.\DISPLAY2 cannot be captured right now: access denied"
        );
        assert!(
            BlankReason::SecureDesktop
                .to_string()
                .contains("secure desktop")
        );
    }
}

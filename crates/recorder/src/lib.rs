//! The recording pipeline: frames from a
//! [`FrameSource`](deskrec_capture::FrameSource) become H.264 and then
//! encrypted segments on disk, on three threads joined by bounded queues.
//!
//! ```text
//! capture ──(2 pictures)──▶ encode ──(8 frames)──▶ write
//! ```
//!
//! - **capture** ticks at the configured frame rate on the monotonic
//!   clock, converts each capture to I420 at once (so what it holds and
//!   queues is 3/8 of the BGRA size), skips pictures that did not
//!   change (sending one every `chunk_seconds` as a heartbeat, so a
//!   still screen still reaches the disk), and drops a picture when the
//!   encoder is behind — counted, never queued without bound. A skipped
//!   or dropped picture costs nothing in the recording's timeline: the
//!   previous frame simply lasts longer.
//! - **encode** owns the OpenH264 encoder, forces a keyframe at every
//!   segment start (segments are aligned to the UTC clock, and a new one
//!   starts when the picture size changes), and passes frames on.
//! - **write** groups frames into chunks (a new chunk at every keyframe and
//!   at least every `chunk_seconds`), appends them to the current segment
//!   and fsyncs. A full disk stops writing with a clear state and resumes
//!   in a new segment when space returns; no file is left corrupt.
//!
//! [`Recorder::start`] runs the pipeline; [`Recorder::stop`] finishes the
//! current segment.

#![deny(missing_docs)]

mod clock;
mod config;
mod pause;
mod pipeline;
mod status;

pub use clock::Timeline;
pub use config::RecorderConfig;
pub use pause::{PauseControl, PauseProbe, PauseSwitch};
pub use pipeline::{Recorder, scan_segments, segment_files, segment_path};
pub use status::{RecorderState, RecorderStatus};

use deskrec_capture::{CaptureError, EncodeError};
use deskrec_vault::VaultError;

/// Why recording could not start or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecorderError {
    /// A setting is invalid.
    #[error("invalid recorder setting: {0}")]
    Config(String),
    /// The frame source failed.
    #[error("capture: {0}")]
    Capture(#[from] CaptureError),
    /// The encoder failed.
    #[error("encoder: {0}")]
    Encode(#[from] EncodeError),
    /// Writing segments failed (other than a full disk, which is a state).
    #[error("segments: {0}")]
    Vault(#[from] VaultError),
    /// A pipeline thread panicked (a bug).
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
}

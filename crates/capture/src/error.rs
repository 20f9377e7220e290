//! Error types of the capture crate.

use std::error::Error as StdError;

use crate::FrameSize;

/// A boxed error from a platform API or library, kept as the error's source.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a frame could not be captured or built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The pixel buffer does not match the width, height and stride given.
    #[error("invalid frame layout: {0}")]
    InvalidFrame(String),
    /// A source was asked for something it cannot do (a size it cannot draw,
    /// a frame rate that is not positive, ...).
    #[error("invalid capture source settings: {0}")]
    InvalidSettings(String),
    /// The platform capture API failed (X11, Windows Graphics Capture, ...).
    #[error("{backend} capture failed: {source}")]
    Backend {
        /// Which source failed, e.g. `"x11"`.
        backend: &'static str,
        /// The platform error.
        #[source]
        source: BoxError,
    },
    /// The source cannot deliver frames any more (display closed, session
    /// ended). Create a new source to go on.
    #[error("the capture source is closed")]
    Closed,
    /// No display was named and the environment names none (X11: `DISPLAY`
    /// is unset or empty).
    #[error(
        "no display to capture: DISPLAY is not set (run inside the desktop session, \
         or name a display such as \":0\")"
    )]
    NoDisplay,
    /// The display server could not be reached or refused the connection.
    #[error(
        "cannot connect to display {display}: {source} (is the display server running, \
         and may this user connect to it? check XAUTHORITY)"
    )]
    Connect {
        /// The display asked for, e.g. `":0"`.
        display: String,
        /// Why the connection failed.
        #[source]
        source: BoxError,
    },
    /// The screen's pixel format is not one the source can read (X11: a
    /// visual other than 24/32-bit TrueColor with BGRA byte layout).
    #[error("unsupported screen format: {0}")]
    UnsupportedFormat(String),
    /// The screen size or monitor layout changed. Not a failure: the source
    /// has already adapted, [`FrameSource::size`](crate::FrameSource::size)
    /// and [`FrameSource::layout`](crate::FrameSource::layout) tell the new
    /// geometry, and the next call delivers frames of it. The recorder ends
    /// the current segment and starts a new one with a new encoder.
    #[error("screen layout changed to {size} with {monitors} monitor(s); start a new segment")]
    LayoutChanged {
        /// The new frame size.
        size: FrameSize,
        /// How many monitors the new layout has.
        monitors: usize,
    },
    /// This platform has no implementation of what was asked for (the
    /// foreground-window probe outside Linux and Windows).
    #[error("{what} is not supported on this platform")]
    Unsupported {
        /// What was asked for, e.g. `"telling the foreground window"`.
        what: &'static str,
    },
    /// No capture method works on this machine (Windows: Graphics Capture
    /// and desktop duplication both failed). Lists every method tried, in
    /// order, with why it failed.
    #[error("cannot capture the screen: {}", FailedAttempt::list(.attempts))]
    Unavailable {
        /// The methods tried and their errors.
        attempts: Vec<FailedAttempt>,
    },
}

/// One capture method that could not start, for [`CaptureError::Unavailable`].
#[derive(Debug)]
pub struct FailedAttempt {
    /// The method, e.g. `"Windows Graphics Capture"`.
    pub method: &'static str,
    /// Why it failed.
    pub error: BoxError,
}

impl FailedAttempt {
    /// `"A: why; B: why"`.
    fn list(attempts: &[FailedAttempt]) -> String {
        let parts: Vec<String> = attempts
            .iter()
            .map(|a| format!("{}: {}", a.method, a.error))
            .collect();
        parts.join("; ")
    }
}

/// Why the encoder could not be created or could not encode a frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The [`EncoderConfig`](crate::EncoderConfig) is out of the range that
    /// OpenH264 supports; returned by [`H264Encoder::new`](crate::H264Encoder::new).
    #[error("invalid encoder configuration: {0}")]
    InvalidConfig(String),
    /// The frame's size differs from the size the encoder was created for.
    /// Screen geometry changed: create a new encoder (and start a new stream).
    #[error("frame is {frame_width}x{frame_height} but the encoder is {width}x{height}")]
    SizeMismatch {
        /// Width of the frame passed in.
        frame_width: u32,
        /// Height of the frame passed in.
        frame_height: u32,
        /// Width the encoder was configured with.
        width: u32,
        /// Height the encoder was configured with.
        height: u32,
    },
    /// BGRA to I420 conversion failed (a frame buffer that is too short).
    #[error("BGRA to I420 conversion failed: {0}")]
    Convert(String),
    /// OpenH264 reported an error.
    #[error("OpenH264 {context}: {source}")]
    OpenH264 {
        /// What the encoder was doing.
        context: &'static str,
        /// OpenH264's error (carries its native status code).
        #[source]
        source: BoxError,
    },
    /// OpenH264 returned no picture for a frame (it skipped it), although
    /// frame skipping is disabled.
    #[error("OpenH264 produced no data for the frame (frame type {frame_type})")]
    NoOutput {
        /// The frame type OpenH264 reported, e.g. `Skip`.
        frame_type: String,
    },
    /// A keyframe was due or forced but OpenH264 did not produce an IDR.
    #[error("a keyframe was requested but OpenH264 produced a {frame_type} frame")]
    KeyframeNotProduced {
        /// The frame type OpenH264 produced instead.
        frame_type: String,
    },
}

impl EncodeError {
    /// Wraps an OpenH264 error with what the encoder was doing.
    pub(crate) fn openh264(context: &'static str, err: openh264::Error) -> Self {
        Self::OpenH264 {
            context,
            source: Box::new(err),
        }
    }
}

//! Screen capture and H.264 encoding for the Deskrec agent (step 2 of the
//! flow in `docs/architecture.md`).
//!
//! A [`FrameSource`] delivers [`Frame`]s (BGRA pixels plus capture time), or
//! [`YuvFrame`]s (converted to I420, what the recorder asks for), at the
//! policy frame rate; an [`H264Encoder`] turns each into an
//! [`EncodedFrame`] (Annex-B bytes, keyframe flag) with OpenH264 in
//! screen-content mode, a keyframe every GOP and on demand. The segment
//! writer (`deskrec-vault`) stores the encoded frames.
//!
//! ```
//! use deskrec_capture::{EncoderConfig, FrameSource, H264Encoder, SyntheticSource, read_frame_number_bgra};
//!
//! let mut source = SyntheticSource::new(640, 360)?;
//! let mut encoder = H264Encoder::new(EncoderConfig::new(640, 360))?;
//! let frame = source.next_frame()?;
//! assert_eq!(read_frame_number_bgra(&frame), Some(0));
//! let encoded = encoder.encode(&frame, false)?;
//! assert!(encoded.keyframe); // the first frame always is
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//!
//! - [`frame`]: [`Frame`], [`FrameSize`] and the [`FrameSource`] trait that
//!   the X11, Windows and synthetic sources implement.
//! - [`foreground`]: [`ForegroundWindow`], which window is in front
//!   ([`WindowInfo`]: title, class, process), for pausing while a matching
//!   window is shown; `X11Foreground` (EWMH `_NET_ACTIVE_WINDOW`) and
//!   `WindowsForeground` (`GetForegroundWindow`) implement it,
//!   [`foreground_window`] picks the platform's.
//! - [`synthetic`]: [`SyntheticSource`], numbered test pictures (moving or
//!   still), and [`read_frame_number`] to recognise them after decoding.
//! - [`encoder`]: [`H264Encoder`] and [`EncoderConfig`]: I420 to H.264
//!   (OpenH264, patched: `third_party/openh264-sys2/DESKREC.md`); its docs
//!   list every OpenH264 setting and why.
//! - `x11` (Linux only): `X11Source`, the X11 screen (all RandR monitors as
//!   one desktop image) through MIT-SHM or `GetImage`, unchanged frames
//!   and changed blocks from DAMAGE (checked against the pixels every 5 s,
//!   compared pictures when it misses changes), layout changes reported as
//!   [`CaptureError::LayoutChanged`].
//! - [`windows`]: `WindowsSource` (Windows only), every monitor as one
//!   desktop image through Windows.Graphics.Capture, falling back to DXGI
//!   Desktop Duplication; the secure desktop comes out as a marked blank
//!   frame ([`windows::is_blank_frame`]). Its layout and blank-frame logic
//!   compiles and is tested on every platform.
//! - [`annexb`]: splitting Annex-B streams into NAL units.
//! - `testing` (feature `test-utils`): test support shared by the
//!   workspace's tests: an Xvfb fixture, a painter that shows numbered
//!   pictures on it, ffmpeg decoding of recorded video; on Windows a window
//!   of the test's own.
//! - [`yuv`]: [`YuvFrame`], pictures converted to I420 (`yuvutils-rs`,
//!   BT.709, limited range) for the encoder, each with a process-unique id
//!   and, when its source knows, where it changed since the picture before.
//! - [`change`]: [`ChangeMap`], which 16x16 macroblocks of a picture may
//!   have changed; the encoder skips the others without comparing them.
//! - `error`: [`CaptureError`] and [`EncodeError`].
//!
//! Platform sources live in their own modules behind `cfg` and implement
//! [`FrameSource`].
//!
//! # Build
//!
//! The build script fails on x86/x86_64 when `nasm` is missing, because
//! OpenH264 would then silently build without its assembly and encode about
//! 2x slower. Set `DESKREC_ALLOW_NO_NASM=1` to build anyway.

#![deny(missing_docs)]

pub mod annexb;
pub mod change;
pub mod encoder;
mod error;
pub mod foreground;
pub mod frame;
pub mod lettering;
pub mod synthetic;
#[cfg(feature = "test-utils")]
pub mod testing;
pub mod windows;
#[cfg(target_os = "linux")]
pub mod x11;
pub mod yuv;

#[cfg(windows)]
pub use self::windows::{CaptureMethod, WindowsForeground, WindowsOptions, WindowsSource};
pub use change::ChangeMap;
pub use encoder::{EncodedFrame, EncoderConfig, GOP_STRETCH, H264Encoder, REFRESH_SHARE};
pub use error::{BoxError, CaptureError, EncodeError, FailedAttempt};
pub use foreground::{ForegroundWindow, WindowInfo, foreground_window};
pub use frame::{Frame, FrameSize, FrameSource, Monitor};
pub use synthetic::{Motion, SyntheticSource, read_frame_number, read_frame_number_bgra};
#[cfg(target_os = "linux")]
pub use x11::{X11Foreground, X11Options, X11Source};
pub use yuv::YuvFrame;

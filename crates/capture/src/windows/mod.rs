//! Capture of the Windows desktop: `WindowsSource` (Windows only) and the
//! platform-independent parts it is built on, which compile and are tested
//! everywhere.
//!
//! # What is captured
//!
//! Every monitor, composed into one BGRA frame laid out like the virtual
//! desktop ([`DesktopLayout`]): the bounding box of all monitors, moved so
//! its top-left corner is 0,0, cropped to even width and height for H.264.
//! Gaps between monitors of different sizes are black. `layout()` lists
//! the monitors (GDI device names such as `\\.\DISPLAY1`, positions in the
//! frame, primary flag) so a player can tell which part was which screen.
//! The process is made per-monitor DPI aware so all of this is in physical
//! pixels.
//!
//! # How
//!
//! - **Windows.Graphics.Capture** (windows-capture 2), one session per
//!   monitor, mouse cursor included, the yellow capture border switched off
//!   where Windows allows it (Windows 11; elsewhere an `info` log says it
//!   stays). Each session's thread keeps a GPU copy of its monitor's latest
//!   picture; `next_frame` maps only the monitors that changed. Pictures
//!   arrive only when a monitor's content changes, so
//!   `changed_since_last` costs a few flag checks on a still desktop.
//! - **DXGI Desktop Duplication** where Graphics Capture cannot start
//!   (older Windows, some remote sessions): one duplication per monitor on
//!   a device of that monitor's GPU, polled without waiting.
//! - Neither works: `WindowsSource::new` fails with
//!   [`CaptureError::Unavailable`](crate::CaptureError::Unavailable), which
//!   names each method and why it failed; `WindowsSource::or_blank` (what
//!   the agent records with) gives marked blank frames instead, with that
//!   error as their [`BlankReason::Unavailable`], and tries again every 2 s.
//!
//! # Never stopping the recording
//!
//! Once started, nothing Windows does makes the source fail; the recorder
//! only ever sees frames and, when monitors change, `LayoutChanged`:
//!
//! - **Secure desktop** (UAC prompt, Ctrl+Alt+Del, lock screen): checked on
//!   every call (`OpenInputDesktop`); the whole frame is
//!   [`BLANK_BGRA`], [`is_blank_frame`] recognises it, `blank_reasons()`
//!   says [`BlankReason::SecureDesktop`], and a `warn` log marks when it
//!   starts and ends.
//! - **Protected (DRM) content**: Windows paints it black in captures;
//!   with desktop duplication `protected_content_masked()` says so.
//! - **Capture lost** (desktop switch, display mode change, GPU reset, a
//!   monitor's session closed): the affected monitor, or the whole frame,
//!   is blank with [`BlankReason::Unavailable`] while the source recreates
//!   the duplication or restarts the capture (every 2 s), logged.
//! - **Monitors added, removed, moved or resized**: noticed by re-reading
//!   the monitor rectangles on every call (a few user32 calls); the source
//!   restarts capture for the new layout and returns
//!   `CaptureError::LayoutChanged` once.
//!
//! ```ignore
//! use deskrec_capture::{FrameSource, WindowsSource};
//!
//! let mut source = WindowsSource::new()?; // Graphics Capture, else DXGI
//! if source.changed_since_last()? {
//!     let frame = source.next_frame()?;
//!     if !source.blank_reasons().is_empty() { /* mark the segment */ }
//! }
//! ```

mod blank;
#[cfg(windows)]
mod d3d;
#[cfg(windows)]
mod desktop;
#[cfg(windows)]
mod dxgi;
#[cfg(windows)]
mod foreground;
#[cfg_attr(not(windows), allow(dead_code))]
mod hresult;
#[cfg_attr(not(windows), allow(dead_code))]
mod layout;
#[cfg(windows)]
mod source;
#[cfg(windows)]
mod wgc;

pub use blank::{BLANK_BGRA, BlankReason, GAP_BGRA, is_blank_frame};
#[cfg(windows)]
pub use foreground::WindowsForeground;
pub use layout::{DesktopLayout, MAX_DESKTOP_SIDE, MonitorRect, Placement};
#[cfg(windows)]
pub use source::{CaptureMethod, WindowsOptions, WindowsSource, current_layout};

//! Which window is in front: [`ForegroundWindow`], for the recorder's
//! "pause while a matching window is in front" rule (issue 15).
//!
//! The probe only reports; matching the title and process against the
//! policy's patterns is the recorder's job. What it reads:
//!
//! - **X11** (`X11Foreground`, Linux): the window named by
//!   the root window's `_NET_ACTIVE_WINDOW` (EWMH, set by the window
//!   manager); its `_NET_WM_NAME` (UTF-8, else `WM_NAME`), the class part
//!   of `WM_CLASS`, and, when the window's client runs on this machine, the
//!   executable of its `_NET_WM_PID`. Two round trips a call.
//! - **Windows** (`WindowsForeground`, Windows):
//!   `GetForegroundWindow`, its caption, class name, and the image file
//!   name of the process that owns it.
//!
//! What a probe returns is matched and dropped: window titles are private
//! (a customer's name, an account number), so neither the probe nor the
//! recorder logs them or sends them anywhere.

use crate::CaptureError;

/// The window in front, as the pause rules see it. Never logged or sent
/// anywhere (titles can hold customer data).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WindowInfo {
    /// Its title (X11: `_NET_WM_NAME` (UTF-8) or `WM_NAME`; Windows: the
    /// window's caption). Empty when the window has none.
    pub title: String,
    /// X11: `WM_CLASS`'s class part (the second string, e.g. `firefox`);
    /// Windows: the window class name (`GetClassNameW`, e.g.
    /// `Chrome_WidgetWin_1`).
    pub class: String,
    /// The executable's file name, e.g. `chrome.exe` or `firefox`
    /// (Windows: the image of the process owning the window, file name
    /// only; X11: the executable of `_NET_WM_PID`'s process when the window's
    /// client runs on this machine). Empty when it cannot be known: no
    /// `_NET_WM_PID`, a client on another machine, or a process this user
    /// may not inspect (an elevated one on Windows).
    pub process: String,
}

/// Reports the foreground window. Cheap enough to call on every capture
/// tick (a few X round trips or Win32 calls).
pub trait ForegroundWindow: Send {
    /// The window in front now, or `None` when there is none (no window
    /// manager, nothing focused, only the desktop).
    ///
    /// A window that closes while it is being read is `None`, never an
    /// error.
    ///
    /// # Errors
    ///
    /// The connection to the display failed ([`CaptureError::Closed`] when
    /// it is lost, [`CaptureError::Backend`] when a request fails).
    fn foreground(&mut self) -> Result<Option<WindowInfo>, CaptureError>;
}

/// The platform's probe: `X11Foreground` on `$DISPLAY` on Linux,
/// `WindowsForeground` on Windows.
///
/// # Errors
///
/// Linux: as `X11Foreground::open` (no
/// `DISPLAY`, the display unreachable). Other platforms:
/// [`CaptureError::Unsupported`].
pub fn foreground_window() -> Result<Box<dyn ForegroundWindow>, CaptureError> {
    #[cfg(target_os = "linux")]
    {
        Ok(Box::new(crate::X11Foreground::open(None)?))
    }
    #[cfg(windows)]
    {
        Ok(Box::new(crate::WindowsForeground))
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    {
        Err(CaptureError::Unsupported {
            what: "telling the foreground window",
        })
    }
}

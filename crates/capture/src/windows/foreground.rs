//! [`WindowsForeground`]: the window in front on Windows
//! (`GetForegroundWindow`).
//!
//! One call is a handful of user32/kernel32 calls and no window messages:
//!
//! - the title with `InternalGetWindowText`, which reads the caption Windows
//!   keeps for the window. `GetWindowTextW` would send `WM_GETTEXT` when
//!   the window belongs to this process, and a window on a busy thread
//!   would then stall the capture tick; for other processes' windows both
//!   read the same caption;
//! - the class name with `GetClassNameW`;
//! - the process with `GetWindowThreadProcessId`, `OpenProcess`
//!   (`PROCESS_QUERY_LIMITED_INFORMATION`) and `QueryFullProcessImageNameW`,
//!   file name only. A process this one may not open (a protected or, in
//!   some configurations, an elevated one) leaves `process` empty.
//!
//! No foreground window (the secure desktop, a switch in progress) and the
//! shell's desktop window (`GetShellWindow`) are `None`. A window closed
//! while it is read gives an empty title or class, never an error.

use ::windows::Win32::Foundation::{CloseHandle, HANDLE, HWND};
use ::windows::Win32::System::Threading::{
    OpenProcess, PROCESS_NAME_WIN32, PROCESS_QUERY_LIMITED_INFORMATION, QueryFullProcessImageNameW,
};
use ::windows::Win32::UI::WindowsAndMessaging::{
    GetClassNameW, GetForegroundWindow, GetShellWindow, GetWindowThreadProcessId,
    InternalGetWindowText,
};
use ::windows::core::PWSTR;

use crate::{CaptureError, ForegroundWindow, WindowInfo};

/// First buffer for a title, in UTF-16 units; doubled while the title
/// fills it, up to [`MAX_TITLE`].
const FIRST_TITLE: usize = 256;
/// Longest title read, in UTF-16 units (longer ones are cut).
const MAX_TITLE: usize = 8192;
/// Class names are at most 256 characters.
const MAX_CLASS: usize = 257;
/// Longest image path read (the NT limit for `\\?\` paths).
const MAX_PATH: usize = 32_768;

/// A [`ForegroundWindow`] for the Windows desktop this process runs on:
/// `GetForegroundWindow`; see the module docs.
///
/// It holds nothing, so it can be created anywhere and moved to any
/// thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct WindowsForeground;

impl ForegroundWindow for WindowsForeground {
    fn foreground(&mut self) -> Result<Option<WindowInfo>, CaptureError> {
        // SAFETY: no arguments; returns a handle or null.
        let (window, shell) = unsafe { (GetForegroundWindow(), GetShellWindow()) };
        if window.is_invalid() || window == shell {
            return Ok(None);
        }
        Ok(Some(WindowInfo {
            title: title(window),
            class: class_name(window),
            process: process_name(window),
        }))
    }
}

/// The window's caption; empty when it has none or is gone.
fn title(window: HWND) -> String {
    let mut size = FIRST_TITLE;
    loop {
        let mut buffer = vec![0u16; size];
        // SAFETY: the slice is writable and its length is passed with it;
        // a stale handle makes the call fail (0), nothing worse.
        let len = unsafe { InternalGetWindowText(window, &mut buffer) };
        let len = usize::try_from(len).unwrap_or(0);
        // A title that fills the buffer (less the NUL) may have been cut.
        if len + 1 < size || size >= MAX_TITLE {
            return String::from_utf16_lossy(&buffer[..len.min(size)]);
        }
        size *= 2;
    }
}

/// The window's class name; empty when it is gone.
fn class_name(window: HWND) -> String {
    let mut buffer = [0u16; MAX_CLASS];
    // SAFETY: as in `title`.
    let len = unsafe { GetClassNameW(window, &mut buffer) };
    let len = usize::try_from(len).unwrap_or(0).min(buffer.len());
    String::from_utf16_lossy(&buffer[..len])
}

/// The file name of the executable of the process owning `window`; empty
/// when the window is gone or the process cannot be opened.
fn process_name(window: HWND) -> String {
    let mut pid = 0u32;
    // SAFETY: `pid` outlives the call, which writes one u32 to it.
    unsafe { GetWindowThreadProcessId(window, Some(&raw mut pid)) };
    if pid == 0 {
        return String::new();
    }
    // SAFETY: a plain call; the handle is closed by `Handle`'s drop.
    let Ok(process) =
        (unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, false, pid) }).map(Handle)
    else {
        return String::new();
    };
    let mut path = vec![0u16; MAX_PATH];
    let mut len = u32::try_from(path.len()).expect("MAX_PATH fits u32");
    // SAFETY: `path` has room for `len` units, and `len` receives how many
    // were written (without the NUL).
    let queried = unsafe {
        QueryFullProcessImageNameW(
            process.0,
            PROCESS_NAME_WIN32,
            PWSTR(path.as_mut_ptr()),
            &raw mut len,
        )
    };
    if queried.is_err() {
        return String::new();
    }
    let path = &path[..usize::try_from(len).unwrap_or(0).min(path.len())];
    file_name(&String::from_utf16_lossy(path)).to_owned()
}

/// The last component of a Windows path (`C:\a\b.exe` -> `b.exe`).
fn file_name(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

/// A process handle, closed when dropped.
struct Handle(HANDLE);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from `OpenProcess` and is closed once.
        // Nothing to do if closing fails.
        let _ = unsafe { CloseHandle(self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_of_image_paths() {
        assert_eq!(
            file_name(r"C:\Program Files\Google\Chrome\Application\chrome.exe"),
            "chrome.exe"
        );
        assert_eq!(file_name("notepad.exe"), "notepad.exe");
        assert_eq!(file_name(r"\\?\C:\x\y.exe"), "y.exe");
    }

    #[test]
    fn probe_is_send() {
        fn send<T: Send>() {}
        send::<WindowsForeground>();
    }
}

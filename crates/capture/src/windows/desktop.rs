//! What the source asks Windows about the desktop: the active monitors and
//! their rectangles, per-monitor DPI awareness (so those rectangles are in
//! physical pixels), and which desktop has the input (the user's, or the
//! secure desktop).

use std::mem;

use ::windows::Win32::Foundation::E_ACCESSDENIED;
use ::windows::Win32::Graphics::Gdi::{GetMonitorInfoW, HMONITOR, MONITORINFOEXW};
use ::windows::Win32::System::StationsAndDesktops::{
    CloseDesktop, DESKTOP_CONTROL_FLAGS, DESKTOP_READOBJECTS, GetThreadDesktop,
    GetUserObjectInformationW, HDESK, OpenInputDesktop, UOI_NAME,
};
use ::windows::Win32::System::Threading::GetCurrentThreadId;
use ::windows::Win32::UI::HiDpi::{
    DPI_AWARENESS_CONTEXT_PER_MONITOR_AWARE_V2, SetProcessDpiAwarenessContext,
};
use ::windows::Win32::UI::WindowsAndMessaging::MONITORINFOF_PRIMARY;
use tracing::{debug, warn};
use windows_capture::monitor::Monitor as MonitorHandle;

use super::hresult;
use super::layout::MonitorRect;
use crate::CaptureError;

/// An active monitor: the handle to capture it by, and its rectangle.
#[derive(Debug, Clone)]
pub(super) struct ActiveMonitor {
    /// windows-capture's wrapper of the `HMONITOR`.
    pub handle: MonitorHandle,
    /// Where it is on the virtual desktop, and its GDI device name.
    pub rect: MonitorRect,
}

/// The monitors attached to the desktop now (`EnumDisplayMonitors`), with
/// their rectangles (`GetMonitorInfoW`).
///
/// # Errors
///
/// [`CaptureError::Backend`] when Windows cannot list the monitors or
/// describe one (it was unplugged meanwhile).
pub(super) fn active_monitors() -> Result<Vec<ActiveMonitor>, CaptureError> {
    let handles = MonitorHandle::enumerate().map_err(|e| CaptureError::Backend {
        backend: "windows",
        source: format!("cannot list the monitors: {e}").into(),
    })?;
    handles
        .into_iter()
        .map(|handle| {
            Ok(ActiveMonitor {
                rect: monitor_rect(HMONITOR(handle.as_raw_hmonitor()))?,
                handle,
            })
        })
        .collect()
}

/// The rectangle, primary flag and device name of one monitor.
fn monitor_rect(monitor: HMONITOR) -> Result<MonitorRect, CaptureError> {
    let mut info = MONITORINFOEXW::default();
    info.monitorInfo.cbSize = mem::size_of::<MONITORINFOEXW>() as u32;
    // SAFETY: `info` is a MONITORINFOEXW whose cbSize says so, as
    // GetMonitorInfoW requires to fill in the device name too.
    let ok = unsafe { GetMonitorInfoW(monitor, (&raw mut info).cast()) }.as_bool();
    if !ok {
        let err = ::windows::core::Error::from_thread();
        return Err(CaptureError::Backend {
            backend: "windows",
            source: hresult::describe("GetMonitorInfoW", err.code().0, &err.message()).into(),
        });
    }
    let rc = info.monitorInfo.rcMonitor;
    Ok(MonitorRect {
        name: wide_to_string(&info.szDevice),
        left: rc.left,
        top: rc.top,
        right: rc.right,
        bottom: rc.bottom,
        primary: info.monitorInfo.dwFlags & MONITORINFOF_PRIMARY != 0,
    })
}

/// Makes the process per-monitor DPI aware (v2), so monitor rectangles and
/// captures are in physical pixels rather than scaled by Windows.
///
/// Process-wide, and only possible before any window exists: a process
/// that already chose (in its manifest, or the tray app's framework) keeps
/// its choice, which is logged when it is not already per-monitor.
pub(super) fn make_dpi_aware() {
    // SAFETY: takes a constant, no pointers.
    match unsafe { SetProcessDpiAwarenessContext(DPI_AWARENESS_CONTEXT_PER_MONITOR_AWARE_V2) } {
        Ok(()) => debug!("process made per-monitor DPI aware"),
        // Already set, by the manifest or an earlier call.
        Err(e) if e.code() == E_ACCESSDENIED => debug!("process DPI awareness was already set"),
        Err(e) => warn!(
            error = %e,
            "cannot make the process per-monitor DPI aware; monitor rectangles may be scaled"
        ),
    }
}

/// Which desktop receives the user's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum InputDesktop {
    /// The desktop this process runs on (the user's).
    Ours,
    /// Another one, by name (e.g. `"Winlogon"`, `"Screen-saver"`), or one
    /// this process may not even open, which is what the secure desktop
    /// (UAC, Ctrl+Alt+Del, lock screen) looks like to a user's process.
    Other(String),
}

/// Compares the input desktop with this thread's desktop (by name). Costs
/// a few user32 calls, cheap enough for every frame.
pub(super) fn input_desktop() -> InputDesktop {
    // SAFETY: no pointers; the handle is closed below.
    let input =
        match unsafe { OpenInputDesktop(DESKTOP_CONTROL_FLAGS(0), false, DESKTOP_READOBJECTS) } {
            Ok(desk) => desk,
            Err(e) => return InputDesktop::Other(format!("inaccessible ({})", e.message().trim())),
        };
    let input_name = desktop_name(input);
    // SAFETY: opened above, closed once.
    let _ = unsafe { CloseDesktop(input) };
    // SAFETY: no pointers; the returned handle needs no closing.
    let ours = unsafe { GetThreadDesktop(GetCurrentThreadId()) }
        .ok()
        .and_then(desktop_name);
    match (input_name, ours) {
        (Some(input), Some(ours)) if input.eq_ignore_ascii_case(&ours) => InputDesktop::Ours,
        (Some(input), _) => InputDesktop::Other(input),
        (None, _) => InputDesktop::Other("unnamed".to_owned()),
    }
}

/// The name of a desktop (`UOI_NAME`), e.g. `"Default"`.
fn desktop_name(desk: HDESK) -> Option<String> {
    let mut name = [0u16; 256];
    let bytes = mem::size_of_val(&name) as u32;
    // SAFETY: `name` is writable for `bytes` bytes.
    unsafe {
        GetUserObjectInformationW(
            ::windows::Win32::Foundation::HANDLE(desk.0),
            UOI_NAME,
            Some(name.as_mut_ptr().cast()),
            bytes,
            None,
        )
    }
    .ok()?;
    Some(wide_to_string(&name))
}

/// A NUL-terminated UTF-16 buffer as a `String`.
pub(super) fn wide_to_string(wide: &[u16]) -> String {
    let len = wide.iter().position(|&c| c == 0).unwrap_or(wide.len());
    String::from_utf16_lossy(&wide[..len])
}

//! The HRESULTs the Windows source meets, what each means for a recorder,
//! and what it does about them ([`on_duplication_error`]).
//!
//! Kept as plain numbers so the mapping is tested on every platform; the
//! values are those of the Windows SDK (checked against the `windows` crate
//! in a Windows-only test).

/// An HRESULT as the `windows` crate holds it (`HRESULT.0`).
pub type Code = i32;

/// `u32` spelling (as documented) to the signed value Windows APIs return.
const fn code(hr: u32) -> Code {
    hr as Code
}

/// Not implemented (wine's stubs answer this).
pub const E_NOTIMPL: Code = code(0x8000_4001);
/// The process may not access the desktop image.
pub const E_ACCESSDENIED: Code = code(0x8007_0005);
/// An argument was invalid; for `DuplicateOutput`, also "already duplicating".
pub const E_INVALIDARG: Code = code(0x8007_0057);
/// A WinRT or COM class is not registered (no Windows.Graphics.Capture).
pub const REGDB_E_CLASSNOTREG: Code = code(0x8004_0154);
/// DXGI: invalid call.
pub const DXGI_ERROR_INVALID_CALL: Code = code(0x887A_0001);
/// DXGI: no such adapter or output (end of an enumeration).
pub const DXGI_ERROR_NOT_FOUND: Code = code(0x887A_0002);
/// DXGI: the desktop mode or scenario cannot be duplicated right now.
pub const DXGI_ERROR_UNSUPPORTED: Code = code(0x887A_0004);
/// DXGI: the GPU was removed or its driver updated.
pub const DXGI_ERROR_DEVICE_REMOVED: Code = code(0x887A_0005);
/// DXGI: the GPU hung.
pub const DXGI_ERROR_DEVICE_HUNG: Code = code(0x887A_0006);
/// DXGI: the GPU was reset.
pub const DXGI_ERROR_DEVICE_RESET: Code = code(0x887A_0007);
/// DXGI: too many applications duplicate this output.
pub const DXGI_ERROR_NOT_CURRENTLY_AVAILABLE: Code = code(0x887A_0022);
/// DXGI: the duplication is invalid now (desktop switch, mode change).
pub const DXGI_ERROR_ACCESS_LOST: Code = code(0x887A_0026);
/// DXGI: no new desktop image within the timeout.
pub const DXGI_ERROR_WAIT_TIMEOUT: Code = code(0x887A_0027);
/// DXGI: the remote session is disconnected.
pub const DXGI_ERROR_SESSION_DISCONNECTED: Code = code(0x887A_0028);
/// DXGI: access to the resource is denied.
pub const DXGI_ERROR_ACCESS_DENIED: Code = code(0x887A_002B);

/// The symbolic name and a recorder-oriented explanation of `code`, for
/// messages and logs; `None` for codes this module does not know.
#[must_use]
pub fn explain(code: Code) -> Option<(&'static str, &'static str)> {
    Some(match code {
        E_NOTIMPL => ("E_NOTIMPL", "not implemented by this Windows (or wine)"),
        E_ACCESSDENIED => (
            "E_ACCESSDENIED",
            "access denied: the secure desktop is shown, or the process runs \
             outside the user's desktop (a service)",
        ),
        E_INVALIDARG => (
            "E_INVALIDARG",
            "invalid argument, or this process already duplicates the output",
        ),
        REGDB_E_CLASSNOTREG => (
            "REGDB_E_CLASSNOTREG",
            "the capture API is not installed (Windows older than 10 1903, or wine)",
        ),
        DXGI_ERROR_INVALID_CALL => ("DXGI_ERROR_INVALID_CALL", "invalid DXGI call"),
        DXGI_ERROR_NOT_FOUND => ("DXGI_ERROR_NOT_FOUND", "no such adapter or output"),
        DXGI_ERROR_UNSUPPORTED => (
            "DXGI_ERROR_UNSUPPORTED",
            "the current display mode cannot be duplicated (e.g. during a mode \
             change, or an output driven by another GPU)",
        ),
        DXGI_ERROR_DEVICE_REMOVED => (
            "DXGI_ERROR_DEVICE_REMOVED",
            "the GPU was removed or its driver updated",
        ),
        DXGI_ERROR_DEVICE_HUNG => ("DXGI_ERROR_DEVICE_HUNG", "the GPU hung"),
        DXGI_ERROR_DEVICE_RESET => ("DXGI_ERROR_DEVICE_RESET", "the GPU was reset"),
        DXGI_ERROR_NOT_CURRENTLY_AVAILABLE => (
            "DXGI_ERROR_NOT_CURRENTLY_AVAILABLE",
            "too many applications are duplicating this output",
        ),
        DXGI_ERROR_ACCESS_LOST => (
            "DXGI_ERROR_ACCESS_LOST",
            "the desktop switched (secure desktop, user switch) or the display \
             mode changed",
        ),
        DXGI_ERROR_WAIT_TIMEOUT => ("DXGI_ERROR_WAIT_TIMEOUT", "no new desktop image"),
        DXGI_ERROR_SESSION_DISCONNECTED => (
            "DXGI_ERROR_SESSION_DISCONNECTED",
            "the remote session is disconnected",
        ),
        DXGI_ERROR_ACCESS_DENIED => (
            "DXGI_ERROR_ACCESS_DENIED",
            "access denied: the secure desktop is shown",
        ),
        _ => return None,
    })
}

/// One line describing a failed call: what was called, the HRESULT in hex,
/// its name and explanation when known, and the system's own message.
#[must_use]
pub fn describe(call: &str, code: Code, system_message: &str) -> String {
    let hex = code as u32;
    let system = system_message.trim();
    let system = if system.is_empty() {
        String::new()
    } else {
        format!(" (Windows: {system})")
    };
    match explain(code) {
        Some((name, meaning)) => {
            format!("{call} failed with {name} 0x{hex:08X}: {meaning}{system}")
        }
        None => format!("{call} failed with 0x{hex:08X}{system}"),
    }
}

/// What the desktop-duplication source does when `AcquireNextFrame` or
/// `DuplicateOutput` fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicationAction {
    /// No new desktop image yet: keep showing the last picture.
    KeepPicture,
    /// The duplication became invalid (desktop switch, mode change, a
    /// full-screen application): create it again at once; blank the monitor
    /// while that fails.
    Recreate,
    /// Windows refuses for now (secure desktop, disconnected session, a mode
    /// it cannot duplicate, too many duplicators): blank the monitor, retry
    /// on the next frame.
    BlankAndRetry,
    /// The GPU went away: start over with new devices.
    RestartDevices,
    /// Anything else: the method does not work here.
    Fail,
}

/// The action for a failed duplication call (see [`DuplicationAction`]).
#[must_use]
pub fn on_duplication_error(code: Code) -> DuplicationAction {
    match code {
        DXGI_ERROR_WAIT_TIMEOUT => DuplicationAction::KeepPicture,
        DXGI_ERROR_ACCESS_LOST | DXGI_ERROR_INVALID_CALL => DuplicationAction::Recreate,
        E_ACCESSDENIED
        | DXGI_ERROR_ACCESS_DENIED
        | DXGI_ERROR_UNSUPPORTED
        | DXGI_ERROR_NOT_CURRENTLY_AVAILABLE
        | DXGI_ERROR_SESSION_DISCONNECTED => DuplicationAction::BlankAndRetry,
        DXGI_ERROR_DEVICE_REMOVED | DXGI_ERROR_DEVICE_HUNG | DXGI_ERROR_DEVICE_RESET => {
            DuplicationAction::RestartDevices
        }
        _ => DuplicationAction::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_desktop_and_switches_blank_instead_of_failing() {
        use DuplicationAction::*;
        assert_eq!(on_duplication_error(DXGI_ERROR_WAIT_TIMEOUT), KeepPicture);
        assert_eq!(on_duplication_error(DXGI_ERROR_ACCESS_LOST), Recreate);
        for code in [
            E_ACCESSDENIED,
            DXGI_ERROR_ACCESS_DENIED,
            DXGI_ERROR_UNSUPPORTED,
            DXGI_ERROR_NOT_CURRENTLY_AVAILABLE,
            DXGI_ERROR_SESSION_DISCONNECTED,
        ] {
            assert_eq!(on_duplication_error(code), BlankAndRetry, "{code:#x}");
        }
        assert_eq!(
            on_duplication_error(DXGI_ERROR_DEVICE_REMOVED),
            RestartDevices
        );
        assert_eq!(
            on_duplication_error(DXGI_ERROR_DEVICE_RESET),
            RestartDevices
        );
        assert_eq!(on_duplication_error(E_NOTIMPL), Fail);
        assert_eq!(on_duplication_error(0x8000_4005_u32 as i32), Fail);
    }

    #[test]
    fn descriptions_name_the_code_and_the_cause() {
        let line = describe("DuplicateOutput", E_ACCESSDENIED, "Access is denied.\r\n");
        assert_eq!(
            line,
            "DuplicateOutput failed with E_ACCESSDENIED 0x80070005: access denied: the secure \
             desktop is shown, or the process runs outside the user's desktop (a service) \
             (Windows: Access is denied.)"
        );
        let unknown = describe("AcquireNextFrame", 0x8000_4005_u32 as i32, "");
        assert_eq!(unknown, "AcquireNextFrame failed with 0x80004005");
        assert!(explain(0).is_none());
    }

    /// The constants are the SDK's.
    #[cfg(windows)]
    #[test]
    fn codes_match_the_windows_crate() {
        use ::windows::Win32::Foundation as f;
        use ::windows::Win32::Graphics::Dxgi as d;
        let pairs = [
            (E_NOTIMPL, f::E_NOTIMPL),
            (E_ACCESSDENIED, f::E_ACCESSDENIED),
            (E_INVALIDARG, f::E_INVALIDARG),
            (REGDB_E_CLASSNOTREG, f::REGDB_E_CLASSNOTREG),
            (DXGI_ERROR_INVALID_CALL, d::DXGI_ERROR_INVALID_CALL),
            (DXGI_ERROR_NOT_FOUND, d::DXGI_ERROR_NOT_FOUND),
            (DXGI_ERROR_UNSUPPORTED, d::DXGI_ERROR_UNSUPPORTED),
            (DXGI_ERROR_DEVICE_REMOVED, d::DXGI_ERROR_DEVICE_REMOVED),
            (DXGI_ERROR_DEVICE_HUNG, d::DXGI_ERROR_DEVICE_HUNG),
            (DXGI_ERROR_DEVICE_RESET, d::DXGI_ERROR_DEVICE_RESET),
            (
                DXGI_ERROR_NOT_CURRENTLY_AVAILABLE,
                d::DXGI_ERROR_NOT_CURRENTLY_AVAILABLE,
            ),
            (DXGI_ERROR_ACCESS_LOST, d::DXGI_ERROR_ACCESS_LOST),
            (DXGI_ERROR_WAIT_TIMEOUT, d::DXGI_ERROR_WAIT_TIMEOUT),
            (
                DXGI_ERROR_SESSION_DISCONNECTED,
                d::DXGI_ERROR_SESSION_DISCONNECTED,
            ),
            (DXGI_ERROR_ACCESS_DENIED, d::DXGI_ERROR_ACCESS_DENIED),
        ];
        for (ours, sdk) in pairs {
            assert_eq!(ours, sdk.0);
        }
    }
}

//! Who may open the Diagnostics view: a local administrator, or anyone
//! with the supervisors' PIN from the server's policy.

use crate::AgentError;

/// Whether the user running this process is a local administrator: root
/// on Unix; on Windows a member of Administrators in an elevated process
/// (UAC gives an administrator's ordinary processes a filtered token, so
/// "Run as administrator" is what opens Diagnostics without the PIN).
pub fn is_admin() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }
    #[cfg(windows)]
    {
        // SAFETY: no arguments; it only reads the process token.
        unsafe { windows::Win32::UI::Shell::IsUserAnAdmin().as_bool() }
    }
    #[cfg(not(any(unix, windows)))]
    false
}

/// Replaces `path`'s access rights with the DACL of `sddl`, protected
/// (nothing inherited from the parent) and passed on to what is already
/// inside (`SetNamedSecurityInfoW` propagates inheritable entries).
#[cfg(windows)]
pub(crate) fn set_rights(path: &std::path::Path, sddl: &str) -> Result<(), AgentError> {
    use windows::Win32::Foundation::{HLOCAL, LocalFree};
    use windows::Win32::Security::Authorization::{
        ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1, SE_FILE_OBJECT,
        SetNamedSecurityInfoW,
    };
    use windows::Win32::Security::{
        ACL, DACL_SECURITY_INFORMATION, GetSecurityDescriptorDacl,
        PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR,
    };
    use windows::core::{BOOL, HSTRING};

    let failed = |e: windows::core::Error| {
        AgentError::io(path)(std::io::Error::other(format!(
            "cannot set its access rights: {e}"
        )))
    };
    let mut sd = PSECURITY_DESCRIPTOR::default();
    // SAFETY: a valid SDDL string; `sd` receives a LocalAlloc'd descriptor
    // that is freed below.
    unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            &HSTRING::from(sddl),
            SDDL_REVISION_1,
            &mut sd,
            None,
        )
    }
    .map_err(failed)?;
    let (mut present, mut defaulted) = (BOOL::default(), BOOL::default());
    let mut dacl: *mut ACL = std::ptr::null_mut();
    // SAFETY: `sd` is the valid descriptor made above; `dacl` points into it.
    let result = unsafe { GetSecurityDescriptorDacl(sd, &mut present, &mut dacl, &mut defaulted) }
        .and_then(|()| {
            // SAFETY: the path is a valid string, `dacl` lives as long as `sd`.
            unsafe {
                SetNamedSecurityInfoW(
                    &HSTRING::from(path.as_os_str()),
                    SE_FILE_OBJECT,
                    DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                    None,
                    None,
                    Some(dacl),
                    None,
                )
            }
            .ok()
        });
    // SAFETY: `sd` was allocated by the conversion above, freed once.
    unsafe { LocalFree(Some(HLOCAL(sd.0))) };
    result.map_err(failed)
}

/// Whether `pin` is the one hashed in `phc` (Argon2id).
fn pin_matches(pin: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordVerifier, phc::PasswordHash};
    match PasswordHash::new(phc) {
        Ok(hash) => argon2::Argon2::default()
            .verify_password(pin.as_bytes(), &hash)
            .is_ok(),
        Err(e) => {
            tracing::warn!(error = %e, "the policy's diagnostics PIN hash is unreadable");
            false
        }
    }
}

/// The rule: an administrator may; anyone else needs the PIN the policy
/// names (`phc`); with no PIN in the policy, only administrators may.
pub(crate) fn may_diagnose(
    admin: bool,
    phc: Option<&str>,
    pin: Option<&str>,
) -> Result<(), AgentError> {
    if admin {
        return Ok(());
    }
    match (phc, pin.filter(|p| !p.is_empty())) {
        (Some(phc), Some(pin)) if pin_matches(pin, phc) => Ok(()),
        (Some(_), Some(_)) => Err(AgentError::Refused("the PIN is wrong".into())),
        (Some(_), None) => Err(AgentError::Refused(
            "enter the supervisors' PIN, or open Deskrec as a local administrator".into(),
        )),
        (None, _) => Err(AgentError::Refused(
            "only a local administrator may open Diagnostics on this PC (the server sets no supervisors' PIN)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHasher;

    #[test]
    fn administrators_may_others_need_the_pin() {
        let phc = argon2::Argon2::default()
            .hash_password(b"4711")
            .unwrap()
            .to_string();
        assert!(may_diagnose(true, None, None).is_ok());
        assert!(may_diagnose(true, Some(&phc), Some("wrong")).is_ok());
        assert!(may_diagnose(false, Some(&phc), Some("4711")).is_ok());
        for (phc, pin) in [
            (Some(phc.as_str()), Some("4712")),
            (Some(phc.as_str()), None),
            (Some(phc.as_str()), Some("")),
            (None, Some("4711")),
            (Some("not a hash"), Some("4711")),
        ] {
            assert!(
                matches!(may_diagnose(false, phc, pin), Err(AgentError::Refused(_))),
                "{phc:?} {pin:?}"
            );
        }
    }
}

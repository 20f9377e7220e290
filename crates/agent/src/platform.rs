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

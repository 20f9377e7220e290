//! Who is recorded: the policy an agent gets for its session user.
//!
//! The decision is a pure function of the settings and a few facts about the
//! user ([`decide`]), kept apart from the database lookup ([`facts`]) so the
//! rules are tested exhaustively without a server. Checks run in a fixed
//! order and the first failure is the reason the agent (and the supervisor
//! looking at the device list) sees.

use deskrec_protocol::{Policy, PolicyReason};
use rusqlite::{Connection, OptionalExtension};

use crate::audit::Actor;
use crate::directory::{self, DirectoryError, NewUser, Settings};

/// What eligibility needs to know about the user mapped to a login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserFacts {
    /// The user's active flag.
    pub active: bool,
    /// Whether any of the user's roles grants `record_screen`.
    pub can_record: bool,
}

/// The rules: RTE enabled, user known, user active, `record_screen` granted.
pub fn decide(rte_enabled: bool, user: Option<UserFacts>) -> PolicyReason {
    match user {
        _ if !rte_enabled => PolicyReason::RteDisabled,
        None => PolicyReason::UnknownLogin,
        Some(u) if !u.active => PolicyReason::UserInactive,
        Some(u) if !u.can_record => PolicyReason::NoRecordPermission,
        Some(_) => PolicyReason::Eligible,
    }
}

/// Looks up the user with this Windows login (case-insensitive).
pub fn facts(conn: &Connection, windows_login: &str) -> rusqlite::Result<Option<UserFacts>> {
    conn.prepare_cached(
        "SELECT u.active,
                EXISTS (SELECT 1 FROM user_roles ur
                        JOIN role_permissions rp ON rp.role_id = ur.role_id
                        WHERE ur.user_id = u.id AND rp.permission = 'record_screen')
         FROM users u WHERE u.windows_login = ?1",
    )?
    .query_row([windows_login], |r| {
        Ok(UserFacts {
            active: r.get(0)?,
            can_record: r.get(1)?,
        })
    })
    .optional()
}

/// The server's recording public key as policies carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerKey {
    /// SubjectPublicKeyInfo PEM.
    pub public_pem: String,
    /// Hex key id.
    pub key_id: String,
}

/// Builds the policy message for a decision.
pub fn policy(settings: &Settings, reason: PolicyReason, key: &ServerKey) -> Policy {
    Policy {
        record: reason == PolicyReason::Eligible,
        reason,
        fps: settings.fps,
        segment_seconds: settings.segment_seconds,
        gop_seconds: settings.gop_seconds,
        retention: settings.retention,
        upload: settings.upload,
        server_public_key_pem: key.public_pem.clone(),
        server_key_id: key.key_id.clone(),
        desktop: settings.desktop.clone(),
        server_pins: None,
        pause: settings.pause.clone(),
    }
}

/// The policy for the user logged on at `device_id` as `windows_login`.
///
/// With `auto_create_users` on (and RTE enabled), an unknown non-empty login
/// becomes an active user without roles — so it is listed for an
/// administrator to assign roles to, and still not recorded.
pub fn evaluate(
    conn: &Connection,
    device_id: &str,
    windows_login: &str,
    key: &ServerKey,
) -> Result<Policy, DirectoryError> {
    let settings = directory::load_settings(conn)?;
    let mut user = facts(conn, windows_login)?;
    if user.is_none()
        && settings.rte_enabled
        && settings.auto_create_users
        && !windows_login.is_empty()
    {
        let new = NewUser {
            name: windows_login.to_owned(),
            windows_login: windows_login.to_owned(),
            active: true,
            roles: vec![],
            teams: vec![],
        };
        directory::create_user(conn, &Actor::Device(device_id.to_owned()), &new)?;
        user = facts(conn, windows_login)?;
    }
    Ok(policy(
        &settings,
        for_device(decide(settings.rte_enabled, user)),
        key,
    ))
}

/// The reason a device is told. An unknown login is told
/// `no_record_permission`, as a known user without the role is: a device
/// naming logins in its Hello cannot learn which ones the directory holds.
/// Administrators see who exists in the directory itself.
pub fn for_device(reason: PolicyReason) -> PolicyReason {
    match reason {
        PolicyReason::UnknownLogin => PolicyReason::NoRecordPermission,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failing_check_is_the_reason() {
        let u = |active, can_record| Some(UserFacts { active, can_record });
        use PolicyReason::*;
        let cases = [
            (false, u(true, true), RteDisabled),
            (false, None, RteDisabled),
            (true, None, UnknownLogin),
            (true, u(false, true), UserInactive),
            (true, u(false, false), UserInactive),
            (true, u(true, false), NoRecordPermission),
            (true, u(true, true), Eligible),
        ];
        for (rte, user, want) in cases {
            assert_eq!(decide(rte, user), want, "rte={rte} user={user:?}");
        }
    }
}

//! Supervisor authentication: passwords and sessions.
//!
//! Passwords are hashed with Argon2id (the `argon2` crate's defaults, OWASP's
//! minimum: 19 MiB, 2 passes) into PHC strings in `users.password_hash`.
//! Hashing costs tens of milliseconds and a lot of memory on purpose, so it
//! never runs while the database connection is held: callers read the hash
//! with [`Db::call`](crate::db::Db::call), verify on the blocking pool, and
//! write the session afterwards.
//!
//! A session is a 256-bit random token in a cookie; the database keeps only
//! its SHA-256 (as for every other secret, see `secret`). Sessions expire
//! [`SESSION_TTL_MICROS`] after sign-in whatever the activity, so a stolen
//! cookie is worth a working day at most. Every request re-reads the user's
//! active flag and permissions, so deactivating a user or taking away a role
//! takes effect on the next click, not at the next sign-in.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use crate::audit::{self, Actor};
use crate::db::now_micros;
use crate::directory::{DirectoryError, Permission};
use crate::secret::{hash_secret, random_secret};

/// How long a session lasts: 12 hours, a long shift.
pub const SESSION_TTL_MICROS: i64 = 12 * 3600 * 1_000_000;

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Longest password accepted, in bytes: long enough for any passphrase,
/// short enough that nobody makes the server hash megabytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a sign-in failed. The messages are shown on the login page.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown login, no password set, or the wrong password: one answer
    /// for all three, so the page does not reveal which logins exist.
    #[error("wrong login or password")]
    BadCredentials,
    /// The password was right but the user is deactivated.
    #[error("this account is deactivated; ask an administrator")]
    Inactive,
    /// The password was right but no role grants `view_recordings`.
    #[error(
        "this account may not view recordings; ask an administrator for a role with view_recordings"
    )]
    NotAllowed,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
    /// The hashing task failed (a bug).
    #[error("password check failed: {0}")]
    Hash(String),
}

/// Why a password cannot be set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// Shorter than [`MIN_PASSWORD_CHARS`].
    #[error("the password has {0} characters; at least {MIN_PASSWORD_CHARS} are required")]
    TooShort(usize),
    /// Longer than [`MAX_PASSWORD_BYTES`].
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    /// Argon2 refused its parameters (a bug: the defaults are in range).
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Hashes `password` into a PHC string (Argon2id, random salt). Slow: call
/// it on the blocking pool.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    check_password_rules(password)?;
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        // Only fails for out-of-range parameters, which the defaults are not.
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

fn check_password_rules(password: &str) -> Result<(), PasswordError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort(chars));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// Whether `password` matches the PHC string `phc`. Slow: call it on the
/// blocking pool. An unreadable stored hash counts as a mismatch (and is
/// logged), so a damaged row locks one user out instead of failing open.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "a stored password hash is unreadable");
            false
        }
    }
}

/// A hash of a password nobody knows, checked when the login is unknown or
/// has no password, so those answers take as long as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password(&random_secret()).expect("a random secret satisfies the password rules")
    })
}

/// Stores a new password hash for user `user_id`, ends the user's sessions
/// (a changed password must lock out whoever had the old one), and audits
/// the change without any trace of the password.
pub fn set_password_hash(
    conn: &Connection,
    actor: &Actor,
    user_id: i64,
    phc: &str,
) -> Result<(), DirectoryError> {
    let login: String = conn
        .query_row(
            "SELECT windows_login FROM users WHERE id = ?1",
            [user_id],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| DirectoryError::NotFound(format!("user {user_id}")))?;
    conn.execute(
        "UPDATE users SET password_hash = ?1, updated_at = ?2 WHERE id = ?3",
        params![phc, now_micros(), user_id],
    )?;
    let ended = conn.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?;
    audit::record(
        conn,
        actor,
        "user.password",
        &login,
        json!({ "sessions_ended": ended }),
    )?;
    Ok(())
}

/// What sign-in needs to know about a login.
struct Candidate {
    id: i64,
    active: bool,
    password_hash: Option<String>,
}

fn candidate(conn: &Connection, login: &str) -> rusqlite::Result<Option<Candidate>> {
    conn.query_row(
        "SELECT id, active, password_hash FROM users WHERE windows_login = ?1",
        [login],
        |r| {
            Ok(Candidate {
                id: r.get(0)?,
                active: r.get(1)?,
                password_hash: r.get(2)?,
            })
        },
    )
    .optional()
}

/// A new session: the token for the cookie (shown once) and its expiry.
#[derive(Debug)]
pub struct NewSession {
    /// The cookie value; only its hash is stored.
    pub token: String,
    /// Expiry, µs since the Unix epoch.
    pub expires_at: i64,
    /// The signed-in user.
    pub user_id: i64,
}

/// Checks `login` and `password` and opens a session.
///
/// The password is verified before anything else is revealed: only someone
/// who knows it learns that the account is inactive or lacks the
/// permission. Unknown logins are verified against a dummy hash so they
/// cost the same time as wrong passwords.
pub async fn login(
    db: &crate::db::Db,
    login: String,
    password: String,
) -> Result<NewSession, LoginError> {
    let found = db.call(move |c| candidate(c, &login)).await?;
    let (found, ok) = tokio::task::spawn_blocking(move || {
        let phc = found
            .as_ref()
            .and_then(|c| c.password_hash.as_deref())
            .unwrap_or_else(|| dummy_hash());
        let ok = verify_password(&password, phc);
        (found, ok)
    })
    .await
    .map_err(|e| LoginError::Hash(e.to_string()))?;
    let user = match found {
        Some(u) if ok && u.password_hash.is_some() => u,
        _ => return Err(LoginError::BadCredentials),
    };
    if !user.active {
        return Err(LoginError::Inactive);
    }
    db.call(move |c| {
        if !permissions(c, user.id)?.contains(&Permission::ViewRecordings) {
            return Err(LoginError::NotAllowed);
        }
        let now = now_micros();
        // Housekeeping on the rare write path: expired sessions are useless.
        c.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?;
        let token = random_secret();
        let expires_at = now + SESSION_TTL_MICROS;
        c.execute(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![hash_secret(&token), user.id, now, expires_at],
        )?;
        Ok(NewSession {
            token,
            expires_at,
            user_id: user.id,
        })
    })
    .await
}

/// Ends the session with this token, if it exists.
pub fn logout(conn: &Connection, token: &str) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM sessions WHERE token_hash = ?1",
        [hash_secret(token)],
    )?;
    Ok(())
}

/// The signed-in user behind a valid session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Supervisor {
    /// User id.
    pub user_id: i64,
    /// Display name.
    pub name: String,
    /// Windows login.
    pub windows_login: String,
    /// Everything the user's roles grant, now.
    pub permissions: BTreeSet<Permission>,
}

impl Supervisor {
    /// Whether the user's roles grant `p`.
    pub fn may(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }
}

/// The user of an unexpired session, if the user is still active; `None`
/// for unknown or expired tokens and deactivated users.
pub fn session_user(conn: &Connection, token: &str) -> rusqlite::Result<Option<Supervisor>> {
    let row = conn
        .query_row(
            "SELECT u.id, u.name, u.windows_login FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND u.active = 1",
            params![hash_secret(token), now_micros()],
            |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((user_id, name, windows_login)) = row else {
        return Ok(None);
    };
    Ok(Some(Supervisor {
        user_id,
        name,
        windows_login,
        permissions: permissions(conn, user_id)?,
    }))
}

/// Everything user `user_id`'s roles grant.
fn permissions(conn: &Connection, user_id: i64) -> rusqlite::Result<BTreeSet<Permission>> {
    conn.prepare_cached(
        "SELECT DISTINCT rp.permission FROM user_roles ur
         JOIN role_permissions rp ON rp.role_id = ur.role_id WHERE ur.user_id = ?1",
    )?
    .query_map([user_id], |r| r.get::<_, String>(0))?
    .map(|p| p.map(|p| Permission::parse(&p)))
    .filter_map(Result::transpose)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_to_argon2id_phc_strings_and_verify() {
        let phc = hash_password("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify_password("correct horse battery", &phc));
        assert!(!verify_password("correct horse batterz", &phc));
        assert!(!verify_password(
            "correct horse battery",
            "not a phc string"
        ));
        assert_ne!(
            phc,
            hash_password("correct horse battery").unwrap(),
            "salted"
        );
    }

    #[test]
    fn short_and_huge_passwords_are_refused() {
        assert!(matches!(
            hash_password("short"),
            Err(PasswordError::TooShort(5))
        ));
        let huge = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(matches!(hash_password(&huge), Err(PasswordError::TooLong)));
    }
}

//! Fleet enrollment tokens: one token that enrolls many PCs, for silent
//! deployment (`msiexec ... ENROLL_TOKEN=...` through SCCM, Intune or Group
//! Policy).
//!
//! A fleet token has a name, an expiry, a maximum number of PCs and,
//! optionally, a host-name pattern; an administrator can revoke it. Each
//! attempt to enroll with it, successful or refused, is a row in
//! `fleet_token_uses` and an audit entry naming the host.
//!
//! Unlike a one-time token, a fleet token that is refused says why
//! (expired, revoked, used up, host outside the pattern): whoever presents
//! it holds its secret already, so the reason tells them nothing they
//! could not learn, and it tells IT what to fix. Unknown secrets still get
//! the one `invalid_token` answer.
//!
//! The host pattern is a guard against a token deployed to the wrong site,
//! not an authentication: the PC names its own host, and anyone holding the
//! token can name any host. The secret is what must be kept (the MSI writes
//! it where only administrators can read it).

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::json;

use crate::audit::{self, Actor};
use crate::db::{micros_after, now_micros};
use crate::enrollment::EnrollError;
use crate::secret::{hash_secret, random_secret};

/// How long a fleet token is valid by default: 30 days, time enough for a
/// staged rollout.
pub const DEFAULT_FLEET_TTL_SECONDS: u64 = 30 * 24 * 3600;

/// The longest validity an administrator may give: a year.
pub const MAX_FLEET_TTL_SECONDS: u64 = 365 * 24 * 3600;

/// The most PCs one token may enroll.
pub const MAX_FLEET_USES: u32 = 100_000;

/// Why a fleet token did not enroll a PC. The codes are the API's error
/// codes and the `outcome` of the use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FleetRefusal {
    /// Past its expiry.
    #[error("the fleet enrollment token has expired; ask for a new one")]
    Expired,
    /// Revoked by an administrator.
    #[error("the fleet enrollment token was revoked; ask for a new one")]
    Revoked,
    /// It enrolled as many PCs as it may.
    #[error(
        "the fleet enrollment token has enrolled its maximum number of PCs; ask for one with more"
    )]
    Exhausted,
    /// The PC's host name is outside the token's pattern.
    #[error("this PC's host name is not one the fleet enrollment token is for")]
    HostNotAllowed,
}

impl FleetRefusal {
    /// The stable code, for the API and the use log.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::Expired => "token_expired",
            Self::Revoked => "token_revoked",
            Self::Exhausted => "token_exhausted",
            Self::HostNotAllowed => "host_not_allowed",
        }
    }
}

/// An administrator's request for a fleet token.
#[derive(Clone, Debug)]
pub struct FleetTokenSpec {
    /// What it is for, e.g. "Leeds floor 2 rollout".
    pub name: String,
    /// How many PCs it may enroll.
    pub max_uses: u32,
    /// Validity, seconds.
    pub ttl_seconds: u64,
    /// Host names it may enroll (`*` and `?` wildcards, any case); `None`:
    /// any.
    pub host_pattern: Option<String>,
}

/// Why an administrator's request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The request does not make a valid token.
    #[error("{0}")]
    Invalid(String),
    /// No fleet token has this id.
    #[error("fleet token {0} not found")]
    NotFound(i64),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

impl FleetTokenSpec {
    /// Checks the request, so a typo fails here rather than at 1000 PCs;
    /// the spec as stored (its name trimmed).
    fn validated(mut self) -> Result<Self, FleetError> {
        let invalid = |m: &str| Err(FleetError::Invalid(m.to_owned()));
        self.name = self.name.trim().to_owned();
        if self.name.is_empty() || self.name.chars().count() > 100 {
            return invalid("name must be 1 to 100 characters");
        }
        if self.max_uses == 0 || self.max_uses > MAX_FLEET_USES {
            return invalid("max_uses must be in [1, 100000]");
        }
        if self.ttl_seconds == 0 || self.ttl_seconds > MAX_FLEET_TTL_SECONDS {
            return invalid("ttl_seconds must be in [1, 31536000]");
        }
        if let Some(pattern) = &self.host_pattern {
            let allowed = |c: char| c.is_ascii_alphanumeric() || "-._*?".contains(c);
            if pattern.is_empty() || pattern.len() > 255 || !pattern.chars().all(allowed) {
                return invalid(
                    "host_pattern must be 1 to 255 characters of letters, digits, '-', '.', '_' \
                     and the wildcards '*' and '?'",
                );
            }
        }
        Ok(self)
    }
}

/// A freshly created fleet token: its id, secret (shown once), expiry and
/// spec as stored.
#[derive(Debug)]
pub struct NewFleetToken {
    /// Its id, for listing uses and revoking.
    pub id: i64,
    /// What it was created with (the name trimmed).
    pub spec: FleetTokenSpec,
    /// The secret.
    pub secret: String,
    /// Expiry, µs since the Unix epoch.
    pub expires_at: i64,
}

/// Creates a fleet token, audited.
pub fn create(
    conn: &Connection,
    actor: &Actor,
    spec: FleetTokenSpec,
) -> Result<NewFleetToken, FleetError> {
    let spec = spec.validated()?;
    let secret = random_secret();
    let now = now_micros();
    let expires_at = micros_after(now, spec.ttl_seconds);
    conn.execute(
        "INSERT INTO fleet_tokens
             (token_hash, name, host_pattern, max_uses, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            hash_secret(&secret),
            spec.name,
            spec.host_pattern,
            spec.max_uses,
            now,
            expires_at
        ],
    )?;
    let id = conn.last_insert_rowid();
    audit::record(
        conn,
        actor,
        "fleet_token.create",
        &target(id),
        json!({
            "name": spec.name,
            "max_uses": spec.max_uses,
            "host_pattern": spec.host_pattern,
            "expires_at": expires_at,
        }),
    )?;
    Ok(NewFleetToken {
        id,
        spec,
        secret,
        expires_at,
    })
}

/// A fleet token as the admin API lists it (never its secret).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FleetToken {
    /// Its id.
    pub id: i64,
    /// What it is for.
    pub name: String,
    /// The host names it may enroll; `None`: any.
    pub host_pattern: Option<String>,
    /// How many PCs it may enroll.
    pub max_uses: u32,
    /// How many it has enrolled.
    pub uses: u32,
    /// Creation, µs.
    pub created_at: i64,
    /// Expiry, µs.
    pub expires_at: i64,
    /// Revocation, µs, if revoked.
    pub revoked_at: Option<i64>,
}

/// Every fleet token, newest first.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<FleetToken>> {
    conn.prepare_cached(
        "SELECT id, name, host_pattern, max_uses, uses, created_at, expires_at, revoked_at
         FROM fleet_tokens ORDER BY id DESC",
    )?
    .query_map([], |r| {
        Ok(FleetToken {
            id: r.get(0)?,
            name: r.get(1)?,
            host_pattern: r.get(2)?,
            max_uses: r.get(3)?,
            uses: r.get(4)?,
            created_at: r.get(5)?,
            expires_at: r.get(6)?,
            revoked_at: r.get(7)?,
        })
    })?
    .collect()
}

/// One attempt to enroll with a fleet token.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FleetTokenUse {
    /// When, µs.
    pub at: i64,
    /// The host name the PC gave.
    pub host: String,
    /// The device enrolled; `None` when refused.
    pub device_id: Option<String>,
    /// `enrolled`, or the refusal's code.
    pub outcome: String,
}

/// Every attempt made with fleet token `id`, oldest first.
pub fn uses(conn: &Connection, id: i64) -> Result<Vec<FleetTokenUse>, FleetError> {
    ensure_exists(conn, id)?;
    Ok(conn
        .prepare_cached(
            "SELECT at, host, device_id, outcome FROM fleet_token_uses
             WHERE token_id = ?1 ORDER BY at, id",
        )?
        .query_map([id], |r| {
            Ok(FleetTokenUse {
                at: r.get(0)?,
                host: r.get(1)?,
                device_id: r.get(2)?,
                outcome: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
}

/// Revokes fleet token `id`: it enrolls no more PCs (those it enrolled stay
/// enrolled; revoke them as devices). Revoking twice audits once.
pub fn revoke(conn: &Connection, actor: &Actor, id: i64) -> Result<bool, FleetError> {
    ensure_exists(conn, id)?;
    let n = conn.execute(
        "UPDATE fleet_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, now_micros()],
    )?;
    if n == 1 {
        audit::record(conn, actor, "fleet_token.revoke", &target(id), json!({}))?;
    }
    Ok(n == 1)
}

/// Takes one use of the fleet token whose secret hashes to `token_hash` for
/// a PC named `host`, inside the enrollment's transaction. `Ok(None)`: no
/// fleet token has that secret. A refusal changes nothing; the caller
/// records it with [`record_refusal`] after rolling back.
pub(crate) fn take(
    conn: &Connection,
    token_hash: &str,
    host: &str,
    now: i64,
) -> Result<Option<i64>, EnrollError> {
    let token = conn
        .query_row(
            "SELECT id, expires_at, revoked_at IS NOT NULL,
                    host_pattern IS NULL OR upper(?2) GLOB upper(host_pattern)
             FROM fleet_tokens WHERE token_hash = ?1",
            params![token_hash, host],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, bool>(2)?,
                    r.get::<_, bool>(3)?,
                ))
            },
        )
        .optional()?;
    let Some((id, expires_at, revoked, host_allowed)) = token else {
        return Ok(None);
    };
    let refusal = if revoked {
        FleetRefusal::Revoked
    } else if expires_at <= now {
        FleetRefusal::Expired
    } else if !host_allowed {
        FleetRefusal::HostNotAllowed
    } else {
        // One statement checks and counts, so concurrent enrollments can
        // never take more uses than the token has.
        let taken = conn.execute(
            "UPDATE fleet_tokens SET uses = uses + 1 WHERE id = ?1 AND uses < max_uses",
            [id],
        )?;
        if taken == 1 {
            return Ok(Some(id));
        }
        FleetRefusal::Exhausted
    };
    Err(EnrollError::FleetRefused {
        token_id: id,
        reason: refusal,
    })
}

/// Logs a successful use of fleet token `id`, in the enrollment's
/// transaction.
pub(crate) fn record_enrolled(
    conn: &Connection,
    id: i64,
    host: &str,
    device_id: &str,
    now: i64,
) -> rusqlite::Result<()> {
    record_use(conn, id, host, Some(device_id), "enrolled", now)?;
    audit::record(
        conn,
        &Actor::Device(device_id.to_owned()),
        "fleet_token.use",
        &target(id),
        json!({ "host": host, "device_id": device_id, "outcome": "enrolled" }),
    )
}

/// Logs a refused use of fleet token `id`, in a transaction of its own
/// (the enrollment's was rolled back).
pub fn record_refusal(
    conn: &Connection,
    id: i64,
    host: &str,
    reason: FleetRefusal,
) -> rusqlite::Result<()> {
    record_use(conn, id, host, None, reason.code(), now_micros())?;
    audit::record(
        conn,
        &Actor::System,
        "fleet_token.use",
        &target(id),
        json!({ "host": host, "outcome": reason.code() }),
    )
}

fn record_use(
    conn: &Connection,
    id: i64,
    host: &str,
    device_id: Option<&str>,
    outcome: &str,
    now: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO fleet_token_uses (token_id, at, host, device_id, outcome)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, now, host, device_id, outcome],
    )?;
    Ok(())
}

fn ensure_exists(conn: &Connection, id: i64) -> Result<(), FleetError> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM fleet_tokens WHERE id = ?1)",
        [id],
        |r| r.get(0),
    )?;
    if exists {
        Ok(())
    } else {
        Err(FleetError::NotFound(id))
    }
}

/// The audit target naming a fleet token.
fn target(id: i64) -> String {
    format!("fleet-token:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FleetTokenSpec {
        FleetTokenSpec {
            name: "Leeds floor 2".into(),
            max_uses: 10,
            ttl_seconds: 3600,
            host_pattern: Some("CC-LDS-*".into()),
        }
    }

    #[test]
    fn requests_that_make_no_sense_are_refused_with_the_field() {
        assert_eq!(spec().validated().unwrap().name, "Leeds floor 2");
        let padded = FleetTokenSpec {
            name: "  Leeds floor 2 ".into(),
            ..spec()
        };
        assert_eq!(padded.validated().unwrap().name, "Leeds floor 2");
        type Breakage = fn(&mut FleetTokenSpec);
        let cases: [(Breakage, &str); 5] = [
            (|s| s.name = " ".into(), "name"),
            (|s| s.max_uses = 0, "max_uses"),
            (|s| s.ttl_seconds = MAX_FLEET_TTL_SECONDS + 1, "ttl_seconds"),
            (|s| s.host_pattern = Some(String::new()), "host_pattern"),
            (
                |s| s.host_pattern = Some("CC-[LDS]*".into()),
                "host_pattern",
            ),
        ];
        for (break_it, field) in cases {
            let mut s = spec();
            break_it(&mut s);
            let Err(FleetError::Invalid(m)) = s.clone().validated() else {
                panic!("{s:?} accepted");
            };
            assert!(m.contains(field), "{m}");
        }
    }

    #[test]
    fn host_patterns_match_any_case_with_wildcards() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrate(&mut conn).unwrap();
        let token = create(&conn, &Actor::Admin, spec()).unwrap();
        let hash = hash_secret(&token.secret);
        let now = now_micros();
        assert_eq!(
            take(&conn, &hash, "cc-lds-0042", now).unwrap(),
            Some(token.id)
        );
        let refused = take(&conn, &hash, "CC-MAN-0001", now).unwrap_err();
        assert!(matches!(
            refused,
            EnrollError::FleetRefused {
                reason: FleetRefusal::HostNotAllowed,
                ..
            }
        ));
        assert_eq!(
            take(&conn, &hash_secret("other"), "CC-LDS-1", now).unwrap(),
            None
        );
    }
}

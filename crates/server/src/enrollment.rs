//! Device enrollment, credentials and revocation.
//!
//! An administrator creates a one-time token, or a fleet token for many PCs
//! ([`crate::fleet`]); a PC presents it with its RSA signing public key and
//! receives a device id and a credential. The server stores only hashes of
//! tokens and credentials. Unknown, used and expired one-time tokens all
//! give the same error, so the answer tells an attacker nothing about which
//! tokens exist.

use deskrec_protocol::{EnrollRequest, EnrollResponse};
use deskrec_vault::PublicKey;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::json;

use crate::audit::{self, Actor};
use crate::db::{micros_after, now_micros};
use crate::secret::{hash_secret, random_bytes, random_secret};

/// How long an enrollment token is valid by default: a week, time enough
/// to roll an installer out.
pub const DEFAULT_TOKEN_TTL_SECONDS: u64 = 7 * 24 * 3600;

/// Why an enrollment failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    /// The token is unknown, already used or expired.
    #[error("enrollment token is invalid, used or expired")]
    InvalidToken,
    /// A fleet token, presented with its secret, that cannot enroll this PC.
    #[error("{reason}")]
    FleetRefused {
        /// The fleet token's id.
        token_id: i64,
        /// Why.
        reason: crate::fleet::FleetRefusal,
    },
    /// The public key is not an RSA public key PEM.
    #[error("public key rejected: {0}")]
    BadKey(String),
    /// A named device does not exist.
    #[error("device {0:?} not found")]
    NoSuchDevice(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

/// A freshly created token's secret and expiry.
#[derive(Debug)]
pub struct NewToken {
    /// The secret (shown once).
    pub secret: String,
    /// Expiry, µs since the Unix epoch.
    pub expires_at: i64,
}

/// Creates a one-time token valid for `ttl_seconds`.
pub fn create_token(
    conn: &Connection,
    actor: &Actor,
    ttl_seconds: u64,
) -> Result<NewToken, EnrollError> {
    let secret = random_secret();
    let now = now_micros();
    let expires_at = micros_after(now, ttl_seconds);
    conn.execute(
        "INSERT INTO enrollment_tokens (token_hash, created_at, expires_at) VALUES (?1, ?2, ?3)",
        params![hash_secret(&secret), now, expires_at],
    )?;
    let id = conn.last_insert_rowid();
    audit::record(
        conn,
        actor,
        "enrollment_token.create",
        &format!("token:{id}"),
        json!({ "expires_at": expires_at }),
    )?;
    Ok(NewToken { secret, expires_at })
}

/// The RSA key sizes accepted for a device's signing key.
pub const DEVICE_KEY_BITS: std::ops::RangeInclusive<u32> = 2048..=4096;

/// Consumes the token (one-time, or one use of a fleet token) and registers
/// the device. Run in a transaction: the token is used and the device
/// inserted together. A refused fleet token changes nothing; log the
/// attempt with [`crate::fleet::record_refusal`] after rolling back.
pub fn enroll(conn: &Connection, req: &EnrollRequest) -> Result<EnrollResponse, EnrollError> {
    let key =
        PublicKey::from_pem(&req.public_key_pem).map_err(|e| EnrollError::BadKey(e.to_string()))?;
    // Shorter keys are forgeable; longer ones make every signature check
    // of that device's uploads cost the server far more than it should.
    if !DEVICE_KEY_BITS.contains(&key.bits()) {
        return Err(EnrollError::BadKey(format!(
            "an RSA key of {} bits: device keys must have {} to {} bits",
            key.bits(),
            DEVICE_KEY_BITS.start(),
            DEVICE_KEY_BITS.end()
        )));
    }
    let now = now_micros();
    let device_id = format!("dev-{}", hex::encode(random_bytes::<8>()));
    let token_hash = hash_secret(&req.token);
    let used = conn.execute(
        "UPDATE enrollment_tokens SET used_at = ?2, device_id = ?3
         WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
        params![token_hash, now, device_id],
    )?;
    let fleet_token = if used == 1 {
        None
    } else {
        let id = crate::fleet::take(conn, &token_hash, &req.host, now)?;
        Some(id.ok_or(EnrollError::InvalidToken)?)
    };
    let credential = random_secret();
    conn.execute(
        "INSERT INTO devices (id, host, public_key_pem, key_id, credential_hash, enrolled_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            device_id,
            req.host,
            key.to_pem(),
            key.id().to_string(),
            hash_secret(&credential),
            now
        ],
    )?;
    audit::record(
        conn,
        &Actor::Device(device_id.clone()),
        "device.enroll",
        &device_id,
        json!({ "host": req.host, "key_id": key.id().to_string(), "fleet_token": fleet_token }),
    )?;
    if let Some(id) = fleet_token {
        crate::fleet::record_enrolled(conn, id, &req.host, &device_id, now)?;
    }
    Ok(EnrollResponse {
        device_id,
        credential,
    })
}

/// The device a credential belongs to, if it exists and is not revoked.
pub fn authenticate(conn: &Connection, credential: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT id FROM devices WHERE credential_hash = ?1 AND revoked_at IS NULL",
        [hash_secret(credential)],
        |r| r.get(0),
    )
    .optional()
}

/// Whether the device exists and is not revoked.
pub fn is_active(conn: &Connection, device_id: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM devices WHERE id = ?1 AND revoked_at IS NULL)",
        [device_id],
        |r| r.get(0),
    )
}

/// Revokes a device: its credential stops working at once and its open
/// RTE connection is closed on the next directory notification. Revoking
/// twice is not an error and audits once.
pub fn revoke(conn: &Connection, actor: &Actor, device_id: &str) -> Result<bool, EnrollError> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM devices WHERE id = ?1)",
        [device_id],
        |r| r.get(0),
    )?;
    if !exists {
        return Err(EnrollError::NoSuchDevice(device_id.to_owned()));
    }
    let n = conn.execute(
        "UPDATE devices SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![device_id, now_micros()],
    )?;
    if n == 1 {
        audit::record(conn, actor, "device.revoke", device_id, json!({}))?;
    }
    Ok(n == 1)
}

/// A device as the admin API lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Device {
    /// Device id.
    pub id: String,
    /// Host name given at enrollment.
    pub host: String,
    /// Id of its signing key.
    pub key_id: String,
    /// Enrollment time, µs.
    pub enrolled_at: i64,
    /// Revocation time, µs, if revoked.
    pub revoked_at: Option<i64>,
    /// Last RTE activity, µs.
    pub last_seen_at: Option<i64>,
    /// Windows login in the last Hello.
    pub last_login: Option<String>,
    /// Agent version in the last Hello.
    pub agent_version: Option<String>,
    /// The last heartbeat's status, as sent.
    pub last_status: Option<serde_json::Value>,
}

/// Every device, newest first.
pub fn list_devices(conn: &Connection) -> rusqlite::Result<Vec<Device>> {
    conn.prepare_cached(
        "SELECT id, host, key_id, enrolled_at, revoked_at, last_seen_at, last_login,
                agent_version, last_status
         FROM devices ORDER BY enrolled_at DESC",
    )?
    .query_map([], |r| {
        let status: Option<String> = r.get(8)?;
        Ok(Device {
            id: r.get(0)?,
            host: r.get(1)?,
            key_id: r.get(2)?,
            enrolled_at: r.get(3)?,
            revoked_at: r.get(4)?,
            last_seen_at: r.get(5)?,
            last_login: r.get(6)?,
            agent_version: r.get(7)?,
            last_status: status.and_then(|s| serde_json::from_str(&s).ok()),
        })
    })?
    .collect()
}

/// When the server last heard from the device (Hello or heartbeat).
pub fn last_seen(conn: &Connection, device_id: &str) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT last_seen_at FROM devices WHERE id = ?1",
        [device_id],
        |r| r.get(0),
    )
    .optional()
    .map(Option::flatten)
}

/// Active devices other than `except` whose last Hello named `login`.
pub fn showing_login(
    conn: &Connection,
    login: &str,
    except: &str,
) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached(
        "SELECT id FROM devices
         WHERE last_login = ?1 COLLATE NOCASE AND id <> ?2 AND revoked_at IS NULL",
    )?
    .query_map([login, except], |r| r.get(0))?
    .collect()
}

/// Records a Hello: who is logged on and which agent version runs.
pub fn record_hello(
    conn: &Connection,
    device_id: &str,
    login: &str,
    agent_version: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE devices SET last_seen_at = ?2, last_login = ?3, agent_version = ?4 WHERE id = ?1",
        params![device_id, now_micros(), login, agent_version],
    )?;
    Ok(())
}

/// Keeps the last heartbeat status.
pub fn record_status(
    conn: &Connection,
    device_id: &str,
    status_json: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE devices SET last_seen_at = ?2, last_status = ?3 WHERE id = ?1",
        params![device_id, now_micros(), status_json],
    )?;
    Ok(())
}

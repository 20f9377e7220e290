//! Pauses on the server: the contact centre's systems (the ACD, the IVR, a
//! payment application) pause and resume recording on an agent's PC, by
//! login or by device, and every pause the PCs report is kept and audited.
//!
//! A pause request is committed (its rows and audit) before it is relayed
//! over the device's RTE session, which carries it to the PC at once. The
//! PC ends it by itself after `max_seconds` (the policy caps that too), so
//! a lost resume cannot stop recording for the rest of the day. A PC that
//! is not connected cannot be paused: the API says so (409) instead of
//! pretending.

use deskrec_protocol::{PauseCommand, PauseReport, ResumeCommand, ServerMessage};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::audit::{self, Actor};
use crate::hub::DeviceHub;

/// Why a pause request cannot be carried out.
#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// No device to pause: unknown, revoked, or nobody with that login.
    #[error("{0}")]
    NotFound(String),
    /// The devices exist but none is connected now.
    #[error("{0}")]
    NotConnected(String),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
}

/// `POST /api/v1/admin/pauses`: pause one PC or every PC a login is on.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    /// The agent's Windows login: every connected PC it is logged on to.
    #[serde(default)]
    pub windows_login: Option<String>,
    /// Or one device, by id.
    #[serde(default)]
    pub device_id: Option<String>,
    /// Why, e.g. `card_payment` (1 to 64 bytes).
    pub reason: String,
    /// Resume by itself after this many seconds (the policy's
    /// `pause.max_seconds` caps it); default: the policy's maximum.
    #[serde(default)]
    pub max_seconds: Option<u32>,
    /// Who asks, for the audit (e.g. `payment-ivr`).
    #[serde(default)]
    pub requested_by: Option<String>,
}

/// The answer to a pause request.
#[derive(Clone, Debug, Serialize)]
pub struct PauseAnswer {
    /// The pause's id: resume it with `POST /pauses/{pause_id}/resume`.
    pub pause_id: String,
    /// The devices it was relayed to (connected now).
    pub devices: Vec<String>,
    /// The longest it lasts, seconds.
    pub max_seconds: u32,
}

/// A pause as the server knows it: requested through the API, reported by
/// the device, or both.
#[derive(Clone, Debug, Serialize)]
pub struct PauseRow {
    /// The device.
    pub device_id: String,
    /// The pause's id.
    pub pause_id: String,
    /// `agent`, `api` or `rule`.
    pub source: String,
    /// Why.
    pub reason: String,
    /// Who asked.
    pub requested_by: String,
    /// The session login.
    pub windows_login: String,
    /// When it started (device clock, µs), once reported.
    pub started_at: Option<i64>,
    /// When it would end by itself.
    pub until: Option<i64>,
    /// When it ended.
    pub ended_at: Option<i64>,
    /// How it ended.
    pub end_reason: Option<String>,
}

/// The devices a request targets: the one named, or those whose open login
/// session is the login. Revoked devices are never paused (they do not
/// connect).
fn targets(conn: &Connection, req: &PauseRequest) -> Result<Vec<(String, String)>, PauseError> {
    match (&req.windows_login, &req.device_id) {
        (Some(login), None) => {
            let mut stmt = conn.prepare(
                "SELECT s.device_id, s.windows_login FROM login_sessions s
                 JOIN devices d ON d.id = s.device_id
                 WHERE s.windows_login = ?1 AND s.ended_at IS NULL AND d.revoked_at IS NULL",
            )?;
            let rows = stmt
                .query_map([login], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            if rows.is_empty() {
                return Err(PauseError::NotFound(format!(
                    "no enrolled PC has {login:?} logged on"
                )));
            }
            Ok(rows)
        }
        (None, Some(device)) => {
            let login: Option<Option<String>> = conn
                .query_row(
                    "SELECT (SELECT windows_login FROM login_sessions
                             WHERE device_id = d.id AND ended_at IS NULL)
                     FROM devices d WHERE d.id = ?1 AND d.revoked_at IS NULL",
                    [device],
                    |r| r.get(0),
                )
                .optional()?;
            match login {
                Some(login) => Ok(vec![(device.clone(), login.unwrap_or_default())]),
                None => Err(PauseError::NotFound(format!(
                    "no enrolled device {device:?} (or it is revoked)"
                ))),
            }
        }
        _ => Err(PauseError::Invalid(
            "give exactly one of windows_login and device_id".into(),
        )),
    }
}

/// Checks a reason: 1 to 64 bytes, what a segment's frame can carry.
fn check_reason(reason: &str) -> Result<(), PauseError> {
    if !deskrec_vault::valid_pause_reason(reason) {
        return Err(PauseError::Invalid(format!(
            "reason must have 1 to {} bytes",
            deskrec_vault::MAX_PAUSE_REASON
        )));
    }
    Ok(())
}

/// Pauses the devices `req` names that are connected: commits a row per
/// device and an audit row, then relays the command.
pub fn request(
    conn: &mut Connection,
    hub: &DeviceHub,
    req: &PauseRequest,
    policy_max_seconds: u32,
    now: i64,
) -> Result<PauseAnswer, PauseError> {
    check_reason(&req.reason)?;
    let max_seconds = req
        .max_seconds
        .map_or(policy_max_seconds, |s| s.min(policy_max_seconds));
    if max_seconds == 0 {
        return Err(PauseError::Invalid("max_seconds must be at least 1".into()));
    }
    let requested_by = req.requested_by.clone().unwrap_or_else(|| "api".into());
    let connected: Vec<(String, String)> = targets(conn, req)?
        .into_iter()
        .filter(|(device, _)| hub.is_connected(device))
        .collect();
    if connected.is_empty() {
        return Err(PauseError::NotConnected(
            "the PC is not connected to the server now, so it cannot be paused; \
             recording goes on"
                .into(),
        ));
    }
    let pause_id = format!("api-{:016x}", getrandom::u64().unwrap_or_default());
    let tx = crate::db::write_tx(conn)?;
    for (device, login) in &connected {
        tx.execute(
            "INSERT INTO pauses (device_id, pause_id, source, reason, requested_by, windows_login,
                                 requested_at)
             VALUES (?1, ?2, 'api', ?3, ?4, ?5, ?6)",
            params![device, pause_id, req.reason, requested_by, login, now],
        )?;
    }
    let devices: Vec<String> = connected.into_iter().map(|(d, _)| d).collect();
    audit::record(
        &tx,
        &Actor::Admin,
        "pause.request",
        &pause_id,
        serde_json::json!({
            "reason": req.reason, "requested_by": requested_by, "max_seconds": max_seconds,
            "windows_login": req.windows_login, "devices": devices,
        }),
    )?;
    tx.commit()?;
    let command = PauseCommand {
        pause_id: pause_id.clone(),
        reason: req.reason.clone(),
        requested_by,
        max_seconds,
    };
    for device in &devices {
        hub.post(device, ServerMessage::Pause(command.clone()));
    }
    Ok(PauseAnswer {
        pause_id,
        devices,
        max_seconds,
    })
}

/// Ends an API pause on every device it went to (audited, then relayed).
pub fn resume(
    conn: &mut Connection,
    hub: &DeviceHub,
    pause_id: &str,
    requested_by: &str,
) -> Result<Vec<String>, PauseError> {
    let devices: Vec<String> = {
        let mut stmt =
            conn.prepare("SELECT device_id FROM pauses WHERE pause_id = ?1 AND source = 'api'")?;
        stmt.query_map([pause_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?
    };
    if devices.is_empty() {
        return Err(PauseError::NotFound(format!("no pause {pause_id:?}")));
    }
    audit::record(
        conn,
        &Actor::Admin,
        "pause.resume",
        pause_id,
        serde_json::json!({ "requested_by": requested_by, "devices": devices }),
    )?;
    let command = ResumeCommand {
        pause_id: pause_id.to_owned(),
        requested_by: requested_by.to_owned(),
    };
    for device in &devices {
        hub.post(device, ServerMessage::Resume(command.clone()));
    }
    Ok(devices)
}

/// Stores a device's report of a pause and audits its start and its end,
/// once each (the device sends at least once).
pub fn report(
    conn: &mut Connection,
    device_id: &str,
    r: &PauseReport,
    now: i64,
) -> rusqlite::Result<()> {
    let tx = crate::db::write_tx(conn)?;
    let before: Option<(Option<i64>, Option<i64>)> = tx
        .query_row(
            "SELECT started_at, ended_at FROM pauses WHERE device_id = ?1 AND pause_id = ?2",
            params![device_id, r.pause_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    tx.execute(
        "INSERT INTO pauses (device_id, pause_id, source, reason, requested_by, windows_login,
                             started_at, until, ended_at, end_reason, reported_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (device_id, pause_id) DO UPDATE SET
             started_at = excluded.started_at, until = excluded.until,
             ended_at = COALESCE(pauses.ended_at, excluded.ended_at),
             end_reason = COALESCE(pauses.end_reason, excluded.end_reason),
             windows_login = excluded.windows_login, reported_at = excluded.reported_at",
        params![
            device_id,
            r.pause_id,
            r.source.as_str(),
            r.reason,
            r.requested_by,
            r.windows_login,
            r.started_at,
            r.until,
            r.ended_at,
            r.end,
            now
        ],
    )?;
    let (started_known, ended_known) =
        before.map_or((false, false), |(s, e)| (s.is_some(), e.is_some()));
    let actor = Actor::Device(device_id.to_owned());
    let target = format!("{device_id}/{}", r.pause_id);
    if !started_known {
        audit::record(
            &tx,
            &actor,
            "pause.start",
            &target,
            serde_json::json!({
                "source": r.source, "reason": r.reason, "requested_by": r.requested_by,
                "windows_login": r.windows_login, "started_at": r.started_at, "until": r.until,
            }),
        )?;
    }
    if let (false, Some(ended_at)) = (ended_known, r.ended_at) {
        audit::record(
            &tx,
            &actor,
            "pause.end",
            &target,
            serde_json::json!({
                "source": r.source, "reason": r.reason, "end": r.end, "ended_at": ended_at,
                "seconds": (ended_at - r.started_at) / 1_000_000,
            }),
        )?;
    }
    tx.commit()
}

/// The newest pauses, newest first, optionally of one login.
pub fn list(conn: &Connection, login: Option<&str>, limit: u32) -> rusqlite::Result<Vec<PauseRow>> {
    let mut stmt = conn.prepare(
        "SELECT device_id, pause_id, source, reason, requested_by, windows_login, started_at,
                until, ended_at, end_reason
         FROM pauses WHERE ?1 IS NULL OR windows_login = ?1 COLLATE NOCASE
         ORDER BY COALESCE(started_at, requested_at) DESC LIMIT ?2",
    )?;
    stmt.query_map(params![login, limit], |r| {
        Ok(PauseRow {
            device_id: r.get(0)?,
            pause_id: r.get(1)?,
            source: r.get(2)?,
            reason: r.get(3)?,
            requested_by: r.get(4)?,
            windows_login: r.get(5)?,
            started_at: r.get(6)?,
            until: r.get(7)?,
            ended_at: r.get(8)?,
            end_reason: r.get(9)?,
        })
    })?
    .collect()
}

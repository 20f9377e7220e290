//! Customer contacts: import from the contact centre (ACD), relay to the
//! agents' PCs, and the watermark that lets PCs delete segments.
//!
//! A contact says "agent `windows_login` talked to a customer from `start`
//! to `end`". The PC that recorded that agent's screen must cut the
//! recording, so every contact is queued for each device the login was
//! live on during the contact (`login_sessions`, from the devices' Hellos):
//! a **delivery** with the device's own sequence number. A PC the agent
//! has left, or one that claims the login only later, gets nothing. A
//! connected device gets its deliveries at once; a disconnected one gets
//! them, in order, after the cursor it sends in its next Hello. Deliveries are rows, not messages in memory, so a restart,
//! a dropped connection or an agent that was off all night loses nothing.
//!
//! The **watermark** is the ACD's promise that every contact ending before
//! it has been imported. A device may delete a segment only once the
//! watermark has passed its end and no delivered contact needs it, so the
//! server forwards the watermark to a device only after everything queued
//! for it before the watermark was read.

use std::collections::BTreeSet;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::audit::{self, Actor};
use crate::db::now_micros;

/// Why contacts could not be imported, relayed or found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContactError {
    /// A contact's id is empty or too long.
    #[error("contact_id {0:?} must be 1 to 200 characters")]
    BadId(String),
    /// A contact names no agent.
    #[error("contact {0}: windows_login is empty")]
    NoLogin(String),
    /// A contact ends before it starts (or when it starts).
    #[error("contact {id}: end {end} is not after start {start}")]
    EndNotAfterStart {
        /// The contact.
        id: String,
        /// Its start.
        start: jiff::Timestamp,
        /// Its end.
        end: jiff::Timestamp,
    },
    /// A contact lasts longer than any call does.
    #[error("contact {id}: longer than 24 hours ({start} to {end})")]
    TooLong {
        /// The contact.
        id: String,
        /// Its start.
        start: jiff::Timestamp,
        /// Its end.
        end: jiff::Timestamp,
    },
    /// An import holds more contacts than one transaction takes.
    #[error("{0} contacts in one import; send at most {MAX_IMPORT}")]
    TooMany(usize),
    /// An import names one contact twice.
    #[error("contact {0} appears twice in the import")]
    Twice(String),
    /// No contact has this id.
    #[error("contact {0} not found")]
    NotFound(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

type Result<T> = std::result::Result<T, ContactError>;

/// Contacts in one page of the admin list when `limit` is absent, and the
/// most it may ask for (the API refuses more, see `api::page_limit`).
pub const LIST_DEFAULT: u32 = 100;
/// See [`LIST_DEFAULT`].
pub const LIST_MAX: u32 = 1000;

/// Longest contact accepted: longer ones are almost certainly a wrong end
/// time, and would pin a day of segments on the PC.
pub const MAX_CONTACT_MICROS: i64 = 24 * 3600 * 1_000_000;

/// Most contacts in one import call.
pub const MAX_IMPORT: usize = 10_000;

/// A contact as the ACD reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewContact {
    /// The ACD's id; importing the same id again updates, never duplicates.
    pub contact_id: String,
    /// Windows login of the agent who handled it, e.g. `CORP\ann`.
    pub windows_login: String,
    /// Start (RFC 3339, e.g. `2026-11-25T09:00:00Z`).
    pub start: jiff::Timestamp,
    /// End (RFC 3339).
    pub end: jiff::Timestamp,
    /// `inbound`, `outbound`, … as the ACD names it.
    #[serde(default)]
    pub direction: Option<String>,
    /// The ACD queue.
    #[serde(default)]
    pub queue: Option<String>,
    /// Where the call audio is (a reference in the ACD's storage).
    #[serde(default)]
    pub audio_ref: Option<String>,
}

/// Body of `POST /api/v1/admin/contacts`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactImport {
    /// The contacts; may be empty to move only the watermark.
    #[serde(default)]
    pub contacts: Vec<NewContact>,
    /// Every contact ending before this has now been imported. Never moves
    /// back: an older value is ignored.
    #[serde(default)]
    pub watermark: Option<jiff::Timestamp>,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ContactImportReport {
    /// New contacts.
    pub created: usize,
    /// Contacts whose times or details changed.
    pub updated: usize,
    /// Contacts imported before with the same data.
    pub unchanged: usize,
    /// Deliveries queued (one per contact and device).
    pub deliveries: usize,
    /// The watermark after the import, µs, if one was ever set.
    pub watermark: Option<i64>,
    /// Devices with new deliveries, to wake (not serialized).
    #[serde(skip)]
    pub devices: BTreeSet<String>,
}

/// Screen-recording status of a contact, as supervisors see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactStatus {
    /// Waiting for the PC's recording.
    Pending,
    /// A verified recording is stored.
    Uploaded,
    /// An upload was rejected; `status_reason` says why.
    Failed,
    /// Every PC that could have it says there is no recording.
    Unrecoverable,
}

/// A contact with its status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Contact {
    /// The ACD's id.
    pub contact_id: String,
    /// The agent's Windows login.
    pub windows_login: String,
    /// Start, µs since the Unix epoch.
    pub start: i64,
    /// End, µs since the Unix epoch.
    pub end: i64,
    /// Direction as the ACD gave it.
    pub direction: Option<String>,
    /// Queue.
    pub queue: Option<String>,
    /// Audio reference.
    pub audio_ref: Option<String>,
    /// Screen-recording status.
    pub status: ContactStatus,
    /// Why failed or unrecoverable.
    pub status_reason: Option<String>,
    /// Devices the contact was relayed to, with their answer.
    pub deliveries: Vec<Delivery>,
    /// Its recording and audio expired or were erased (`compliance`).
    pub disposal: Option<crate::compliance::DisposalRecord>,
}

/// One device's copy of a contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// The device.
    pub device_id: String,
    /// The device's sequence number.
    pub seq: u64,
    /// Whether the device confirmed it has it queued.
    pub acknowledged: bool,
    /// `uploaded` or `unrecoverable`, once the device answered.
    pub outcome: Option<String>,
    /// The device's reason for `unrecoverable`.
    pub outcome_reason: Option<String>,
}

impl NewContact {
    /// The contact with its times at the microsecond precision it is
    /// stored at, to compare with a stored one.
    fn at_micros(&self, start: i64, end: i64) -> NewContact {
        let time = |us| jiff::Timestamp::from_microsecond(us).unwrap_or_default();
        NewContact {
            start: time(start),
            end: time(end),
            ..self.clone()
        }
    }

    fn validate(&self) -> Result<(i64, i64)> {
        let id = &self.contact_id;
        if id.trim().is_empty() || id.len() > 200 {
            return Err(ContactError::BadId(id.clone()));
        }
        if self.windows_login.trim().is_empty() {
            return Err(ContactError::NoLogin(id.clone()));
        }
        let (start, end) = (self.start.as_microsecond(), self.end.as_microsecond());
        if end <= start {
            return Err(ContactError::EndNotAfterStart {
                id: id.clone(),
                start: self.start,
                end: self.end,
            });
        }
        if end - start > MAX_CONTACT_MICROS {
            return Err(ContactError::TooLong {
                id: id.clone(),
                start: self.start,
                end: self.end,
            });
        }
        Ok((start, end))
    }
}

/// Imports contacts and moves the watermark, in the caller's transaction.
/// New and changed contacts are queued for every device their login was
/// live on during them, and a changed one also for the devices it went to
/// before; the caller wakes `report.devices` after committing.
///
/// All or nothing: every contact is checked before any is stored, and an
/// error leaves the caller's transaction to roll back.
pub fn import(
    conn: &Connection,
    actor: &Actor,
    req: &ContactImport,
) -> Result<ContactImportReport> {
    let times = validate_import(&req.contacts)?;
    let mut report = ContactImportReport::default();
    let now = now_micros();
    for (c, (start, end)) in req.contacts.iter().zip(times) {
        match stored_contact(conn, &c.contact_id)? {
            Some(stored) if stored == c.at_micros(start, end) => {
                report.unchanged += 1;
                continue;
            }
            Some(_) => report.updated += 1,
            None => report.created += 1,
        }
        let row = upsert(conn, c, start, end, now)?;
        for device in devices_to_tell(conn, &c.windows_login, start, end, row)? {
            queue_delivery(conn, &device, row, now)?;
            report.deliveries += 1;
            report.devices.insert(device);
        }
    }
    if let Some(w) = req.watermark {
        conn.execute(
            "UPDATE relay_state SET watermark = max(coalesce(watermark, ?1), ?1) WHERE id = 1",
            [w.as_microsecond()],
        )?;
    }
    report.watermark = watermark(conn)?;
    if report.created + report.updated > 0 || req.watermark.is_some() {
        audit::record(
            conn,
            actor,
            "contacts.import",
            "contacts",
            serde_json::json!({
                "created": report.created,
                "updated": report.updated,
                "deliveries": report.deliveries,
                "watermark": report.watermark,
            }),
        )?;
    }
    Ok(report)
}

/// Checks an import before anything is stored: at most [`MAX_IMPORT`]
/// contacts, each valid ([`NewContact::validate`]), no id twice. Each
/// contact's start and end, µs.
fn validate_import(contacts: &[NewContact]) -> Result<Vec<(i64, i64)>> {
    if contacts.len() > MAX_IMPORT {
        return Err(ContactError::TooMany(contacts.len()));
    }
    let mut seen = BTreeSet::new();
    contacts
        .iter()
        .map(|c| {
            let times = c.validate()?;
            if !seen.insert(c.contact_id.as_str()) {
                return Err(ContactError::Twice(c.contact_id.clone()));
            }
            Ok(times)
        })
        .collect()
}

/// The contact `contact_id` as stored, to tell an unchanged import from a
/// correction.
fn stored_contact(conn: &Connection, contact_id: &str) -> Result<Option<NewContact>> {
    let found = conn
        .query_row(
            "SELECT windows_login, start_at, end_at, direction, queue, audio_ref
             FROM contacts WHERE contact_id = ?1",
            [contact_id],
            |r| {
                let time = |i| {
                    r.get::<_, i64>(i)
                        .map(|us| jiff::Timestamp::from_microsecond(us).unwrap_or_default())
                };
                Ok(NewContact {
                    contact_id: contact_id.to_owned(),
                    windows_login: r.get(0)?,
                    start: time(1)?,
                    end: time(2)?,
                    direction: r.get(3)?,
                    queue: r.get(4)?,
                    audio_ref: r.get(5)?,
                })
            },
        )
        .optional()?;
    Ok(found)
}

/// Stores a new or corrected contact; its row id.
fn upsert(conn: &Connection, c: &NewContact, start: i64, end: i64, now: i64) -> Result<i64> {
    let row = conn.query_row(
        "INSERT INTO contacts (contact_id, windows_login, start_at, end_at,
            direction, queue, audio_ref, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
         ON CONFLICT (contact_id) DO UPDATE SET
            windows_login = excluded.windows_login, start_at = excluded.start_at,
            end_at = excluded.end_at, direction = excluded.direction,
            queue = excluded.queue, audio_ref = excluded.audio_ref,
            updated_at = excluded.updated_at
         RETURNING id",
        params![
            c.contact_id,
            c.windows_login,
            start,
            end,
            c.direction,
            c.queue,
            c.audio_ref,
            now
        ],
        |r| r.get(0),
    )?;
    Ok(row)
}

/// The devices a new or corrected contact goes to: where the login was
/// live during the contact, and, for a correction, where the contact went
/// before: those PCs hold segments for it and must hear it changed.
/// Revoked devices get nothing.
fn devices_to_tell(
    conn: &Connection,
    login: &str,
    start: i64,
    end: i64,
    contact_row: i64,
) -> Result<Vec<String>> {
    let mut devices = conn.prepare_cached(
        "SELECT s.device_id FROM login_sessions s JOIN devices d ON d.id = s.device_id
         WHERE s.windows_login = ?1 AND d.revoked_at IS NULL
           AND s.started_at <= ?3 AND (s.ended_at IS NULL OR s.ended_at >= ?2)
         UNION
         SELECT x.device_id FROM deliveries x JOIN devices d ON d.id = x.device_id
         WHERE x.contact = ?4 AND d.revoked_at IS NULL",
    )?;
    let devices = devices
        .query_map(params![login, start, end, contact_row], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(devices)
}

/// Appends a contact to a device's queue with the device's next sequence
/// number.
fn queue_delivery(conn: &Connection, device: &str, contact_row: i64, now: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO deliveries (device_id, seq, contact, created_at)
         VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM deliveries WHERE device_id = ?1), ?2, ?3)",
        params![device, contact_row, now],
    )?;
    Ok(())
}

/// The watermark, µs, or `None` if the ACD never set one.
pub fn watermark(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row("SELECT watermark FROM relay_state WHERE id = 1", [], |r| {
        r.get(0)
    })
}

/// Notes that `login` is on `device` (from a Hello): the device's open
/// session ends, and one for `login` starts at `since`, from when the
/// device may have had it logged on unseen. For a connection's first Hello
/// that is where the server last heard from the device (its enrollment, if
/// never): the PC may have recorded, offline, since then. For a later
/// Hello on the same connection it is now: the device said until now who
/// was logged on. So a device claiming a login cannot collect contacts
/// from while it said someone else was.
///
/// The login's pending contacts during the new session are queued for
/// the device, and the first time a login is seen on a device the pair is
/// audited (`device.login_new`). Returns whether anything was queued.
pub fn login_seen(conn: &Connection, device: &str, login: &str, since: i64) -> Result<bool> {
    let now = now_micros();
    let open: Option<(i64, String)> = conn
        .query_row(
            "SELECT id, windows_login FROM login_sessions WHERE device_id = ?1 AND ended_at IS NULL",
            [device],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let same = |l: &str| !login.is_empty() && l.eq_ignore_ascii_case(login);
    match &open {
        Some((_, l)) if same(l) => {
            pair_seen(conn, device, login, now)?;
            return Ok(false);
        }
        Some((id, _)) => {
            conn.execute(
                "UPDATE login_sessions SET ended_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
        }
        None => {}
    }
    if login.is_empty() {
        return Ok(false);
    }
    let started: i64 = conn.query_row(
        "INSERT INTO login_sessions (device_id, windows_login, started_at)
         SELECT ?1, ?2, min(max(enrolled_at, ?3), ?4) FROM devices WHERE id = ?1
         RETURNING started_at",
        params![device, login, since, now],
        |r| r.get(0),
    )?;
    pair_seen(conn, device, login, now)?;
    let backlog: Vec<i64> = conn
        .prepare(
            "SELECT c.id FROM contacts c
             WHERE c.windows_login = ?2 AND c.status = 'pending' AND c.end_at >= ?3
               AND NOT EXISTS (SELECT 1 FROM deliveries x WHERE x.device_id = ?1 AND x.contact = c.id)
             ORDER BY c.start_at",
        )?
        .query_map(params![device, login, started], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for row in &backlog {
        queue_delivery(conn, device, *row, now)?;
    }
    Ok(!backlog.is_empty())
}

/// Notes the device-login pair at `now`; the first sighting is audited
/// (`device.login_new`).
fn pair_seen(conn: &Connection, device: &str, login: &str, now: i64) -> Result<()> {
    let new_pair = conn.execute(
        "INSERT INTO device_logins (device_id, windows_login, first_seen_at, last_seen_at)
         VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (device_id, windows_login) DO NOTHING",
        params![device, login, now],
    )? > 0;
    if new_pair {
        audit::record(
            conn,
            &Actor::Device(device.to_owned()),
            "device.login_new",
            login,
            serde_json::json!({ "device": device }),
        )?;
    } else {
        conn.execute(
            "UPDATE device_logins SET last_seen_at = ?3 WHERE device_id = ?1 AND windows_login = ?2",
            params![device, login, now],
        )?;
    }
    Ok(())
}

/// Deliveries of `device` after `after`, oldest first, at most `limit`.
pub fn pending_for(
    conn: &Connection,
    device: &str,
    after: u64,
    limit: usize,
) -> rusqlite::Result<Vec<deskrec_protocol::ContactRelay>> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.seq, c.contact_id, c.windows_login, c.start_at, c.end_at
         FROM deliveries d JOIN contacts c ON c.id = d.contact
         WHERE d.device_id = ?1 AND d.seq > ?2 ORDER BY d.seq LIMIT ?3",
    )?;
    stmt.query_map(params![device, after as i64, limit as i64], |r| {
        Ok(deskrec_protocol::ContactRelay {
            seq: r.get::<_, i64>(0)? as u64,
            contact_id: r.get(1)?,
            windows_login: r.get(2)?,
            start: r.get(3)?,
            end: r.get(4)?,
        })
    })?
    .collect()
}

/// Records that `device` has every delivery up to `seq`. The cursor never
/// moves back.
pub fn acknowledge(conn: &Connection, device: &str, seq: u64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE devices SET contact_cursor = max(coalesce(contact_cursor, 0), ?2) WHERE id = ?1",
        params![device, seq as i64],
    )?;
    Ok(())
}

/// Records a device's "no recording" answer. When every device the contact
/// went to has answered so and no recording is stored, the contact becomes
/// `unrecoverable` with the reasons. Returns false if the device never got
/// that delivery.
pub fn unrecoverable(
    conn: &Connection,
    device: &str,
    outcome: &deskrec_protocol::ContactOutcome,
) -> Result<bool> {
    let reason = match outcome.detail.trim() {
        "" => outcome.reason.as_str().to_owned(),
        d => format!("{}: {d}", outcome.reason.as_str()),
    };
    let contact: Option<i64> = conn
        .query_row(
            "SELECT d.contact FROM deliveries d JOIN contacts c ON c.id = d.contact
             WHERE d.device_id = ?1 AND d.seq = ?2 AND c.contact_id = ?3",
            params![device, outcome.seq as i64, outcome.contact_id],
            |r| r.get(0),
        )
        .optional()?;
    let Some(contact) = contact else {
        return Ok(false);
    };
    conn.execute(
        "UPDATE deliveries SET outcome = 'unrecoverable', outcome_reason = ?3
         WHERE device_id = ?1 AND seq = ?2 AND outcome IS NULL",
        params![device, outcome.seq as i64, reason],
    )?;
    // All of this contact's latest deliveries (one per device) answered
    // unrecoverable? A newer delivery (corrected times) supersedes older.
    let open: i64 = conn.query_row(
        "SELECT count(*) FROM deliveries d
         WHERE d.contact = ?1 AND coalesce(d.outcome, '') <> 'unrecoverable'
           AND d.seq = (SELECT max(seq) FROM deliveries x WHERE x.device_id = d.device_id AND x.contact = d.contact)",
        [contact],
        |r| r.get(0),
    )?;
    if open == 0 {
        let reasons: Vec<String> = conn
            .prepare(
                "SELECT device_id || ': ' || outcome_reason FROM deliveries
                 WHERE contact = ?1 AND outcome = 'unrecoverable' ORDER BY device_id, seq",
            )?
            .query_map([contact], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let changed = conn.execute(
            "UPDATE contacts SET status = 'unrecoverable', status_reason = ?2, updated_at = ?3
             WHERE id = ?1 AND status IN ('pending', 'failed')",
            params![contact, reasons.join("; "), now_micros()],
        )?;
        if changed > 0 {
            audit::record(
                conn,
                &Actor::Device(device.to_owned()),
                "contact.unrecoverable",
                &outcome.contact_id,
                serde_json::json!({ "reason": reasons }),
            )?;
        }
    }
    Ok(true)
}

/// Filters for [`list`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactQuery {
    /// Only this agent's contacts.
    pub login: Option<String>,
    /// Only contacts with this status.
    pub status: Option<ContactStatus>,
    /// Only contacts starting before this (µs), for paging back in time.
    pub before: Option<i64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

const CONTACT_COLUMNS: &str = "id, contact_id, windows_login, start_at, end_at, direction, queue,
     audio_ref, status, status_reason, disposal, disposal_at, disposal_by, disposal_reason";

/// Contacts newest first.
pub fn list(conn: &Connection, q: &ContactQuery) -> Result<Vec<Contact>> {
    let status = q.status.map(|s| status_name(s).to_owned());
    let sql = format!(
        "SELECT {CONTACT_COLUMNS} FROM contacts
         WHERE (?1 IS NULL OR windows_login = ?1) AND (?2 IS NULL OR status = ?2)
           AND (?3 IS NULL OR start_at < ?3)
         ORDER BY start_at DESC, id DESC LIMIT ?4"
    );
    let limit = q.limit.unwrap_or(LIST_DEFAULT).clamp(1, LIST_MAX);
    let rows: Vec<(i64, Contact)> = conn
        .prepare(&sql)?
        .query_map(params![q.login, status, q.before, limit], contact_row)?
        .collect::<rusqlite::Result<_>>()?;
    rows.into_iter()
        .map(|(row, c)| with_deliveries(conn, row, c))
        .collect()
}

/// One contact by the ACD's id.
pub fn get(conn: &Connection, contact_id: &str) -> Result<Contact> {
    let sql = format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE contact_id = ?1");
    let (row, c) = conn
        .query_row(&sql, [contact_id], contact_row)
        .optional()?
        .ok_or_else(|| ContactError::NotFound(contact_id.to_owned()))?;
    with_deliveries(conn, row, c)
}

fn contact_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Contact)> {
    let status: String = r.get(8)?;
    Ok((
        r.get(0)?,
        Contact {
            contact_id: r.get(1)?,
            windows_login: r.get(2)?,
            start: r.get(3)?,
            end: r.get(4)?,
            direction: r.get(5)?,
            queue: r.get(6)?,
            audio_ref: r.get(7)?,
            status: parse_status(&status),
            status_reason: r.get(9)?,
            deliveries: Vec::new(),
            disposal: crate::compliance::DisposalRecord::from_row(r, 10)?,
        },
    ))
}

fn with_deliveries(conn: &Connection, row: i64, mut c: Contact) -> Result<Contact> {
    c.deliveries = conn
        .prepare_cached(
            "SELECT d.device_id, d.seq, d.seq <= coalesce(v.contact_cursor, 0), d.outcome, d.outcome_reason
             FROM deliveries d JOIN devices v ON v.id = d.device_id
             WHERE d.contact = ?1 ORDER BY d.device_id, d.seq",
        )?
        .query_map([row], |r| {
            Ok(Delivery {
                device_id: r.get(0)?,
                seq: r.get::<_, i64>(1)? as u64,
                acknowledged: r.get(2)?,
                outcome: r.get(3)?,
                outcome_reason: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(c)
}

fn status_name(s: ContactStatus) -> &'static str {
    match s {
        ContactStatus::Pending => "pending",
        ContactStatus::Uploaded => "uploaded",
        ContactStatus::Failed => "failed",
        ContactStatus::Unrecoverable => "unrecoverable",
    }
}

fn parse_status(s: &str) -> ContactStatus {
    match s {
        "uploaded" => ContactStatus::Uploaded,
        "failed" => ContactStatus::Failed,
        "unrecoverable" => ContactStatus::Unrecoverable,
        // The schema's CHECK allows nothing else.
        _ => ContactStatus::Pending,
    }
}

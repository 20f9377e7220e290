//! Contacts in the local state: stored when relayed, then spliced,
//! uploaded and done, or unrecoverable with a reason for the server, or
//! disposed: the server erased the contact's content (or it expired)
//! before the recording arrived, and refuses it.

use deskrec_protocol::{ContactOutcome, ContactRelay, UnrecoverableReason};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::AgentError;
use crate::db::{audit, get_meta, keys, put_meta};
use crate::view::ContactEntry;

/// Where a contact is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactState {
    /// Stored, waiting for its time to pass and be spliced.
    Queued,
    /// Being spliced (a crash here splices again).
    Splicing,
    /// Spliced; the recording is being uploaded.
    Uploading,
    /// The server has the recording; the local copy is deleted.
    Done,
    /// No recording can be made; the reason goes to the server.
    Unrecoverable,
    /// The server erased the contact's recorded content, or its retention
    /// ended, before the recording arrived: it refuses the recording
    /// (410), for good. `reason` says which (`erased`, `expired`); the
    /// local copy is deleted, as after an upload, and nothing is retried.
    Disposed,
}

impl ContactState {
    /// The database's text.
    pub fn as_str(self) -> &'static str {
        match self {
            ContactState::Queued => "queued",
            ContactState::Splicing => "splicing",
            ContactState::Uploading => "uploading",
            ContactState::Done => "done",
            ContactState::Unrecoverable => "unrecoverable",
            ContactState::Disposed => "disposed",
        }
    }

    fn parse(s: &str) -> rusqlite::Result<Self> {
        Ok(match s {
            "queued" => ContactState::Queued,
            "splicing" => ContactState::Splicing,
            "uploading" => ContactState::Uploading,
            "done" => ContactState::Done,
            "unrecoverable" => ContactState::Unrecoverable,
            "disposed" => ContactState::Disposed,
            other => {
                return Err(rusqlite::Error::InvalidColumnType(
                    0,
                    format!("contact state {other:?}"),
                    rusqlite::types::Type::Text,
                ));
            }
        })
    }
}

/// A stored contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The ACD's id.
    pub contact_id: String,
    /// The relay's sequence number (the newest one for this id).
    pub seq: u64,
    /// The agent's login.
    pub windows_login: String,
    /// Start, server clock.
    pub start: i64,
    /// End, server clock.
    pub end: i64,
    /// State.
    pub state: ContactState,
    /// The upload's URL path, once created.
    pub upload_url: Option<String>,
    /// Bytes the server has confirmed.
    pub upload_offset: u64,
    /// Failed attempts so far (for the backoff).
    pub attempts: u32,
}

const COLUMNS: &str =
    "contact_id, seq, windows_login, start_at, end_at, state, upload_url, upload_offset, attempts";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Contact> {
    Ok(Contact {
        contact_id: r.get(0)?,
        seq: r.get(1)?,
        windows_login: r.get(2)?,
        start: r.get(3)?,
        end: r.get(4)?,
        state: ContactState::parse(&r.get::<_, String>(5)?)?,
        upload_url: r.get(6)?,
        upload_offset: r.get(7)?,
        attempts: r.get(8)?,
    })
}

/// Stores a relayed contact and moves the cursor, in one transaction. A
/// newer `seq` for a known contact replaces its times and starts it over
/// unless its recording is already on the server, or the server disposed
/// of it (it would refuse it again); an older or equal one (a replay)
/// changes nothing. Returns the cursor to acknowledge.
pub fn store_relay(conn: &mut Connection, c: &ContactRelay, now: i64) -> Result<u64, AgentError> {
    let tx = crate::db::write_tx(conn)?;
    let cursor: Option<u64> = get_meta(&tx, keys::CURSOR)?;
    let existing: Option<(u64, String)> = tx
        .query_row(
            "SELECT seq, state FROM contacts WHERE contact_id = ?1",
            [&c.contact_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match existing {
        Some((seq, _)) if seq >= c.seq => {}
        Some((_, state))
            if state == ContactState::Done.as_str() || state == ContactState::Disposed.as_str() =>
        {
            tx.execute(
                "UPDATE contacts SET seq = ?2, start_at = ?3, end_at = ?4, updated_at = ?5
                 WHERE contact_id = ?1",
                params![c.contact_id, c.seq, c.start, c.end, now],
            )?;
        }
        Some(_) => {
            tx.execute(
                "UPDATE contacts SET seq = ?2, windows_login = ?3, start_at = ?4, end_at = ?5,
                        state = 'queued', reason = NULL, detail = NULL, outcome_sent = 0,
                        upload_url = NULL, upload_offset = 0, attempts = 0,
                        next_attempt_at = 0, updated_at = ?6
                 WHERE contact_id = ?1",
                params![c.contact_id, c.seq, c.windows_login, c.start, c.end, now],
            )?;
            audit(
                &tx,
                now,
                "contact.corrected",
                &c.contact_id,
                serde_json::json!({"seq": c.seq, "start": c.start, "end": c.end}),
            )?;
        }
        None => {
            tx.execute(
                "INSERT INTO contacts (contact_id, seq, windows_login, start_at, end_at, state,
                                       received_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?6)",
                params![c.contact_id, c.seq, c.windows_login, c.start, c.end, now],
            )?;
            audit(
                &tx,
                now,
                "contact.received",
                &c.contact_id,
                serde_json::json!({"seq": c.seq, "start": c.start, "end": c.end}),
            )?;
        }
    }
    let cursor = cursor.unwrap_or(0).max(c.seq);
    put_meta(&tx, keys::CURSOR, &cursor)?;
    tx.commit()?;
    Ok(cursor)
}

/// One contact by id.
pub fn get(conn: &Connection, contact_id: &str) -> Result<Option<Contact>, AgentError> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM contacts WHERE contact_id = ?1"),
            [contact_id],
            row,
        )
        .optional()?)
}

/// Contacts with work left (queued, splicing, uploading) whose next
/// attempt is due at `now`, oldest relay first.
pub fn due(conn: &Connection, now: i64) -> Result<Vec<Contact>, AgentError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM contacts
         WHERE state IN ('queued', 'splicing', 'uploading') AND next_attempt_at <= ?1
         ORDER BY seq"
    ))?;
    let rows = stmt.query_map([now], row)?.collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The times (server clock) of contacts with work left: their segments
/// must stay.
pub fn active_ranges(conn: &Connection) -> Result<Vec<(i64, i64)>, AgentError> {
    let mut stmt = conn.prepare(
        "SELECT start_at, end_at FROM contacts WHERE state IN ('queued', 'splicing', 'uploading')",
    )?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// When the next contact with work left is due, if any.
pub fn next_attempt(conn: &Connection) -> Result<Option<i64>, AgentError> {
    Ok(conn.query_row(
        "SELECT MIN(next_attempt_at) FROM contacts
         WHERE state IN ('queued', 'splicing', 'uploading')",
        [],
        |r| r.get(0),
    )?)
}

/// Moves a contact to `state` (clearing its retry delay).
pub fn set_state(
    conn: &Connection,
    id: &str,
    state: ContactState,
    now: i64,
) -> Result<(), AgentError> {
    conn.execute(
        "UPDATE contacts SET state = ?2, next_attempt_at = 0, updated_at = ?3 WHERE contact_id = ?1",
        params![id, state.as_str(), now],
    )?;
    Ok(())
}

/// Puts off a contact's next attempt after a failure.
pub fn retry_later(
    conn: &Connection,
    id: &str,
    error: &str,
    at: i64,
    now: i64,
) -> Result<(), AgentError> {
    conn.execute(
        "UPDATE contacts SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3,
                updated_at = ?4 WHERE contact_id = ?1",
        params![id, at, error, now],
    )?;
    Ok(())
}

/// Records the upload's URL and confirmed offset.
pub fn set_upload(
    conn: &Connection,
    id: &str,
    url: Option<&str>,
    offset: u64,
    now: i64,
) -> Result<(), AgentError> {
    conn.execute(
        "UPDATE contacts SET upload_url = ?2, upload_offset = ?3, updated_at = ?4 WHERE contact_id = ?1",
        params![id, url, offset, now],
    )?;
    Ok(())
}

/// Marks a contact unrecoverable; unless `server_knows`, the reason is
/// queued for the server as a `contact_outcome`.
pub fn set_unrecoverable(
    conn: &mut Connection,
    id: &str,
    reason: UnrecoverableReason,
    detail: &str,
    server_knows: bool,
    now: i64,
) -> Result<(), AgentError> {
    let tx = crate::db::write_tx(conn)?;
    tx.execute(
        "UPDATE contacts SET state = 'unrecoverable', reason = ?2, detail = ?3, outcome_sent = ?4,
                next_attempt_at = 0, updated_at = ?5 WHERE contact_id = ?1",
        params![id, reason.as_str(), detail, server_knows, now],
    )?;
    audit(
        &tx,
        now,
        "contact.unrecoverable",
        id,
        serde_json::json!({"reason": reason.as_str(), "detail": detail}),
    )?;
    tx.commit()?;
    Ok(())
}

/// Outcomes not yet sent to the server.
pub fn unsent_outcomes(conn: &Connection) -> Result<Vec<ContactOutcome>, AgentError> {
    let mut stmt = conn.prepare(
        "SELECT seq, contact_id, reason, detail FROM contacts
         WHERE state = 'unrecoverable' AND outcome_sent = 0 ORDER BY seq",
    )?;
    let rows = stmt
        .query_map([], |r| {
            let reason: String = r.get(2)?;
            Ok(ContactOutcome {
                seq: r.get(0)?,
                contact_id: r.get(1)?,
                reason: match reason.as_str() {
                    "not_eligible" => UnrecoverableReason::NotEligible,
                    "segments_deleted" => UnrecoverableReason::SegmentsDeleted,
                    "damaged" => UnrecoverableReason::Damaged,
                    "too_large" => UnrecoverableReason::TooLarge,
                    _ => UnrecoverableReason::NotRecorded,
                },
                detail: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The outcome for this relay went out.
pub fn outcome_sent(conn: &Connection, id: &str, seq: u64) -> Result<(), AgentError> {
    conn.execute(
        "UPDATE contacts SET outcome_sent = 1 WHERE contact_id = ?1 AND seq = ?2",
        params![id, seq],
    )?;
    Ok(())
}

/// Contacts per state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Waiting to be spliced.
    pub queued: u64,
    /// Being spliced.
    pub splicing: u64,
    /// Being uploaded.
    pub uploading: u64,
    /// Uploaded.
    pub done: u64,
    /// Reported unrecoverable.
    pub unrecoverable: u64,
    /// Refused by the server: erased or expired there first.
    pub disposed: u64,
}

/// How many contacts are in each state.
pub fn counts(conn: &Connection) -> Result<Counts, AgentError> {
    let mut c = Counts::default();
    let mut stmt = conn.prepare("SELECT state, COUNT(*) FROM contacts GROUP BY state")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let n: u64 = r.get(1)?;
        match ContactState::parse(&r.get::<_, String>(0)?)? {
            ContactState::Queued => c.queued = n,
            ContactState::Splicing => c.splicing = n,
            ContactState::Uploading => c.uploading = n,
            ContactState::Done => c.done = n,
            ContactState::Unrecoverable => c.unrecoverable = n,
            ContactState::Disposed => c.disposed = n,
        }
    }
    Ok(c)
}

/// An upload in progress, for the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UploadProgress {
    /// The contact.
    pub contact_id: String,
    /// Bytes the server has.
    pub offset: u64,
    /// The recording's size.
    pub bytes: u64,
}

/// Uploads in progress.
pub fn uploads(conn: &Connection) -> Result<Vec<UploadProgress>, AgentError> {
    let mut stmt = conn.prepare(
        "SELECT c.contact_id, c.upload_offset, r.bytes FROM contacts c
         JOIN recordings r USING (contact_id) WHERE c.state = 'uploading' ORDER BY c.seq",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(UploadProgress {
                contact_id: r.get(0)?,
                offset: r.get(1)?,
                bytes: r.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Contacts with work left, and those finished since `since`, for the
/// queue view (the rate is the caller's to fill in).
pub fn listing(conn: &Connection, since: i64) -> Result<Vec<ContactEntry>, AgentError> {
    let mut stmt = conn.prepare(
        "SELECT c.contact_id, c.state, c.start_at, c.end_at, r.bytes, c.upload_offset,
                c.attempts, c.next_attempt_at, c.last_error, c.reason, c.detail, c.updated_at
         FROM contacts c LEFT JOIN recordings r USING (contact_id)
         WHERE c.state IN ('queued', 'splicing', 'uploading') OR c.updated_at >= ?1
         ORDER BY c.seq",
    )?;
    let rows = stmt
        .query_map([since], |r| {
            let state: String = r.get(1)?;
            let detail: Option<String> = r.get(10)?;
            let next: i64 = r.get(7)?;
            Ok(ContactEntry {
                contact_id: r.get(0)?,
                start: r.get(2)?,
                end: r.get(3)?,
                bytes: r.get(4)?,
                uploaded_bytes: r.get(5)?,
                rate_bytes_per_second: None,
                attempts: r.get(6)?,
                next_attempt_at: (next > 0).then_some(next),
                last_error: if state == "unrecoverable" || state == "disposed" {
                    detail
                } else {
                    r.get(8)?
                },
                reason: r.get(9)?,
                updated_at: r.get(11)?,
                state,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Makes the contacts waiting on a back-off due now; returns how many.
pub fn retry_now(conn: &Connection, now: i64) -> Result<u64, AgentError> {
    Ok(conn.execute(
        "UPDATE contacts SET next_attempt_at = ?1
         WHERE state IN ('queued', 'splicing', 'uploading') AND next_attempt_at > ?1",
        [now],
    )? as u64)
}

/// A recording spliced for a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// The file.
    pub path: std::path::PathBuf,
    /// Its size.
    pub bytes: u64,
}

/// Records a spliced recording and moves its contact to `uploading`.
pub fn store_recording(
    conn: &mut Connection,
    id: &str,
    rec: &Recording,
    manifest: &deskrec_vault::Manifest,
    now: i64,
) -> Result<(), AgentError> {
    let tx = crate::db::write_tx(conn)?;
    tx.execute(
        "INSERT INTO recordings (contact_id, path, bytes, requested_start, requested_end,
                                 trim_start, trim_end, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (contact_id) DO UPDATE SET path = excluded.path, bytes = excluded.bytes,
             requested_start = excluded.requested_start, requested_end = excluded.requested_end,
             trim_start = excluded.trim_start, trim_end = excluded.trim_end,
             created_at = excluded.created_at, deleted_at = NULL",
        params![
            id,
            rec.path.to_string_lossy(),
            rec.bytes,
            manifest.requested.start,
            manifest.requested.end,
            manifest.trim.start,
            manifest.trim.end,
            now
        ],
    )?;
    tx.execute(
        "UPDATE contacts SET state = 'uploading', upload_url = NULL, upload_offset = 0,
                next_attempt_at = 0, updated_at = ?2 WHERE contact_id = ?1",
        params![id, now],
    )?;
    audit(
        &tx,
        now,
        "recording.spliced",
        id,
        serde_json::json!({"bytes": rec.bytes, "trim": [manifest.trim.start, manifest.trim.end]}),
    )?;
    tx.commit()?;
    Ok(())
}

/// The contact's recording, if one is on disk.
pub fn recording(conn: &Connection, id: &str) -> Result<Option<Recording>, AgentError> {
    Ok(conn
        .query_row(
            "SELECT path, bytes FROM recordings WHERE contact_id = ?1 AND deleted_at IS NULL",
            [id],
            |r| {
                Ok(Recording {
                    path: r.get::<_, String>(0)?.into(),
                    bytes: r.get(1)?,
                })
            },
        )
        .optional()?)
}

/// The server has the contact's recording: the contact is done and its
/// local copy to be deleted (returned; the caller deletes it after this
/// commit). Unknown or already finished contacts return `None`.
pub fn stored_on_server(
    conn: &mut Connection,
    id: &str,
    now: i64,
) -> Result<Option<Recording>, AgentError> {
    release(conn, id, Release::Stored, now)
}

/// The server refused the contact's recording for good because it erased
/// the contact's content or let it expire (`disposal`: `erased` or
/// `expired`; `detail`: the server's words): the contact is disposed, and
/// its local copy to be deleted (returned; the caller deletes it after
/// this commit), its segments free for retention like an uploaded
/// contact's. Unknown or already finished contacts return `None`.
pub fn disposed_on_server(
    conn: &mut Connection,
    id: &str,
    disposal: &str,
    detail: &str,
    now: i64,
) -> Result<Option<Recording>, AgentError> {
    release(conn, id, Release::Disposed { disposal, detail }, now)
}

/// Why the agent no longer needs a contact's recording.
enum Release<'a> {
    /// The server stored it.
    Stored,
    /// The server disposed of the contact's content and refuses it.
    Disposed { disposal: &'a str, detail: &'a str },
}

/// Ends a contact whose recording the agent no longer needs, marks that
/// recording deleted and audits it, in one transaction; returns the file
/// to delete. A contact already done or disposed is left alone.
fn release(
    conn: &mut Connection,
    id: &str,
    why: Release<'_>,
    now: i64,
) -> Result<Option<Recording>, AgentError> {
    let tx = crate::db::write_tx(conn)?;
    let Some(contact) = get(&tx, id)? else {
        return Ok(None);
    };
    if matches!(contact.state, ContactState::Done | ContactState::Disposed) {
        return Ok(None);
    }
    let rec = recording(&tx, id)?;
    let bytes = rec.as_ref().map(|r| r.bytes);
    let (state, reason, detail, action, audited) = match why {
        Release::Stored => (
            ContactState::Done,
            None,
            None,
            "recording.uploaded",
            serde_json::json!({ "bytes": bytes }),
        ),
        Release::Disposed { disposal, detail } => (
            ContactState::Disposed,
            Some(disposal),
            Some(detail),
            "recording.disposed_on_server",
            serde_json::json!({ "disposal": disposal, "detail": detail, "bytes": bytes }),
        ),
    };
    // The server knows a disposed contact's fate: no outcome to send.
    tx.execute(
        "UPDATE contacts SET state = ?2, reason = ?3, detail = ?4, outcome_sent = 1,
                next_attempt_at = 0, last_error = NULL, updated_at = ?5
         WHERE contact_id = ?1",
        params![id, state.as_str(), reason, detail, now],
    )?;
    tx.execute(
        "UPDATE recordings SET deleted_at = ?2 WHERE contact_id = ?1 AND deleted_at IS NULL",
        params![id, now],
    )?;
    audit(&tx, now, action, id, audited)?;
    tx.commit()?;
    Ok(rec)
}

/// Recording files the database still needs (not deleted).
pub fn live_recording_paths(conn: &Connection) -> Result<Vec<std::path::PathBuf>, AgentError> {
    let mut stmt = conn.prepare("SELECT path FROM recordings WHERE deleted_at IS NULL")?;
    let rows = stmt
        .query_map([], |r| Ok(r.get::<_, String>(0)?.into()))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(seq: u64, id: &str, start: i64) -> ContactRelay {
        ContactRelay {
            seq,
            contact_id: id.into(),
            windows_login: "ann".into(),
            start,
            end: start + 10,
        }
    }

    #[test]
    fn relays_move_the_cursor_and_newer_ones_replace_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Db::open(&dir.path().join("a.db")).unwrap();
        db.call_blocking(|c| {
            assert_eq!(store_relay(c, &relay(1, "a", 100), 1).unwrap(), 1);
            assert_eq!(store_relay(c, &relay(2, "b", 200), 1).unwrap(), 2);
            // A replay changes nothing.
            assert_eq!(store_relay(c, &relay(1, "a", 999), 1).unwrap(), 2);
            assert_eq!(get(c, "a").unwrap().unwrap().start, 100);
            // A correction starts the contact over.
            set_state(c, "a", ContactState::Uploading, 2).unwrap();
            set_upload(c, "a", Some("/u/1"), 5, 2).unwrap();
            assert_eq!(store_relay(c, &relay(3, "a", 150), 3).unwrap(), 3);
            let a = get(c, "a").unwrap().unwrap();
            assert_eq!(
                (a.seq, a.start, a.state, a.upload_url),
                (3, 150, ContactState::Queued, None)
            );
            assert_eq!(due(c, 0).unwrap().len(), 2);
            set_unrecoverable(c, "b", UnrecoverableReason::NotRecorded, "none", false, 4).unwrap();
            let out = unsent_outcomes(c).unwrap();
            assert_eq!((out.len(), out[0].seq), (1, 2));
            outcome_sent(c, "b", 2).unwrap();
            assert!(unsent_outcomes(c).unwrap().is_empty());
            let n = counts(c).unwrap();
            assert_eq!((n.queued, n.unrecoverable), (1, 1));
        });
    }
}

//! Legal holds: a hold keeps the recordings and call audio it covers past
//! their retention, and refuses their erasure, until it is lifted.
//!
//! A hold names a contact, an agent (Windows login), a time range, or any
//! of them together; it covers the contacts that match **every** criterion
//! it names (a contact is in the range when it overlaps it: it ends after
//! `from` and starts before `to`). Lifting keeps the row, with who lifted
//! it, when and why, so the list is also the holds' history. Setting and
//! lifting are audited (`hold.set`, `hold.lift`) in the same transaction.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::ComplianceError;
use crate::audit::{self, Actor};
use crate::db::now_micros;

/// The condition on a hold `h` and a contact `c`: the hold is active and
/// every criterion it names matches the contact. Written once, used by
/// [`HELD`] and [`covering`].
macro_rules! covers {
    () => {
        "h.lifted_at IS NULL
         AND (h.contact_id IS NULL OR h.contact_id = c.contact_id)
         AND (h.windows_login IS NULL OR h.windows_login = c.windows_login)
         AND (h.from_at IS NULL OR c.end_at > h.from_at)
         AND (h.to_at IS NULL OR c.start_at < h.to_at)"
    };
}

/// An SQL condition on the contact aliased `c`: true while an active hold
/// covers it. Every disposal's intent takes it, so nothing held is
/// deleted, whatever started the deletion.
pub const HELD: &str = concat!("EXISTS (SELECT 1 FROM legal_holds h WHERE ", covers!(), ")");

/// Longest reason accepted, in bytes.
pub const MAX_REASON: usize = 2000;

/// Body of `POST /api/v1/admin/holds`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewHold {
    /// Why (the case, the request): required.
    pub reason: String,
    /// One contact, by the ACD's id.
    #[serde(default)]
    pub contact_id: Option<String>,
    /// An agent's contacts, by Windows login (case-insensitive).
    #[serde(default)]
    pub windows_login: Option<String>,
    /// Contacts ending after this (RFC 3339).
    #[serde(default)]
    pub from: Option<jiff::Timestamp>,
    /// Contacts starting before this (RFC 3339).
    #[serde(default)]
    pub to: Option<jiff::Timestamp>,
}

/// A legal hold, active or lifted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hold {
    /// Its id (`DELETE /api/v1/admin/holds/{id}` lifts it).
    pub id: i64,
    /// Why it was set.
    pub reason: String,
    /// The contact it holds, if it names one.
    pub contact_id: Option<String>,
    /// The agent whose contacts it holds, if it names one.
    pub windows_login: Option<String>,
    /// Range start, µs, if given.
    pub from: Option<i64>,
    /// Range end, µs, if given.
    pub to: Option<i64>,
    /// When it was set, µs.
    pub created_at: i64,
    /// Who set it.
    pub created_by: String,
    /// Whether it still holds.
    pub active: bool,
    /// When it was lifted, µs.
    pub lifted_at: Option<i64>,
    /// Who lifted it.
    pub lifted_by: Option<String>,
    /// Why it was lifted.
    pub lift_reason: Option<String>,
}

const COLUMNS: &str = "id, reason, contact_id, windows_login, from_at, to_at, created_at,
     created_by, lifted_at, lifted_by, lift_reason FROM legal_holds";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Hold> {
    let lifted_at: Option<i64> = r.get(8)?;
    Ok(Hold {
        id: r.get(0)?,
        reason: r.get(1)?,
        contact_id: r.get(2)?,
        windows_login: r.get(3)?,
        from: r.get(4)?,
        to: r.get(5)?,
        created_at: r.get(6)?,
        created_by: r.get(7)?,
        active: lifted_at.is_none(),
        lifted_at,
        lifted_by: r.get(9)?,
        lift_reason: r.get(10)?,
    })
}

/// A reason, trimmed: 1 to [`MAX_REASON`] bytes.
pub(super) fn reason(what: &str, reason: &str) -> Result<String, ComplianceError> {
    let r = reason.trim();
    if r.is_empty() || r.len() > MAX_REASON {
        return Err(ComplianceError::Invalid(format!(
            "{what} needs a reason of 1 to {MAX_REASON} bytes"
        )));
    }
    Ok(r.to_owned())
}

/// Sets a hold (`actor` setting it), audited as `hold.set`.
pub fn set(conn: &Connection, actor: &Actor, new: &NewHold) -> Result<Hold, ComplianceError> {
    let reason = reason("a hold", &new.reason)?;
    fn text(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
    let (contact, login) = (text(&new.contact_id), text(&new.windows_login));
    let (from, to) = (
        new.from.map(|t| t.as_microsecond()),
        new.to.map(|t| t.as_microsecond()),
    );
    if contact.is_none() && login.is_none() && from.is_none() && to.is_none() {
        return Err(ComplianceError::Invalid(
            "a hold names a contact_id, a windows_login, a from/to range, or several".into(),
        ));
    }
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Err(ComplianceError::Invalid(
            "a hold's from must be before its to".into(),
        ));
    }
    let id: i64 = conn.query_row(
        "INSERT INTO legal_holds (reason, contact_id, windows_login, from_at, to_at, created_at,
                                  created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        params![
            reason,
            contact,
            login,
            from,
            to,
            now_micros(),
            actor.to_string()
        ],
        |r| r.get(0),
    )?;
    let hold = get(conn, id)?;
    audit::record(
        conn,
        actor,
        "hold.set",
        &format!("hold:{id}"),
        serde_json::json!({
            "reason": hold.reason, "contact_id": hold.contact_id,
            "windows_login": hold.windows_login, "from": hold.from, "to": hold.to,
        }),
    )?;
    tracing::info!(hold = id, by = %actor, "legal hold set");
    Ok(hold)
}

/// Lifts hold `id` (`actor`, for `why`), audited as `hold.lift`. A hold
/// lifted before stays as it was (nothing audited).
pub fn lift(conn: &Connection, actor: &Actor, id: i64, why: &str) -> Result<Hold, ComplianceError> {
    let why = reason("lifting a hold", why)?;
    let lifted = conn.execute(
        "UPDATE legal_holds SET lifted_at = ?2, lifted_by = ?3, lift_reason = ?4
         WHERE id = ?1 AND lifted_at IS NULL",
        params![id, now_micros(), actor.to_string(), why],
    )? == 1;
    let hold = get(conn, id)?;
    if lifted {
        audit::record(
            conn,
            actor,
            "hold.lift",
            &format!("hold:{id}"),
            serde_json::json!({ "reason": why, "hold_reason": hold.reason }),
        )?;
        tracing::info!(hold = id, by = %actor, "legal hold lifted");
    }
    Ok(hold)
}

/// Hold `id`.
pub fn get(conn: &Connection, id: i64) -> Result<Hold, ComplianceError> {
    conn.query_row(&format!("SELECT {COLUMNS} WHERE id = ?1"), [id], from_row)
        .optional()?
        .ok_or(ComplianceError::NoHold(id))
}

/// Every hold, active first, newest first.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<Hold>> {
    conn.prepare(&format!(
        "SELECT {COLUMNS} ORDER BY lifted_at IS NOT NULL, id DESC"
    ))?
    .query_map([], from_row)?
    .collect()
}

/// The first active hold covering `contact`: its id and reason.
pub fn covering(conn: &Connection, contact: &str) -> rusqlite::Result<Option<(i64, String)>> {
    conn.query_row(
        concat!(
            "SELECT h.id, h.reason FROM contacts c JOIN legal_holds h
             WHERE c.contact_id = ?1 AND ",
            covers!(),
            " ORDER BY h.id LIMIT 1"
        ),
        [contact],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

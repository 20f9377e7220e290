//! The audit log: one row per change to the directory, settings or devices,
//! and one per supervisor's playback or download of a recording.
//!
//! Written in the same transaction as the change it describes, so the log
//! and the data cannot disagree. Details never hold secrets (tokens and
//! credentials appear only as ids).

use rusqlite::{Connection, params};
use serde::Serialize;

use crate::db::{Filter, now_micros};

/// Who made a change, as written in the `actor` column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// The holder of the admin bearer token.
    Admin,
    /// The server itself, on behalf of a device (e.g. automatic user
    /// creation from a Hello).
    Device(String),
    /// A signed-in user (a supervisor), by Windows login.
    User(String),
    /// The server itself.
    System,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Admin => f.write_str("admin-token"),
            Actor::Device(id) => write!(f, "device:{id}"),
            Actor::User(login) => write!(f, "user:{login}"),
            Actor::System => f.write_str("system"),
        }
    }
}

impl std::str::FromStr for Actor {
    type Err = String;

    /// The text form back: `admin-token`, `system`, `device:<id>`,
    /// `user:<login>`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "admin-token" => Ok(Actor::Admin),
            "system" => Ok(Actor::System),
            _ => {
                if let Some(id) = s.strip_prefix("device:") {
                    Ok(Actor::Device(id.to_owned()))
                } else if let Some(login) = s.strip_prefix("user:") {
                    Ok(Actor::User(login.to_owned()))
                } else {
                    Err(format!("{s:?} is not an actor"))
                }
            }
        }
    }
}

/// One audit row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Row id, increasing.
    pub id: i64,
    /// When, µs since the Unix epoch.
    pub at: i64,
    /// Who ([`Actor`]'s text form).
    pub actor: String,
    /// What, e.g. `user.create`, `role.update`, `settings.update`.
    pub action: String,
    /// On what, e.g. a Windows login, a role name, a device id.
    pub target: String,
    /// Before/after values as JSON.
    pub detail: serde_json::Value,
}

/// Appends a row.
pub fn record(
    conn: &Connection,
    actor: &Actor,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO audit (at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            now_micros(),
            actor.to_string(),
            action,
            target,
            detail.to_string()
        ],
    )?;
    Ok(())
}

/// Whether a segment report is audited already (by its target); an index
/// lookup (`audit_by_action_target`), so a device's reports cost the same
/// however long the log is.
const REPORTED: &str =
    "SELECT EXISTS (SELECT 1 FROM audit WHERE action = 'segment.discrepancy' AND target = ?1)";

/// Audits a device's report of a segment it deleted with discrepancies
/// (`segment.discrepancy`, target `<device>/<segment start>`), once: the
/// agent sends at least once.
pub fn segment_report(
    conn: &Connection,
    device_id: &str,
    report: &deskrec_protocol::SegmentReport,
) -> rusqlite::Result<()> {
    let target = format!("{device_id}/{}", report.started_at);
    let seen: bool = conn.query_row(REPORTED, [&target], |r| r.get(0))?;
    if seen {
        return Ok(());
    }
    let detail = serde_json::json!({
        "deleted": report.deleted,
        "findings": report.findings,
    });
    record(
        conn,
        &Actor::Device(device_id.to_owned()),
        "segment.discrepancy",
        &target,
        detail,
    )
}

/// What a supervisor did with a contact's recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Played it in the browser (`recording.play`).
    Play,
    /// Downloaded it (`recording.download`).
    Download,
    /// Played the contact's call audio (`audio.play`).
    Audio,
}

impl Access {
    /// The audit action.
    pub fn action(self) -> &'static str {
        match self {
            Access::Play => "recording.play",
            Access::Download => "recording.download",
            Access::Audio => "audio.play",
        }
    }
}

/// How long one playback lasts for the audit: a player asks for the file
/// many times (a Range request per seek), so a request within this long
/// of the same user's last audited request of the same recording, for the
/// same use, is part of that playback and not audited again.
pub const ACCESS_WINDOW_MICROS: i64 = 10 * 60 * 1_000_000;

/// Audits `user`'s access to `contact`'s recording, unless the same access
/// was audited within [`ACCESS_WINDOW_MICROS`]. Returns whether it wrote a
/// row. `detail` says what was served (e.g. the byte range).
pub fn access(
    conn: &Connection,
    user: &str,
    what: Access,
    contact: &str,
    detail: serde_json::Value,
) -> rusqlite::Result<bool> {
    let actor = Actor::User(user.to_owned());
    let recent: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM audit
         WHERE action = ?1 AND target = ?2 AND actor = ?3 AND at > ?4)",
        params![
            what.action(),
            contact,
            actor.to_string(),
            now_micros() - ACCESS_WINDOW_MICROS
        ],
        |r| r.get(0),
    )?;
    if recent {
        return Ok(false);
    }
    record(conn, &actor, what.action(), contact, detail)?;
    Ok(true)
}

/// Which audit rows to read: empty fields filter nothing.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Exact action, e.g. `recording.play`.
    pub action: String,
    /// Exact actor, e.g. `user:CORP\vic`.
    pub actor: String,
    /// Exact target, e.g. a contact id.
    pub target: String,
    /// Rows at or after this, µs.
    pub from: Option<i64>,
    /// Rows before this, µs.
    pub to: Option<i64>,
    /// Rows with a smaller id (paging back).
    pub before_id: Option<i64>,
}

/// The newest `limit` rows `f` matches, newest first.
pub fn list(conn: &Connection, f: &AuditFilter, limit: u32) -> rusqlite::Result<Vec<AuditEntry>> {
    let mut filter = Filter::default();
    filter.equal("action", ":action", &f.action);
    filter.equal("actor", ":actor", &f.actor);
    filter.equal("target", ":target", &f.target);
    if let Some(from) = f.from {
        filter.push("at >= :from", ":from", from);
    }
    if let Some(to) = f.to {
        filter.push("at < :to", ":to", to);
    }
    if let Some(id) = f.before_id {
        filter.push("id < :before_id", ":before_id", id);
    }
    filter.bind(":limit", limit);
    let sql = format!(
        "SELECT id, at, actor, action, target, detail FROM audit WHERE {}
         ORDER BY id DESC LIMIT :limit",
        filter.sql()
    );
    let mut st = conn.prepare_cached(&sql)?;
    st.query_map(filter.params().as_slice(), |r| {
        let detail: String = r.get(5)?;
        Ok(AuditEntry {
            id: r.get(0)?,
            at: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            target: r.get(4)?,
            detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
        })
    })?
    .collect()
}

/// `rows` as CSV with a header: `id,at,actor,action,target,detail`, `at` in
/// RFC 3339 (UTC), `detail` as JSON.
pub fn to_csv(rows: &[AuditEntry]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["id", "at", "actor", "action", "target", "detail"])?;
    for r in rows {
        let at = deskrec_vault::utc::rfc3339(r.at);
        w.write_record([
            r.id.to_string(),
            at,
            r.actor.clone(),
            r.action.clone(),
            r.target.clone(),
            r.detail.to_string(),
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

#[cfg(test)]
mod tests {
    use crate::db;

    #[test]
    fn the_segment_report_check_is_an_index_lookup_not_a_scan() {
        let db = db::open_in_memory().unwrap();
        let plan: Vec<String> = db.call_blocking(|c| {
            c.prepare(&format!("EXPLAIN QUERY PLAN {}", super::REPORTED))
                .unwrap()
                .query_map(["d/1"], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        });
        assert!(
            plan.iter()
                .any(|p| p.contains("USING") && p.contains("INDEX audit_by_action_target")),
            "{plan:?}"
        );
    }
}

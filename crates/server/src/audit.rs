//! The audit log: one row per change to the directory, settings or devices.
//!
//! Written in the same transaction as the change it describes, so the log
//! and the data cannot disagree. Details never hold secrets (tokens and
//! credentials appear only as ids).

use rusqlite::{Connection, params};
use serde::Serialize;

use crate::db::now_micros;

/// Who made a change, as written in the `actor` column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// The holder of the admin bearer token.
    Admin,
    /// The server itself, on behalf of a device (e.g. automatic user
    /// creation from a Hello).
    Device(String),
    /// The server itself.
    System,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Admin => f.write_str("admin-token"),
            Actor::Device(id) => write!(f, "device:{id}"),
            Actor::System => f.write_str("system"),
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

/// The newest `limit` rows, newest first.
pub fn list(conn: &Connection, limit: u32) -> rusqlite::Result<Vec<AuditEntry>> {
    let mut st = conn.prepare_cached(
        "SELECT id, at, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT ?1",
    )?;
    st.query_map([limit], |r| {
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

#[cfg(test)]
mod tests {
    use crate::db::Db;

    #[test]
    fn the_segment_report_check_is_an_index_lookup_not_a_scan() {
        let db = Db::open_in_memory().unwrap();
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

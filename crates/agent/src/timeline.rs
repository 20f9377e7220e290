//! The recording state over time: one row each time the state, its reason
//! or the session user changes, kept for as long as segments may be.
//!
//! It answers the question a contact with no segment raises: was the user
//! not eligible, logged off, or was the agent (the PC) not running? The
//! answer goes to the server as the contact's outcome.

use deskrec_protocol::{RecordingState, UnrecoverableReason};
use deskrec_vault::TimeRange;
use rusqlite::{Connection, params};

use crate::AgentError;

/// How long rows are kept (agent clock, µs): longer than segments can be.
const KEEP_US: i64 = 400 * 86_400_000_000;

/// One change of the recording state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When (agent clock, µs).
    pub at: i64,
    /// The state from then on.
    pub state: RecordingState,
    /// Why (the status reason).
    pub reason: String,
    /// The session user.
    pub login: String,
}

fn state_name(state: RecordingState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Appends a change, and drops rows older than [`KEEP_US`].
pub fn append(conn: &Connection, e: &Entry) -> Result<(), AgentError> {
    conn.execute(
        "INSERT INTO timeline (at, state, reason, login) VALUES (?1, ?2, ?3, ?4)",
        params![e.at, state_name(e.state), e.reason, e.login],
    )?;
    conn.execute(
        "DELETE FROM timeline WHERE at < ?1 AND id < (SELECT MAX(id) FROM timeline)",
        [e.at - KEEP_US],
    )?;
    Ok(())
}

/// The state in effect at `range.start` and every change until
/// `range.end`, in order.
pub fn during(conn: &Connection, range: TimeRange) -> Result<Vec<Entry>, AgentError> {
    let mut stmt = conn.prepare(
        "SELECT at, state, reason, login FROM (
             SELECT * FROM (SELECT * FROM timeline WHERE at <= ?1 ORDER BY at DESC, id DESC LIMIT 1)
             UNION ALL
             SELECT * FROM timeline WHERE at > ?1 AND at < ?2
         ) ORDER BY at, id",
    )?;
    let rows = stmt
        .query_map(params![range.start, range.end], |r| {
            let state: String = r.get(1)?;
            Ok(Entry {
                at: r.get(0)?,
                state: serde_json::from_value(serde_json::Value::String(state))
                    .unwrap_or(RecordingState::Error),
                reason: r.get(2)?,
                login: r.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Why nothing was recorded over the entries of [`during`]: not eligible
/// when the policy said so at any time of the contact, else not recorded,
/// with the states in the detail (`no_session_user` is a logoff,
/// `agent_stopped` or a gap before `starting` a PC or agent that was off).
pub fn explain(entries: &[Entry]) -> (UnrecoverableReason, String) {
    if entries.is_empty() {
        return (
            UnrecoverableReason::NotRecorded,
            "the agent was not running (it has no record of that time)".into(),
        );
    }
    let reason = if entries
        .iter()
        .any(|e| e.state == RecordingState::NotEligible)
    {
        UnrecoverableReason::NotEligible
    } else {
        UnrecoverableReason::NotRecorded
    };
    let states: Vec<String> = entries
        .iter()
        .map(|e| {
            let who = if e.login.is_empty() {
                "nobody logged on".to_owned()
            } else {
                e.login.clone()
            };
            format!(
                "{} ({}, {who}) from {}",
                state_name(e.state),
                e.reason,
                deskrec_vault::utc::rfc3339(e.at)
            )
        })
        .collect();
    (reason, format!("recording state: {}", states.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: i64, state: RecordingState, reason: &str) -> Entry {
        Entry {
            at,
            state,
            reason: reason.into(),
            login: "ann".into(),
        }
    }

    #[test]
    fn the_state_at_the_start_and_the_changes_within_explain_a_contact() {
        let tmp = tempfile::tempdir().unwrap();
        let db = crate::db::Db::open(&tmp.path().join("agent.db")).unwrap();
        db.call_blocking(|c| {
            for e in [
                entry(10, RecordingState::Recording, "eligible"),
                entry(20, RecordingState::NotEligible, "user_inactive"),
                entry(30, RecordingState::Paused, "agent_stopped"),
                entry(50, RecordingState::Paused, "starting"),
            ] {
                append(c, &e).unwrap();
            }
            let got = during(c, TimeRange::new(25, 40)).unwrap();
            assert_eq!(got.iter().map(|e| e.at).collect::<Vec<_>>(), [20, 30]);
            let (reason, detail) = explain(&got);
            assert_eq!(reason, UnrecoverableReason::NotEligible);
            assert!(detail.contains("user_inactive") && detail.contains("agent_stopped"));

            let got = during(c, TimeRange::new(35, 45)).unwrap();
            let (reason, detail) = explain(&got);
            assert_eq!(reason, UnrecoverableReason::NotRecorded);
            assert!(detail.contains("paused (agent_stopped, ann)"), "{detail}");

            assert!(during(c, TimeRange::new(1, 5)).unwrap().is_empty());
            assert_eq!(
                explain(&[]).0,
                UnrecoverableReason::NotRecorded,
                "no history: not running"
            );
        });
    }
}

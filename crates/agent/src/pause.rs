//! Pauses: recording stops showing the screen (the recorder records a
//! blank "paused" picture with the reason instead) while the agent, the
//! contact centre's systems or a policy rule say so, and resumes by itself.
//!
//! - **Agent** and **API** pauses are rows in `pauses`, committed (with an
//!   audit row) *before* the recorder's [`PauseSwitch`] is set, so a pause
//!   survives a restart of the agent: one still running when the agent
//!   starts again applies again until its `until`, one that ran out is
//!   ended as `expired`. Each has a maximum duration (the policy's
//!   `max_seconds`); the recording controller ends it then.
//! - **Rule** pauses act in the recorder's capture thread on every tick
//!   (`rules.rs`); the controller sees them in the recorder's status and
//!   writes their row and audit after the fact.
//!
//! Every start and end is reported to the server (`reported` in the row,
//! sent at least once by the RTE client).

mod rules;

use std::sync::Mutex;

use deskrec_protocol::{PausePolicy, PauseReport, PauseSource};
use deskrec_recorder::PauseSwitch;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

pub(crate) use rules::WindowRules;

use crate::AgentError;
use crate::db::{audit, write_tx};
use crate::engine::Shared;
use crate::view::NoticeKind;

/// A pause in effect, as the status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseView {
    /// Its id.
    pub id: String,
    /// Who or what paused.
    pub source: PauseSource,
    /// Why.
    pub reason: String,
    /// When it started (agent clock, µs).
    pub started_at: i64,
    /// When recording resumes by itself (µs); `None` for a rule's, which
    /// lasts while its window is in front.
    pub until: Option<i64>,
    /// Since when the recorder records the paused picture instead of the
    /// screen (agent clock, µs): a moment after `started_at`, at its next
    /// picture; `None` until then, and while nothing records.
    #[serde(default)]
    pub in_effect_at: Option<i64>,
}

/// A pause reason as people read it: `card_payment` is "Card payment".
/// Reasons are ids (the policy, the API and the recording carry them
/// as they are); the tray's menu and the status's headline show this.
///
/// ```
/// assert_eq!(deskrec_agent::pause_label("card_payment"), "Card payment");
/// assert_eq!(deskrec_agent::pause_label("private-call"), "Private call");
/// ```
pub fn pause_label(reason: &str) -> String {
    let words = reason.replace(['_', '-'], " ");
    let mut chars = words.trim().chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => reason.to_owned(),
    }
}

/// The pauses of a running agent.
#[derive(Debug, Default)]
pub(crate) struct Pauses {
    /// What the recorder follows; it outlives recorder restarts.
    pub switch: PauseSwitch,
    /// Agent and API pauses not ended, oldest first.
    open: Mutex<Vec<PauseView>>,
    /// The rule pause being recorded, if any.
    rule: Mutex<Option<PauseView>>,
}

impl Pauses {
    /// The pause shown: the oldest agent or API pause, else a rule's.
    pub fn current(&self) -> Option<PauseView> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.first()
            .cloned()
            .or_else(|| self.rule.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// [`current`](Self::current), with when it took effect in the
    /// recorder (`now` is the agent clock's µs). A rule's pause is seen in
    /// the recorder's status, so it was in effect when it started.
    pub fn current_at(&self, now: i64) -> Option<PauseView> {
        let mut view = self.current()?;
        view.in_effect_at = match view.source {
            PauseSource::Rule => Some(view.started_at),
            PauseSource::Agent | PauseSource::Api => self
                .switch
                .in_effect_since()
                .map(|since| now - i64::try_from(since.elapsed().as_micros()).unwrap_or(i64::MAX)),
        };
        Some(view)
    }

    /// Points the recorder's switch at the oldest open pause.
    fn apply(&self) {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        self.switch.set(open.first().map(|p| p.reason.as_str()));
    }
}

/// Why a pause asked for was refused.
fn refused(why: String) -> AgentError {
    AgentError::Refused(why)
}

/// Starts a pause by `source`. An agent's pause must give one of the
/// policy's reasons; every pause lasts at most the policy's `max_seconds`
/// (`max_seconds` can only shorten it). Committed before the recorder is
/// told.
pub(crate) async fn start(
    shared: &Shared,
    source: PauseSource,
    id: Option<String>,
    reason: &str,
    requested_by: &str,
    max_seconds: Option<u32>,
) -> Result<PauseView, AgentError> {
    let policy = pause_policy(shared);
    if source == PauseSource::Agent && !policy.agent_reasons.iter().any(|r| r == reason) {
        return Err(refused(if policy.agent_reasons.is_empty() {
            "the policy does not let agents pause recording".into()
        } else {
            format!(
                "{reason:?} is not a pause reason the policy allows ({})",
                policy.agent_reasons.join(", ")
            )
        }));
    }
    if !deskrec_vault::valid_pause_reason(reason) {
        return Err(AgentError::PauseReasonLength {
            max: deskrec_vault::MAX_PAUSE_REASON,
        });
    }
    let seconds = max_seconds.map_or(policy.max_seconds, |s| s.min(policy.max_seconds));
    let now = shared.now();
    let view = PauseView {
        id: id.unwrap_or_else(|| new_id(source)),
        source,
        reason: reason.to_owned(),
        started_at: now,
        until: Some(now + i64::from(seconds) * 1_000_000),
        in_effect_at: None,
    };
    let (row, by, login) = (
        view.clone(),
        requested_by.to_owned(),
        shared.login.borrow().clone(),
    );
    let inserted = shared
        .db
        .call(move |c| insert(c, &row, &by, &login))
        .await?;
    if !inserted {
        // The same API pause again (a retried request): already in effect.
        return Ok(shared.pauses.current().unwrap_or(view));
    }
    shared
        .pauses
        .open
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(view.clone());
    shared.pauses.apply();
    tracing::info!(
        source = source.as_str(),
        reason,
        seconds,
        "recording paused"
    );
    changed(shared);
    shared.notice(
        NoticeKind::Paused,
        "Recording paused",
        format!("{reason}: recording resumes by itself within {seconds} s"),
    );
    Ok(view)
}

/// Ends the open agent or API pauses that `which` picks, as `end_reason`.
/// False when there was none.
pub(crate) async fn end(
    shared: &Shared,
    which: impl Fn(&PauseView) -> bool,
    end_reason: &'static str,
) -> Result<bool, AgentError> {
    let ended: Vec<PauseView> = {
        let mut open = shared.pauses.open.lock().unwrap_or_else(|e| e.into_inner());
        let (gone, kept) = open.drain(..).partition(|p| which(p));
        *open = kept;
        gone
    };
    if ended.is_empty() {
        return Ok(false);
    }
    let now = shared.now();
    let ids: Vec<String> = ended.iter().map(|p| p.id.clone()).collect();
    shared
        .db
        .call(move |c| close(c, &ids, now, end_reason))
        .await?;
    shared.pauses.apply();
    tracing::info!(end_reason, "pause ended");
    changed(shared);
    if shared.pauses.current().is_none() {
        shared.notice(
            NoticeKind::Resumed,
            "Recording resumed",
            format!("the pause ended ({end_reason})"),
        );
    }
    Ok(true)
}

/// Ends the pauses whose time is up. Called by the recording controller
/// every tick.
pub(crate) async fn expire(shared: &Shared) -> Result<(), AgentError> {
    let now = shared.now();
    let due: Vec<String> = shared
        .pauses
        .open
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|p| p.until.is_some_and(|u| u <= now))
        .map(|p| p.id.clone())
        .collect();
    for id in due {
        end(shared, |p| p.id == id, "expired").await?;
    }
    Ok(())
}

/// Follows the recorder's rule pause: `by_rule` is the reason the rules
/// pause recording for, if they do (the recorder's status says).
pub(crate) async fn observe_rule(shared: &Shared, by_rule: Option<&str>) -> Result<(), AgentError> {
    let open = shared
        .pauses
        .rule
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let now = shared.now();
    match (open, by_rule) {
        (Some(open), Some(reason)) if open.reason == reason => return Ok(()),
        (None, None) => return Ok(()),
        (Some(open), _) => {
            let ids = vec![open.id];
            shared
                .db
                .call(move |c| close(c, &ids, now, "window_left"))
                .await?;
            *shared.pauses.rule.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        (None, Some(_)) => {}
    }
    if let Some(reason) = by_rule {
        let view = PauseView {
            id: new_id(PauseSource::Rule),
            source: PauseSource::Rule,
            reason: reason.to_owned(),
            started_at: now,
            until: None,
            in_effect_at: None,
        };
        let (row, login) = (view.clone(), shared.login.borrow().clone());
        shared
            .db
            .call(move |c| insert(c, &row, "rule", &login).map(|_| ()))
            .await?;
        *shared.pauses.rule.lock().unwrap_or_else(|e| e.into_inner()) = Some(view);
    }
    changed(shared);
    Ok(())
}

/// At start: pauses still running apply again, those whose time ran out
/// while the agent was down end as `expired`, a rule's ends (its window is
/// checked afresh).
pub(crate) async fn restore(shared: &Shared) -> Result<(), AgentError> {
    let now = shared.now();
    let open = shared
        .db
        .call(move |c| {
            let open = open_pauses(c)?;
            let (gone, kept): (Vec<_>, Vec<_>) = open
                .into_iter()
                .partition(|p| p.source == PauseSource::Rule || p.until.is_some_and(|u| u <= now));
            let ids: Vec<String> = gone.iter().map(|p| p.id.clone()).collect();
            if !ids.is_empty() {
                close(c, &ids, now, "expired")?;
            }
            Ok(kept)
        })
        .await?;
    *shared.pauses.open.lock().unwrap_or_else(|e| e.into_inner()) = open;
    shared.pauses.apply();
    Ok(())
}

/// The policy's pause settings (the defaults before any policy came).
pub(crate) fn pause_policy(shared: &Shared) -> PausePolicy {
    shared
        .policy
        .borrow()
        .as_ref()
        .map(|p| p.policy.pause.clone())
        .unwrap_or_default()
}

fn changed(shared: &Shared) {
    shared.outbox.notify_one();
    shared.status_changed();
}

/// A new pause id: the source and 16 random hex digits.
fn new_id(source: PauseSource) -> String {
    format!(
        "{}-{:016x}",
        source.as_str(),
        getrandom::u64().unwrap_or_default()
    )
}

/// Stores a new pause and its audit row; false when the id is known.
fn insert(
    c: &mut Connection,
    p: &PauseView,
    requested_by: &str,
    login: &str,
) -> Result<bool, AgentError> {
    let tx = write_tx(c)?;
    let n = tx.execute(
        "INSERT OR IGNORE INTO pauses (id, source, reason, requested_by, login, started_at, until)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            p.id,
            p.source.as_str(),
            p.reason,
            requested_by,
            login,
            p.started_at,
            p.until
        ],
    )?;
    if n == 1 {
        let detail = serde_json::json!({
            "source": p.source, "reason": p.reason, "requested_by": requested_by,
            "login": login, "until": p.until,
        });
        audit(&tx, p.started_at, "pause.start", &p.id, detail)?;
    }
    tx.commit()?;
    Ok(n == 1)
}

/// Ends pauses `ids` at `now` with their audit rows.
fn close(c: &mut Connection, ids: &[String], now: i64, end_reason: &str) -> Result<(), AgentError> {
    let tx = write_tx(c)?;
    for id in ids {
        let started: Option<(i64, String)> = tx
            .query_row(
                "UPDATE pauses SET ended_at = ?2, end_reason = ?3
                 WHERE id = ?1 AND ended_at IS NULL RETURNING started_at, reason",
                params![id, now, end_reason],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((started_at, reason)) = started {
            let detail = serde_json::json!({
                "end": end_reason, "reason": reason, "seconds": (now - started_at) / 1_000_000,
            });
            audit(&tx, now, "pause.end", id, detail)?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn open_pauses(c: &Connection) -> Result<Vec<PauseView>, AgentError> {
    let mut stmt = c.prepare(
        "SELECT id, source, reason, started_at, until FROM pauses
         WHERE ended_at IS NULL ORDER BY started_at",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(PauseView {
                id: r.get(0)?,
                source: parse_source(&r.get::<_, String>(1)?),
                reason: r.get(2)?,
                started_at: r.get(3)?,
                until: r.get(4)?,
                in_effect_at: None,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

fn parse_source(s: &str) -> PauseSource {
    match s {
        "agent" => PauseSource::Agent,
        "api" => PauseSource::Api,
        _ => PauseSource::Rule,
    }
}

/// Pauses whose start or end the server has not heard yet.
pub(crate) fn unreported(c: &Connection) -> Result<Vec<PauseReport>, AgentError> {
    let mut stmt = c.prepare(
        "SELECT id, source, reason, requested_by, login, started_at, until, ended_at, end_reason
         FROM pauses
         WHERE reported < CASE WHEN ended_at IS NULL THEN 1 ELSE 2 END
         ORDER BY started_at",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(PauseReport {
                pause_id: r.get(0)?,
                source: parse_source(&r.get::<_, String>(1)?),
                reason: r.get(2)?,
                requested_by: r.get(3)?,
                windows_login: r.get(4)?,
                started_at: r.get(5)?,
                until: r.get(6)?,
                ended_at: r.get(7)?,
                end: r.get(8)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The server has heard `report` (its start, and its end if it has one).
pub(crate) fn reported(c: &Connection, report: &PauseReport) -> Result<(), AgentError> {
    let level = if report.ended_at.is_some() { 2 } else { 1 };
    c.execute(
        "UPDATE pauses SET reported = MAX(reported, ?2) WHERE id = ?1",
        params![report.pause_id, level],
    )?;
    Ok(())
}

//! Retention: how long stored recordings and call audio are kept, and the
//! job that deletes them when that time has passed.
//!
//! The policy is in the server configuration (`[retention]`): a default,
//! and rules by team, by queue, or both. A contact is kept for the
//! **shortest** of the rules that match it (a rule naming a team and a
//! queue matches only contacts of both); a contact no rule matches is kept
//! for the default. Shortest, because each rule is a maximum someone set
//! (a regulator's, a client's): keeping a contact for the shortest keeps
//! every rule that applies. A rule may be longer than the default (a team
//! whose recordings must be kept longer). The time counts from the
//! contact's end. A default of 0 keeps what no rule covers forever; it is
//! the default, so a server whose operator set no policy deletes nothing.
//!
//! Teams are the agent's teams at the time of the run (a contact belongs
//! to the agent whose login it names, as for supervisors' scope); team and
//! queue names compare without case.
//!
//! The job ([`run`]) runs at start and every `interval_hours`, and on
//! `POST /api/v1/admin/retention/run`. It reads the contacts with stored
//! content, oldest first, a page at a time (the database connection is
//! shared: no transaction holds it long), commits an `expiring` intent for
//! each page's expired contacts that no legal hold covers, and finishes
//! each one (see the parent module): files deleted, the contact marked
//! `expired`, one `recording.expired` audit row by `system`.

use serde::{Deserialize, Serialize};

use super::{ComplianceError, Deleted, Disposal};
use crate::audit::Actor;
use crate::db::now_micros;
use crate::state::AppState;

/// A day in µs.
const DAY: i64 = 86_400 * 1_000_000;

/// Contacts read per page of a run.
const PAGE: u32 = 500;

/// Contacts a run's answer names (the count is always whole).
pub const MAX_LISTED: usize = 1000;

/// `[retention]` in the server configuration.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days a contact's recording and audio are kept when no rule matches
    /// it; 0 keeps them forever.
    pub default_days: u32,
    /// Hours between runs of the job (the first at start); 0 runs it only
    /// when an administrator asks (`POST /api/v1/admin/retention/run`).
    pub interval_hours: u32,
    /// Rules by team and queue (`[[retention.rule]]`).
    #[serde(rename = "rule")]
    pub rules: Vec<Rule>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            default_days: 0,
            interval_hours: 24,
            rules: vec![],
        }
    }
}

/// One `[[retention.rule]]`: the contacts of a team, of a queue, or both.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The agent's team (case-insensitive).
    #[serde(default)]
    pub team: Option<String>,
    /// The ACD queue (case-insensitive).
    #[serde(default)]
    pub queue: Option<String>,
    /// Days kept, at least 1.
    pub days: u32,
}

impl Rule {
    fn matches(&self, teams: &[String], queue: Option<&str>) -> bool {
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        self.team
            .as_deref()
            .is_none_or(|t| teams.iter().any(|m| same(m, t)))
            && self
                .queue
                .as_deref()
                .is_none_or(|q| queue.is_some_and(|c| same(c, q)))
    }

    fn label(&self) -> String {
        let mut parts = vec![];
        if let Some(t) = &self.team {
            parts.push(format!("team {t:?}"));
        }
        if let Some(q) = &self.queue {
            parts.push(format!("queue {q:?}"));
        }
        format!("rule {}: {} days", parts.join(", "), self.days)
    }
}

/// How long a contact is kept, and by which rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    /// Days after the contact's end.
    pub days: u32,
    /// The rule, as the audit and the contact show it.
    pub rule: String,
}

impl RetentionConfig {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        for r in &self.rules {
            if r.team.is_none() && r.queue.is_none() {
                return Err("a [[retention.rule]] names a team, a queue or both".into());
            }
            if r.days == 0 {
                return Err(format!(
                    "[[retention.rule]] {}: days must be at least 1 (only default_days may be 0, forever)",
                    r.label()
                ));
            }
        }
        Ok(())
    }

    /// How long a contact of an agent in `teams`, in `queue`, is kept:
    /// the shortest matching rule, else the default; `None` is forever.
    pub fn kept(&self, teams: &[String], queue: Option<&str>) -> Option<Kept> {
        let rule = self
            .rules
            .iter()
            .filter(|r| r.matches(teams, queue))
            .min_by_key(|r| r.days);
        match rule {
            Some(r) => Some(Kept {
                days: r.days,
                rule: r.label(),
            }),
            None if self.default_days > 0 => Some(Kept {
                days: self.default_days,
                rule: format!("default: {} days", self.default_days),
            }),
            None => None,
        }
    }

    /// The shortest time anything is kept, days; `None` when nothing
    /// ever expires.
    fn shortest(&self) -> Option<u32> {
        let default = (self.default_days > 0).then_some(self.default_days);
        self.rules.iter().map(|r| r.days).chain(default).min()
    }
}

/// One contact a run expired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Expired {
    /// The contact.
    pub contact_id: String,
    /// The rule that expired it.
    pub rule: String,
    /// What was deleted.
    #[serde(flatten)]
    pub deleted: Deleted,
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// Contacts whose content this run deleted.
    pub expired_count: usize,
    /// The first [`MAX_LISTED`] of them.
    pub expired: Vec<Expired>,
    /// Contacts past their retention that a legal hold kept.
    pub held: usize,
    /// Disposals a crash had interrupted, finished first.
    pub resumed: Vec<String>,
}

/// A contact with stored content, as the run reads it.
struct Candidate {
    id: i64,
    contact_id: String,
    end_at: i64,
    queue: Option<String>,
    teams: Vec<String>,
    held: bool,
}

/// Contacts with stored content not disposed of, ending before `cutoff`,
/// after the cursor `(end_at, id)`, oldest first.
fn candidates(
    conn: &rusqlite::Connection,
    cutoff: i64,
    after: (i64, i64),
) -> rusqlite::Result<Vec<Candidate>> {
    let sql = format!(
        "SELECT c.id, c.contact_id, c.end_at, c.queue,
                (SELECT json_group_array(t.name) FROM users u
                 JOIN team_members m ON m.user_id = u.id JOIN teams t ON t.id = m.team_id
                 WHERE u.windows_login = c.windows_login),
                {}
         FROM contacts c
         WHERE c.end_at < ?1 AND (c.end_at, c.id) > (?2, ?3) AND c.disposal IS NULL
           AND (EXISTS (SELECT 1 FROM recordings r WHERE r.contact_id = c.contact_id)
                OR EXISTS (SELECT 1 FROM contact_audio a WHERE a.contact_id = c.contact_id))
         ORDER BY c.end_at, c.id LIMIT ?4",
        super::hold::HELD
    );
    conn.prepare_cached(&sql)?
        .query_map(rusqlite::params![cutoff, after.0, after.1, PAGE], |r| {
            let teams: String = r.get(4)?;
            Ok(Candidate {
                id: r.get(0)?,
                contact_id: r.get(1)?,
                end_at: r.get(2)?,
                queue: r.get(3)?,
                teams: serde_json::from_str(&teams).unwrap_or_default(),
                held: r.get(5)?,
            })
        })?
        .collect()
}

/// One run of the job (see the module doc).
pub async fn run(state: &AppState) -> Result<RunReport, ComplianceError> {
    let mut report = RunReport {
        resumed: super::resume(state).await?,
        ..RunReport::default()
    };
    let policy = state.retention().clone();
    let Some(shortest) = policy.shortest() else {
        return Ok(report);
    };
    let now = now_micros();
    let cutoff = now.saturating_sub(i64::from(shortest) * DAY);
    let mut after = (i64::MIN, i64::MIN);
    loop {
        let page = state
            .db()
            .call(move |c| candidates(c, cutoff, after))
            .await?;
        let Some(last) = page.last() else { break };
        after = (last.end_at, last.id);
        let mut due = vec![];
        for c in page {
            let Some(kept) = policy.kept(&c.teams, c.queue.as_deref()) else {
                continue;
            };
            if c.end_at >= now.saturating_sub(i64::from(kept.days) * DAY) {
                continue;
            }
            if c.held {
                report.held += 1;
            } else {
                due.push((c.contact_id, kept.rule));
            }
        }
        let marked = state
            .db()
            .call(move |conn| -> rusqlite::Result<_> {
                let tx = crate::db::write_tx(conn)?;
                let mut marked = vec![];
                for (contact, rule) in due {
                    if super::begin(&tx, &contact, Disposal::Expiring, &Actor::System, &rule)? {
                        marked.push((contact, rule));
                    }
                }
                tx.commit()?;
                Ok(marked)
            })
            .await?;
        if !marked.is_empty() {
            crate::crashpoint::hit(Disposal::Expiring.crash_points().0);
        }
        for (contact, rule) in marked {
            if let Some(deleted) = super::finish(state, &contact, Disposal::Expiring).await? {
                report.expired_count += 1;
                if report.expired.len() < MAX_LISTED {
                    report.expired.push(Expired {
                        contact_id: contact,
                        rule,
                        deleted,
                    });
                }
            }
        }
    }
    tracing::info!(
        expired = report.expired_count,
        held = report.held,
        resumed = report.resumed.len(),
        "retention run"
    );
    Ok(report)
}

/// The scheduled job: finishes interrupted disposals at once, then runs
/// retention now and every `interval_hours` until shutdown (only the
/// first step with an interval of 0).
pub async fn run_scheduled(state: AppState) {
    let interval = state.retention().interval_hours;
    if interval == 0 {
        if let Err(e) = super::resume(&state).await {
            tracing::error!(error = %e, "finishing interrupted disposals failed");
        }
        return;
    }
    let mut closing = state.closing();
    loop {
        if let Err(e) = run(&state).await {
            tracing::error!(error = %e, "retention run failed; the next run retries");
        }
        let wait = std::time::Duration::from_secs(u64::from(interval) * 3600);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = closing.wait_for(|c| *c) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetentionConfig {
        crate::Config::from_toml(
            r#"
            [retention]
            default_days = 365
            [[retention.rule]]
            team = "Payments"
            days = 90
            [[retention.rule]]
            queue = "sales"
            days = 30
            [[retention.rule]]
            team = "legal"
            days = 3650
            "#,
        )
        .unwrap()
        .retention
    }

    #[test]
    fn the_shortest_matching_rule_wins_else_the_default() {
        let p = policy();
        let teams = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let days = |t: &[&str], q| p.kept(&teams(t), q).map(|k| k.days);
        assert_eq!(days(&[], None), Some(365));
        assert_eq!(days(&["payments"], Some("billing")), Some(90));
        assert_eq!(days(&["payments"], Some("SALES")), Some(30));
        assert_eq!(days(&["legal"], None), Some(3650), "a rule may be longer");
        assert_eq!(days(&["legal", "payments"], None), Some(90));
        assert_eq!(
            p.kept(&teams(&["payments"]), None).unwrap().rule,
            "rule team \"Payments\": 90 days"
        );
        assert_eq!(p.shortest(), Some(30));
    }

    #[test]
    fn a_rule_naming_team_and_queue_needs_both() {
        let p = RetentionConfig {
            rules: vec![Rule {
                team: Some("north".into()),
                queue: Some("sales".into()),
                days: 7,
            }],
            ..RetentionConfig::default()
        };
        assert_eq!(p.kept(&["north".into()], Some("sales")).unwrap().days, 7);
        assert_eq!(p.kept(&["north".into()], Some("billing")), None);
        assert_eq!(p.kept(&[], Some("sales")), None, "default 0: forever");
        assert_eq!(RetentionConfig::default().shortest(), None);
    }

    #[test]
    fn rules_without_a_criterion_or_days_are_refused() {
        for bad in [
            "[[retention.rule]]\ndays = 3",
            "[[retention.rule]]\nqueue = \"x\"\ndays = 0",
        ] {
            assert!(crate::Config::from_toml(bad).is_err(), "{bad}");
        }
    }
}

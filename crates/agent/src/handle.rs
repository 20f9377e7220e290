//! The handle a front end (the tray app) holds on the running agent.
//!
//! [`AgentHandle`] is cheap to clone and answers from memory where it
//! can: [`status`](AgentHandle::status) never touches the disk. The queue,
//! the audit log and the diagnostics come from the engine's own database
//! connection (not a second one). [`subscribe`](AgentHandle::subscribe)
//! gives every change as it happens, so a window redraws on events instead
//! of polling.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use deskrec_protocol::SegmentFindings;
use tokio::sync::broadcast;

use crate::db::{get_meta, keys};
use crate::engine::Shared;
use crate::indicator::{Absence, Indicator};
use crate::view::{
    AuditEntry, CheckedSegment, Diagnostics, Notice, PolicyView, Queue, SegmentEntry, Status,
    UploadedToday,
};
use crate::{AgentError, DataDir};

/// Events a subscriber gets, at most a few milliseconds after the change.
/// A subscriber that falls more than [`EVENT_BACKLOG`] events behind gets
/// `Lagged` from its receiver and should read the status and queue again.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Event {
    /// The state, reason, connection, an error, an alert or the policy
    /// changed.
    Status(Box<Status>),
    /// Segments, contacts or uploads changed: read [`AgentHandle::queue`].
    Queue,
    /// Something the agent at the keyboard should hear of.
    Notice(Notice),
}

/// Events kept for a slow subscriber.
pub const EVENT_BACKLOG: usize = 256;

/// How far back done and unrecoverable contacts are listed, µs.
const RECENT_US: i64 = 24 * 3_600_000_000;

/// A running agent, for front ends. Clones share the agent.
#[derive(Clone)]
pub struct AgentHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentHandle")
            .field("device", &self.shared.identity.device_id)
            .finish_non_exhaustive()
    }
}

impl AgentHandle {
    /// The status now, from memory.
    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// Every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// The segments on disk and the contacts with work left (and those
    /// finished in the last 24 hours).
    pub async fn queue(&self) -> Result<Queue, AgentError> {
        let shared = &self.shared;
        let now = shared.now();
        let dir = shared.config.data_dir.segments();
        let (segments, contacts) = shared
            .db
            .call(move |c| {
                crate::segments::refresh(c, &dir, now)?;
                Ok((
                    crate::segments::on_disk(c)?,
                    crate::contacts::listing(c, now - RECENT_US)?,
                ))
            })
            .await?;
        let writing = shared.live.get().current_segment;
        let rates = shared.rates.lock().expect("rates lock").clone();
        let mut uploaded_today = UploadedToday::default();
        let contacts = contacts
            .into_iter()
            .map(|mut c| {
                if c.state == "done" {
                    uploaded_today.contacts += 1;
                    uploaded_today.bytes += c.bytes.unwrap_or(0);
                }
                if c.state == "uploading" {
                    c.rate_bytes_per_second = rates.get(&c.contact_id).map(|r| r.bytes_per_second);
                }
                c.next_attempt_at = c.next_attempt_at.filter(|&at| at > now);
                c
            })
            .collect();
        Ok(Queue {
            segments: segments
                .iter()
                .map(|s| entry(s, writing.as_deref()))
                .collect(),
            contacts,
            uploaded_today,
        })
    }

    /// Pauses recording for one of the policy's reasons, from the tray:
    /// the screen stops being recorded within a frame, and recording
    /// resumes by itself after the policy's maximum duration.
    ///
    /// # Errors
    ///
    /// [`AgentError::Refused`] when the policy does not let agents pause,
    /// or not for `reason`.
    pub async fn pause(&self, reason: &str) -> Result<crate::PauseView, AgentError> {
        let by = self.shared.login.borrow().clone();
        crate::pause::start(
            &self.shared,
            deskrec_protocol::PauseSource::Agent,
            None,
            reason,
            &by,
            None,
        )
        .await
    }

    /// Ends the agent's own pauses (not one the contact centre's systems
    /// asked for, nor a rule's: recording stays paused while those last).
    /// False when there was none.
    pub async fn resume(&self) -> Result<bool, AgentError> {
        let own = |p: &crate::PauseView| p.source == deskrec_protocol::PauseSource::Agent;
        crate::pause::end(&self.shared, own, "resumed").await
    }

    /// The newest `limit` audit entries, newest first.
    pub async fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, AgentError> {
        self.shared
            .db
            .call(move |c| crate::db::recent_audit(c, limit))
            .await
    }

    /// Moves uploads waiting on a back-off to now; returns how many.
    pub async fn retry_now(&self) -> Result<u64, AgentError> {
        self.shared.retry_uploads_now("as asked").await
    }

    /// Whether `pin` opens the Diagnostics view, or the user running this
    /// process is a local administrator ([`is_admin`](crate::is_admin));
    /// refused with [`AgentError::Refused`].
    pub fn may_diagnose(&self, pin: Option<&str>) -> Result<(), AgentError> {
        let phc = self
            .shared
            .policy
            .borrow()
            .as_ref()
            .and_then(|p| p.policy.desktop.diagnostics_pin_phc.clone());
        crate::platform::may_diagnose(crate::platform::is_admin(), phc.as_deref(), pin)
    }

    /// Everything IT looks at, after [`may_diagnose`](Self::may_diagnose).
    /// Reads every segment on disk to check it: seconds for a day's.
    pub async fn diagnostics(&self, pin: Option<&str>) -> Result<Diagnostics, AgentError> {
        self.may_diagnose(pin)?;
        let shared = &self.shared;
        let status = shared.status();
        let now = shared.now();
        let dir = shared.config.data_dir.segments();
        let (segments, cursor, watermark, audit) = shared
            .db
            .call(move |c| {
                crate::segments::refresh(c, &dir, now)?;
                Ok((
                    crate::segments::on_disk(c)?,
                    get_meta::<u64>(c, keys::CURSOR)?,
                    get_meta::<i64>(c, keys::WATERMARK)?,
                    crate::db::recent_audit(c, 200)?,
                ))
            })
            .await?;
        let writing = shared.live.get().current_segment;
        let checked = tokio::task::spawn_blocking(move || {
            segments
                .iter()
                .map(|s| {
                    let segment = entry(s, writing.as_deref());
                    let findings = crate::retention::analyse(&s.path);
                    CheckedSegment {
                        discrepancies: describe(&findings, segment.writing),
                        segment,
                    }
                })
                .collect()
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let max_age = shared.config.policy_max_age.as_micros() as i64;
        let policy = shared.policy.borrow().as_ref().map(|p| PolicyView {
            record: p.policy.record,
            reason: p.policy.reason.as_str().into(),
            login: p.login.clone(),
            received_at: p.received_at,
            expires_at: p.received_at + max_age,
            fps: p.policy.fps,
            segment_seconds: p.policy.segment_seconds,
        });
        let offset = shared.offset();
        let id = &shared.identity;
        Ok(Diagnostics {
            device_id: id.device_id.clone(),
            host: id.host.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            data_dir: shared.config.data_dir.root().display().to_string(),
            server_url: id.url.clone(),
            server_fingerprint: shared
                .server()
                .pins
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            policy,
            clock_offset_us: offset.map(|o| o.offset_us),
            clock_measured_at: offset.map(|o| o.measured_at),
            contact_cursor: cursor,
            watermark,
            segments: checked,
            audit,
            status,
        })
    }

    /// Writes a zip of the diagnostics, the queue and the log files in
    /// `logs` into `out_dir`, after [`may_diagnose`](Self::may_diagnose);
    /// returns its path. Holds no key, credential or token: the
    /// diagnostics have none, and the logs never get any.
    pub async fn save_diagnostics(
        &self,
        pin: Option<&str>,
        logs: Option<&Path>,
        out_dir: &Path,
    ) -> Result<PathBuf, AgentError> {
        let diagnostics = self.diagnostics(pin).await?;
        let queue = self.queue().await?;
        let name = format!(
            "deskrec-diagnostics-{}-{}.zip",
            diagnostics.host,
            deskrec_vault::utc::rfc3339(self.shared.now()).replace(':', "-")
        );
        let out = out_dir.join(name);
        let (target, logs) = (out.clone(), logs.map(Path::to_path_buf));
        tokio::task::spawn_blocking(move || {
            crate::bundle::write(&target, &diagnostics, &queue, logs.as_deref())
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
        tracing::info!(file = %out.display(), "diagnostics saved");
        Ok(out)
    }
}

impl Status {
    /// The status of an app whose engine is not running, and why.
    pub fn without_engine(absence: &Absence, dir: &DataDir) -> Status {
        let reason = match absence {
            Absence::NotEnrolled { .. } => "not_enrolled",
            Absence::DirectoryInUse { .. } => "directory_in_use",
            Absence::Failed { .. } => "engine_failed",
        };
        Status {
            indicator: Indicator::without_engine(absence),
            state: deskrec_protocol::RecordingState::Paused,
            reason: reason.into(),
            login: crate::engine::process_login(),
            locked: false,
            enrolled: !matches!(absence, Absence::NotEnrolled { .. }),
            device_id: None,
            server_url: None,
            connection: crate::engine::Connection::Offline,
            connected_at: None,
            offline_since: None,
            current_segment: None,
            last_error: match absence {
                Absence::Failed { message } => Some(message.clone()),
                _ => None,
            },
            last_error_at: None,
            disk_free_bytes: crate::status::disk_free(&dir.segments()),
            disk_floor_bytes: None,
            pause: None,
            pause_reasons: Vec::new(),
            allow_quit: true,
            offline_notice_minutes: 0,
            updated_at: deskrec_vault::now_micros(),
        }
    }
}

/// A segment as the queue shows it; `writing` is the recorder's current
/// segment path.
fn entry(s: &crate::segments::Segment, writing: Option<&str>) -> SegmentEntry {
    SegmentEntry {
        name: file_name(&s.path),
        started_at: s.started_at,
        ended_at: s.ended_at,
        bytes: s.bytes,
        complete: s.complete,
        writing: writing.is_some_and(|w| Path::new(w) == s.path),
    }
}

/// A path's last component, as text.
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A segment check's findings in words. The segment being written has no
/// end yet: that is not a discrepancy.
fn describe(f: &SegmentFindings, writing: bool) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(e) = &f.unreadable {
        out.push(format!("unreadable: {e}"));
    }
    if let Some(d) = &f.damage {
        out.push(format!("damaged: {d}"));
    }
    if f.truncated && !writing {
        out.push("not finished (the recorder or the PC stopped mid-segment)".into());
    }
    for [from, to] in &f.gaps {
        out.push(format!(
            "no picture for {:.1} s from {}",
            (to - from) as f64 / 1e6,
            deskrec_vault::utc::rfc3339(*from)
        ));
    }
    if f.time_backwards > 0 {
        out.push(format!("the clock went back {} times", f.time_backwards));
    }
    out
}

/// An upload's rate, smoothed over its pieces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rate {
    /// When the last piece was confirmed (µs).
    at: i64,
    /// The server's offset then.
    offset: u64,
    /// Bytes a second, smoothed.
    pub bytes_per_second: f64,
}

/// Folds a confirmed offset into the contact's rate.
pub(crate) fn progress(rates: &mut HashMap<String, Rate>, id: &str, offset: u64, now: i64) {
    let rate = match rates.get(id) {
        Some(r) if offset > r.offset && now > r.at => {
            let seen = (offset - r.offset) as f64 / ((now - r.at) as f64 / 1e6);
            if r.bytes_per_second > 0.0 {
                0.7 * r.bytes_per_second + 0.3 * seen
            } else {
                seen
            }
        }
        Some(r) if offset >= r.offset => r.bytes_per_second,
        _ => 0.0,
    };
    rates.insert(
        id.to_owned(),
        Rate {
            at: now,
            offset,
            bytes_per_second: rate,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_follow_the_confirmed_offsets() {
        let mut rates = HashMap::new();
        progress(&mut rates, "c", 0, 0);
        assert_eq!(rates["c"].bytes_per_second, 0.0);
        progress(&mut rates, "c", 1_000_000, 1_000_000);
        assert_eq!(rates["c"].bytes_per_second, 1_000_000.0);
        progress(&mut rates, "c", 1_500_000, 2_000_000);
        assert_eq!(rates["c"].bytes_per_second, 850_000.0);
    }

    #[test]
    fn the_segment_being_written_is_not_called_unfinished() {
        let f = SegmentFindings {
            truncated: true,
            ..SegmentFindings::default()
        };
        assert!(describe(&f, true).is_empty());
        assert_eq!(describe(&f, false).len(), 1);
    }
}

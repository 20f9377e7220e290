//! From the engine's events to the surfaces: the tray icon, the window and
//! notifications. Runs as long as the engine does.

use std::time::Duration;

use deskrec_agent::{AgentHandle, Connection, Event, NoticeKind, Status};
use deskrec_protocol::RecordingState;
use tauri::{AppHandle, Manager};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::app::Shared;

/// Longest a queue change waits before the window hears of it: changes
/// within it (an upload's pieces) go out as one.
const QUEUE_COALESCE: Duration = Duration::from_millis(250);

/// How often the offline notice's threshold is looked at.
const OFFLINE_CHECK: Duration = Duration::from_secs(15);

/// Follows the engine's events until it stops.
pub async fn run(app: AppHandle, handle: AgentHandle) {
    let mut events = handle.subscribe();
    let mut last: Option<Status> = None;
    show_status(&app, &mut last, handle.status());
    send_queue(&app, &handle).await;
    let mut queue_due: Option<Instant> = None;
    let mut offline_check = tokio::time::interval(OFFLINE_CHECK);
    loop {
        let wait_queue = async {
            match queue_due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = events.recv() => match event {
                Ok(Event::Status(status)) => show_status(&app, &mut last, *status),
                Ok(Event::Queue) => {
                    queue_due.get_or_insert(Instant::now() + QUEUE_COALESCE);
                }
                Ok(Event::Notice(notice)) => {
                    crate::window::emit(&app, "deskrec://notice", &notice);
                    let key = match notice.kind {
                        // Every upload is in the window; a toast for each
                        // would be noise on a busy day.
                        NoticeKind::Uploaded => None,
                        // Not the agent's doing nor theirs to fix: the
                        // window's queue says so.
                        NoticeKind::Disposed => None,
                        NoticeKind::Rejected => Some("notice:rejected".to_string()),
                        NoticeKind::SegmentsDeleted => Some(format!("notice:deleted:{}", notice.body)),
                        // The agent is told when the screen stops and starts
                        // being recorded again, whoever paused it.
                        NoticeKind::Paused | NoticeKind::Resumed => {
                            Some(format!("notice:pause:{}", notice.at))
                        }
                    };
                    if let Some(key) = key {
                        notify(&app, &key, &notice.title, &notice.body);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "events missed; reading the state again");
                    show_status(&app, &mut last, handle.status());
                    queue_due = Some(Instant::now());
                }
                Err(RecvError::Closed) => return,
            },
            _ = wait_queue => {
                queue_due = None;
                send_queue(&app, &handle).await;
            }
            _ = offline_check.tick() => {
                if let Some(s) = &last {
                    offline_notice(&app, s);
                }
            }
        }
    }
}

async fn send_queue(app: &AppHandle, handle: &AgentHandle) {
    match handle.queue().await {
        Ok(q) => crate::window::emit(app, "deskrec://queue", &q),
        Err(e) => tracing::warn!(error = %e, "cannot read the queue"),
    }
}

/// Shows a new status everywhere, and notifies what changed.
pub fn show_status(app: &AppHandle, last: &mut Option<Status>, status: Status) {
    let shared = app.state::<Shared>();
    shared.show_in_tray(app, &status);
    crate::window::emit(app, "deskrec://status", &status);
    if let Some((key, title)) = state_notice(last.as_ref(), &status) {
        notify(app, &key, &title, &status.indicator.detail);
    }
    *last = Some(status);
}

/// The notification a change of state calls for: (rate-limit key, title).
/// Only real changes of the recording state or its reason count, not
/// reconnects or errors that leave it as it was.
fn state_notice(before: Option<&Status>, now: &Status) -> Option<(String, String)> {
    let same = before.is_some_and(|b| b.state == now.state && b.reason == now.reason);
    if same {
        return None;
    }
    let was_recording = before.is_some_and(|b| b.state == RecordingState::Recording);
    match now.state {
        RecordingState::Recording if !was_recording => {
            Some(("state:recording".into(), "Recording started".into()))
        }
        RecordingState::Recording => None,
        RecordingState::NotEligible => Some((
            format!("state:not_eligible:{}", now.reason),
            "Not recording: not eligible".into(),
        )),
        RecordingState::Error => Some((
            format!(
                "state:error:{}",
                now.reason.split(':').next().unwrap_or_default()
            ),
            now.indicator.headline.clone(),
        )),
        RecordingState::Paused if was_recording => Some((
            format!(
                "state:stopped:{}",
                now.reason.split(':').next().unwrap_or_default()
            ),
            "Recording stopped".into(),
        )),
        // Starting, or an engine that is absent: the tray says why.
        RecordingState::Paused => match now.reason.as_str() {
            "not_enrolled" | "directory_in_use" | "engine_failed" => Some((
                format!("state:{}", now.reason),
                now.indicator.headline.clone(),
            )),
            _ => None,
        },
    }
}

/// Tells the agent once per offline spell when it lasts longer than the
/// policy's threshold.
fn offline_notice(app: &AppHandle, s: &Status) {
    let (Some(since), minutes) = (s.offline_since, s.offline_notice_minutes) else {
        return;
    };
    if s.connection == Connection::Connected || minutes == 0 || !s.enrolled {
        return;
    }
    let now = now_micros();
    if now - since < i64::from(minutes) * 60_000_000 {
        return;
    }
    notify(
        app,
        &format!("offline:{since}"),
        "Recording server unreachable",
        &format!(
            "This PC has not reached the recording server for over {minutes} minutes. Recording goes on; recordings upload when the server is back."
        ),
    );
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn notify(app: &AppHandle, key: &str, title: &str, body: &str) {
    app.state::<Shared>()
        .notifier
        .lock()
        .expect("notifier lock")
        .send(key, title, body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use deskrec_agent::{Absence, DataDir};

    fn status(state: RecordingState, reason: &str) -> Status {
        let mut s = Status::without_engine(
            &Absence::Failed {
                message: "x".into(),
            },
            &DataDir::new("/nonexistent"),
        );
        s.state = state;
        s.reason = reason.into();
        s
    }

    #[test]
    fn only_changes_of_state_or_reason_notify() {
        let rec = status(RecordingState::Recording, "eligible");
        let ne = status(RecordingState::NotEligible, "user_inactive");
        let starting = status(RecordingState::Paused, "starting");
        assert_eq!(state_notice(None, &starting), None);
        assert_eq!(
            state_notice(Some(&starting), &rec).unwrap().1,
            "Recording started"
        );
        assert_eq!(state_notice(Some(&rec), &rec), None);
        assert_eq!(
            state_notice(Some(&rec), &ne).unwrap().0,
            "state:not_eligible:user_inactive"
        );
        assert_eq!(state_notice(Some(&ne), &ne), None);
        let off = status(RecordingState::Paused, "no_session_user");
        assert_eq!(
            state_notice(Some(&rec), &off).unwrap().1,
            "Recording stopped"
        );
    }
}

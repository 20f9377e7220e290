//! The engine's side of the session watcher: session events become the
//! session login, the lock state and the "ending" flag the recording
//! controller follows, each audited.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::{FixedSession, SessionEvent, SessionWatcher};
use crate::db::audit;
use crate::engine::{Shared, process_login};

/// How long an ending is held at most for the recorder to finish its
/// segment (it takes well under a second; Windows and logind give up
/// waiting on their own after a while anyway).
const FINISH_TIMEOUT: Duration = Duration::from_secs(15);

/// Follows `watcher` until shutdown.
pub(crate) async fn run(
    shared: Arc<Shared>,
    watcher: Box<dyn SessionWatcher>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (tx, mut rx) = mpsc::channel(16);
    let name = watcher.name();
    // Keeps the watcher running.
    let mut _guard = match watcher.watch(tx) {
        Ok(g) => Some(g),
        Err(e) => {
            shared.error("the session watcher cannot start", &e).await;
            None
        }
    };
    let mut heard_user = false;
    loop {
        let event = tokio::select! {
            e = rx.recv() => e,
            _ = shutdown.changed() => return,
        };
        let Some(event) = event else {
            if heard_user {
                // The watcher stopped after telling us who is there: keep
                // following that (recording stops with the process).
                tracing::warn!(watcher = name, "the session watcher stopped");
                let _ = shutdown.changed().await;
                return;
            }
            // It never told us: fall back to the user running the process.
            tracing::warn!(
                watcher = name,
                "no session events: following the user running the agent"
            );
            let (tx, next) = mpsc::channel(16);
            rx = next;
            _guard = Box::new(FixedSession(process_login())).watch(tx).ok();
            heard_user = true;
            continue;
        };
        if let SessionEvent::User(_) = event {
            heard_user = true;
        }
        apply(&shared, name, event).await;
    }
}

/// Acts on one event.
async fn apply(shared: &Arc<Shared>, watcher: &'static str, event: SessionEvent) {
    let (action, detail) = match &event {
        SessionEvent::User(login) => (
            if login.is_empty() {
                "session.logoff"
            } else {
                "session.user"
            },
            serde_json::json!({ "login": login, "watcher": watcher }),
        ),
        SessionEvent::Locked(true) => ("session.locked", serde_json::json!({})),
        SessionEvent::Locked(false) => ("session.unlocked", serde_json::json!({})),
        SessionEvent::Ending(e) => ("session.ending", serde_json::json!({ "why": e.why() })),
        SessionEvent::EndCancelled => ("session.end_cancelled", serde_json::json!({})),
    };
    tracing::info!(action, %detail, "session");
    let now = shared.now();
    let stored = shared
        .db
        .call(move |c| {
            let tx = crate::db::write_tx(c)?;
            audit(&tx, now, action, "", detail)?;
            Ok(tx.commit()?)
        })
        .await;
    if let Err(e) = stored {
        shared.error("cannot audit a session event", &e).await;
    }
    match event {
        SessionEvent::User(login) => {
            if !login.is_empty() {
                shared.ending.send_replace(None);
            }
            // Only a change is news (a new hello, a new policy).
            shared.login.send_if_modified(|l| {
                let changed = *l != login;
                *l = login;
                changed
            });
        }
        SessionEvent::Locked(locked) => shared.update_live(|l| l.locked = locked).await,
        SessionEvent::EndCancelled => {
            shared.ending.send_replace(None);
        }
        SessionEvent::Ending(guard) => {
            shared.ending.send_replace(Some(guard.why()));
            // The controller stops the recorder (finishing the segment)
            // and says so; the guard goes once it has.
            let mut recording = shared.recording.subscribe();
            let finished = tokio::time::timeout(FINISH_TIMEOUT, recording.wait_for(|r| !r)).await;
            if finished.is_err() {
                tracing::warn!("the recorder did not stop in time for the end of the session");
            }
            guard.release();
        }
    }
}

//! The logind session watcher (Linux): systemd-logind over D-Bus.
//!
//! The agent follows the active session of one seat (`seat0`, the PC's
//! screen and keyboard): its user is the session user, and a switch to the
//! greeter or another user's session changes it. Only sessions of class
//! `user` count (a greeter's session is nobody). Locks come from the
//! session's `LockedHint` and its `Lock`/`Unlock` signals.
//!
//! Shutdown: the watcher holds a *delay* inhibitor lock on `shutdown`; on
//! `PrepareForShutdown(true)` it sends [`SessionEvent::Ending`] and closes
//! the inhibitor only when the agent has finished its segment (logind waits
//! up to its `InhibitDelayMaxSec`, 5 s by default). A cancelled shutdown
//! (`PrepareForShutdown(false)`) takes the inhibitor again.
//!
//! A logoff has no such announcement in logind: the session's processes
//! (the agent among them, when it runs in the user's session) get SIGTERM,
//! on which the agent finishes its segment too.

use futures_util::StreamExt;
use tokio::sync::mpsc;
use zbus::zvariant::{OwnedFd, OwnedObjectPath};

use super::{Ending, SessionEvent, SessionWatcher, WatchGuard};
use crate::AgentError;

#[zbus::proxy(
    interface = "org.freedesktop.login1.Manager",
    default_service = "org.freedesktop.login1",
    default_path = "/org/freedesktop/login1"
)]
trait Manager {
    /// Takes an inhibitor lock; it holds until the returned fd is closed.
    fn inhibit(&self, what: &str, who: &str, why: &str, mode: &str) -> zbus::Result<OwnedFd>;

    /// Sent before (`true`) a shutdown, and after one was cancelled (`false`).
    #[zbus(signal)]
    fn prepare_for_shutdown(&self, start: bool) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.freedesktop.login1.Seat",
    default_service = "org.freedesktop.login1"
)]
trait Seat {
    /// The active session: id and object path (`("", "/")` when none).
    #[zbus(property)]
    fn active_session(&self) -> zbus::Result<(String, OwnedObjectPath)>;
}

#[zbus::proxy(
    interface = "org.freedesktop.login1.Session",
    default_service = "org.freedesktop.login1"
)]
trait Session {
    /// The user name.
    #[zbus(property)]
    fn name(&self) -> zbus::Result<String>;
    /// `user`, `greeter`, `lock-screen`, `background`…
    #[zbus(property)]
    fn class(&self) -> zbus::Result<String>;
    /// Whether the screen locker says the session is locked.
    #[zbus(property)]
    fn locked_hint(&self) -> zbus::Result<bool>;
    /// logind asks the session's screen locker to lock.
    #[zbus(signal)]
    fn lock(&self) -> zbus::Result<()>;
    /// logind asks the session's screen locker to unlock.
    #[zbus(signal)]
    fn unlock(&self) -> zbus::Result<()>;
}

/// Follows a seat's active session through logind.
#[derive(Debug, Clone)]
pub struct LogindWatcher {
    /// The D-Bus address; `None` is the system bus.
    bus_address: Option<String>,
    /// The seat followed.
    seat: String,
}

impl LogindWatcher {
    /// logind on the system bus, following `seat0`.
    pub fn system() -> Self {
        Self {
            bus_address: None,
            seat: "seat0".into(),
        }
    }

    /// logind at another bus address (a test bus), following `seat`.
    pub fn at(bus_address: impl Into<String>, seat: impl Into<String>) -> Self {
        Self {
            bus_address: Some(bus_address.into()),
            seat: seat.into(),
        }
    }
}

impl SessionWatcher for LogindWatcher {
    /// Connects in the background: a bus or logind that cannot be reached
    /// is logged and closes `events` before any user is sent, on which the
    /// agent falls back to the user running the process.
    fn watch(
        self: Box<Self>,
        events: mpsc::Sender<SessionEvent>,
    ) -> Result<WatchGuard, AgentError> {
        let task = tokio::spawn(async move {
            if let Err(e) = follow(&self, &events).await {
                tracing::warn!(error = %e, seat = %self.seat, "logind session watching stopped");
            }
        });
        Ok(Box::new(AbortOnDrop(task)))
    }

    fn name(&self) -> &'static str {
        "logind"
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What is known of the followed session, to send only changes.
#[derive(Default)]
struct Seen {
    user: Option<String>,
    locked: Option<bool>,
}

impl Seen {
    async fn user(&mut self, events: &mpsc::Sender<SessionEvent>, user: String) -> Sent {
        if self.user.as_ref() == Some(&user) {
            return Ok(());
        }
        self.user = Some(user.clone());
        send(events, SessionEvent::User(user)).await
    }

    async fn locked(&mut self, events: &mpsc::Sender<SessionEvent>, locked: bool) -> Sent {
        if self.locked == Some(locked) {
            return Ok(());
        }
        self.locked = Some(locked);
        send(events, SessionEvent::Locked(locked)).await
    }
}

/// `Err` when the agent stopped listening.
type Sent = Result<(), Closed>;

#[derive(Debug)]
struct Closed;

async fn send(events: &mpsc::Sender<SessionEvent>, event: SessionEvent) -> Sent {
    events.send(event).await.map_err(|_| Closed)
}

/// Why following logind ended.
#[derive(Debug, thiserror::Error)]
enum FollowError {
    #[error("D-Bus: {0}")]
    Bus(#[from] zbus::Error),
    #[error("logind's {0} stream ended")]
    StreamEnded(&'static str),
}

async fn follow(w: &LogindWatcher, events: &mpsc::Sender<SessionEvent>) -> Result<(), FollowError> {
    let conn = match &w.bus_address {
        None => zbus::Connection::system().await?,
        Some(a) => {
            zbus::connection::Builder::address(a.as_str())?
                .build()
                .await?
        }
    };
    let manager = ManagerProxy::new(&conn).await?;
    let seat_path = format!("/org/freedesktop/login1/seat/{}", w.seat);
    let seat = SeatProxy::builder(&conn).path(seat_path)?.build().await?;
    let mut shutdowns = manager.receive_prepare_for_shutdown().await?;
    let mut active_changes = seat.receive_active_session_changed().await;
    let mut inhibitor = take_inhibitor(&manager).await;
    let mut seen = Seen::default();
    let mut ending_done: Option<tokio::sync::oneshot::Receiver<()>> = None;

    'sessions: loop {
        let (_, path) = seat.active_session().await?;
        let session = session_at(&conn, &path).await?;
        let Ok(()) = report(&mut seen, events, session.as_ref()).await else {
            return Ok(());
        };
        // Streams of the active session (empty when there is none).
        let (mut locks, mut unlocks, mut hints) = match &session {
            Some(s) => (
                Some(s.receive_lock().await?),
                Some(s.receive_unlock().await?),
                Some(s.receive_locked_hint_changed().await),
            ),
            None => (None, None, None),
        };
        loop {
            let sent = tokio::select! {
                change = active_changes.next() => {
                    change.ok_or(FollowError::StreamEnded("ActiveSession"))?;
                    continue 'sessions;
                }
                Some(_) = next(&mut locks) => seen.locked(events, true).await,
                Some(_) = next(&mut unlocks) => seen.locked(events, false).await,
                Some(hint) = next(&mut hints) => match hint.get().await {
                    Ok(locked) => seen.locked(events, locked).await,
                    Err(e) => return Err(e.into()),
                },
                signal = shutdowns.next() => {
                    let signal = signal.ok_or(FollowError::StreamEnded("PrepareForShutdown"))?;
                    if signal.args()?.start {
                        let (guard, done) = Ending::new("shutdown");
                        ending_done = Some(done);
                        send(events, SessionEvent::Ending(guard)).await
                    } else {
                        ending_done = None;
                        if inhibitor.is_none() {
                            inhibitor = take_inhibitor(&manager).await;
                        }
                        send(events, SessionEvent::EndCancelled).await
                    }
                }
                Ok(()) = wait(&mut ending_done) => {
                    ending_done = None;
                    // Closing the fd lets the shutdown go on.
                    inhibitor = None;
                    tracing::info!("segment finished: the shutdown may go on");
                    Ok(())
                }
            };
            if sent.is_err() {
                return Ok(());
            }
        }
    }
}

/// The next item of an optional stream; pending forever when there is none.
async fn next<S: futures_util::Stream + Unpin>(s: &mut Option<S>) -> Option<S::Item> {
    match s {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// Waits for an ending's release; pending forever when nothing is ending.
async fn wait(
    done: &mut Option<tokio::sync::oneshot::Receiver<()>>,
) -> Result<(), tokio::sync::oneshot::error::RecvError> {
    match done {
        Some(rx) => rx.await,
        None => std::future::pending().await,
    }
}

/// The session at `path`, if it is a user's (`/` is no session).
async fn session_at(
    conn: &zbus::Connection,
    path: &OwnedObjectPath,
) -> Result<Option<SessionProxy<'static>>, FollowError> {
    if path.as_str() == "/" {
        return Ok(None);
    }
    let session = SessionProxy::builder(conn)
        .path(path.clone())?
        .build()
        .await?;
    if session.class().await? != "user" {
        return Ok(None);
    }
    Ok(Some(session))
}

/// Sends the user (and lock state) of the newly active session.
async fn report(
    seen: &mut Seen,
    events: &mpsc::Sender<SessionEvent>,
    session: Option<&SessionProxy<'_>>,
) -> Sent {
    let Some(s) = session else {
        return seen.user(events, String::new()).await;
    };
    let user = s.name().await.unwrap_or_default();
    seen.user(events, user).await?;
    let locked = s.locked_hint().await.unwrap_or(false);
    seen.locked(events, locked).await
}

/// A delay inhibitor on shutdown, or `None` (logged) if logind refuses.
async fn take_inhibitor(manager: &ManagerProxy<'_>) -> Option<OwnedFd> {
    match manager
        .inhibit(
            "shutdown",
            "Deskrec",
            "Finishing the screen recording segment",
            "delay",
        )
        .await
    {
        Ok(fd) => Some(fd),
        Err(e) => {
            tracing::warn!(error = %e, "logind refused a shutdown delay: the last segment may be cut at shutdown (it stays readable up to its last chunk)");
            None
        }
    }
}

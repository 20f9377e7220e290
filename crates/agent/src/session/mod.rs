//! Who is logged on at this PC, and when their session ends.
//!
//! A [`SessionWatcher`] turns the platform's session notifications into
//! [`SessionEvent`]s: the user of the active session (logon, logoff, user
//! switch), lock and unlock, and the end of the session or of the system
//! (logoff, shutdown), which the watcher holds back until the recording is
//! finished:
//!
//! - Linux: [`logind`] (systemd-logind over D-Bus): the active session of
//!   the seat, its `Lock`/`Unlock`, and `PrepareForShutdown` behind a delay
//!   inhibitor;
//! - Windows: `windows` (WTS): `WTSRegisterSessionNotification` on a hidden
//!   top-level window, and `WM_QUERYENDSESSION` held with
//!   `ShutdownBlockReasonCreate`;
//! - everywhere: [`FixedSession`], one user for as long as the process
//!   runs (the `--login` option, and the fallback when the platform's
//!   watcher cannot start: recording then starts and stops with the
//!   process).
//!
//! A lock does not stop recording: the screen shows the lock screen (a
//! marked blank on Windows' secure desktop), which costs almost nothing to
//! record, and a contact that goes on through a lock still gets its
//! recording. Locks are audited and shown in the status.

pub(crate) mod follow;
#[cfg(target_os = "linux")]
pub mod logind;
#[cfg(windows)]
pub mod windows;

use tokio::sync::{mpsc, oneshot};

use crate::AgentError;

/// What happened to the session.
#[derive(Debug)]
pub enum SessionEvent {
    /// The user of the active session, as `DOMAIN\user` on Windows and the
    /// user name on Linux; empty when nobody is logged on (logoff, the
    /// login screen, another seat's session).
    User(String),
    /// The session was locked (`true`) or unlocked (`false`).
    Locked(bool),
    /// The session or the system is ending. The agent finishes the
    /// segment being written, then drops (or [`release`](Ending::release)s)
    /// the guard; the watcher holds the logoff or shutdown until then.
    Ending(Ending),
    /// The end announced by [`SessionEvent::Ending`] was cancelled (a
    /// shutdown aborted): recording may start again.
    EndCancelled,
}

/// Holds a logoff or shutdown until it is dropped.
#[derive(Debug)]
pub struct Ending {
    why: &'static str,
    done: Option<oneshot::Sender<()>>,
}

impl Ending {
    /// A guard for an end described by `why` (`logoff`, `shutdown`); the
    /// receiver completes when the guard is released or dropped.
    pub fn new(why: &'static str) -> (Self, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        (
            Self {
                why,
                done: Some(tx),
            },
            rx,
        )
    }

    /// What is ending (`logoff`, `shutdown`).
    pub fn why(&self) -> &'static str {
        self.why
    }

    /// Lets the logoff or shutdown go on.
    pub fn release(mut self) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(());
        }
    }
}

/// Keeps a watcher running; dropping it stops the watcher.
pub type WatchGuard = Box<dyn Send + Sync>;

/// A source of session events.
pub trait SessionWatcher: Send {
    /// Starts watching: events go to `events`, the current user first.
    /// Watching stops when the returned guard is dropped or `events` is
    /// closed. An error means this platform mechanism is not available
    /// (no logind, no window station); the agent then falls back to
    /// [`FixedSession`] with the user running the process.
    fn watch(self: Box<Self>, events: mpsc::Sender<SessionEvent>)
    -> Result<WatchGuard, AgentError>;

    /// A short name for logs and the audit (`logind`, `wts`, `fixed`).
    fn name(&self) -> &'static str;
}

/// One user, from the start of the process to its end.
#[derive(Debug, Clone)]
pub struct FixedSession(pub String);

impl SessionWatcher for FixedSession {
    fn watch(
        self: Box<Self>,
        events: mpsc::Sender<SessionEvent>,
    ) -> Result<WatchGuard, AgentError> {
        // The channel has room for the first event: nothing waits.
        let _ = events.try_send(SessionEvent::User(self.0));
        Ok(Box::new(()))
    }

    fn name(&self) -> &'static str {
        "fixed"
    }
}

/// The platform's watcher: logind on Linux, WTS on Windows, else the user
/// running the process.
pub fn platform_watcher() -> Box<dyn SessionWatcher> {
    #[cfg(target_os = "linux")]
    return Box::new(logind::LogindWatcher::system());
    #[cfg(windows)]
    return Box::new(windows::WtsWatcher::new());
    #[cfg(not(any(target_os = "linux", windows)))]
    Box::new(FixedSession(crate::engine::process_login()))
}

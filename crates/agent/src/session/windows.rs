//! The WTS session watcher (Windows). Being written: until then it follows
//! the user running the process.

use tokio::sync::mpsc;

use super::{SessionEvent, SessionWatcher, WatchGuard};
use crate::AgentError;

/// Session notifications from WTS on a hidden top-level window.
#[derive(Debug, Default)]
pub struct WtsWatcher;

impl WtsWatcher {
    /// The watcher for this process's session.
    pub fn new() -> Self {
        Self
    }
}

impl SessionWatcher for WtsWatcher {
    fn watch(
        self: Box<Self>,
        events: mpsc::Sender<SessionEvent>,
    ) -> Result<WatchGuard, AgentError> {
        let _ = events.try_send(SessionEvent::User(crate::engine::process_login()));
        Ok(Box::new(()))
    }

    fn name(&self) -> &'static str {
        "wts"
    }
}

//! Connected devices: how the rest of the server reaches an agent's RTE
//! session without holding its socket.
//!
//! Each session registers one [`DeviceMailbox`] under its device id. Other
//! parts of the server never send on sockets themselves: after committing a
//! change they [`DeviceHub::wake`] the device (new contacts to relay: the
//! session reads them from the database) or [`DeviceHub::post`] a message
//! that needs no state (a recording was stored). A device that is not
//! connected simply misses the wake-up; everything it needs is in the
//! database and is replayed when it reconnects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use deskrec_protocol::ServerMessage;
use tokio::sync::{Notify, mpsc};

/// Messages a session has not sent yet; beyond this the newest are dropped
/// (they are all re-derivable on reconnect).
const MAILBOX_CAPACITY: usize = 64;

/// The registry of connected devices.
#[derive(Debug, Default)]
pub struct DeviceHub {
    sessions: Mutex<HashMap<String, Entry>>,
    next_id: std::sync::atomic::AtomicU64,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    wake: Arc<Notify>,
    post: mpsc::Sender<ServerMessage>,
    superseded: Arc<Notify>,
}

/// A session's side of the hub; unregisters itself when dropped.
#[derive(Debug)]
pub struct DeviceMailbox {
    hub: Arc<DeviceHub>,
    device_id: String,
    id: u64,
    /// Notified when the device has new work in the database.
    pub wake: Arc<Notify>,
    /// Messages posted for the device.
    pub posted: mpsc::Receiver<ServerMessage>,
    /// Notified when a newer session of the same device registers: this
    /// one should close (one session per device).
    pub superseded: Arc<Notify>,
}

impl DeviceHub {
    /// Registers the session of `device_id`, replacing an older session of
    /// the same device (an agent that reconnected before the old socket
    /// timed out).
    pub fn register(self: &Arc<Self>, device_id: &str) -> DeviceMailbox {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let wake = Arc::new(Notify::new());
        let (post, posted) = mpsc::channel(MAILBOX_CAPACITY);
        let superseded = Arc::new(Notify::new());
        let entry = Entry {
            id,
            wake: wake.clone(),
            post,
            superseded: superseded.clone(),
        };
        if let Some(older) = self.lock().insert(device_id.to_owned(), entry) {
            older.superseded.notify_one();
        }
        DeviceMailbox {
            hub: self.clone(),
            device_id: device_id.to_owned(),
            id,
            wake,
            posted,
            superseded,
        }
    }

    /// Wakes the device's session, if connected, to look for new work.
    pub fn wake(&self, device_id: &str) {
        if let Some(e) = self.lock().get(device_id) {
            e.wake.notify_one();
        }
    }

    /// Sends `msg` to the device if it is connected; returns whether it was
    /// queued for sending.
    pub fn post(&self, device_id: &str, msg: ServerMessage) -> bool {
        self.lock()
            .get(device_id)
            .is_some_and(|e| e.post.try_send(msg).is_ok())
    }

    /// Whether the device has an RTE session.
    pub fn is_connected(&self, device_id: &str) -> bool {
        self.lock().contains_key(device_id)
    }

    /// How many devices are connected.
    pub fn connected(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // The map holds no invariant a panicking holder could break.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for DeviceMailbox {
    fn drop(&mut self) {
        let mut sessions = self.hub.lock();
        // Only remove our own entry: a newer session may have replaced it.
        if sessions
            .get(&self.device_id)
            .is_some_and(|e| e.id == self.id)
        {
            sessions.remove(&self.device_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deskrec_protocol::RecordingStored;

    fn stored(id: &str) -> ServerMessage {
        ServerMessage::RecordingStored(RecordingStored {
            contact_id: id.into(),
        })
    }

    #[tokio::test]
    async fn posts_reach_the_newest_session_and_drop_unregisters() {
        let hub = Arc::new(DeviceHub::default());
        assert!(!hub.post("d1", stored("a")));
        let old = hub.register("d1");
        let mut new = hub.register("d1");
        assert!(hub.post("d1", stored("b")));
        assert_eq!(new.posted.recv().await, Some(stored("b")));
        drop(old); // must not unregister the newer session
        assert!(hub.is_connected("d1"));
        drop(new);
        assert!(!hub.is_connected("d1"));
        assert_eq!(hub.connected(), 0);
    }

    #[tokio::test]
    async fn a_wake_before_waiting_is_not_lost() {
        let hub = Arc::new(DeviceHub::default());
        let m = hub.register("d1");
        hub.wake("d1");
        tokio::time::timeout(std::time::Duration::from_secs(1), m.wake.notified())
            .await
            .expect("the stored permit wakes the session");
    }
}

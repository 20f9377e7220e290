//! One request at a time per upload, and the newest request wins.
//!
//! Two requests must never append to the same `.part` file at once. A
//! client whose connection died mid-PATCH comes back at once (HEAD, then
//! PATCH) — often before the server has noticed the old connection is gone
//! (a half-open TCP connection may take minutes to fail). So a request that
//! wants an upload does not just wait: it asks the current holder to stop
//! ([`Guard::takeover`] changes), the holder keeps and records the bytes it
//! has, releases, and the newcomer proceeds with the true offset. Only the
//! uploading device reaches an upload, so only it can take one over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedMutexGuard, watch};

/// The per-upload locks; clones share them.
#[derive(Clone, Debug, Default)]
pub struct Locks {
    slots: Arc<Mutex<HashMap<String, Arc<Slot>>>>,
}

#[derive(Debug)]
struct Slot {
    lock: Arc<tokio::sync::Mutex<()>>,
    /// Bumped by every request that wants the upload.
    takeover: watch::Sender<u64>,
}

/// Exclusive use of one upload until dropped.
#[derive(Debug)]
pub struct Guard {
    locks: Locks,
    id: String,
    /// Ours until dropped (`Option` so `drop` can give it back).
    slot: Option<Arc<Slot>>,
    held: Option<OwnedMutexGuard<()>>,
    /// Changes when another request wants this upload: stop reading the
    /// body, keep what arrived, and return.
    pub takeover: watch::Receiver<u64>,
}

impl Locks {
    /// Takes the upload `id`, asking its current holder to let go, and
    /// waiting at most `wait` for it to do so.
    pub async fn acquire(&self, id: &str, wait: Duration) -> Option<Guard> {
        let slot = self.slot(id);
        slot.takeover.send_modify(|g| *g = g.wrapping_add(1));
        match tokio::time::timeout(wait, slot.lock.clone().lock_owned()).await {
            Ok(held) => Some(self.guard(id, slot, held)),
            Err(_) => {
                self.release(id, slot);
                None
            }
        }
    }

    /// Takes the upload only if no request holds it (background work that
    /// must not interrupt a client).
    pub fn try_acquire(&self, id: &str) -> Option<Guard> {
        let slot = self.slot(id);
        match slot.lock.clone().try_lock_owned() {
            Ok(held) => Some(self.guard(id, slot, held)),
            Err(_) => {
                self.release(id, slot);
                None
            }
        }
    }

    fn slot(&self, id: &str) -> Arc<Slot> {
        self.map()
            .entry(id.to_owned())
            .or_insert_with(|| {
                Arc::new(Slot {
                    lock: Arc::default(),
                    takeover: watch::Sender::new(0),
                })
            })
            .clone()
    }

    fn guard(&self, id: &str, slot: Arc<Slot>, held: OwnedMutexGuard<()>) -> Guard {
        // Subscribing marks the current generation seen: only later
        // requests take over from this holder.
        let takeover = slot.takeover.subscribe();
        Guard {
            locks: self.clone(),
            id: id.to_owned(),
            slot: Some(slot),
            held: Some(held),
            takeover,
        }
    }

    /// Drops our reference to the slot, and the slot itself when nobody
    /// else holds or waits for it, so the map holds only busy uploads.
    fn release(&self, id: &str, slot: Arc<Slot>) {
        let mut map = self.map();
        // References: the map's and ours; waiters hold more.
        if Arc::strong_count(&slot) == 2 {
            map.remove(id);
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Slot>>> {
        // The map holds no invariant a panicking holder could break.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many uploads are locked or awaited (for tests).
    #[cfg(test)]
    fn busy(&self) -> usize {
        self.map().len()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        drop(self.held.take());
        if let Some(slot) = self.slot.take() {
            self.locks.release(&self.id, slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_newcomer_asks_the_holder_to_stop_and_gets_the_upload() {
        let locks = Locks::default();
        let mut first = locks.acquire("u1", WAIT).await.unwrap();
        let holder = tokio::spawn(async move {
            // The holder reads its body until asked to stop.
            first.takeover.changed().await.unwrap();
            drop(first);
        });
        let second = locks.acquire("u1", WAIT).await.unwrap();
        holder.await.unwrap();
        assert!(!second.takeover.has_changed().unwrap());
        assert!(locks.try_acquire("u1").is_none(), "held by the second");
        assert!(locks.try_acquire("u2").is_some(), "other uploads are free");
        drop(second);
        assert_eq!(locks.busy(), 0, "idle uploads leave the map");
    }

    #[tokio::test]
    async fn a_holder_that_does_not_let_go_times_the_newcomer_out() {
        let locks = Locks::default();
        let _stuck = locks.acquire("u1", WAIT).await.unwrap();
        assert!(
            locks
                .acquire("u1", Duration::from_millis(50))
                .await
                .is_none()
        );
        assert_eq!(locks.busy(), 1);
    }
}

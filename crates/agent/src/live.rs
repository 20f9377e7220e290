//! The live status ([`Live`]): what the agent is doing now, kept in memory
//! for the tasks and written to the database for `deskrec-agent status`,
//! with a timeline row whenever the recording state, its reason or the user
//! changes.

use std::sync::Mutex;

use crate::db::{Db, keys, put_meta};
use crate::engine::Live;
use crate::timeline;

/// The live status and the order its changes reach the database in.
pub(crate) struct LiveStatus {
    current: Mutex<Live>,
    /// Held from a change to its write. Two updates racing (the RTE
    /// client's "connected" and the controller's new state) could
    /// otherwise be written in the other order: the older one would stay
    /// on disk while memory has the newer, and since memory would not
    /// change again, it would never be corrected.
    writes: tokio::sync::Mutex<()>,
}

impl LiveStatus {
    pub fn new(live: Live) -> Self {
        Self {
            current: Mutex::new(live),
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// The status now.
    pub fn get(&self) -> Live {
        self.current.lock().expect("live lock").clone()
    }

    /// Applies `f`; if that changed anything, stamps the status `now` and
    /// writes it (and a timeline row if the state, reason or user
    /// changed). A failed write is logged: the status is advisory.
    /// Returns whether anything changed.
    pub async fn update(&self, db: &Db, now: i64, f: impl FnOnce(&mut Live)) -> bool {
        let _in_order = self.writes.lock().await;
        let (snapshot, new_state) = {
            let mut live = self.current.lock().expect("live lock");
            let before = live.clone();
            f(&mut live);
            if *live == before {
                return false;
            }
            live.updated_at = now;
            let new_state = (live.state, &live.reason, &live.login)
                != (before.state, &before.reason, &before.login);
            (live.clone(), new_state)
        };
        let stored = db
            .call(move |c| {
                let tx = crate::db::write_tx(c)?;
                put_meta(&tx, keys::LIVE, &snapshot)?;
                if new_state {
                    timeline::append(
                        &tx,
                        &timeline::Entry {
                            at: snapshot.updated_at,
                            state: snapshot.state,
                            reason: snapshot.reason.clone(),
                            login: snapshot.login.clone(),
                        },
                    )?;
                }
                Ok(tx.commit()?)
            })
            .await;
        if let Err(e) = stored {
            tracing::warn!(error = %e, "cannot store the live status");
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::get_meta;

    /// Concurrent updates reach the database in the order they were made:
    /// what is stored at the end is what memory holds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_updates_leave_the_newest_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let db = std::sync::Arc::new(Db::open(&dir.path().join("agent.db")).unwrap());
        let status = std::sync::Arc::new(LiveStatus::new(Live::starting(String::new(), 0)));
        for round in 0..20 {
            let tasks: Vec<_> = ["a", "b", "c"]
                .into_iter()
                .map(|who| {
                    let (db, status) = (db.clone(), status.clone());
                    tokio::spawn(async move {
                        for i in 0..20 {
                            let reason = format!("{who}{round}-{i}");
                            status.update(&db, i, |l| l.reason = reason).await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            let stored: Live = db
                .call(|c| get_meta(c, keys::LIVE))
                .await
                .unwrap()
                .expect("a status was written");
            assert_eq!(stored.reason, status.get().reason, "round {round}");
        }
    }
}

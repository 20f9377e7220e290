//! One engine per data directory.
//!
//! Two engines on one directory would record the same screen twice, race
//! each other's uploads and delete each other's segments. The engine takes
//! an exclusive lock on `agent.lock` before it touches anything and holds
//! it while it runs; the operating system drops it when the process dies,
//! so a crash never leaves the directory locked. A second engine (another
//! logon session's tray app, or a headless `deskrec-agent` beside the
//! tray) is refused with [`AgentError::DirectoryInUse`], naming the
//! holder, and does nothing.
//!
//! The holder is described in `agent.owner`, written once the lock is
//! held: the lock file itself cannot be read by others on Windows, where
//! the lock is mandatory.
//!
//! A lock this very process appears to hold is waited for, briefly. On
//! Unix the lock belongs to the open file, and a child forked while it was
//! open shares that file until it execs: the tray's web view forks its
//! helper processes at start-up, just as a failed start (not enrolled)
//! drops the lock and enrolling takes it again. Seen in CI: enrolling was
//! refused "in use by process N" with N the tray itself.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{AgentError, DataDir};

/// How long a lock this process seems to hold is waited for: far longer
/// than a forked child takes to exec, short enough that a real second
/// engine in this process is refused at once to a person's eye.
const OWN_LOCK_WAIT: Duration = Duration::from_secs(2);
const OWN_LOCK_POLL: Duration = Duration::from_millis(20);

/// The exclusive lock on a data directory, held until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    /// Open for as long as the lock is held.
    _file: File,
}

/// Who holds a data directory: what a refused engine tells its user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The holding process.
    pub pid: u32,
    /// The login that process runs as.
    pub user: String,
    /// When it took the directory (µs since the Unix epoch).
    pub since: i64,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "process {} of user {:?}, since {}",
            self.pid,
            self.user,
            deskrec_vault::utc::rfc3339(self.since)
        )
    }
}

impl DirLock {
    /// Takes the directory, or says who has it.
    pub fn acquire(dir: &DataDir, now: i64) -> Result<Self, AgentError> {
        crate::secrets::create_private_dir(dir.root())?;
        let path = lock_path(dir);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(AgentError::io(&path))?;
        let waited_since = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let holder = holder(dir);
                    let ours = holder.as_ref().is_some_and(|h| h.pid == std::process::id());
                    if ours && waited_since.elapsed() < OWN_LOCK_WAIT {
                        std::thread::sleep(OWN_LOCK_POLL);
                        continue;
                    }
                    return Err(AgentError::DirectoryInUse {
                        data_dir: dir.root().to_path_buf(),
                        holder: holder.map_or_else(|| "another process".into(), |h| h.to_string()),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(AgentError::io(&path)(e)),
            }
        }
        let me = Holder {
            pid: std::process::id(),
            user: crate::engine::process_login(),
            since: now,
        };
        let owner = owner_path(dir);
        let text = serde_json::to_vec(&me).expect("a Holder serializes");
        // Advisory: a failure to describe the holder must not stop it.
        if let Err(e) = std::fs::write(&owner, text) {
            tracing::warn!(file = %owner.display(), error = %e, "cannot write the lock's owner");
        }
        Ok(Self { _file: file })
    }
}

/// The holder of `dir` as it described itself, if it did.
pub fn holder(dir: &DataDir) -> Option<Holder> {
    let text = std::fs::read(owner_path(dir)).ok()?;
    serde_json::from_slice(&text).ok()
}

fn lock_path(dir: &DataDir) -> PathBuf {
    dir.root().join("agent.lock")
}

fn owner_path(dir: &DataDir) -> PathBuf {
    dir.root().join("agent.owner")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_freed_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let first = DirLock::acquire(&dir, 1_000_000).unwrap();
        match DirLock::acquire(&dir, 2_000_000) {
            Err(AgentError::DirectoryInUse { holder, .. }) => {
                assert!(holder.contains(&std::process::id().to_string()), "{holder}")
            }
            other => panic!("a second lock was not refused: {other:?}"),
        }
        drop(first);
        DirLock::acquire(&dir, 3_000_000).expect("free again once dropped");
    }

    /// What a child forked while the lock was open does: it keeps the lock
    /// a moment after this process let go of it.
    #[test]
    fn a_lock_this_process_lets_go_of_a_moment_later_is_waited_for() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let first = DirLock::acquire(&dir, 1_000_000).unwrap();
        let held = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(first);
        });
        DirLock::acquire(&dir, 2_000_000).expect("the lock was let go of within the wait");
        held.join().unwrap();
    }
}

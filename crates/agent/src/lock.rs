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

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{AgentError, DataDir};

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
            crate::uploader::utc(self.since)
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
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(AgentError::DirectoryInUse {
                    data_dir: dir.root().to_path_buf(),
                    holder: holder(dir).map_or_else(|| "another process".into(), |h| h.to_string()),
                });
            }
            Err(TryLockError::Error(e)) => return Err(AgentError::io(&path)(e)),
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
}

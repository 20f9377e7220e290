//! The Deskrec agent engine: what runs on each agent's PC between the
//! recorder and the server.
//!
//! - [`enroll`]: the device key, the credential and the pinned server
//!   address, kept behind a [`SecretStore`](secrets::SecretStore);
//! - [`db`]: local state in SQLite (WAL) — segments, contacts, recordings,
//!   the audit log, the contact cursor, the cached policy, the clock
//!   offset — every change committed before it is acted on;
//! - [`clock`]: the agent's (injectable) clock and its measured offset to
//!   the server's;
//! - [`engine`]: the running agent ([`Agent`]) — the RTE client
//!   (`rte`), the recording controller following the [`policy`]
//!   (`recording`) and the splicer/uploader (`uploader`), over the
//!   [`contacts`] and [`segments`] in the database;
//! - [`status`]: the JSON `deskrec-agent status` prints for the tray.
//!
//! The data directory ([`DataDir`]) holds everything: `agent.db`,
//! `secrets/` (owner-only), `segments/` and `recordings/`.

#![deny(missing_docs)]

pub mod clock;
pub mod contacts;
pub mod db;
pub mod engine;
pub mod enroll;
mod error;
mod live;
pub mod pacer;
pub mod policy;
mod recording;
pub mod retention;
mod rte;
pub mod secrets;
pub mod segments;
pub mod session;
pub mod status;
pub mod timeline;
pub mod uploader;

use std::path::{Path, PathBuf};

pub use engine::{Agent, AgentConfig};
pub use error::AgentError;

/// The agent's data directory and what lives in it.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The data directory at `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLite database.
    pub fn db_path(&self) -> PathBuf {
        self.root.join("agent.db")
    }

    /// Owner-only secrets (credential, device key).
    pub fn secrets(&self) -> PathBuf {
        self.root.join("secrets")
    }

    /// Segment files the recorder writes.
    pub fn segments(&self) -> PathBuf {
        self.root.join("segments")
    }

    /// Recordings spliced and waiting for upload.
    pub fn recordings(&self) -> PathBuf {
        self.root.join("recordings")
    }

    /// Creates the directory (owner-only on Unix) and opens the database.
    pub fn open_db(&self) -> Result<db::Db, AgentError> {
        secrets::create_private_dir(&self.root)?;
        db::Db::open(&self.db_path())
    }

    /// The platform's secret store for this directory (DPAPI-protected
    /// files on Windows, owner-only files elsewhere).
    pub fn secret_store(&self) -> secrets::PlatformSecretStore {
        secrets::PlatformSecretStore::new(self.secrets())
    }
}

/// This PC's host name (for enrollment and hello).
pub fn host_name() -> String {
    #[cfg(windows)]
    let name = std::env::var("COMPUTERNAME").ok();
    #[cfg(not(windows))]
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok());
    name.map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

//! The Deskrec agent engine: what runs on each agent's PC between the
//! recorder and the server, headless (`deskrec-agent`) or inside the tray
//! app.
//!
//! The public API is small: [`Agent::start`] with an [`AgentConfig`]
//! runs the engine on a [`DataDir`]; [`Agent::handle`] gives front ends an
//! [`AgentHandle`] — the [`Status`] from memory, the [`Queue`], the audit
//! log, [`Diagnostics`], "retry now" and a subscription to [`Event`]s.
//! [`enroll`] enrolls a PC; [`status::report`] reads a data directory's
//! status from another process.
//!
//! ```no_run
//! # async fn run() -> Result<(), deskrec_agent::AgentError> {
//! use deskrec_agent::{Agent, AgentConfig, DataDir};
//! let agent = Agent::start(AgentConfig::new(DataDir::new("/var/lib/deskrec-agent"))).await?;
//! let handle = agent.handle();
//! let mut events = handle.subscribe();
//! println!("{}", handle.status().indicator.headline);
//! while let Ok(event) = events.recv().await {
//!     println!("{event:?}");
//! }
//! agent.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - `engine`: the running agent, one task per concern, sharing the
//!   database and a little live state (`live`);
//! - `rte`: the RTE client (policy, contacts, watermark, clock offset);
//! - `recording`: the recording controller following the `policy`;
//! - `uploader`: contacts to spliced, resumable uploads; `pacer` caps
//!   their bandwidth;
//! - `retention`: deletes segments no contact needs, and at hard limits;
//! - `session`: logon, logoff, lock and shutdown (logind, WTS);
//! - `db`, `contacts`, `segments`, `timeline`: local state in SQLite (WAL),
//!   every change committed before it is acted on;
//! - `handle`, `view`, `indicator`: what front ends see; `bundle` the
//!   diagnostics zip; `platform` who may open Diagnostics;
//! - `lock`: one engine per data directory;
//! - `deployment`: the settings the installer writes, the data directory's
//!   access rights and its removal at uninstall.
//!
//! The data directory ([`DataDir`]) holds everything: `agent.db`,
//! `agent.lock`, `secrets/` (owner-only), `segments/` and `recordings/`.

#![deny(missing_docs)]

mod bundle;
pub mod clock;
mod contacts;
mod db;
pub mod deployment;
mod engine;
pub mod enroll;
mod error;
mod handle;
mod indicator;
mod live;
mod lock;
mod pacer;
mod pause;
mod pins;
mod platform;
mod policy;
mod recording;
mod retention;
mod rte;
pub mod secrets;
mod segments;
pub mod session;
pub mod status;
mod timeline;
mod uploader;
mod view;

use std::path::{Path, PathBuf};

pub use engine::{
    Agent, AgentConfig, Connection, ForegroundFactory, Live, SessionFactory, SourceFactory,
    process_login,
};
pub use error::AgentError;
pub use handle::{AgentHandle, EVENT_BACKLOG, Event};
pub use indicator::{Absence, Alert, Indicator, IndicatorKind};
pub use lock::Holder;
pub use pause::{PauseView, pause_label};
pub use platform::is_admin;
pub use view::{
    AuditEntry, CheckedSegment, ContactEntry, Diagnostics, Notice, NoticeKind, PolicyView, Queue,
    SegmentEntry, Status, UploadedToday,
};

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

    /// The platform's data directory: `%ProgramData%\\Deskrec` on
    /// Windows (one per PC, shared by the tray app and the headless agent);
    /// elsewhere `/var/lib/deskrec-agent` for root and
    /// `$XDG_DATA_HOME/deskrec-agent` (`~/.local/share/deskrec-agent`) for
    /// a desktop user.
    pub fn platform_default() -> Self {
        #[cfg(windows)]
        let root = std::env::var_os("ProgramData")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
            .join("Deskrec");
        #[cfg(not(windows))]
        let root = if is_admin() {
            PathBuf::from("/var/lib/deskrec-agent")
        } else {
            std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
                .unwrap_or_else(std::env::temp_dir)
                .join("deskrec-agent")
        };
        Self::new(root)
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
    pub(crate) fn open_db(&self) -> Result<db::Db, AgentError> {
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

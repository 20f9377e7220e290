//! Why the agent could not do something, in words an operator can act on.

use std::path::PathBuf;

/// An agent failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The local state database failed.
    #[error("local state database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The local state database was written by a newer agent.
    #[error(
        "the local state database has schema version {found}, newer than this agent knows ({known}); install the newer agent again"
    )]
    SchemaTooNew {
        /// `user_version` of the file.
        found: u32,
        /// Migrations this build has.
        known: u32,
    },
    /// A migration of the local state database failed and was rolled
    /// back.
    #[error("local state database: {0}")]
    Migration(deskrec_sqlite::Error),
    /// A file or directory could not be read or written.
    #[error("cannot access {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Talking to the server failed.
    #[error(transparent)]
    Client(#[from] deskrec_client::ClientError),
    /// The enrollment token could not be read.
    #[error("{0}; copy the whole token from the server's enrollment-tokens answer")]
    Token(#[from] deskrec_protocol::TokenError),
    /// A segment, recording or key failed.
    #[error(transparent)]
    Vault(#[from] deskrec_vault::VaultError),
    /// The recorder could not start or stopped with an error.
    #[error(transparent)]
    Recorder(#[from] deskrec_recorder::RecorderError),
    /// The PC has no enrollment yet.
    #[error("this PC is not enrolled (no identity in {}): run `deskrec-agent enroll <token> --data-dir {}`", data_dir.display(), data_dir.display())]
    NotEnrolled {
        /// The agent's data directory.
        data_dir: PathBuf,
    },
    /// The PC is enrolled already; enrolling again would orphan the
    /// device on the server.
    #[error("this PC is enrolled already as {device_id}; revoke it on the server and remove {} to enroll again", data_dir.display())]
    AlreadyEnrolled {
        /// The enrolled device.
        device_id: String,
        /// The agent's data directory.
        data_dir: PathBuf,
    },
    /// A stored secret is missing or unreadable.
    #[error("secret {name:?}: {reason}")]
    Secret {
        /// The secret's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The platform's session notifications could not be set up (the
    /// agent then follows the user running the process instead).
    #[error("session watcher: {0}")]
    Session(String),
    /// Another engine holds the data directory: this one does nothing.
    #[error("the data directory {} is in use by another Deskrec agent ({holder}); this one will not record or upload. Stop the other agent, or give this one another --data-dir", data_dir.display())]
    DirectoryInUse {
        /// The agent's data directory.
        data_dir: PathBuf,
        /// Who holds it, for people.
        holder: String,
    },
    /// The user may not do this (open Diagnostics without the PIN, quit
    /// when the policy does not allow it).
    #[error("refused: {0}")]
    Refused(String),
    /// Something the agent stored or received makes no sense.
    #[error("{0}")]
    Invalid(String),
}

impl From<deskrec_sqlite::Error> for AgentError {
    fn from(e: deskrec_sqlite::Error) -> Self {
        match e {
            deskrec_sqlite::Error::Sqlite(e) => Self::Db(e),
            deskrec_sqlite::Error::SchemaTooNew { found, known } => {
                Self::SchemaTooNew { found, known }
            }
            other => Self::Migration(other),
        }
    }
}

impl AgentError {
    /// An [`AgentError::Io`] for `path`, for `map_err`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| AgentError::Io { path, source }
    }
}

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
    /// A stored secret is missing: the PC was never enrolled whole, or the
    /// file was removed.
    #[error("secret {name:?}: missing; enroll this PC again")]
    SecretMissing {
        /// The secret's name.
        name: String,
    },
    /// A stored secret that must be text is not UTF-8: it was damaged.
    #[error("secret {name:?}: not UTF-8")]
    SecretNotText {
        /// The secret's name.
        name: String,
    },
    /// A secret's name is not a plain file name (a bug: the names are
    /// constants).
    #[error("secret {name:?}: not a plain file name")]
    SecretName {
        /// The secret's name.
        name: String,
    },
    /// Windows would not encrypt a secret for this PC (DPAPI).
    #[error("secret {name:?}: Windows could not protect it (CryptProtectData): {source}")]
    SecretProtect {
        /// The secret's name.
        name: String,
        /// Windows' error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A secret's DPAPI blob does not open on this PC: it was copied from
    /// another PC or is damaged, and only enrolling again helps.
    #[error(
        "secret {name:?}: {} cannot be decrypted on this PC ({detail}): it was copied from \
         another PC or is damaged; revoke this device on the server, remove {} and enroll this \
         PC again",
        path.display(),
        data_dir.display()
    )]
    SecretUndecryptable {
        /// The secret's name.
        name: String,
        /// The secret's file.
        path: PathBuf,
        /// The agent's data directory, to remove before enrolling again.
        data_dir: PathBuf,
        /// What Windows said.
        detail: String,
    },
    /// The enrollment's identity vanished from the local state while the
    /// agent ran.
    #[error("the enrollment is gone from the local state database; enroll this PC again")]
    EnrollmentGone,
    /// The device key could not be generated (its task failed).
    #[error("key generation failed: {0}")]
    KeyGeneration(#[source] tokio::task::JoinError),
    /// The server's enrollment answer is not what the protocol says.
    #[error("the enrollment answer is unreadable: {0}")]
    EnrollAnswer(#[source] serde_json::Error),
    /// A value stored in the local state database does not parse.
    #[error("stored {key} is unreadable: {source}")]
    StoredValue {
        /// The `meta` key.
        key: String,
        /// Why it does not parse.
        source: serde_json::Error,
    },
    /// A value could not be encoded as JSON (a bug).
    #[error("{what} does not serialize: {source}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// Why.
        source: serde_json::Error,
    },
    /// The platform's session notifications could not be set up (the
    /// agent then follows the user running the process instead).
    #[error("session watcher: cannot {action}: {source}")]
    SessionWatcher {
        /// What it was doing.
        action: &'static str,
        /// The platform's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The session watcher's thread ended while starting (it panicked).
    #[error("session watcher: its thread stopped while starting")]
    SessionWatcherStopped,
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
    /// A pause rule of the policy has a pattern that does not compile.
    #[error("pause rule {index}: {source}")]
    PauseRulePattern {
        /// The rule's place in the policy, from 0.
        index: usize,
        /// Why the pattern does not compile.
        source: regex::Error,
    },
    /// A pause rule of the policy matches nothing.
    #[error("pause rule {index} has no pattern: give a title, class or process")]
    PauseRuleEmpty {
        /// The rule's place in the policy, from 0.
        index: usize,
    },
    /// A pause reason is empty or too long.
    #[error("a pause reason has 1 to {max} bytes")]
    PauseReasonLength {
        /// The longest a reason may be.
        max: usize,
    },
    /// The server refused a contact's upload every time the agent tried
    /// in one round.
    #[error("the upload of contact {contact} keeps being refused")]
    UploadRefused {
        /// The contact.
        contact: String,
    },
    /// A settings file's path has no directory or file name.
    #[error("{} is not a file path", path.display())]
    NotAFilePath {
        /// The path given.
        path: PathBuf,
    },
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

//! The errors of the vault crate.

use std::path::PathBuf;

use crate::KeyId;

/// Where in a file a problem was found, so an operator can tell which chunk
/// of which file is damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Byte offset of the record that failed.
    pub offset: u64,
    /// What the record is: `"preamble"`, `"header"`, `"chunk 7"`, `"manifest"`...
    pub record: String,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.record, self.offset)
    }
}

/// Everything that can go wrong reading, writing, verifying or exporting
/// vault files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// An I/O error, with the file it happened on.
    #[error("{path}: {source}")]
    Io {
        /// The file being read or written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An I/O error with no file to name (in-memory or stream operations).
    #[error(transparent)]
    Stream(#[from] std::io::Error),
    /// The bytes do not start with a Deskrec preamble.
    #[error("not a Deskrec {expected} file (bad magic): is this the right file?")]
    NotOurs {
        /// What was expected: "segment" or "recording".
        expected: &'static str,
    },
    /// A newer (or unknown) format version.
    #[error("unsupported {kind} format version {version}: upgrade Deskrec to read it")]
    UnsupportedVersion {
        /// "segment" or "recording".
        kind: &'static str,
        /// The version found.
        version: u16,
    },
    /// The file ends in the middle of a record.
    #[error("truncated: {0} is incomplete")]
    Truncated(Location),
    /// A record's plain digest does not match its bytes: the bytes changed.
    #[error("corrupt: {0} fails its digest check")]
    DigestMismatch(Location),
    /// A record is structurally invalid.
    #[error("malformed {at}: {reason}")]
    Malformed {
        /// Where.
        at: Location,
        /// What is wrong.
        reason: String,
    },
    /// A chunk's MAC does not verify: tampered, reordered or transplanted.
    #[error("authentication failed: {0} does not verify (tampered, reordered or transplanted)")]
    MacMismatch(Location),
    /// Chunks are not in sequence or time order.
    #[error("discontinuity at {at}: {reason}")]
    Discontinuity {
        /// Where.
        at: Location,
        /// What is out of order.
        reason: String,
    },
    /// The recording's contents do not match its signed manifest.
    #[error("recording does not match its manifest: {0}")]
    ManifestMismatch(String),
    /// The manifest signature does not verify with the device's key.
    #[error(
        "manifest signature does not verify with the key of device {device}: signed by another device, or altered"
    )]
    BadSignature {
        /// The device the recording claims to come from.
        device: String,
    },
    /// No private key with this id is available to open the segment.
    #[error(
        "no private key with id {0} is loaded: the segment was encrypted for another server key (load the old key after rotation)"
    )]
    UnknownKey(KeyId),
    /// The segment key could not be unwrapped with the private key.
    #[error("the segment key does not unwrap with key {0}: wrong key or damaged header")]
    WrongKey(KeyId),
    /// A key file could not be read or parsed.
    #[error("key {path}: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The requested time range is not covered by any chunk.
    #[error("no recorded chunk covers {0}")]
    NotCovered(crate::TimeRange),
    /// The H.264 stream cannot be put into an MP4.
    #[error("cannot export: {0}")]
    Export(String),
    /// An invalid argument from the caller.
    #[error("{0}")]
    Invalid(String),
}

impl VaultError {
    /// Attaches a path to a bare I/O error.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> VaultError {
        let path = path.into();
        move |source| VaultError::Io { path, source }
    }

    /// The place in the file the error points at, when it points at one.
    pub fn location(&self) -> Option<&Location> {
        match self {
            VaultError::Truncated(l)
            | VaultError::DigestMismatch(l)
            | VaultError::MacMismatch(l) => Some(l),
            VaultError::Malformed { at, .. } | VaultError::Discontinuity { at, .. } => Some(at),
            _ => None,
        }
    }
}

/// Result alias for the vault crate.
pub type Result<T, E = VaultError> = std::result::Result<T, E>;

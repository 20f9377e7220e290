//! Secrets at rest: the device credential and signing key.
//!
//! Behind [`SecretStore`] so each platform protects them its own way;
//! [`PlatformSecretStore`] is this platform's:
//!
//! - Linux (and other Unix): [`FileSecretStore`] keeps each secret in its
//!   own file readable only by the agent's user (0600, directory 0700),
//!   written atomically.
//! - Windows: `DpapiSecretStore` keeps the same files, written the same
//!   way, but each holds only a DPAPI blob (`CryptProtectData`, machine
//!   scope): the agent runs for whichever user is logged on, and a file
//!   copied to another PC cannot be opened there. The data directory's ACL
//!   (`%ProgramData%\Deskrec`, SYSTEM and Administrators only) keeps other
//!   users of the PC away from the blobs.

#[cfg(windows)]
mod dpapi;

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::AgentError;

#[cfg(windows)]
pub use dpapi::DpapiSecretStore;

/// This platform's secret store: DPAPI-protected files on Windows,
/// owner-only files elsewhere. Both are made with `new(dir)`.
#[cfg(windows)]
pub type PlatformSecretStore = DpapiSecretStore;
/// This platform's secret store: DPAPI-protected files on Windows,
/// owner-only files elsewhere. Both are made with `new(dir)`.
#[cfg(not(windows))]
pub type PlatformSecretStore = FileSecretStore;

/// The device credential (the RTE and upload bearer token).
pub const CREDENTIAL: &str = "credential";
/// The device's RSA signing key, PKCS#8 PEM.
pub const DEVICE_KEY: &str = "device-key.pem";

/// Where the agent keeps its secrets.
pub trait SecretStore: Send + Sync {
    /// Stores `value` under `name`, replacing any previous value; durable
    /// when it returns.
    fn put(&self, name: &str, value: &[u8]) -> Result<(), AgentError>;
    /// The value under `name`, or `None` if there is none.
    fn get(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, AgentError>;
}

/// Secrets as owner-only files in one directory.
#[derive(Debug, Clone)]
pub struct FileSecretStore {
    dir: PathBuf,
}

impl FileSecretStore {
    /// Secrets in `dir` (created 0700 on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self, name: &str) -> Result<PathBuf, AgentError> {
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(AgentError::SecretName { name: name.into() });
        }
        Ok(self.dir.join(name))
    }
}

impl SecretStore for FileSecretStore {
    fn put(&self, name: &str, value: &[u8]) -> Result<(), AgentError> {
        let path = self.path(name)?;
        create_private_dir(&self.dir)?;
        deskrec_vault::durable::write_private(&path, value).map_err(AgentError::io(&path))
    }

    fn get(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, AgentError> {
        let path = self.path(name)?;
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(Zeroizing::new(bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AgentError::io(path)(e)),
        }
    }
}

/// Creates `dir` (and parents); on Unix makes it owner-only.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), AgentError> {
    std::fs::create_dir_all(dir).map_err(AgentError::io(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(AgentError::io(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_and_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileSecretStore::new(dir.path().join("secrets"));
        assert!(store.get(CREDENTIAL).unwrap().is_none());
        store.put(CREDENTIAL, b"first").unwrap();
        store.put(CREDENTIAL, b"second").unwrap();
        assert_eq!(&store.get(CREDENTIAL).unwrap().unwrap()[..], b"second");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir.path().join("secrets").join(CREDENTIAL)), 0o600);
            assert_eq!(mode(&dir.path().join("secrets")), 0o700);
        }
        assert!(store.put("../escape", b"x").is_err());
    }

    /// The store used to ignore a failed directory fsync: a credential that
    /// "was saved" could vanish at the next power cut, and the PC would
    /// have to be enrolled again.
    #[test]
    fn a_secret_whose_directory_cannot_be_synced_is_not_saved() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileSecretStore::new(dir.path().join("secrets"));
        let put = deskrec_vault::durable::testing::with_failing_dir_sync(|| {
            store.put(CREDENTIAL, b"first")
        });
        assert!(put.is_err(), "{put:?}");
    }
}

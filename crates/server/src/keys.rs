//! The server's recording keys (RSA-2048, vault format).
//!
//! Agents wrap every segment key under the current public key, sent in each
//! policy. The private keys open uploads for verification and export:
//!
//! - `data_dir/recording-key.pem`: the current key, generated on first
//!   start;
//! - `data_dir/recording-keys/<key id>.pem`: retired keys, kept after a
//!   rotation so recordings made under them stay readable.
//!
//! With a passphrase configured (`recording_key.passphrase_file` or
//! `DESKREC_KEY_PASSPHRASE`) every key file is encrypted PKCS#8, and a plain
//! current key found at start is encrypted in place. All files are 0600.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use deskrec_vault::{Keyring, PrivateKey, VaultError};

use crate::eligibility::ServerKey;

/// The current key's file in the data directory.
pub const CURRENT: &str = "recording-key.pem";
/// The directory of retired keys in the data directory.
pub const RETIRED: &str = "recording-keys";

/// Why the recording keys could not be loaded, created or rotated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key file is unreadable, damaged, or encrypted with another
    /// passphrase.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The retired-keys directory could not be read or created.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The keys a running server holds.
#[derive(Clone, Debug)]
pub struct RecordingKeys {
    /// The current public key, as policies carry it.
    pub public: ServerKey,
    /// The current and every retired private key, by id.
    pub keyring: Arc<Keyring>,
}

/// Loads the current key (generating it on first start) and every retired
/// key.
pub fn load_or_generate(dir: &Path, passphrase: Option<&[u8]>) -> Result<RecordingKeys, KeyError> {
    let path = dir.join(CURRENT);
    let current = if path.exists() {
        let key = PrivateKey::load_with(&path, passphrase)?;
        let plain = !deskrec_vault::is_encrypted_pem(&std::fs::read_to_string(&path).map_err(
            |source| KeyError::Io {
                path: path.clone(),
                source,
            },
        )?);
        if let (true, Some(p)) = (plain, passphrase) {
            save(&key, &path, Some(p))?;
            tracing::info!(key_id = %key.id(), "encrypted the recording key at rest with the configured passphrase");
        }
        key
    } else {
        let key = PrivateKey::generate()?;
        save(&key, &path, passphrase)?;
        tracing::info!(key_id = %key.id(), "generated the server recording key");
        key
    };
    let mut keyring = Keyring::new();
    for retired in retired_files(dir)? {
        keyring.add(PrivateKey::load_with(&retired, passphrase)?);
    }
    let public = ServerKey {
        public_pem: current.public().to_pem(),
        key_id: current.id().to_string(),
    };
    keyring.add(current);
    Ok(RecordingKeys {
        public,
        keyring: Arc::new(keyring),
    })
}

/// Retires the current key and generates a new one; returns the new keys
/// and the retired key's id. The retired copy is written (and synced)
/// before the current file is replaced, so a crash in between leaves the
/// old key in both places, never in neither.
pub fn rotate(dir: &Path, passphrase: Option<&[u8]>) -> Result<(RecordingKeys, String), KeyError> {
    let old = PrivateKey::load_with(&dir.join(CURRENT), passphrase)?;
    let retired_dir = dir.join(RETIRED);
    std::fs::create_dir_all(&retired_dir).map_err(|source| KeyError::Io {
        path: retired_dir.clone(),
        source,
    })?;
    save(
        &old,
        &retired_dir.join(format!("{}.pem", old.id())),
        passphrase,
    )?;
    let new = PrivateKey::generate()?;
    save(&new, &dir.join(CURRENT), passphrase)?;
    tracing::info!(old = %old.id(), new = %new.id(), "rotated the recording key");
    Ok((load_or_generate(dir, passphrase)?, old.id().to_string()))
}

fn save(key: &PrivateKey, path: &Path, passphrase: Option<&[u8]>) -> Result<(), KeyError> {
    match passphrase {
        Some(p) => key.save_encrypted(path, p)?,
        None => key.save(path)?,
    }
    Ok(())
}

fn retired_files(dir: &Path) -> Result<Vec<PathBuf>, KeyError> {
    let retired = dir.join(RETIRED);
    let entries = match std::fs::read_dir(&retired) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(KeyError::Io {
                path: retired,
                source,
            });
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| KeyError::Io {
                path: retired.clone(),
                source,
            })?
            .path();
        if path.extension().is_some_and(|e| e == "pem") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_old_keys_and_a_passphrase_encrypts_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_generate(dir.path(), None).unwrap();
        let plain = std::fs::read_to_string(dir.path().join(CURRENT)).unwrap();
        assert!(!deskrec_vault::is_encrypted_pem(&plain));
        // Configuring a passphrase later encrypts the existing key in place.
        let pass = Some(&b"s3cret"[..]);
        let again = load_or_generate(dir.path(), pass).unwrap();
        assert_eq!(again.public, first.public);
        let pem = std::fs::read_to_string(dir.path().join(CURRENT)).unwrap();
        assert!(deskrec_vault::is_encrypted_pem(&pem));
        let err = load_or_generate(dir.path(), None).unwrap_err();
        assert!(err.to_string().contains("encrypted"), "{err}");

        let (rotated, old_id) = rotate(dir.path(), pass).unwrap();
        assert_eq!(old_id, first.public.key_id);
        assert_ne!(rotated.public.key_id, first.public.key_id);
        let old: deskrec_vault::KeyId = old_id.parse().unwrap();
        let new: deskrec_vault::KeyId = rotated.public.key_id.parse().unwrap();
        assert!(
            rotated.keyring.get(&old).is_ok(),
            "the old key still opens old recordings"
        );
        assert!(rotated.keyring.get(&new).is_ok());
        let retired =
            std::fs::read_to_string(dir.path().join(RETIRED).join(format!("{old_id}.pem")))
                .unwrap();
        assert!(deskrec_vault::is_encrypted_pem(&retired));
        // And after a restart.
        let reloaded = load_or_generate(dir.path(), pass).unwrap();
        assert_eq!(reloaded.public, rotated.public);
        assert!(reloaded.keyring.get(&old).is_ok());
    }
}

//! Random secrets and their hashes, and the secret files made of them.
//!
//! Every secret the server hands out (admin token, enrollment tokens, device
//! credentials) is 256 random bits, so a plain SHA-256 is enough to store it:
//! there is nothing to brute-force. The server keeps only hashes in its
//! database, and looks secrets up by hash, which also makes comparisons
//! independent of the secret's bytes.

use std::path::Path;

use deskrec_vault::durable::write_private;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A new random secret: 32 bytes from the OS, URL-safe base64 (43 chars).
pub fn random_secret() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// `N` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The OS RNG only fails on broken platforms; there is no safe fallback.
    getrandom::fill(&mut b).expect("the operating system RNG is available");
    b
}

/// Lowercase hex SHA-256 of a secret, as stored.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Reads the secret in `path`, or creates one there (0600) if the file does
/// not exist. Returns the secret and whether it was created.
pub fn load_or_create(path: &Path) -> std::io::Result<(String, bool)> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok((s.trim().to_owned(), false)),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is empty", path.display()),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let s = random_secret();
            write_private(path, format!("{s}\n").as_bytes())?;
            Ok((s, true))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_hashes_stable() {
        let (a, b) = (random_secret(), random_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_eq!(hash_secret(&a).len(), 64);
    }

    #[test]
    fn load_or_create_creates_once_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("admin-token");
        let (s1, created) = load_or_create(&p).unwrap();
        assert!(created);
        let (s2, created) = load_or_create(&p).unwrap();
        assert!(!created);
        assert_eq!(s1, s2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    /// The server's secret files used to be renamed into place without a
    /// directory fsync: a new admin token could vanish at a power cut
    /// after it had been printed.
    #[test]
    fn a_secret_whose_directory_cannot_be_synced_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("admin-token");
        let created = deskrec_vault::durable::testing::with_failing_dir_sync(|| load_or_create(&p));
        assert!(created.is_err(), "{created:?}");
    }
}

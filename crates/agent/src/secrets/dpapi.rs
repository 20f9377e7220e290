//! DPAPI-protected secrets (Windows).
//!
//! [`DpapiSecretStore`] is a [`FileSecretStore`] whose files hold DPAPI
//! blobs instead of the secrets: `put` protects, then writes through the
//! file store (atomic, durable); `get` reads through it, then unprotects.
//!
//! Machine scope (`CRYPTPROTECT_LOCAL_MACHINE`): the agent runs for
//! whichever user is logged on, and user scope would tie the secrets to
//! the user who enrolled. Any process on this PC could open a machine-scope
//! blob through DPAPI, so the blobs still rely on the data directory's ACL;
//! what DPAPI adds is that a copied file (a backup, a disk image, a stolen
//! disk read elsewhere) is useless on another PC.

use std::path::Path;

use windows::Win32::Foundation::{E_INVALIDARG, HLOCAL, LocalFree};
use windows::Win32::Security::Cryptography::{
    CRYPT_INTEGER_BLOB, CRYPTPROTECT_LOCAL_MACHINE, CRYPTPROTECT_UI_FORBIDDEN, CryptProtectData,
    CryptUnprotectData,
};
use windows::core::{PCWSTR, w};
use zeroize::{Zeroize, Zeroizing};

use super::{FileSecretStore, SecretStore};
use crate::AgentError;

/// Mixed into every blob ("optional entropy"): not a secret, but it keeps
/// Deskrec's blobs apart from other software's machine-scope blobs (one
/// cannot be opened in place of the other). Versioned in case the way
/// secrets are stored ever changes.
const ENTROPY: &[u8] = b"Deskrec agent secret v1";
/// The description stored (in clear) in each blob: who made it.
const DESCRIPTION: PCWSTR = w!("Deskrec agent secret");
/// Never prompt: the agent runs without anyone to answer.
const FLAGS: u32 = CRYPTPROTECT_LOCAL_MACHINE | CRYPTPROTECT_UI_FORBIDDEN;

/// Secrets as files in one directory, each holding only a DPAPI blob
/// (machine scope).
#[derive(Debug, Clone)]
pub struct DpapiSecretStore {
    files: FileSecretStore,
}

impl DpapiSecretStore {
    /// Secrets in `dir` (created on first write).
    pub fn new(dir: impl Into<std::path::PathBuf>) -> Self {
        Self {
            files: FileSecretStore::new(dir),
        }
    }
}

impl SecretStore for DpapiSecretStore {
    fn put(&self, name: &str, value: &[u8]) -> Result<(), AgentError> {
        let blob = protect(value).map_err(|e| AgentError::SecretProtect {
            name: name.into(),
            source: e.into(),
        })?;
        self.files.put(name, &blob)
    }

    fn get(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, AgentError> {
        let Some(blob) = self.files.get(name)? else {
            return Ok(None);
        };
        unprotect(&blob)
            .map(Some)
            .map_err(|e| unreadable(name, &self.files.dir, &e))
    }
}

/// The error for a blob DPAPI will not open: the operator's way out is to
/// enroll the PC again.
fn unreadable(name: &str, dir: &Path, e: &windows::core::Error) -> AgentError {
    AgentError::SecretUndecryptable {
        name: name.into(),
        path: dir.join(name),
        data_dir: dir.parent().unwrap_or(dir).to_owned(),
        detail: e.message().to_string(),
    }
}

/// `plain` as a DPAPI blob.
fn protect(plain: &[u8]) -> windows::core::Result<Vec<u8>> {
    let input = blob_of(plain)?;
    let entropy = blob_of(ENTROPY)?;
    let mut output = LocalBlob::default();
    // SAFETY: the input blobs point into live slices DPAPI only reads; on
    // success it fills `output` with a LocalAlloc'ed buffer LocalBlob frees.
    unsafe {
        CryptProtectData(
            &input,
            DESCRIPTION,
            Some(&entropy),
            None,
            None,
            FLAGS,
            &mut output.0,
        )?;
    }
    Ok(output.bytes().to_vec())
}

/// The secret inside a DPAPI blob made by [`protect`] on this PC.
fn unprotect(blob: &[u8]) -> windows::core::Result<Zeroizing<Vec<u8>>> {
    let input = blob_of(blob)?;
    let entropy = blob_of(ENTROPY)?;
    let mut output = LocalBlob::default();
    // SAFETY: as in `protect`; the description is not asked for.
    unsafe {
        CryptUnprotectData(
            &input,
            None,
            Some(&entropy),
            None,
            None,
            CRYPTPROTECT_UI_FORBIDDEN,
            &mut output.0,
        )?;
    }
    // Exactly sized, so the copy is never reallocated (which would leave an
    // unzeroed copy behind); LocalBlob zeroes DPAPI's buffer.
    let mut plain = Zeroizing::new(Vec::with_capacity(output.bytes().len()));
    plain.extend_from_slice(output.bytes());
    Ok(plain)
}

/// A blob DPAPI reads from `bytes` (it does not write through `pbData`).
fn blob_of(bytes: &[u8]) -> windows::core::Result<CRYPT_INTEGER_BLOB> {
    Ok(CRYPT_INTEGER_BLOB {
        cbData: u32::try_from(bytes.len()).map_err(|_| windows::core::Error::from(E_INVALIDARG))?,
        pbData: bytes.as_ptr().cast_mut(),
    })
}

/// A blob DPAPI allocated: zeroed (it may be plaintext) and freed on drop.
#[derive(Default)]
struct LocalBlob(CRYPT_INTEGER_BLOB);

impl LocalBlob {
    fn bytes(&self) -> &[u8] {
        if self.0.pbData.is_null() {
            return &[];
        }
        // SAFETY: DPAPI set pbData to a buffer of cbData bytes, alive until
        // this value drops.
        unsafe { std::slice::from_raw_parts(self.0.pbData, self.0.cbData as usize) }
    }
}

impl Drop for LocalBlob {
    fn drop(&mut self) {
        if self.0.pbData.is_null() {
            return;
        }
        // SAFETY: as in `bytes`; the buffer is ours to overwrite and free,
        // once.
        unsafe {
            std::slice::from_raw_parts_mut(self.0.pbData, self.0.cbData as usize).zeroize();
            LocalFree(Some(HLOCAL(self.0.pbData.cast())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::{CREDENTIAL, DEVICE_KEY};

    const PLAIN: &[u8] = b"deskrec-credential-0123456789abcdef";

    #[test]
    fn secrets_round_trip_through_dpapi() {
        let dir = tempfile::tempdir().unwrap();
        let store = DpapiSecretStore::new(dir.path().join("secrets"));
        assert!(store.get(CREDENTIAL).unwrap().is_none());
        store.put(CREDENTIAL, b"first").unwrap();
        store.put(CREDENTIAL, PLAIN).unwrap();
        store.put(DEVICE_KEY, b"").unwrap();
        assert_eq!(&store.get(CREDENTIAL).unwrap().unwrap()[..], PLAIN);
        assert_eq!(&store.get(DEVICE_KEY).unwrap().unwrap()[..], b"");
        assert!(store.put("../escape", b"x").is_err());
    }

    #[test]
    fn the_file_holds_only_a_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = DpapiSecretStore::new(dir.path().join("secrets"));
        store.put(CREDENTIAL, PLAIN).unwrap();
        let file = std::fs::read(dir.path().join("secrets").join(CREDENTIAL)).unwrap();
        assert!(file.len() > PLAIN.len(), "{} bytes", file.len());
        assert!(
            !file.windows(8).any(|w| PLAIN.windows(8).any(|p| p == w)),
            "no 8 bytes of the secret appear in the file"
        );
        // The blob is not the secret under another entropy: only Deskrec's
        // opens it.
        let input = blob_of(&file).unwrap();
        let mut output = LocalBlob::default();
        // SAFETY: as in `unprotect`, without entropy.
        let other = unsafe {
            CryptUnprotectData(
                &input,
                None,
                None,
                None,
                None,
                CRYPTPROTECT_UI_FORBIDDEN,
                &mut output.0,
            )
        };
        assert!(other.is_err(), "opened without Deskrec's entropy");
    }

    #[test]
    fn a_damaged_blob_says_to_enroll_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = DpapiSecretStore::new(dir.path().join("secrets"));
        store.put(CREDENTIAL, PLAIN).unwrap();
        let path = dir.path().join("secrets").join(CREDENTIAL);
        let mut file = std::fs::read(&path).unwrap();
        let last = file.len() - 1;
        // In the encrypted data near the end (the blob's header is clear).
        file[last - 24] ^= 0x01;
        std::fs::write(&path, &file).unwrap();
        let err = store.get(CREDENTIAL).unwrap_err();
        let AgentError::SecretUndecryptable { name, .. } = &err else {
            panic!("expected a secret error, got {err}")
        };
        assert_eq!(name, CREDENTIAL);
        let message = err.to_string();
        assert!(message.contains("enroll this PC again"), "{message}");
        assert!(
            message.contains("cannot be decrypted on this PC"),
            "{message}"
        );
        assert!(!err.to_string().contains("deskrec-credential"), "{err}");
    }
}

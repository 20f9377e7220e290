//! RSA keys: the server's recording key pair and each device's signing key.
//!
//! Keys are RSA-2048, stored as PEM: private keys as PKCS#8, public keys as
//! SubjectPublicKeyInfo. A key's [`KeyId`] is the SHA-256 of its public key's
//! DER encoding, so a segment header can name the server key that opens it
//! and a manifest the device key that signed it, without carrying the key.

use std::collections::HashMap;
use std::path::Path;

use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::error::{Result, VaultError};

/// Size of the keys Deskrec generates.
pub const KEY_BITS: usize = 2048;

/// The SHA-256 digest of a public key's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 32]);

impl KeyId {
    fn of(public: &rsa::PublicKey) -> KeyId {
        let der = public
            .to_public_key_der()
            .expect("an RSA public key always encodes to DER");
        KeyId(Sha256::digest(der.as_bytes()).into())
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyId({})", &hex::encode(self.0)[..16])
    }
}

impl std::str::FromStr for KeyId {
    type Err = VaultError;
    fn from_str(s: &str) -> Result<Self> {
        let mut id = [0u8; 32];
        hex::decode_to_slice(s, &mut id)
            .map_err(|e| VaultError::Invalid(format!("bad key id {s:?}: {e}")))?;
        Ok(KeyId(id))
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A public key: the server's (wraps segment keys) or a device's (verifies
/// manifests).
#[derive(Clone, Debug)]
pub struct PublicKey {
    pub(crate) inner: rsa::PublicKey,
    id: KeyId,
}

impl PublicKey {
    /// The key's id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The modulus' size in bits (2048 for the keys Deskrec makes).
    pub fn bits(&self) -> u32 {
        use rsa::traits::PublicKeyParts;
        self.inner.n().bit_width()
    }

    /// Parses a SubjectPublicKeyInfo PEM.
    pub fn from_pem(pem: &str) -> Result<Self> {
        let inner = rsa::PublicKey::from_public_key_pem(pem)
            .map_err(|e| key_error("<pem>", format!("not an RSA public key PEM: {e}")))?;
        Ok(Self::from_inner(inner))
    }

    /// The key as SubjectPublicKeyInfo PEM.
    pub fn to_pem(&self) -> String {
        self.inner
            .to_public_key_pem(LineEnding::LF)
            .expect("an RSA public key always encodes to PEM")
    }

    /// Reads a public key file.
    pub fn load(path: &Path) -> Result<Self> {
        let pem = std::fs::read_to_string(path).map_err(VaultError::io(path))?;
        Self::from_pem(&pem).map_err(|e| rename_key_error(e, path))
    }

    /// Writes the key as PEM.
    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_pem()).map_err(VaultError::io(path))
    }

    fn from_inner(inner: rsa::PublicKey) -> Self {
        let id = KeyId::of(&inner);
        Self { inner, id }
    }
}

/// A private key: the server's (unwraps segment keys) or a device's (signs
/// manifests). Never logged: `Debug` shows only the id.
#[derive(Clone)]
pub struct PrivateKey {
    pub(crate) inner: rsa::PrivateKey,
    public: PublicKey,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({:?})", self.public.id)
    }
}

impl PrivateKey {
    /// Generates a new RSA-2048 key from the operating system's RNG.
    pub fn generate() -> Result<Self> {
        let inner =
            rsa::PrivateKey::new(&mut rsa::rand_core::UnwrapErr(getrandom::SysRng), KEY_BITS)
                .map_err(|e| VaultError::Invalid(format!("RSA key generation failed: {e}")))?;
        Ok(Self::from_inner(inner))
    }

    /// The matching public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The key's id (that of its public key).
    pub fn id(&self) -> KeyId {
        self.public.id
    }

    /// Parses a PKCS#8 PEM.
    pub fn from_pem(pem: &str) -> Result<Self> {
        let inner = rsa::PrivateKey::from_pkcs8_pem(pem)
            .map_err(|e| key_error("<pem>", format!("not an RSA PKCS#8 private key PEM: {e}")))?;
        Ok(Self::from_inner(inner))
    }

    /// The key as PKCS#8 PEM. Handle with care: this is the secret.
    pub fn to_pem(&self) -> zeroize::Zeroizing<String> {
        let pem = self
            .inner
            .to_pkcs8_pem(LineEnding::LF)
            .expect("an RSA private key always encodes to PEM");
        zeroize::Zeroizing::new(pem.to_string())
    }

    /// The key as encrypted PKCS#8 PEM (`ENCRYPTED PRIVATE KEY`: PBES2 with
    /// scrypt and AES-256-CBC, readable by `openssl pkcs8`), for keys kept
    /// on disk where the file alone must not open recordings.
    pub fn to_encrypted_pem(&self, passphrase: &[u8]) -> Result<zeroize::Zeroizing<String>> {
        self.inner
            .to_pkcs8_encrypted_pem(passphrase, LineEnding::LF)
            .map_err(|e| VaultError::Invalid(format!("cannot encrypt the private key: {e}")))
    }

    /// Parses a PKCS#8 PEM, plain or encrypted; an encrypted one needs
    /// `passphrase`.
    pub fn from_pem_with(pem: &str, passphrase: Option<&[u8]>) -> Result<Self> {
        if !is_encrypted_pem(pem) {
            return Self::from_pem(pem);
        }
        let Some(passphrase) = passphrase else {
            return Err(key_error(
                "<pem>",
                "the key is encrypted with a passphrase, and none was given".into(),
            ));
        };
        let inner = rsa::PrivateKey::from_pkcs8_encrypted_pem(pem, passphrase).map_err(|_| {
            key_error(
                "<pem>",
                "cannot decrypt the key: wrong passphrase, or the file is damaged".into(),
            )
        })?;
        Ok(Self::from_inner(inner))
    }

    /// Reads a private key file.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, None)
    }

    /// Reads a private key file, plain or encrypted with `passphrase`.
    pub fn load_with(path: &Path, passphrase: Option<&[u8]>) -> Result<Self> {
        let pem =
            zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(VaultError::io(path))?);
        Self::from_pem_with(&pem, passphrase).map_err(|e| rename_key_error(e, path))
    }

    /// Writes the key as PEM, readable by its owner only (Unix mode 0600),
    /// replacing the file atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::durable::write_private(path, self.to_pem().as_bytes()).map_err(VaultError::io(path))
    }

    /// Like [`PrivateKey::save`], encrypted with `passphrase`.
    pub fn save_encrypted(&self, path: &Path, passphrase: &[u8]) -> Result<()> {
        crate::durable::write_private(path, self.to_encrypted_pem(passphrase)?.as_bytes())
            .map_err(VaultError::io(path))
    }

    fn from_inner(inner: rsa::PrivateKey) -> Self {
        let public = PublicKey::from_inner(inner.to_public_key());
        Self { inner, public }
    }
}

/// The server's private keys by id: the current one and any older ones kept
/// after rotation so old recordings stay readable.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    keys: HashMap<KeyId, PrivateKey>,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key.
    pub fn add(&mut self, key: PrivateKey) {
        self.keys.insert(key.id(), key);
    }

    /// The key with this id.
    pub fn get(&self, id: &KeyId) -> Result<&PrivateKey> {
        self.keys.get(id).ok_or(VaultError::UnknownKey(*id))
    }
}

impl From<PrivateKey> for Keyring {
    fn from(key: PrivateKey) -> Self {
        let mut ring = Keyring::new();
        ring.add(key);
        ring
    }
}

/// Whether a PEM holds an encrypted PKCS#8 key.
pub fn is_encrypted_pem(pem: &str) -> bool {
    pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
}

fn key_error(path: impl Into<std::path::PathBuf>, reason: String) -> VaultError {
    VaultError::Key {
        path: path.into(),
        reason,
    }
}

fn rename_key_error(e: VaultError, path: &Path) -> VaultError {
    match e {
        VaultError::Key { reason, .. } => key_error(path, reason),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encrypted_key_opens_with_its_passphrase_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        let key = PrivateKey::generate().unwrap();
        key.save_encrypted(&path, b"correct horse").unwrap();
        let pem = std::fs::read_to_string(&path).unwrap();
        assert!(is_encrypted_pem(&pem));
        assert!(!pem.contains("BEGIN PRIVATE KEY"));

        let opened = PrivateKey::load_with(&path, Some(b"correct horse")).unwrap();
        assert_eq!(opened.id(), key.id());
        let wrong = PrivateKey::load_with(&path, Some(b"battery staple")).unwrap_err();
        assert!(wrong.to_string().contains("wrong passphrase"), "{wrong}");
        let none = PrivateKey::load(&path).unwrap_err();
        assert!(none.to_string().contains("encrypted"), "{none}");
        assert!(none.to_string().contains("key.pem"), "{none}");

        // A plain key loads whether or not a passphrase is configured.
        key.save(&path).unwrap();
        let plain = PrivateKey::load_with(&path, Some(b"unused")).unwrap();
        assert_eq!(plain.id(), key.id());
    }
}

//! The server's TLS identity: configured files, or a self-signed
//! certificate generated on first start and reused afterwards; and the
//! pins agents trust it by.
//!
//! Agents do not trust a CA for a self-signed server: the enrollment token
//! carries the pin of the server's public key, and agents pin it (see
//! [`deskrec_protocol::ServerPins`]). A renewed certificate for the same
//! key changes nothing for them. To change the key without cutting agents
//! off, the server first announces the next key's pin, signed with the
//! current key; agents that have read the announcement trust both.
//!
//! The generated identity lives in `data_dir/tls/`: `cert.pem` and
//! `key.pem` now, `next-key.pem` once a next key is prepared, and
//! `next-cert.pem` once a rotation is asked for. A rotation completes at the
//! next start, in steps that are each one rename, so a crash anywhere
//! leaves either the old pair or the new one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use deskrec_client::Pin;
use deskrec_protocol::{ServerPins, next_pin_message};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::SigningKey;
use rustls::{ServerConfig, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::config::TlsFiles;
use deskrec_vault::durable::write_private;

/// The generated identity's files, in `data_dir/tls/`.
const CERT: &str = "cert.pem";
const KEY: &str = "key.pem";
const NEXT_KEY: &str = "next-key.pem";
const NEXT_CERT: &str = "next-cert.pem";

/// Why the TLS identity could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate or key.
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// The key cannot sign the pin announcement.
    #[error("the TLS key cannot sign with ECDSA, Ed25519 or RSA-PSS")]
    NoSigningScheme,
    /// A key change was asked of a server whose certificate is configured.
    #[error(
        "the TLS certificate is configured ([tls] cert and key): set [tls] next_key to the next key's file and restart to announce it; install the new certificate and key files and restart to rotate"
    )]
    Configured,
    /// A rotation was asked for before a next key was announced.
    #[error("no next TLS key is announced: prepare one first, and rotate once agents have read it")]
    NoNextKey,
}

/// The certificate, the ready rustls configuration and the pins.
#[derive(Clone, Debug)]
pub struct TlsIdentity {
    /// Server-side rustls configuration (ring provider, HTTP/1.1 ALPN).
    pub config: Arc<ServerConfig>,
    /// The leaf certificate, DER.
    pub cert_der: CertificateDer<'static>,
    /// Lowercase hex SHA-256 of `cert_der`: what agents enrolled before
    /// public-key pins pin (tokens still carry it for them).
    pub fingerprint: String,
    /// The public-key pin of the certificate: what agents pin.
    pub pin: Pin,
    /// Where a next key goes: `data_dir/tls/` for the generated identity,
    /// `None` when the certificate is configured.
    generated: Option<Generated>,
    /// Signs the announcement.
    signer: Arc<dyn SigningKey>,
    /// The announcement, signed once per change rather than per request
    /// (it is served without authentication).
    announced: Arc<RwLock<ServerPins>>,
}

/// The generated identity's directory and the names its certificates are
/// for.
#[derive(Clone, Debug)]
struct Generated {
    dir: PathBuf,
    hostnames: Vec<String>,
}

impl TlsIdentity {
    /// What `GET /api/v1/tls/pins` answers.
    pub fn pins(&self) -> ServerPins {
        self.announced
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Prepares the next key of the generated identity (once: asking
    /// again announces the same key) and announces its pin from now on.
    pub fn prepare_next_key(&self) -> Result<Pin, TlsError> {
        let generated = self.generated.as_ref().ok_or(TlsError::Configured)?;
        let path = generated.dir.join(NEXT_KEY);
        if !path.exists() {
            let key = rcgen::KeyPair::generate()?;
            write_private(&path, key.serialize_pem().as_bytes()).map_err(io_at(&path))?;
            tracing::info!(key = %path.display(), "prepared the next TLS key");
        }
        let pin = key_pin(&path)?;
        let mut announced = self.announced.write().unwrap_or_else(|e| e.into_inner());
        // Signed again only when it changes: ECDSA signatures differ each
        // time, and every change is a new policy to every agent.
        if announced.next_pin != Some(pin.to_string()) {
            *announced = announce(self.signer.as_ref(), &self.cert_der, Some(&pin))?;
        }
        Ok(pin)
    }

    /// Asks for the generated identity to change to its announced next key
    /// at the next start: writes that key's certificate beside it.
    pub fn rotate(&self) -> Result<Pin, TlsError> {
        let generated = self.generated.as_ref().ok_or(TlsError::Configured)?;
        let key_path = generated.dir.join(NEXT_KEY);
        if !key_path.exists() {
            return Err(TlsError::NoNextKey);
        }
        let key = rcgen::KeyPair::from_pem(&read_text(&key_path)?)?;
        let cert = self_signed(&key, &generated.hostnames)?;
        let cert_path = generated.dir.join(NEXT_CERT);
        write_private(&cert_path, cert.as_bytes()).map_err(io_at(&cert_path))?;
        tracing::info!(cert = %cert_path.display(), "the next TLS key is served from the next start");
        key_pin(&key_path)
    }
}

/// Loads the configured files, or the generated certificate in
/// `data_dir/tls/`, generating it (for `hostnames`) if it does not exist.
pub fn load_or_generate(
    data_dir: &Path,
    files: &TlsFiles,
    hostnames: &[String],
) -> Result<TlsIdentity, TlsError> {
    let (cert_path, key_path, next_key, generated) = match (&files.cert, &files.key) {
        (Some(c), Some(k)) => (c.clone(), k.clone(), files.next_key.clone(), None),
        _ => {
            let dir = data_dir.join("tls");
            std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
            finish_rotation(&dir)?;
            let (c, k) = (dir.join(CERT), dir.join(KEY));
            if !c.exists() || !k.exists() {
                generate(&c, &k, hostnames)?;
            }
            let next = Some(dir.join(NEXT_KEY)).filter(|p| p.exists());
            let generated = Generated {
                dir,
                hostnames: hostnames.to_vec(),
            };
            (c, k, next, Some(generated))
        }
    };
    let next_pin = next_key.as_deref().map(key_pin).transpose()?;
    load(&cert_path, &key_path, next_pin.as_ref(), generated)
}

/// Completes a rotation asked for before this start: the next key and its
/// certificate become the current ones. Each step is one rename and the
/// certificate moves last, so a crash between them is finished here at the
/// following start.
fn finish_rotation(dir: &Path) -> Result<(), TlsError> {
    let next_cert = dir.join(NEXT_CERT);
    if !next_cert.exists() {
        return Ok(());
    }
    let next_key = dir.join(NEXT_KEY);
    if next_key.exists() {
        let key = dir.join(KEY);
        std::fs::rename(&next_key, &key).map_err(io_at(&key))?;
    }
    let cert = dir.join(CERT);
    std::fs::rename(&next_cert, &cert).map_err(io_at(&cert))?;
    // Both renames are durable before the rotation is reported done.
    deskrec_vault::durable::sync_dir(dir).map_err(io_at(dir))?;
    tracing::info!(cert = %cert.display(), "rotated to the announced TLS key");
    Ok(())
}

/// The public-key pin of a private key file.
fn key_pin(path: &Path) -> Result<Pin, TlsError> {
    let key = rcgen::KeyPair::from_pem(&read_text(path)?)?;
    Ok(Pin::PublicKey(
        Sha256::digest(rcgen::PublicKeyData::subject_public_key_info(&key)).into(),
    ))
}

/// Signs the announcement of `next` with the current key.
fn announce(
    signer: &dyn SigningKey,
    cert: &CertificateDer<'_>,
    next: Option<&Pin>,
) -> Result<ServerPins, TlsError> {
    use SignatureScheme::*;
    let schemes = [
        ECDSA_NISTP256_SHA256,
        ECDSA_NISTP384_SHA384,
        ED25519,
        RSA_PSS_SHA256,
    ];
    let signer = signer
        .choose_scheme(&schemes)
        .ok_or(TlsError::NoSigningScheme)?;
    let next_pin = next.map(Pin::to_string);
    let signature = signer.sign(&next_pin_message(next_pin.as_deref()))?;
    Ok(ServerPins {
        certificate: STANDARD.encode(cert),
        next_pin,
        scheme: u16::from(signer.scheme()),
        signature: STANDARD.encode(signature),
    })
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + use<> {
    let path = path.to_owned();
    move |source| TlsError::Io { path, source }
}

fn read_text(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(io_at(path))
}

/// A self-signed certificate for `key`, for localhost and `hostnames`.
fn self_signed(key: &rcgen::KeyPair, hostnames: &[String]) -> Result<String, TlsError> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    names.extend(hostnames.iter().cloned());
    names.sort();
    names.dedup();
    Ok(rcgen::CertificateParams::new(names)?
        .self_signed(key)?
        .pem())
}

fn generate(cert_path: &Path, key_path: &Path, hostnames: &[String]) -> Result<(), TlsError> {
    let key = rcgen::KeyPair::generate()?;
    let cert = self_signed(&key, hostnames)?;
    // Key first: a certificate without its key would be reused and fail.
    write_private(key_path, key.serialize_pem().as_bytes()).map_err(io_at(key_path))?;
    write_private(cert_path, cert.as_bytes()).map_err(io_at(cert_path))?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed TLS certificate");
    Ok(())
}

fn load(
    cert_path: &Path,
    key_path: &Path,
    next: Option<&Pin>,
    generated: Option<Generated>,
) -> Result<TlsIdentity, TlsError> {
    let read = |path: &Path| std::fs::read(path).map_err(io_at(path));
    let pem_err = |path: &Path, reason: String| TlsError::Pem {
        path: path.to_owned(),
        reason,
    };
    let cert_pem = read(cert_path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(cert_path, e.to_string()))?;
    let Some(leaf) = certs.first().cloned() else {
        return Err(pem_err(cert_path, "no certificate".into()));
    };
    let key = PrivateKeyDer::from_pem_slice(&read(key_path)?)
        .map_err(|e| pem_err(key_path, format!("no usable private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signer = provider.key_provider.load_private_key(key.clone_key())?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let pin = Pin::of_key(&leaf).map_err(|e| pem_err(cert_path, e.to_string()))?;
    let announced = announce(signer.as_ref(), &leaf, next)?;
    Ok(TlsIdentity {
        config: Arc::new(config),
        fingerprint: hex::encode(Sha256::digest(leaf.as_ref())),
        pin,
        generated,
        signer,
        announced: Arc::new(RwLock::new(announced)),
        cert_der: leaf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_generate(dir.path(), &TlsFiles::default(), &[]).unwrap();
        let b = load_or_generate(dir.path(), &TlsFiles::default(), &[]).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(a.fingerprint.len(), 64);
        let configured = TlsFiles {
            cert: Some(dir.path().join("tls/cert.pem")),
            key: Some(dir.path().join("tls/key.pem")),
            next_key: None,
        };
        let other = tempfile::tempdir().unwrap();
        let c = load_or_generate(other.path(), &configured, &[]).unwrap();
        assert_eq!(c.fingerprint, a.fingerprint);
        assert_eq!(c.pin, a.pin);
    }

    /// A rotation completes at the next start, whether or not a crash cut
    /// the previous start's renames short.
    #[test]
    fn a_rotation_completes_at_the_next_start_even_after_a_crash_midway() {
        for crash_after_key in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let files = TlsFiles::default();
            let old = load_or_generate(dir.path(), &files, &[]).unwrap();
            let next = old.prepare_next_key().unwrap();
            assert_eq!(old.rotate().unwrap(), next);
            assert_eq!(old.pins().next_pin, Some(next.to_string()));
            let tls = dir.path().join("tls");
            if crash_after_key {
                std::fs::rename(tls.join(NEXT_KEY), tls.join(KEY)).unwrap();
            }
            let new = load_or_generate(dir.path(), &files, &[]).unwrap();
            assert_eq!(new.pin, next, "crash after the key: {crash_after_key}");
            assert_eq!(new.pins().next_pin, None);
            assert!(!tls.join(NEXT_CERT).exists() && !tls.join(NEXT_KEY).exists());
            // And it stays rotated.
            let again = load_or_generate(dir.path(), &files, &[]).unwrap();
            assert_eq!(again.pin, next);
        }
    }
}

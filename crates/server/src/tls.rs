//! The server's TLS identity: configured files, or a self-signed
//! certificate generated on first start and reused afterwards.
//!
//! Agents do not trust a CA for a self-signed server: the enrollment token
//! carries the SHA-256 fingerprint of the certificate, and agents pin it.
//! The fingerprint is logged at start (it is public).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::TlsFiles;
use crate::secret::write_private;

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
}

/// The certificate and the ready rustls configuration.
#[derive(Clone, Debug)]
pub struct TlsIdentity {
    /// Server-side rustls configuration (ring provider, HTTP/1.1 ALPN).
    pub config: Arc<ServerConfig>,
    /// The leaf certificate, DER.
    pub cert_der: CertificateDer<'static>,
    /// Lowercase hex SHA-256 of `cert_der`: what agents pin.
    pub fingerprint: String,
}

/// Loads the configured files, or the generated certificate in
/// `data_dir/tls/`, generating it (for `hostnames`) if it does not exist.
pub fn load_or_generate(
    data_dir: &Path,
    files: &TlsFiles,
    hostnames: &[String],
) -> Result<TlsIdentity, TlsError> {
    let (cert_path, key_path) = match (&files.cert, &files.key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => {
            let dir = data_dir.join("tls");
            let io = |source| TlsError::Io {
                path: dir.clone(),
                source,
            };
            std::fs::create_dir_all(&dir).map_err(io)?;
            let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
            if !c.exists() || !k.exists() {
                generate(&c, &k, hostnames)?;
            }
            (c, k)
        }
    };
    load(&cert_path, &key_path)
}

fn generate(cert_path: &Path, key_path: &Path, hostnames: &[String]) -> Result<(), TlsError> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    names.extend(hostnames.iter().cloned());
    names.sort();
    names.dedup();
    let certified = rcgen::generate_simple_self_signed(names)?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Io { path, source }
    };
    // Key first: a certificate without its key would be reused and fail.
    write_private(key_path, certified.signing_key.serialize_pem().as_bytes())
        .map_err(io(key_path))?;
    write_private(cert_path, certified.cert.pem().as_bytes()).map_err(io(cert_path))?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed TLS certificate");
    Ok(())
}

fn load(cert_path: &Path, key_path: &Path) -> Result<TlsIdentity, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Io {
            path: path.to_owned(),
            source,
        })
    };
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
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsIdentity {
        config: Arc::new(config),
        fingerprint: hex::encode(Sha256::digest(leaf.as_ref())),
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
        };
        let other = tempfile::tempdir().unwrap();
        let c = load_or_generate(other.path(), &configured, &[]).unwrap();
        assert_eq!(c.fingerprint, a.fingerprint);
    }
}

//! Fetching a contact's call audio from the contact centre's recording
//! store over HTTPS, for ACDs that hand out a URL instead of the file.
//!
//! The server makes requests on an administrator's word, so it fetches
//! only from the hosts [`FetchConfig::hosts`] names (exactly, by name; no
//! IP literal unless it is listed), only over HTTPS checked against the
//! Web PKI roots or [`FetchConfig::ca_file`], follows no redirect (one
//! could leave the list), stops at [`Limits::audio_mib`] and gives up after
//! [`FetchConfig::timeout_secs`].
//!
//! [`Limits::audio_mib`]: crate::limits::Limits::audio_mib

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

/// Where audio may be fetched from.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct FetchConfig {
    /// Host names (or IP addresses) audio URLs may name, compared without
    /// case; empty: no fetching.
    pub hosts: Vec<String>,
    /// PEM certificates of a private CA to trust besides the Web PKI
    /// roots, for an on-premises recording store.
    pub ca_file: Option<PathBuf>,
    /// Seconds a whole fetch may take.
    pub timeout_secs: u64,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            hosts: vec![],
            ca_file: None,
            timeout_secs: 120,
        }
    }
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL is not an HTTPS URL of an allowed host.
    #[error("{0}")]
    NotAllowed(String),
    /// Over the size limit.
    #[error("the audio at the URL is over the size limit")]
    TooLarge,
    /// The fetch failed: connection, TLS, status, timeout.
    #[error("fetching the audio failed: {0}")]
    Failed(String),
}

/// Fetches `url` into `dest`, at most `limit` bytes.
pub async fn fetch(
    config: &FetchConfig,
    url: &str,
    limit: u64,
    dest: &Path,
) -> Result<(), FetchError> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|_| FetchError::NotAllowed(format!("{url:?} is not a URL")))?;
    if uri.scheme_str() != Some("https") {
        return Err(FetchError::NotAllowed(format!(
            "{url:?}: only https URLs are fetched"
        )));
    }
    let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
    if !config.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return Err(FetchError::NotAllowed(format!(
            "{host:?} is not in [audio_fetch] hosts"
        )));
    }
    let port = uri.port_u16().unwrap_or(443);
    let timeout = Duration::from_secs(config.timeout_secs.max(1));
    tokio::time::timeout(timeout, get(config, &uri, host, port, limit, dest))
        .await
        .map_err(|_| FetchError::Failed(format!("no whole answer within {timeout:?}")))?
}

async fn get(
    config: &FetchConfig,
    uri: &hyper::Uri,
    host: &str,
    port: u16,
    limit: u64,
    dest: &Path,
) -> Result<(), FetchError> {
    let failed = |what: &str, e: &dyn std::fmt::Display| FetchError::Failed(format!("{what}: {e}"));
    let tls = tokio_rustls::TlsConnector::from(client_config(config)?);
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| failed("connecting", &e))?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| failed("the host name", &e))?;
    let stream = tls
        .connect(name, tcp)
        .await
        .map_err(|e| failed("TLS", &e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed("HTTP", &e))?;
    tokio::spawn(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let req = hyper::Request::get(path)
        .header(
            hyper::header::HOST,
            uri.authority().map_or(host, |a| a.as_str()),
        )
        .header(hyper::header::USER_AGENT, "deskrec-server")
        .body(Empty::<Bytes>::new())
        .map_err(|e| failed("the request", &e))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| failed("the request", &e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(FetchError::Failed(format!(
            "the server answered {status} (redirects are not followed)"
        )));
    }
    let declared = resp
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(FetchError::TooLarge);
    }
    let mut body = resp.into_body();
    let mut file = tokio::fs::File::create(dest)
        .await
        .map_err(|e| failed("writing", &e))?;
    let mut n: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| failed("reading the answer", &e))?;
        if let Ok(data) = frame.into_data() {
            n += data.len() as u64;
            if n > limit {
                return Err(FetchError::TooLarge);
            }
            file.write_all(&data)
                .await
                .map_err(|e| failed("writing", &e))?;
        }
    }
    if declared.is_some_and(|d| d != n) {
        return Err(FetchError::Failed(format!(
            "the answer declared {} bytes and held {n}",
            declared.unwrap_or_default()
        )));
    }
    file.sync_all().await.map_err(|e| failed("writing", &e))
}

/// TLS trusting the Web PKI roots and the configured CA.
fn client_config(config: &FetchConfig) -> Result<Arc<rustls::ClientConfig>, FetchError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &config.ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            FetchError::Failed(format!("[audio_fetch] ca_file {}: {e}", path.display()))
        })?;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| {
                FetchError::Failed(format!("[audio_fetch] ca_file {}: {e}", path.display()))
            })?;
            roots.add(cert).map_err(|e| {
                FetchError::Failed(format!("[audio_fetch] ca_file {}: {e}", path.display()))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FetchError::Failed(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

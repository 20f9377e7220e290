//! Server configuration: a TOML file over built-in defaults.
//!
//! Every key is optional; an empty file (or no file) gives a server that
//! listens on `0.0.0.0:8443` and keeps its state under the default data
//! directory. Unknown keys are errors so a typo does not silently fall back
//! to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The validated server configuration.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the database, keys, certificate and admin token live. Created
    /// on first start.
    pub data_dir: PathBuf,
    /// Address and port of the single HTTPS + WebSocket listener.
    pub listen: SocketAddr,
    /// The URL agents use to reach this server, written into enrollment
    /// tokens. Defaults to `https://<listen address>:<port>`, with
    /// `localhost` for an unspecified address: set it in production.
    pub public_url: Option<String>,
    /// Certificate files; a self-signed certificate is generated when unset.
    pub tls: TlsFiles,
    /// How the recording private key is protected at rest.
    pub recording_key: RecordingKeyConfig,
    /// What one client may hold open, and for how long.
    pub limits: crate::limits::Limits,
    /// The tool that muxes call audio into downloads.
    pub mux: crate::mux::MuxConfig,
    /// Where call audio may be fetched from by URL.
    pub audio_fetch: crate::audio::fetch::FetchConfig,
    /// How long recordings and call audio are kept (`compliance`).
    pub retention: crate::compliance::retention::RetentionConfig,
}

/// Protection of the recording private keys on disk. Without a passphrase
/// the key files are plain PEM (mode 0600) and whoever can read the data
/// directory can open every recording; with one, they are encrypted PKCS#8
/// and the passphrase lives elsewhere (a key file on another volume, a
/// secret manager's mount, or the environment).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingKeyConfig {
    /// A file whose contents (trailing newline removed) are the passphrase.
    /// The environment variable `DESKREC_KEY_PASSPHRASE` is used when this is
    /// unset.
    pub passphrase_file: Option<PathBuf>,
}

/// The environment variable that holds the recording key passphrase when
/// no `recording_key.passphrase_file` is configured.
pub const PASSPHRASE_ENV: &str = "DESKREC_KEY_PASSPHRASE";

impl RecordingKeyConfig {
    /// The passphrase, if one is configured: the file's contents, else the
    /// environment variable. An empty passphrase is an error, not "none".
    pub fn passphrase(&self) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, ConfigError> {
        let raw = match &self.passphrase_file {
            Some(path) => {
                zeroize::Zeroizing::new(std::fs::read(path).map_err(|source| ConfigError::Io {
                    path: path.clone(),
                    source,
                })?)
            }
            None => match std::env::var_os(PASSPHRASE_ENV) {
                Some(v) => zeroize::Zeroizing::new(v.into_encoded_bytes()),
                None => return Ok(None),
            },
        };
        let trimmed = raw
            .strip_suffix(b"\r\n")
            .or_else(|| raw.strip_suffix(b"\n"))
            .unwrap_or(&raw);
        if trimmed.is_empty() {
            return Err(ConfigError::Invalid(
                "the recording key passphrase is empty".into(),
            ));
        }
        Ok(Some(zeroize::Zeroizing::new(trimmed.to_vec())))
    }
}

/// Operator-provided certificate and key (PEM). Both or neither.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: Option<PathBuf>,
    /// Private key of the leaf (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// The key the next certificate will have (PKCS#8): its pin is
    /// announced to agents, signed with the current key, so they follow
    /// the change. Set it well before installing that certificate.
    pub next_key: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            public_url: None,
            tls: TlsFiles::default(),
            recording_key: RecordingKeyConfig::default(),
            limits: crate::limits::Limits::default(),
            mux: crate::mux::MuxConfig::default(),
            audio_fetch: crate::audio::fetch::FetchConfig::default(),
            retention: Default::default(),
        }
    }
}

fn default_data_dir() -> PathBuf {
    if cfg!(windows) {
        PathBuf::from(r"C:\ProgramData\Deskrec\server")
    } else {
        PathBuf::from("/var/lib/deskrec-server")
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The config file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for [`Config`].
    #[error("invalid config: {0}")]
    Parse(#[from] toml::de::Error),
    /// Values that parse but do not make sense together.
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(ConfigError::Invalid(
                "tls.cert and tls.key must be set together".into(),
            ));
        }
        self.limits.validate().map_err(ConfigError::Invalid)?;
        self.retention.validate().map_err(ConfigError::Invalid)?;
        if let Some(url) = &self.public_url
            && !url.starts_with("https://")
        {
            return Err(ConfigError::Invalid(format!(
                "public_url must start with https:// (got {url:?})"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn keys_override_defaults() {
        let c = Config::from_toml(
            r#"
            data_dir = "/srv/deskrec"
            listen = "127.0.0.1:9443"
            public_url = "https://rec.example.com:9443"
            [tls]
            cert = "/etc/deskrec/cert.pem"
            key = "/etc/deskrec/key.pem"
            "#,
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/deskrec"));
        assert_eq!(c.listen.port(), 9443);
        assert_eq!(
            c.tls.key.as_deref(),
            Some(Path::new("/etc/deskrec/key.pem"))
        );
    }

    #[test]
    fn typos_and_half_tls_are_errors() {
        assert!(matches!(
            Config::from_toml("listen_addr = \"0.0.0.0:1\""),
            Err(ConfigError::Parse(_))
        ));
        assert!(matches!(
            Config::from_toml("[tls]\ncert = \"c.pem\""),
            Err(ConfigError::Invalid(_))
        ));
        assert!(matches!(
            Config::from_toml("public_url = \"http://x\""),
            Err(ConfigError::Invalid(_))
        ));
    }
}

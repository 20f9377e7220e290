//! The deployment settings: what IT gives every PC so the app enrolls on
//! its first start, written by the installer (`SERVER_URL`,
//! `SERVER_FINGERPRINT`, `ENROLL_TOKEN`) to a machine-wide TOML file:
//!
//! ```toml
//! server_url = "https://rec.example:8443"
//! server_fingerprint = "sha256:5f1c…"
//! enroll_token = "…"
//! ```

use std::path::{Path, PathBuf};

use deskrec_protocol::EnrollmentToken;
use serde::Deserialize;

/// The deployment settings file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// The recording server's base URL.
    pub server_url: String,
    /// Its certificate's SHA-256 fingerprint (`sha256:<hex>`).
    pub server_fingerprint: String,
    /// The enrollment token (a fleet or one-time token's secret, or the
    /// compact token).
    pub enroll_token: String,
}

/// Why the deployment settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The file is not valid: the TOML error names the line and column.
    #[error("the deployment settings in {} are invalid: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, where.
        source: Box<toml::de::Error>,
    },
    /// The file exists but cannot be read (only administrators may read
    /// it where the installer protects the token).
    #[error("cannot read the deployment settings in {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Where the installer writes the settings.
pub fn default_path() -> PathBuf {
    #[cfg(windows)]
    return std::env::var_os("ProgramData")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
        .join(r"Deskrec\deployment.toml");
    #[cfg(not(windows))]
    PathBuf::from("/etc/deskrec/deployment.toml")
}

/// Reads the settings; `Ok(None)` when there is no file.
pub fn load(path: &Path) -> Result<Option<Deployment>, DeployError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(DeployError::Unreadable {
                path: path.into(),
                source,
            });
        }
    };
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| DeployError::Invalid {
            path: path.into(),
            source: Box::new(e),
        })
}

impl Deployment {
    /// The token to enroll with.
    pub fn token(&self) -> EnrollmentToken {
        token(
            &self.server_url,
            &self.enroll_token,
            Some(&self.server_fingerprint),
        )
    }
}

/// The token of `--enroll URL TOKEN [--fingerprint F]`: `secret` may be
/// the server's compact token (which carries the fingerprint) or the bare
/// secret with `fingerprint`.
pub fn token(url: &str, secret: &str, fingerprint: Option<&str>) -> EnrollmentToken {
    match (EnrollmentToken::decode(secret), fingerprint) {
        (Ok(compact), None) => compact,
        _ => EnrollmentToken {
            url: url.trim_end_matches('/').to_owned(),
            token: secret.to_owned(),
            cert_sha256: fingerprint.unwrap_or_default().to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_file_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deployment.toml");
        std::fs::write(
            &path,
            "server_url = \"https://x\"\nserver_fingerprint = sha256\n",
        )
        .unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("deployment.toml"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        assert!(load(&dir.path().join("none.toml")).unwrap().is_none());
    }
}

//! The deployment settings: what IT gives every PC so it enrolls without a
//! person at it. The MSI's `deploy` action (`deskrec-agent deploy`, run as
//! LocalSystem) checks the installer's properties (`SERVER_URL`,
//! `SERVER_FINGERPRINT`, `ENROLL_TOKEN`) and writes them to a machine-wide
//! TOML file that only the system and administrators can read:
//!
//! ```toml
//! server_url = "https://rec.example:8443"
//! server_fingerprint = "sha256:5f1c…"
//! enroll_token = "…"
//! ```
//!
//! The same action gives the data directory its access rights
//! ([`prepare`]); uninstalling with `REMOVE_DATA` removes it
//! ([`remove_data`]), never a recording not uploaded yet unless told to.

use std::path::{Path, PathBuf};

use deskrec_client::Pin;
use deskrec_protocol::{CERT_PIN_PREFIX, EnrollmentToken, SPKI_PIN_PREFIX};
use serde::{Deserialize, Serialize};

use crate::secrets::{FileSecretStore, SecretStore};
use crate::{AgentError, DataDir};

/// The settings file's name.
const FILE_NAME: &str = "deployment.toml";

/// The deployment settings file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// The recording server's base URL.
    pub server_url: String,
    /// Its certificate's SHA-256 fingerprint (`sha256:<hex>`).
    pub server_fingerprint: String,
    /// The enrollment token (a fleet or one-time token's secret, or the
    /// compact token). Without one the PC waits for someone to enroll it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enroll_token: Option<String>,
}

/// Why the deployment settings cannot be used, or the data directory not
/// prepared or removed.
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
    /// The file exists but cannot be read: on Windows only the system and
    /// administrators may.
    #[error("cannot read the deployment settings in {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A setting is wrong: which, its value and what it must be.
    #[error("{name} is wrong ({value:?}): {why}")]
    Setting {
        /// The installer property's name (`SERVER_URL`, …).
        name: &'static str,
        /// The value given (never the token's).
        value: String,
        /// What it must be.
        why: String,
    },
    /// Contacts' recordings are not uploaded yet; removing the data would
    /// lose them.
    #[error(
        "{count} contact recording(s) on this PC are not uploaded yet: connect it to the recording server until they are (the tray shows the queue), or remove the data anyway with REMOVE_DATA=FORCE"
    )]
    NotUploaded {
        /// How many.
        count: u64,
    },
    /// The file system or the agent's database refused.
    #[error(transparent)]
    Agent(#[from] AgentError),
}

/// Where the settings of the data directory `dir` live: its `config`
/// directory, which on Windows only the system and administrators may
/// open (see [`prepare`]); `%ProgramData%\Deskrec\config\deployment.toml`
/// for the MSI's installs.
pub fn path(dir: &DataDir) -> PathBuf {
    config_dir(dir).join(FILE_NAME)
}

/// The administrators-only directory inside the data directory.
fn config_dir(dir: &DataDir) -> PathBuf {
    dir.root().join("config")
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
    /// The settings from the installer's properties, checked: an `https://`
    /// URL with a host, and the server's pin as the server prints it:
    /// `spki-sha256:` (its public key) or `sha256:` (its certificate, as
    /// servers before public-key pins print it) and 64 hex digits. Empty
    /// values are absent ones (msiexec passes unset properties as `""`).
    pub fn new(url: &str, fingerprint: &str, token: &str) -> Result<Self, DeployError> {
        let setting = |name, value: &str, why: &str| DeployError::Setting {
            name,
            value: value.to_owned(),
            why: why.to_owned(),
        };
        let (url, fingerprint, token) = (url.trim(), fingerprint.trim(), token.trim());
        let prefixed = [SPKI_PIN_PREFIX, CERT_PIN_PREFIX]
            .iter()
            .any(|p| fingerprint.to_ascii_lowercase().starts_with(p));
        let pin = fingerprint
            .parse::<Pin>()
            .ok()
            .filter(|_| prefixed)
            .ok_or_else(|| {
                setting(
                    "SERVER_FINGERPRINT",
                    fingerprint,
                    "the server's pin as its enrollment token answer gives it: spki-sha256:<64 hex digits>",
                )
            })?;
        deskrec_client::ServerAddress::new(url, &pin.to_string()).map_err(|e| {
            setting(
                "SERVER_URL",
                url,
                &format!(
                    "the recording server's https:// address, e.g. https://rec.example:8443 ({e})"
                ),
            )
        })?;
        Ok(Self {
            server_url: url.trim_end_matches('/').to_owned(),
            server_fingerprint: pin.to_string(),
            enroll_token: (!token.is_empty()).then(|| token.to_owned()),
        })
    }

    /// The token to enroll with, if the settings carry one.
    pub fn token(&self) -> Option<EnrollmentToken> {
        let secret = self.enroll_token.as_deref()?;
        Some(token(
            &self.server_url,
            secret,
            Some(&self.server_fingerprint),
        ))
    }

    /// Writes the settings durably to `path`, readable by the owner only
    /// (on Windows: inside [`prepare`]'s administrators-only directory).
    pub fn write(&self, path: &Path) -> Result<(), DeployError> {
        let text = toml::to_string(self).expect("the settings serialise");
        let (dir, name) = match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
            (Some(dir), Some(name)) => (dir, name),
            _ => {
                return Err(AgentError::NotAFilePath {
                    path: path.to_owned(),
                }
                .into());
            }
        };
        // The secret store's write: atomic, fsynced, owner-only.
        FileSecretStore::new(dir).put(name, text.as_bytes())?;
        Ok(())
    }
}

/// What [`enroll`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enrollment {
    /// Enrolled now, as this device.
    Enrolled(String),
    /// Enrolled before, as this device.
    Already(String),
    /// The settings carry no token: someone must enroll the PC.
    NoToken,
}

impl std::fmt::Display for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Enrollment::Enrolled(id) => {
                write!(f, "enrolled as {}: device {id}", crate::host_name())
            }
            Enrollment::Already(id) => write!(f, "enrolled already: device {id}"),
            Enrollment::NoToken => f.write_str("no enrollment token: the PC waits to be enrolled"),
        }
    }
}

/// Enrolls the PC of `dir` with `settings`, once. An
/// [`AgentError::Client`] is worth trying again (the server out of reach,
/// or not the certificate named); any other error is not.
pub async fn enroll(dir: &DataDir, settings: &Deployment) -> Result<Enrollment, AgentError> {
    use crate::clock::Clock;
    let Some(token) = settings.token() else {
        return Ok(Enrollment::NoToken);
    };
    let now = crate::clock::SystemClock.now();
    match crate::enroll::enroll_with(dir, &dir.secret_store(), &token, &crate::host_name(), now)
        .await
    {
        Ok(identity) => Ok(Enrollment::Enrolled(identity.device_id)),
        Err(AgentError::AlreadyEnrolled { device_id, .. }) => Ok(Enrollment::Already(device_id)),
        Err(e) => Err(e),
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
            cert_sha256: String::new(),
            pin: Some(fingerprint.unwrap_or_default().to_owned()),
        },
    }
}

/// Creates the data directory and gives it its access rights. On Windows:
/// the system and administrators have full control, users may read and
/// write (the tray app records as the user who is logged on), and
/// `config\` is the system's and administrators' alone. Elsewhere the
/// directory is its owner's (0700). Returns the settings file's path.
pub fn prepare(dir: &DataDir) -> Result<PathBuf, DeployError> {
    let config = config_dir(dir);
    crate::secrets::create_private_dir(&config)?;
    #[cfg(windows)]
    {
        // Protected: nothing inherited from ProgramData, whose default
        // rights let any user create files that then stay theirs.
        crate::platform::set_rights(
            dir.root(),
            "D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1301bf;;;BU)",
        )?;
        crate::platform::set_rights(&config, "D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)")?;
    }
    Ok(path(dir))
}

/// What [`remove_data`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Removal {
    /// The directory was not there.
    Nothing,
    /// Removed; `lost` recordings of contacts were not uploaded
    /// (only with `force`).
    Removed {
        /// Contacts whose recordings went with it.
        lost: u64,
    },
}

/// Removes the data directory, unless a contact's recording is not
/// uploaded yet and `force` is not given.
pub fn remove_data(dir: &DataDir, force: bool) -> Result<Removal, DeployError> {
    if !dir.root().exists() {
        return Ok(Removal::Nothing);
    }
    let pending = if dir.db_path().exists() {
        let c = crate::status::report(dir)?.contacts;
        c.queued + c.splicing + c.uploading
    } else {
        0
    };
    if pending > 0 && !force {
        return Err(DeployError::NotUploaded { count: pending });
    }
    std::fs::remove_dir_all(dir.root()).map_err(AgentError::io(dir.root()))?;
    Ok(Removal::Removed { lost: pending })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "sha256:5f1c00000000000000000000000000000000000000000000000000000000abcd";

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

    #[test]
    fn the_installers_values_are_checked_and_named() {
        let ok = Deployment::new(" https://rec.example:8443/ ", FP, "").unwrap();
        assert_eq!(ok.server_url, "https://rec.example:8443");
        assert_eq!(ok.enroll_token, None);
        assert!(ok.token().is_none());
        let key_pin = FP.replace("sha256:", "SPKI-SHA256:");
        let ok = Deployment::new("https://rec.example", &key_pin, "s").unwrap();
        assert_eq!(ok.server_fingerprint, key_pin.to_ascii_lowercase());
        assert_eq!(ok.token().unwrap().server_pin(), ok.server_fingerprint);
        for (url, fp, name) in [
            ("http://rec.example", FP, "SERVER_URL"),
            ("https://", FP, "SERVER_URL"),
            ("https://rec.example:x", FP, "SERVER_URL"),
            ("rec.example", FP, "SERVER_URL"),
            ("https://rec.example", "", "SERVER_FINGERPRINT"),
            ("https://rec.example", "sha256:abcd", "SERVER_FINGERPRINT"),
            (
                "https://rec.example",
                &FP.replace("abcd", "abcz"),
                "SERVER_FINGERPRINT",
            ),
            (
                "https://rec.example",
                &FP.replace("sha256:", ""),
                "SERVER_FINGERPRINT",
            ),
        ] {
            match Deployment::new(url, fp, "secret") {
                Err(DeployError::Setting { name: n, .. }) => assert_eq!(n, name, "{url} {fp}"),
                other => panic!("{url} {fp}: {other:?}"),
            }
        }
    }

    #[test]
    fn written_settings_read_back_owner_only_and_keep_the_token_out_of_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/deployment.toml");
        let d = Deployment::new("https://rec.example:8443", FP, "fleet-secret").unwrap();
        d.write(&path).unwrap();
        assert_eq!(load(&path).unwrap().as_ref(), Some(&d));
        let t = d.token().unwrap();
        assert_eq!(
            (t.url.as_str(), t.token.as_str()),
            ("https://rec.example:8443", "fleet-secret")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
        let e = Deployment::new("http://x", FP, "fleet-secret").unwrap_err();
        assert!(!e.to_string().contains("fleet-secret"), "{e}");
    }

    #[test]
    fn removing_the_data_keeps_recordings_not_uploaded_unless_forced() {
        let root = tempfile::tempdir().unwrap();
        let dir = DataDir::new(root.path().join("Deskrec"));
        assert_eq!(remove_data(&dir, false).unwrap(), Removal::Nothing);
        prepare(&dir).unwrap();
        let db = dir.open_db().unwrap();
        let relay = deskrec_protocol::ContactRelay {
            seq: 1,
            contact_id: "c-1".into(),
            windows_login: "ann".into(),
            start: 100,
            end: 200,
        };
        db.call_blocking(|c| crate::contacts::store_relay(c, &relay, 1))
            .unwrap();
        drop(db);
        match remove_data(&dir, false) {
            Err(e @ DeployError::NotUploaded { count: 1 }) => {
                assert!(e.to_string().contains("REMOVE_DATA=FORCE"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        assert!(dir.db_path().exists());
        assert_eq!(
            remove_data(&dir, true).unwrap(),
            Removal::Removed { lost: 1 }
        );
        assert!(!dir.root().exists());
    }
}

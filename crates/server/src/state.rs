//! The state every handler shares, and how it is set up on start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use crate::config::Config;
use crate::db::{Db, DbError};
use crate::eligibility::ServerKey;
use crate::hub::DeviceHub;
use crate::keys::RecordingKeys;
use crate::secret::{hash_secret, load_or_create};
use crate::storage::{LocalStore, RecordingStore};
use crate::tls::{self, TlsError, TlsIdentity};
use crate::uploads::Uploads;
use deskrec_vault::Keyring;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The data directory or a file in it is unusable.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The TLS identity could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The recording key could not be loaded or generated.
    #[error("recording key: {0}")]
    Key(#[from] crate::keys::KeyError),
    /// The configuration could not be used (e.g. the passphrase file).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// Shared handle to the server's state; clones are cheap.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The database, for the server's lifetime.
    db: Db,
    /// TLS configuration, certificate fingerprint and key pins.
    tls: TlsIdentity,
    /// The recording keys: the current public key sent in every policy and
    /// every private key that opens uploads. Replaced whole on rotation.
    keys: std::sync::RwLock<RecordingKeys>,
    /// The passphrase protecting key files, kept for rotation.
    key_passphrase: Option<zeroize::Zeroizing<Vec<u8>>>,
    /// Serializes key rotations.
    rotating: std::sync::Mutex<()>,
    /// SHA-256 (hex) of the admin bearer token; the token itself stays in
    /// its file.
    admin_token_hash: String,
    /// SHA-256 (hex) of the metrics bearer token.
    metrics_token_hash: String,
    /// Base URL written into enrollment tokens.
    public_url: String,
    /// Directory generation: bumped after every committed change to users,
    /// roles, settings or devices. Each RTE connection watches it and
    /// re-evaluates its policy; a watch keeps one value however many
    /// changes pile up, so a slow connection never queues.
    directory: watch::Sender<u64>,
    /// Set to true when the server begins shutting down; RTE sessions watch
    /// it and close their WebSockets.
    closing: watch::Sender<bool>,
    /// Connected devices' RTE sessions.
    hub: Arc<DeviceHub>,
    /// Prometheus metrics.
    metrics: crate::metrics::Metrics,
    /// Failed sign-ins and the password-check gate.
    login_throttle: crate::throttle::LoginThrottle,
    /// The contact watermark (µs), mirrored from the database after each
    /// committed change so sessions forward it without polling.
    watermark: watch::Sender<Option<i64>>,
    /// The data directory (storage, caches).
    data_dir: PathBuf,
    /// Locks that make concurrent plays of one recording export it once.
    exports: crate::cache::Exports,
    /// Verified recordings (`data_dir/recordings/`).
    recordings: Arc<dyn RecordingStore>,
    /// Uploads in progress (`data_dir/uploads/`).
    uploads: Uploads,
    /// Connection and request limits.
    limits: crate::limits::Limits,
    /// Where ffmpeg is, for muxed downloads.
    mux: crate::mux::MuxConfig,
    /// Where call audio may be fetched from.
    audio_fetch: crate::audio::fetch::FetchConfig,
    /// How long recordings and call audio are kept.
    retention: crate::compliance::retention::RetentionConfig,
}

/// Files in the data directory.
pub mod files {
    /// The SQLite database.
    pub const DATABASE: &str = "deskrec.db";
    /// The admin bearer token (0600).
    pub const ADMIN_TOKEN: &str = "admin-token";
    /// The metrics bearer token (0600): `GET /api/v1/metrics` only.
    pub const METRICS_TOKEN: &str = "metrics-token";
    /// The recording private key (0600).
    pub const RECORDING_KEY: &str = crate::keys::CURRENT;
    /// Verified recordings, by storage key.
    pub const RECORDINGS: &str = "recordings";
    /// Uploads in progress (`<id>.part`).
    pub const UPLOADS: &str = "uploads";
}

impl AppState {
    /// Opens (creating on first start) everything in the data directory:
    /// database, admin token, recording key, TLS certificate. `local_addr`
    /// is the bound listener's address, for the default public URL.
    ///
    /// Blocking (file I/O, possibly RSA key generation): call it before
    /// serving, or from `spawn_blocking`.
    pub fn open(config: &Config, local_addr: SocketAddr) -> Result<Self, StartError> {
        let dir = &config.data_dir;
        let io = |path: PathBuf| move |source| StartError::Io { path, source };
        std::fs::create_dir_all(dir).map_err(io(dir.clone()))?;
        // Keys, tokens and recordings live here: owner only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io(dir.clone()))?;
        }
        let db = crate::db::open(&dir.join(files::DATABASE))?;
        let watermark = db
            .call_blocking(|c| crate::contacts::watermark(c))
            .map_err(DbError::from)?;
        let token_path = dir.join(files::ADMIN_TOKEN);
        let (admin_token, created) = load_or_create(&token_path).map_err(io(token_path.clone()))?;
        if created {
            tracing::info!(path = %token_path.display(), "generated the admin token");
        }
        let metrics_path = dir.join(files::METRICS_TOKEN);
        let (metrics_token, _) = load_or_create(&metrics_path).map_err(io(metrics_path.clone()))?;
        let key_passphrase = config.recording_key.passphrase()?;
        let keys = crate::keys::load_or_generate(dir, key_passphrase.as_deref().map(|p| &p[..]))?;
        let public_url = match &config.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => {
                let host = if local_addr.ip().is_unspecified() {
                    "localhost".to_owned()
                } else if local_addr.is_ipv6() {
                    format!("[{}]", local_addr.ip())
                } else {
                    local_addr.ip().to_string()
                };
                format!("https://{host}:{}", local_addr.port())
            }
        };
        let recordings_dir = dir.join(files::RECORDINGS);
        let recordings = Arc::new(LocalStore::open(&recordings_dir).map_err(io(recordings_dir))?);
        let uploads_dir = dir.join(files::UPLOADS);
        let uploads = Uploads::open(&uploads_dir).map_err(io(uploads_dir))?;
        let hostnames: Vec<String> = url_host(&public_url).into_iter().collect();
        let tls = tls::load_or_generate(dir, &config.tls, &hostnames)?;
        tracing::info!(sha256 = %tls.fingerprint, pin = %tls.pin, "TLS certificate and key pin");
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                tls,
                keys: std::sync::RwLock::new(keys),
                key_passphrase,
                rotating: std::sync::Mutex::new(()),
                admin_token_hash: hash_secret(&admin_token),
                metrics_token_hash: hash_secret(&metrics_token),
                public_url,
                directory: watch::Sender::new(0),
                closing: watch::Sender::new(false),
                hub: Arc::default(),
                metrics: Default::default(),
                login_throttle: Default::default(),
                watermark: watch::Sender::new(watermark),
                data_dir: dir.clone(),
                exports: Default::default(),
                recordings,
                uploads,
                limits: config.limits.clone(),
                mux: config.mux.clone(),
                audio_fetch: config.audio_fetch.clone(),
                retention: config.retention.clone(),
            }),
        })
    }

    /// Where call audio may be fetched from.
    pub fn audio_fetch(&self) -> &crate::audio::fetch::FetchConfig {
        &self.inner.audio_fetch
    }

    /// The retention policy.
    pub fn retention(&self) -> &crate::compliance::retention::RetentionConfig {
        &self.inner.retention
    }

    /// Where ffmpeg is, for muxed downloads.
    pub fn mux(&self) -> &crate::mux::MuxConfig {
        &self.inner.mux
    }

    /// Connection and request limits.
    pub fn limits(&self) -> &crate::limits::Limits {
        &self.inner.limits
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The TLS identity.
    pub fn tls(&self) -> &TlsIdentity {
        &self.inner.tls
    }

    /// The recording public key.
    pub fn server_key(&self) -> ServerKey {
        self.keys().public.clone()
    }

    /// The base URL for enrollment tokens.
    pub fn public_url(&self) -> &str {
        &self.inner.public_url
    }

    /// Publishes a committed watermark to the RTE sessions.
    pub fn watermark_changed(&self, watermark: Option<i64>) {
        self.inner.watermark.send_if_modified(|w| {
            let newer = watermark > *w;
            if newer {
                *w = watermark;
            }
            newer
        });
    }

    /// A receiver of the contact watermark.
    pub fn watermark(&self) -> watch::Receiver<Option<i64>> {
        self.inner.watermark.subscribe()
    }

    /// Sign-in throttling.
    pub fn login_throttle(&self) -> &crate::throttle::LoginThrottle {
        &self.inner.login_throttle
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.inner.metrics
    }

    /// Connected devices.
    pub fn hub(&self) -> &Arc<DeviceHub> {
        &self.inner.hub
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.inner.data_dir
    }

    /// The recording private keys by key id; they open uploaded
    /// recordings for verification and export.
    pub fn keyring(&self) -> Arc<Keyring> {
        self.keys().keyring.clone()
    }

    fn keys(&self) -> std::sync::RwLockReadGuard<'_, RecordingKeys> {
        // Written only by swapping a whole value: never half-updated.
        self.inner.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Retires the current recording key and starts using a new one; old
    /// recordings stay readable. Blocking (RSA key generation): call from
    /// `spawn_blocking`. Returns `(old key id, new key id)`. The caller
    /// audits and then calls [`AppState::directory_changed`] so every agent
    /// gets a policy with the new key.
    pub fn rotate_recording_key(&self) -> Result<(String, String), crate::keys::KeyError> {
        let _one_at_a_time = self
            .inner
            .rotating
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let passphrase = self.inner.key_passphrase.as_deref().map(|p| &p[..]);
        let (keys, old) = crate::keys::rotate(&self.inner.data_dir, passphrase)?;
        let new = keys.public.key_id.clone();
        *self.inner.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        Ok((old, new))
    }

    /// The MP4 export locks (see `playback`).
    pub fn exports(&self) -> &crate::cache::Exports {
        &self.inner.exports
    }

    /// Where verified recordings are stored.
    pub fn recordings(&self) -> &Arc<dyn RecordingStore> {
        &self.inner.recordings
    }

    /// Uploads in progress: their files and locks.
    pub fn uploads(&self) -> &Uploads {
        &self.inner.uploads
    }

    /// Whether `token` is the admin token.
    pub fn is_admin_token(&self, token: &str) -> bool {
        hash_secret(token) == self.inner.admin_token_hash
    }

    /// Whether `token` is the metrics token.
    pub fn is_metrics_token(&self, token: &str) -> bool {
        hash_secret(token) == self.inner.metrics_token_hash
    }

    /// Tells every RTE connection that the directory changed. Call after
    /// the change is committed.
    pub fn directory_changed(&self) {
        self.inner.directory.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// A receiver of directory changes (marked as seen).
    pub fn directory_changes(&self) -> watch::Receiver<u64> {
        self.inner.directory.subscribe()
    }

    /// Starts shutdown: RTE sessions close.
    pub fn begin_shutdown(&self) {
        self.inner.closing.send_replace(true);
    }

    /// A receiver that changes to true at shutdown.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }
}

fn url_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then(|| host.to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_host_extracts_the_host() {
        use super::url_host;
        assert_eq!(
            url_host("https://rec.example.com:8443/x").as_deref(),
            Some("rec.example.com")
        );
        assert_eq!(url_host("https://[::1]:8443").as_deref(), Some("::1"));
        assert_eq!(url_host("https://host").as_deref(), Some("host"));
        assert_eq!(url_host("http://host"), None);
    }
}

//! Playback: a contact's stored recording, verified and exported to an MP4
//! a browser plays, cached under `data_dir/cache/`.
//!
//! Exporting decrypts and checks every chunk, which takes seconds for a
//! long contact, and a `<video>` element asks for the file many times (one
//! Range request per seek). So the first request exports into the cache and
//! every later one is a plain file read. The cache file is named after the
//! recording's SHA-256 and the exporter's version, so a replaced recording
//! or a changed exporter never serves a stale file, and it is written under
//! a temporary name and renamed into place (`deskrec_vault::export_mp4`
//! does that), so a crash never leaves half a file to serve. Requests for
//! the same recording wait on one lock: the first exports, the others find
//! the file ([`crate::cache`], as the opened audio and the muxed download).
//!
//! The cache holds decrypted video, so it is bounded ([`prune`], run with
//! the hourly upload sweep): a file is deleted [`Limits::playback_cache_hours`]
//! after it was exported, and the oldest go first when the cache grows past
//! [`Limits::playback_cache_mib`]. A deleted file is exported again on the
//! next play. Backups should leave `cache/` out (`docs/security.md`).
//!
//! [`Limits::playback_cache_hours`]: crate::limits::Limits::playback_cache_hours
//! [`Limits::playback_cache_mib`]: crate::limits::Limits::playback_cache_mib

use std::path::{Path, PathBuf};

use std::io::{Read, Write};

use deskrec_vault::{DeviceIdentity, FileKind, PublicKey};
use rusqlite::{Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::scope::Scope;
use crate::state::AppState;
use crate::storage::RecordingStore;

/// Bump when the exporter's output changes, so cached files are redone.
const EXPORT_VERSION: u32 = 1;

/// The cache directory under the data directory.
pub const CACHE_DIR: &str = "cache";

/// Why a contact's video cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum PlaybackError {
    /// No contact with this id.
    #[error("no contact {0:?}")]
    NoContact(String),
    /// The contact exists but its recording is not stored (yet, or ever).
    #[error("contact {contact:?} has no stored recording (status: {status})")]
    NoRecording {
        /// The contact id.
        contact: String,
        /// The contact's recording status.
        status: String,
    },
    /// The recording was deleted: its retention ended, or it was erased.
    #[error("the recording of contact {contact:?} is {}", disposal.state.as_str())]
    Gone {
        /// The contact id.
        contact: String,
        /// What became of it.
        disposal: crate::compliance::DisposalRecord,
    },
    /// The stored recording could not be read, verified or exported.
    #[error("the recording of contact {contact:?} could not be exported: {reason}")]
    Export {
        /// The contact id.
        contact: String,
        /// What went wrong, for the log.
        reason: String,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

/// What the export needs from the database.
struct Stored {
    storage_key: String,
    sha256: String,
    device_id: String,
    device_key_pem: String,
}

/// The stored recording of `contact`, if `scope` holds the contact; a
/// contact outside it is [`PlaybackError::NoContact`], as if it did not
/// exist, and one whose recording was deleted (expired, erased, or being
/// so) is [`PlaybackError::Gone`].
fn stored(conn: &Connection, scope: Scope, contact: &str) -> Result<Stored, PlaybackError> {
    let sql = format!(
        "SELECT c.status, r.storage_key, r.sha256, r.device_id, d.public_key_pem, {}
         FROM contacts c
         LEFT JOIN recordings r ON r.contact_id = c.contact_id
         LEFT JOIN devices d ON d.id = r.device_id
         WHERE c.contact_id = :contact AND {}",
        crate::compliance::COLUMNS,
        scope.condition()
    );
    let row = conn
        .query_row(
            &sql,
            rusqlite::named_params! { ":contact": contact, ":scope": scope.param() },
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    crate::compliance::DisposalRecord::from_row(r, 5)?,
                ))
            },
        )
        .optional()?
        .ok_or_else(|| PlaybackError::NoContact(contact.to_owned()))?;
    if let Some(disposal) = row.5 {
        return Err(PlaybackError::Gone {
            contact: contact.to_owned(),
            disposal,
        });
    }
    match row {
        (_, Some(storage_key), Some(sha256), Some(device_id), Some(device_key_pem), _) => {
            Ok(Stored {
                storage_key,
                sha256,
                device_id,
                device_key_pem,
            })
        }
        (status, ..) => Err(PlaybackError::NoRecording {
            contact: contact.to_owned(),
            status,
        }),
    }
}

/// The cached MP4 of `contact`'s recording, exporting it first if needed;
/// only for a contact in `scope`.
pub async fn cached_mp4(
    state: &AppState,
    scope: Scope,
    contact: &str,
) -> Result<PathBuf, PlaybackError> {
    let c = contact.to_owned();
    let stored = state.db().call(move |conn| stored(conn, scope, &c)).await?;
    let failed = |reason: String| PlaybackError::Export {
        contact: contact.to_owned(),
        reason,
    };
    // The digest names the cache file, so it must be plain hex.
    if stored.sha256.len() != 64 || !stored.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(failed(format!(
            "stored sha256 {:?} is not hex",
            stored.sha256
        )));
    }
    let out = state.data_dir().join(CACHE_DIR).join(format!(
        "v{EXPORT_VERSION}-{}.mp4",
        stored.sha256.to_ascii_lowercase()
    ));
    state
        .exports()
        .once(&out, || async {
            let store = state.recordings().clone();
            let keyring = state.keyring().clone();
            let cache_dir = state.data_dir().join(CACHE_DIR);
            tokio::fs::create_dir_all(&cache_dir)
                .await
                .map_err(|e| failed(format!("cannot create {}: {e}", cache_dir.display())))?;
            let target = out.clone();
            let started = std::time::Instant::now();
            let exported = tokio::task::spawn_blocking(move || {
                let src = cache_dir.join(
                    FileKind::Recording.file_name(&format!(".v{EXPORT_VERSION}-{}", stored.sha256)),
                );
                let copied = copy_checked(store.as_ref(), &stored, &src);
                let exported = copied.and_then(|()| {
                    let key =
                        PublicKey::from_pem(&stored.device_key_pem).map_err(|e| e.to_string())?;
                    let device = DeviceIdentity {
                        id: &stored.device_id,
                        key: &key,
                    };
                    deskrec_vault::export_mp4(&src, &keyring, device, &target)
                        .map_err(|e| e.to_string())
                });
                let _ = std::fs::remove_file(&src);
                exported
            })
            .await
            .map_err(|e| failed(format!("the export task failed: {e}")))?
            .map_err(failed)?;
            tracing::info!(
                contact,
                bytes = exported.bytes,
                frames = exported.samples,
                ms = started.elapsed().as_millis() as u64,
                "recording exported to the MP4 cache"
            );
            Ok::<_, PlaybackError>(())
        })
        .await?;
    Ok(out)
}

/// Copies the stored recording to `dest`, checking it against the SHA-256
/// recorded when it was stored.
///
/// The vault reads recordings from files, and a store is only required to
/// give a reader (an object store has no paths), so the export works on a
/// local copy; the copy is also where storage corruption shows, with its
/// own reason, before verification would fail for less obvious ones. It
/// costs one extra read and write of the recording per export, and exports
/// are cached.
fn copy_checked(store: &dyn RecordingStore, stored: &Stored, dest: &Path) -> Result<(), String> {
    let mut src = store.open(&stored.storage_key).map_err(|e| e.to_string())?;
    let io = |e: std::io::Error| format!("copying the recording to {}: {e}", dest.display());
    let mut out = std::io::BufWriter::new(std::fs::File::create(dest).map_err(io)?);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = src.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io)?;
    }
    out.flush().map_err(io)?;
    let digest = hex::encode(hash.finalize());
    if !digest.eq_ignore_ascii_case(&stored.sha256) {
        return Err(format!(
            "the stored recording (key {:?}) has SHA-256 {digest}, but {} was recorded when it \
             was stored: the storage is damaged",
            stored.storage_key, stored.sha256
        ));
    }
    Ok(())
}
/// What one [`prune`] removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Files deleted.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// Deletes cached exports older than `max_age`, then the oldest until the
/// cache holds at most `max_bytes`. Leftover temporary files count as
/// files like any other.
pub fn prune(
    dir: &Path,
    max_age: std::time::Duration,
    max_bytes: u64,
    now: std::time::SystemTime,
) -> std::io::Result<Pruned> {
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Pruned::default()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file() {
            let written = meta.modified().unwrap_or(now);
            files.push((written, meta.len(), entry.path()));
        }
    }
    files.sort(); // oldest first
    let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
    let mut pruned = Pruned::default();
    for (written, len, path) in files {
        let expired = now.duration_since(written).unwrap_or_default() >= max_age;
        if !expired && total <= max_bytes {
            break;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                pruned.files += 1;
                pruned.bytes += len;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        total -= len;
    }
    Ok(pruned)
}

/// [`prune`] on the server's cache with its configured bounds.
pub async fn prune_cache(state: &AppState) {
    let dir = state.data_dir().join(CACHE_DIR);
    let limits = state.limits();
    let max_age = std::time::Duration::from_secs(limits.playback_cache_hours.saturating_mul(3600));
    let max_bytes = limits.playback_cache_mib.saturating_mul(1 << 20);
    let done = tokio::task::spawn_blocking(move || {
        prune(&dir, max_age, max_bytes, std::time::SystemTime::now())
    })
    .await;
    match done {
        Ok(Ok(p)) if p.files > 0 => {
            tracing::info!(
                files = p.files,
                bytes = p.bytes,
                "pruned the playback cache"
            )
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not prune the playback cache"),
        Err(e) => tracing::warn!(error = %e, "the playback cache prune failed"),
    }
}

#[cfg(test)]
mod prune_tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn file(dir: &Path, name: &str, len: usize, age: Duration, now: SystemTime) {
        let path = dir.join(name);
        std::fs::write(&path, vec![0u8; len]).unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(now - age).unwrap();
    }

    #[test]
    fn old_exports_go_then_the_oldest_until_the_cache_fits() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        file(dir.path(), "expired.mp4", 10, 30 * hour, now);
        file(dir.path(), "oldest.mp4", 100, 3 * hour, now);
        file(dir.path(), "middle.mp4", 100, 2 * hour, now);
        file(dir.path(), "newest.mp4", 100, hour, now);
        let pruned = prune(dir.path(), 24 * hour, 250, now).unwrap();
        assert_eq!(
            pruned,
            Pruned {
                files: 2,
                bytes: 110
            }
        );
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["middle.mp4", "newest.mp4"]);
        // Within both bounds: nothing goes.
        assert_eq!(
            prune(dir.path(), 24 * hour, 250, now).unwrap(),
            Pruned::default()
        );
        // A missing cache is an empty one.
        assert_eq!(
            prune(&dir.path().join("none"), hour, 0, now).unwrap(),
            Pruned::default()
        );
    }
}

//! A contact's call audio: imported from the contact centre, checked by
//! decoding it (`probe`), sealed under the server's recording key in the
//! recording store, and opened again for supervisors who may hear it.
//!
//! Import (`PUT /api/v1/admin/contacts/{id}/audio`, the body the file):
//!
//! 1. the body goes to a temporary file, at most
//!    [`Limits::audio_mib`](crate::limits::Limits::audio_mib) (413 past it,
//!    at once when `Content-Length` says so);
//! 2. it is decoded whole; a file that does not decode is refused (422)
//!    and nothing is stored;
//! 3. its SHA-256 is compared with the contact's stored audio: the same
//!    audio again changes nothing;
//! 4. it is sealed (`deskrec_vault::seal`) and put in the store under
//!    `audio/<sha256>.seal`, then the `contact_audio` row and its audit row
//!    are committed. A crash before the commit leaves at most an object no
//!    row names; the old object is deleted after the commit, unless
//!    another contact holds the same audio.
//!
//! Playback opens the sealed file into the playback cache, as the video
//! export does, and the cache's bounds apply to it.

pub mod fetch;
pub mod probe;

use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use axum::body::Body;
use http_body_util::BodyExt;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use crate::audit::{self, Actor};
use crate::db::now_micros;
use crate::playback::CACHE_DIR;
use crate::scope::Scope;
use crate::state::AppState;
pub use probe::{AudioInfo, ProbeError};

/// Why audio cannot be imported or served.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// No contact with this id (in the caller's scope).
    #[error("no contact {0:?}")]
    NoContact(String),
    /// The contact's audio was deleted (expired or erased), or, for an
    /// import, the contact was erased: nothing of it is stored again.
    #[error("the call audio of contact {contact:?} is {}", disposal.state.as_str())]
    Gone {
        /// The contact.
        contact: String,
        /// What became of it.
        disposal: crate::compliance::DisposalRecord,
    },
    /// The contact has no audio.
    #[error("contact {0:?} has no audio")]
    NoAudio(String),
    /// Over the size limit.
    #[error("the audio is over the {limit_mib} MiB limit (limits.audio_mib)")]
    TooLarge {
        /// The limit, MiB.
        limit_mib: u64,
    },
    /// The body ended before its declared length, or failed.
    #[error("the audio did not arrive whole: {0}")]
    Incomplete(String),
    /// Not audio the server reads.
    #[error(transparent)]
    Bad(#[from] ProbeError),
    /// A URL the server does not fetch from.
    #[error("{0}")]
    UrlNotAllowed(String),
    /// The fetch from an allowed URL failed.
    #[error("{0}")]
    Fetch(String),
    /// Storage, sealing or the cache failed.
    #[error("audio storage failed: {0}")]
    Storage(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

/// A contact's stored audio, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredAudio {
    /// The contact.
    pub contact_id: String,
    /// SHA-256 of the audio file as imported.
    pub sha256: String,
    /// Its size.
    pub bytes: i64,
    /// What the probe found.
    #[serde(flatten)]
    pub info: AudioInfo,
    /// When it was stored, µs.
    pub stored_at: i64,
}

/// What an import did.
#[derive(Clone, Debug, Serialize)]
pub struct Imported {
    /// The audio now stored.
    pub audio: StoredAudio,
    /// False when the same audio was stored already.
    pub changed: bool,
}

/// Imports `body` as `contact`'s audio (see the module doc).
pub async fn import(
    state: &AppState,
    contact: &str,
    declared: Option<u64>,
    body: Body,
) -> Result<Imported, AudioError> {
    let limit = state.limits().audio_bytes();
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(state));
    }
    check_contact(state, contact).await?;
    let tmp = TempFile::new(state.data_dir(), "audio")?;
    receive(body, &tmp.0, limit).await.map_err(|e| match e {
        Received::TooLarge => too_large(state),
        Received::Failed(m) => AudioError::Incomplete(m),
    })?;
    let received = tokio::fs::metadata(&tmp.0)
        .await
        .map_err(|e| AudioError::Storage(e.to_string()))?
        .len();
    if declared.is_some_and(|n| n != received) {
        return Err(AudioError::Incomplete(format!(
            "Content-Length said {} bytes, {received} arrived",
            declared.unwrap_or_default()
        )));
    }
    store_file(state, contact, &tmp).await
}

/// Fetches `url` (an allowed HTTPS host, see `fetch`) and imports what it
/// answers as `contact`'s audio.
pub async fn import_url(
    state: &AppState,
    contact: &str,
    url: &str,
) -> Result<Imported, AudioError> {
    check_contact(state, contact).await?;
    let tmp = TempFile::new(state.data_dir(), "audio")?;
    let limit = state.limits().audio_bytes();
    fetch::fetch(state.audio_fetch(), url, limit, &tmp.0)
        .await
        .map_err(|e| match e {
            fetch::FetchError::NotAllowed(m) => AudioError::UrlNotAllowed(m),
            fetch::FetchError::TooLarge => too_large(state),
            e @ fetch::FetchError::Failed(_) => AudioError::Fetch(e.to_string()),
        })?;
    tracing::info!(contact, url, "call audio fetched");
    store_file(state, contact, &tmp).await
}

fn too_large(state: &AppState) -> AudioError {
    AudioError::TooLarge {
        limit_mib: state.limits().audio_mib,
    }
}

/// The contact exists and its content was not disposed of: audio for an
/// erased or expired contact is not stored again.
async fn check_contact(state: &AppState, contact: &str) -> Result<(), AudioError> {
    let c = contact.to_owned();
    let found = state
        .db()
        .call(move |conn| crate::compliance::in_scope(conn, Scope::All, &c))
        .await?;
    match found {
        None => Err(AudioError::NoContact(contact.to_owned())),
        Some(Some(disposal)) => Err(AudioError::Gone {
            contact: contact.to_owned(),
            disposal,
        }),
        Some(None) => Ok(()),
    }
}

/// Steps 2 to 4 of the import: decode, compare, seal, store, commit.
async fn store_file(
    state: &AppState,
    contact: &str,
    tmp: &TempFile,
) -> Result<Imported, AudioError> {
    // Decode, hash and seal on the blocking pool.
    let server_pem = state.server_key().public_pem;
    let sealed = TempFile::new(state.data_dir(), "seal")?;
    let (src, dst) = (tmp.0.clone(), sealed.0.clone());
    let (info, seal) = tokio::task::spawn_blocking(move || -> Result<_, AudioError> {
        let file = std::fs::File::open(&src).map_err(|e| AudioError::Storage(e.to_string()))?;
        let info = probe::probe(file)?;
        let key = deskrec_vault::PublicKey::from_pem(&server_pem)
            .map_err(|e| AudioError::Storage(e.to_string()))?;
        let storage = |e: deskrec_vault::VaultError| AudioError::Storage(e.to_string());
        let io = |e: std::io::Error| AudioError::Storage(e.to_string());
        let mut input = BufReader::new(std::fs::File::open(&src).map_err(io)?);
        let mut output = BufWriter::new(std::fs::File::create(&dst).map_err(io)?);
        let seal = deskrec_vault::seal(&mut input, &mut output, &key, &info.media_type)
            .map_err(storage)?;
        Ok((info, seal))
    })
    .await
    .map_err(|e| AudioError::Storage(e.to_string()))??;

    let (c, sha) = (contact.to_owned(), seal.sha256.clone());
    let before = state
        .db()
        .call(move |conn| stored(conn, Scope::All, &c))
        .await?;
    if let Some(before) = before.filter(|b| b.sha256 == sha) {
        return Ok(Imported {
            audio: before,
            changed: false,
        });
    }
    let key = format!(
        "audio/{}",
        deskrec_vault::FileKind::Sealed.file_name(&seal.sha256)
    );
    let store = state.recordings().clone();
    let (k, path) = (key.clone(), sealed.0.clone());
    tokio::task::spawn_blocking(move || store.put(&k, &path))
        .await
        .map_err(|e| AudioError::Storage(e.to_string()))?
        .map_err(|e| AudioError::Storage(e.to_string()))?;
    let audio = StoredAudio {
        contact_id: contact.to_owned(),
        sha256: seal.sha256,
        bytes: seal.plain_len as i64,
        info,
        stored_at: now_micros(),
    };
    let row = audio.clone();
    let k = key.clone();
    let written = state
        .db()
        .call(move |conn| -> rusqlite::Result<_> {
            let tx = crate::db::write_tx(conn)?;
            // Erased (or expired) since the check: stored nothing.
            if let Some(Some(disposal)) =
                crate::compliance::in_scope(&tx, Scope::All, &row.contact_id)?
            {
                return Ok(Err(disposal));
            }
            let old = write_row(&tx, &row, &k)?;
            tx.commit()?;
            Ok(Ok(old))
        })
        .await?;
    let replaced = match written {
        Ok(old) => old,
        Err(disposal) => {
            let k = key.clone();
            if !state.db().call(move |conn| key_in_use(conn, &k)).await? {
                let (store, k) = (state.recordings().clone(), key.clone());
                let _ = tokio::task::spawn_blocking(move || store.delete(&k)).await;
            }
            return Err(AudioError::Gone {
                contact: contact.to_owned(),
                disposal,
            });
        }
    };
    if let Some(old) = replaced.filter(|old| *old != key) {
        let store = state.recordings().clone();
        let db = state.db().clone();
        let still_used = db
            .call({
                let old = old.clone();
                move |conn| key_in_use(conn, &old)
            })
            .await?;
        if !still_used {
            let _ = tokio::task::spawn_blocking(move || store.delete(&old)).await;
        }
    }
    tracing::info!(contact, sha256 = %audio.sha256, codec = %audio.info.codec, "call audio stored");
    Ok(Imported {
        audio,
        changed: true,
    })
}

/// The decrypted audio of `contact` in the playback cache (opened from
/// its sealed file first if needed), and its media type; only for a
/// contact in `scope`.
pub async fn cached(
    state: &AppState,
    scope: Scope,
    contact: &str,
) -> Result<(PathBuf, String), AudioError> {
    let c = contact.to_owned();
    let (found, audio, key) = state
        .db()
        .call(move |conn| -> rusqlite::Result<_> {
            let found = crate::compliance::in_scope(conn, scope, &c)?;
            let key: Option<String> = conn
                .query_row(
                    "SELECT storage_key FROM contact_audio WHERE contact_id = ?1",
                    [&c],
                    |r| r.get(0),
                )
                .optional()?;
            Ok((found, stored(conn, scope, &c)?, key))
        })
        .await?;
    match found {
        None => return Err(AudioError::NoContact(contact.to_owned())),
        Some(Some(disposal)) => {
            return Err(AudioError::Gone {
                contact: contact.to_owned(),
                disposal,
            });
        }
        Some(None) => {}
    }
    let (Some(audio), Some(key)) = (audio, key) else {
        return Err(AudioError::NoAudio(contact.to_owned()));
    };
    let media_type = audio.info.media_type.clone();
    let dir = state.data_dir().join(CACHE_DIR);
    let out = dir.join(format!("audio-v1-{}", audio.sha256));
    state
        .exports()
        .once(&out, || async {
            let (store, keyring, target) =
                (state.recordings().clone(), state.keyring(), out.clone());
            tokio::task::spawn_blocking(move || -> Result<(), AudioError> {
                let storage = |e: String| AudioError::Storage(e);
                std::fs::create_dir_all(&dir).map_err(|e| storage(e.to_string()))?;
                let tmp = dir.join(format!(".audio-v1-{}.part", audio.sha256));
                let src = store.open(&key).map_err(|e| storage(e.to_string()))?;
                let mut dst = BufWriter::new(
                    std::fs::File::create(&tmp).map_err(|e| storage(e.to_string()))?,
                );
                let opened = deskrec_vault::unseal(BufReader::new(src), &keyring, &mut dst);
                drop(dst);
                if let Err(e) = opened {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(storage(format!(
                        "the sealed audio {key:?} does not open: {e}"
                    )));
                }
                std::fs::rename(&tmp, &target).map_err(|e| storage(e.to_string()))
            })
            .await
            .map_err(|e| AudioError::Storage(e.to_string()))?
        })
        .await?;
    Ok((out, media_type))
}

/// The stored audio of `contact` in `scope`, if any.
pub fn stored(
    conn: &Connection,
    scope: Scope,
    contact: &str,
) -> rusqlite::Result<Option<StoredAudio>> {
    let sql = format!(
        "SELECT a.contact_id, a.sha256, a.bytes, a.container, a.codec, a.sample_rate, a.channels,
                a.duration_us, a.media_type, a.stored_at
         FROM contact_audio a JOIN contacts c ON c.contact_id = a.contact_id
         WHERE a.contact_id = :contact AND {}",
        scope.condition()
    );
    conn.query_row(
        &sql,
        rusqlite::named_params! { ":contact": contact, ":scope": scope.param() },
        |r| {
            Ok(StoredAudio {
                contact_id: r.get(0)?,
                sha256: r.get(1)?,
                bytes: r.get(2)?,
                info: AudioInfo {
                    container: r.get(3)?,
                    codec: r.get(4)?,
                    sample_rate: r.get(5)?,
                    channels: r.get(6)?,
                    duration_us: r.get(7)?,
                    media_type: r.get(8)?,
                },
                stored_at: r.get(9)?,
            })
        },
    )
    .optional()
}

/// Writes `audio`'s row (stored under `key`) with its audit row; the key
/// it replaced, if any.
fn write_row(
    conn: &Connection,
    audio: &StoredAudio,
    key: &str,
) -> rusqlite::Result<Option<String>> {
    let old: Option<String> = conn
        .query_row(
            "SELECT storage_key FROM contact_audio WHERE contact_id = ?1",
            [&audio.contact_id],
            |r| r.get(0),
        )
        .optional()?;
    let i = &audio.info;
    conn.execute(
        "INSERT INTO contact_audio (contact_id, storage_key, sha256, bytes, container, codec,
                                    sample_rate, channels, duration_us, media_type, stored_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (contact_id) DO UPDATE SET
           storage_key = excluded.storage_key, sha256 = excluded.sha256, bytes = excluded.bytes,
           container = excluded.container, codec = excluded.codec,
           sample_rate = excluded.sample_rate, channels = excluded.channels,
           duration_us = excluded.duration_us, media_type = excluded.media_type,
           stored_at = excluded.stored_at",
        params![
            audio.contact_id,
            key,
            audio.sha256,
            audio.bytes,
            i.container,
            i.codec,
            i.sample_rate,
            i.channels,
            i.duration_us,
            i.media_type,
            audio.stored_at
        ],
    )?;
    audit::record(
        conn,
        &Actor::Admin,
        if old.is_some() {
            "contact.audio.replace"
        } else {
            "contact.audio.import"
        },
        &audio.contact_id,
        serde_json::json!({ "sha256": audio.sha256, "bytes": audio.bytes, "codec": i.codec,
                            "duration_us": i.duration_us }),
    )?;
    Ok(old)
}

fn key_in_use(conn: &Connection, key: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM contact_audio WHERE storage_key = ?1)",
        [key],
        |r| r.get(0),
    )
}

enum Received {
    TooLarge,
    Failed(String),
}

/// Streams `body` into `path`, at most `limit` bytes, synced.
async fn receive(body: Body, path: &Path, limit: u64) -> Result<(), Received> {
    let failed = |e: &dyn std::fmt::Display| Received::Failed(e.to_string());
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| failed(&e))?;
    let mut body = body;
    let mut n: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| failed(&e))?;
        if let Ok(data) = frame.into_data() {
            n += data.len() as u64;
            if n > limit {
                return Err(Received::TooLarge);
            }
            file.write_all(&data).await.map_err(|e| failed(&e))?;
        }
    }
    file.sync_all().await.map_err(|e| failed(&e))
}

/// A file under `data_dir/uploads/` removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(data_dir: &Path, what: &str) -> Result<Self, AudioError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| AudioError::Storage(e.to_string()))?;
        Ok(TempFile(
            data_dir
                .join("uploads")
                .join(format!("{what}-{}.tmp", hex::encode(id))),
        ))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

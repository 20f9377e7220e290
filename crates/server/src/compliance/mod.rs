//! Compliance: recordings and call audio are personal data. They are
//! deleted when their retention ends ([`retention`]), kept past it while a
//! legal hold covers them ([`hold`]), and erased on request ([`erasure`]).
//!
//! Both ways of deleting a contact's content are one *disposal*, in three
//! steps, so a crash at any point leaves no half state:
//!
//! 1. **the intent commits**: the contact's `disposal` becomes `expiring`
//!    or `erasing` (when, by whom, why) in a transaction that also checks
//!    that no legal hold covers it. From then on its video, audio and
//!    download answer 410, and no playback starts from it;
//! 2. **the files go**: the stored recording, the sealed audio (unless
//!    another contact holds the same file), every playback-cache file
//!    made from them, and the bytes of any agent's upload of the contact
//!    still receiving (the upload ends first, audited: no upload of a
//!    disposed contact is taken, see `crate::uploads`). Deleting a
//!    missing file is no error, so this step can run again;
//! 3. **the outcome commits**: `expired` or `erased`, the `recordings` and
//!    `contact_audio` rows deleted, and one audit row, in one transaction
//!    that changes only a contact still in its intent.
//!
//! Until step 3 the rows still name the files, so an intent a crash left
//! behind is finished by running steps 2 and 3 again ([`resume`], at every
//! start before the first retention run): the files end up gone, the row
//! says so, and the audit row is written exactly once. The contact row
//! itself stays: the audit and the pages keep saying what happened.

pub mod erasure;
pub mod hold;
pub mod retention;

use std::path::PathBuf;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::audit::{self, Actor};
use crate::db::now_micros;
use crate::scope::Scope;
use crate::state::AppState;
use crate::storage::StoreError;

/// Why a compliance operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComplianceError {
    /// No contact with this id.
    #[error("no contact {0:?}")]
    NoContact(String),
    /// No legal hold with this id.
    #[error("no legal hold {0}")]
    NoHold(i64),
    /// A legal hold covers the contact: it cannot be erased.
    #[error(
        "contact {contact:?} is under legal hold {hold} ({reason}): lift the hold \
         (DELETE /api/v1/admin/holds/{hold}) before erasing it"
    )]
    Held {
        /// The contact.
        contact: String,
        /// The (first) hold covering it.
        hold: i64,
        /// Why the hold was set.
        reason: String,
    },
    /// The request breaks a rule; the message says which.
    #[error("{0}")]
    Invalid(String),
    /// Deleting a stored object failed; the disposal stays in its intent
    /// and is finished at the next run or start.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An upload of the contact still receiving could not be ended (its
    /// bytes deleted); the disposal stays in its intent and is finished
    /// at the next run or start.
    #[error("ending the contact's upload: {0}")]
    Upload(#[from] crate::uploads::UploadError),
    /// The cache could not be cleared.
    #[error("playback cache: {0}")]
    Cache(std::io::Error),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

/// What became of a contact's stored recording and call audio.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposal {
    /// Retention ended; the files are being deleted.
    Expiring,
    /// Retention ended; the files are gone.
    Expired,
    /// Erasure was asked for; the files are being deleted.
    Erasing,
    /// Erased on request; the files are gone.
    Erased,
}

impl Disposal {
    /// The database's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposal::Expiring => "expiring",
            Disposal::Expired => "expired",
            Disposal::Erasing => "erasing",
            Disposal::Erased => "erased",
        }
    }

    fn parse(s: &str) -> rusqlite::Result<Self> {
        Ok(match s {
            "expiring" => Disposal::Expiring,
            "expired" => Disposal::Expired,
            "erasing" => Disposal::Erasing,
            "erased" => Disposal::Erased,
            other => {
                return Err(rusqlite::Error::InvalidColumnType(
                    0,
                    format!("disposal {other:?}"),
                    rusqlite::types::Type::Text,
                ));
            }
        })
    }

    /// What the content is once the disposal is through, as the API's
    /// 410 answers name it (`expired` or `erased`): an intent counts as
    /// its outcome, since the content is no longer served from it.
    pub fn code(self) -> &'static str {
        self.outcome().as_str()
    }

    /// Whether this is a retention's (not an erasure's) disposal.
    pub fn is_expiry(self) -> bool {
        matches!(self, Disposal::Expiring | Disposal::Expired)
    }

    /// The state an intent ends in (an outcome is its own).
    fn outcome(self) -> Self {
        match self {
            Disposal::Expiring | Disposal::Expired => Disposal::Expired,
            Disposal::Erasing | Disposal::Erased => Disposal::Erased,
        }
    }

    /// The audit action of the outcome.
    fn action(self) -> &'static str {
        if self.is_expiry() {
            "recording.expired"
        } else {
            "recording.erased"
        }
    }

    /// The crash points after the intent and after the files.
    fn crash_points(self) -> (&'static str, &'static str) {
        if self.is_expiry() {
            ("expire.intent", "expire.deleted")
        } else {
            ("erase.intent", "erase.deleted")
        }
    }
}

/// A contact's disposal, as the pages and the APIs show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DisposalRecord {
    /// Where it stands.
    pub state: Disposal,
    /// When the intent committed, then when the files were gone, µs.
    pub at: i64,
    /// Who: `system` for retention, the admin (`admin-token`) for erasure.
    pub by: String,
    /// Why: the retention rule, or the erasure request's reason.
    pub reason: Option<String>,
}

/// The columns [`DisposalRecord::from_row`] reads, unqualified (they are
/// the contacts table's alone).
pub const COLUMNS: &str = "disposal, disposal_at, disposal_by, disposal_reason";

impl DisposalRecord {
    /// The record in [`COLUMNS`] starting at column `i`; `None` when the
    /// contact's content was never disposed of.
    pub fn from_row(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<Self>> {
        let Some(state) = r.get::<_, Option<String>>(i)? else {
            return Ok(None);
        };
        Ok(Some(DisposalRecord {
            state: Disposal::parse(&state)?,
            at: r.get::<_, Option<i64>>(i + 1)?.unwrap_or_default(),
            by: r.get::<_, Option<String>>(i + 2)?.unwrap_or_default(),
            reason: r.get(i + 3)?,
        }))
    }
}

/// The disposal of `contact` if `scope` holds it: `None` for a contact
/// outside the scope (or none), `Some(None)` for one whose content is not
/// disposed of. The playback routes ask this before anything else, so an
/// out-of-scope contact is still 404 and a disposed one 410.
pub fn in_scope(
    conn: &Connection,
    scope: Scope,
    contact: &str,
) -> rusqlite::Result<Option<Option<DisposalRecord>>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM contacts c WHERE c.contact_id = :contact AND {}",
        scope.condition()
    );
    conn.query_row(
        &sql,
        rusqlite::named_params! { ":contact": contact, ":scope": scope.param() },
        |r| DisposalRecord::from_row(r, 0),
    )
    .optional()
}

/// What one disposal deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Deleted {
    /// A stored screen recording.
    pub recording: bool,
    /// Stored call audio.
    pub audio: bool,
}

/// Step 1: commits `intent` for `contact` (by `actor`, for `reason`) if
/// nothing else disposed of it and no legal hold covers it. An erasure
/// may take over an expiry (its files are gone or going anyway). Returns
/// whether the intent is now committed; the caller's transaction commits.
fn begin(
    conn: &Connection,
    contact: &str,
    intent: Disposal,
    actor: &Actor,
    reason: &str,
) -> rusqlite::Result<bool> {
    let from = if intent.is_expiry() {
        "c.disposal IS NULL"
    } else {
        "(c.disposal IS NULL OR c.disposal IN ('expiring', 'expired'))"
    };
    let now = now_micros();
    let changed = conn.execute(
        &format!(
            "UPDATE contacts AS c SET disposal = ?2, disposal_at = ?3, disposal_by = ?4,
                    disposal_reason = ?5, updated_at = ?3
             WHERE c.contact_id = ?1 AND {from} AND NOT {}",
            hold::HELD
        ),
        params![contact, intent.as_str(), now, actor.to_string(), reason],
    )?;
    Ok(changed == 1)
}

/// The files a disposal deletes, read from the rows its intent keeps.
#[derive(Debug, Default)]
struct Objects {
    /// The recording's storage key and SHA-256.
    recording: Option<(String, String)>,
    /// The audio's storage key, SHA-256, and whether another contact's
    /// row names the same object (the same file imported twice).
    audio: Option<(String, String, bool)>,
}

fn objects(conn: &Connection, contact: &str) -> rusqlite::Result<Objects> {
    let recording = conn
        .query_row(
            "SELECT storage_key, sha256 FROM recordings WHERE contact_id = ?1",
            [contact],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let audio = conn
        .query_row(
            "SELECT a.storage_key, a.sha256,
                    EXISTS (SELECT 1 FROM contact_audio o
                            WHERE o.storage_key = a.storage_key AND o.contact_id <> a.contact_id)
             FROM contact_audio a WHERE a.contact_id = ?1",
            [contact],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(Objects { recording, audio })
}

/// Step 2: deletes the stored objects of `o`, then the playback-cache
/// files made from them (their names hold the objects' SHA-256). The
/// objects go first, so an export that starts now cannot open them; an
/// export already running holds its cache lock, and is waited for.
async fn delete_files(state: &AppState, o: &Objects) -> Result<(), ComplianceError> {
    let mut keys = vec![];
    let mut digests = vec![];
    if let Some((key, sha)) = &o.recording {
        keys.push(key.clone());
        digests.push(sha.to_ascii_lowercase());
    }
    if let Some((key, sha, shared)) = &o.audio {
        if !shared {
            keys.push(key.clone());
        }
        digests.push(sha.to_ascii_lowercase());
    }
    let store = state.recordings().clone();
    blocking(move || {
        keys.iter()
            .try_for_each(|k| store.delete(k))
            .map_err(ComplianceError::from)
    })
    .await?;
    if digests.is_empty() {
        return Ok(());
    }
    let of_these = |name: &str| digests.iter().any(|d| name.contains(d.as_str()));
    state
        .exports()
        .wait_for(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(of_these)
        })
        .await;
    let dir = state.data_dir().join(crate::playback::CACHE_DIR);
    blocking(move || {
        remove_cache_files(&dir, |name| {
            digests.iter().any(|d| name.contains(d.as_str()))
        })
        .map_err(ComplianceError::Cache)
    })
    .await
}

/// Removes the files in `dir` whose name `matches` (finished files and
/// the temporary ones of an export or a mux alike).
fn remove_cache_files(
    dir: &std::path::Path,
    matches: impl Fn(&str) -> bool,
) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut doomed: Vec<PathBuf> = vec![];
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_str().is_some_and(&matches) {
            doomed.push(entry.path());
        }
    }
    for path in doomed {
        match std::fs::remove_file(&path) {
            Ok(()) => {
                tracing::debug!(file = %path.display(), "cache file of a disposed contact removed")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Step 3: the outcome, the rows gone and the audit row, if `contact` is
/// still in `intent`. Returns whether it was.
fn complete(
    conn: &mut Connection,
    contact: &str,
    intent: Disposal,
    deleted: Deleted,
) -> rusqlite::Result<bool> {
    let tx = crate::db::write_tx(conn)?;
    let now = now_micros();
    let record: Option<(String, Option<String>)> = tx
        .query_row(
            "UPDATE contacts SET disposal = ?3, disposal_at = ?4, updated_at = ?4
             WHERE contact_id = ?1 AND disposal = ?2
             RETURNING disposal_by, disposal_reason",
            params![contact, intent.as_str(), intent.outcome().as_str(), now],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((by, reason)) = record else {
        return Ok(false);
    };
    tx.execute("DELETE FROM recordings WHERE contact_id = ?1", [contact])?;
    tx.execute("DELETE FROM contact_audio WHERE contact_id = ?1", [contact])?;
    // What and why, never the content (nor its digests).
    audit::record(
        &tx,
        &by.parse().unwrap_or(Actor::System),
        intent.action(),
        contact,
        serde_json::json!({
            "reason": reason,
            "recording": deleted.recording,
            "audio": deleted.audio,
        }),
    )?;
    tx.commit()?;
    Ok(true)
}

/// Steps 2 and 3 for `contact`, whose `intent` is committed. `None` when
/// another disposal finished it meanwhile.
async fn finish(
    state: &AppState,
    contact: &str,
    intent: Disposal,
) -> Result<Option<Deleted>, ComplianceError> {
    let c = contact.to_owned();
    let objects = state.db().call(move |conn| objects(conn, &c)).await?;
    delete_files(state, &objects).await?;
    // An agent's upload of the contact still receiving holds part of its
    // recording: it ends, and its bytes go, like the stored files.
    crate::uploads::end_disposed(state, contact).await?;
    crate::crashpoint::hit(intent.crash_points().1);
    let deleted = Deleted {
        recording: objects.recording.is_some(),
        audio: objects.audio.is_some(),
    };
    let c = contact.to_owned();
    let done = state
        .db()
        .call(move |conn| complete(conn, &c, intent, deleted))
        .await?;
    if done {
        tracing::info!(
            contact,
            disposal = intent.outcome().as_str(),
            recording = deleted.recording,
            audio = deleted.audio,
            "contact's recorded content deleted"
        );
    }
    Ok(done.then_some(deleted))
}

/// Finishes every disposal a crash (or a failed deletion) left in its
/// intent; returns those contacts. Runs at start, and before each
/// retention run.
pub async fn resume(state: &AppState) -> Result<Vec<String>, ComplianceError> {
    let open: Vec<(String, String)> = state
        .db()
        .call(|c| {
            c.prepare(
                "SELECT contact_id, disposal FROM contacts
                 WHERE disposal IN ('expiring', 'erasing') ORDER BY id",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .await?;
    let mut finished = vec![];
    for (contact, intent) in open {
        let intent = Disposal::parse(&intent)?;
        tracing::warn!(
            contact,
            intent = intent.as_str(),
            "finishing an interrupted disposal"
        );
        if finish(state, &contact, intent).await?.is_some() {
            finished.push(contact);
        }
    }
    Ok(finished)
}

/// Runs blocking file work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ComplianceError> + Send + 'static,
) -> Result<T, ComplianceError> {
    tokio::task::spawn_blocking(f)
        .await
        // A panic in `f` is a bug; surface it where it happened.
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_files_named_after_a_digest_go_and_the_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "v1-abc.mp4",
            ".v1-abc.dskr",
            "mux-v1-abc-def.mp4",
            "audio-v1-def",
            "v1-other.mp4",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        remove_cache_files(dir.path(), |n| n.contains("abc") || n.contains("def")).unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, ["v1-other.mp4"]);
        remove_cache_files(&dir.path().join("none"), |_| true).unwrap();
    }

    #[test]
    fn states_round_trip_and_intents_end_in_their_outcome() {
        for d in [
            Disposal::Expiring,
            Disposal::Expired,
            Disposal::Erasing,
            Disposal::Erased,
        ] {
            assert_eq!(Disposal::parse(d.as_str()).unwrap(), d);
        }
        assert_eq!(Disposal::Expiring.outcome(), Disposal::Expired);
        assert_eq!(Disposal::Erasing.outcome(), Disposal::Erased);
        assert!(Disposal::parse("gone").is_err());
    }
}

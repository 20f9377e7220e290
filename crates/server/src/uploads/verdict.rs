//! What happens to a complete upload: verify, then store or reject.
//!
//! The vault checks that the file is an intact recording signed by the
//! uploading device with every chunk's MAC valid ([`verify_recording`]);
//! this module adds what only the server knows: that it is the recording
//! of the upload's contact, by the agent who handled it, at the time it
//! happened, and not a second recording of a contact that has one.
//!
//! Order of effects, so a crash at any point leaves a consistent state:
//! the file is put in the store first, then one transaction records the
//! recording, the upload, the contact's status, the device's deliveries
//! and an audit row; only after the commit is the upload file removed and
//! the agent told (`RecordingStored`). A rejection is likewise committed
//! (upload, contact status, audit) before the file is deleted.
//!
//! A contact whose content was erased or expired takes no recording: the
//! checks say so before storing and again inside the storing transaction,
//! which an erasure's intent (one transaction on the same connection)
//! either precedes — the erasure then finds the recording and deletes it —
//! or follows, and the upload is refused ([`super::refuse`]) and the
//! object it put in the store removed.

use std::io::Read;
use std::path::Path;

use deskrec_protocol::{RecordingStored, ServerMessage};
use deskrec_vault::{
    DeviceIdentity, FileKind, Keyring, Manifest, PublicKey, TimeRange, VaultError, scan_recording,
    utc, verify_recording,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Result, Upload, UploadError, blocking, remove_file};
use crate::audit::{self, Actor};
use crate::db::now_micros;
use crate::state::AppState;

/// Why a complete recording was refused. The text is written to the
/// upload's and the contact's reason, so an operator reads it as is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The file is not an intact, authentic recording of this device:
    /// truncated, corrupt, a chunk's MAC, the signature, continuity.
    #[error("the recording failed verification: {0}")]
    Invalid(VaultError),
    /// Signed as another device than the one uploading it.
    #[error(
        "the recording was made and signed by device {recorded_by}, but device {uploaded_by} uploaded it"
    )]
    WrongDevice {
        /// The device the manifest names.
        recorded_by: String,
        /// The authenticated uploader.
        uploaded_by: String,
    },
    /// The recording of one contact uploaded for another.
    #[error(
        "the recording is of contact \"{recording}\", but it was uploaded for contact \"{upload}\""
    )]
    WrongContact {
        /// The manifest's contact.
        recording: String,
        /// The upload's contact.
        upload: String,
    },
    /// The contact does not exist (any more).
    #[error("contact \"{0}\" is not known to the server")]
    UnknownContact(String),
    /// Recorded for another agent than the one who handled the contact.
    #[error(
        "the recording is of agent \"{agent}\", but contact \"{contact_id}\" was handled by \"{handled_by}\""
    )]
    WrongAgent {
        /// The contact.
        contact_id: String,
        /// The manifest's agent login.
        agent: String,
        /// The contact's login.
        handled_by: String,
    },
    /// The recorded time (on the server's clock) has nothing in common with
    /// the contact's.
    #[error("the recording covers {} to {}, which does not overlap contact \"{contact_id}\" ({} to {})", utc::to_second(trim.start), utc::to_second(trim.end), utc::to_second(contact.start), utc::to_second(contact.end))]
    OutsideContact {
        /// The contact.
        contact_id: String,
        /// What the recording shows.
        trim: TimeRange,
        /// When the contact took place.
        contact: TimeRange,
    },
    /// The contact has a recording already, and this is not the same one
    /// again from the same device.
    #[error(
        "contact \"{contact_id}\" already has a different stored recording (from device {stored_by})"
    )]
    AlreadyStored {
        /// The contact.
        contact_id: String,
        /// The device whose recording is stored.
        stored_by: String,
    },
}

/// A recording that passed the vault's checks.
#[derive(Debug)]
pub struct Checked {
    /// Its verified manifest.
    pub manifest: Manifest,
    /// Its size.
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the whole file.
    pub sha256: String,
    /// Stretches between its chunks with no video.
    pub gaps: Vec<deskrec_vault::TimeRange>,
    /// Stretches recorded as paused pictures, with why.
    pub pauses: Vec<deskrec_vault::PauseSpan>,
}

/// What to do with a checked recording.
#[derive(Debug)]
enum Decision {
    Store,
    /// The same bytes from the same device are stored already: the agent
    /// missed the acknowledgement and uploaded again.
    Duplicate,
    Reject(Rejection),
    /// The contact's content was erased or expired: refuse, keep nothing.
    Disposed(crate::compliance::DisposalRecord),
}

/// Verifies and stores or rejects the complete upload `up`. The caller
/// holds its lock. `Ok` means the recording is stored (now or before);
/// [`UploadError::Rejected`] that it was refused and the refusal recorded;
/// [`UploadError::Disposed`] that its contact's content was disposed of
/// and nothing was kept.
pub async fn finish(state: &AppState, up: &Upload) -> Result<()> {
    let result = decide_and_act(state, up).await;
    let outcome = match &result {
        Ok(()) => "stored",
        Err(UploadError::Rejected(_)) => "rejected",
        Err(UploadError::Disposed { .. }) => "refused",
        Err(_) => return result, // the server's failure, not the upload's
    };
    state
        .metrics()
        .uploads_finished
        .get_or_create(&crate::metrics::OutcomeLabels {
            outcome: outcome.into(),
        })
        .inc();
    result
}

async fn decide_and_act(state: &AppState, up: &Upload) -> Result<()> {
    let checked = match check(state, up).await? {
        Ok(c) => c,
        Err(r) => return reject(state, up, r).await,
    };
    let decision = {
        let (up, sha) = (up.clone(), checked.sha256.clone());
        let manifest = checked.manifest.clone();
        state
            .db()
            .call(move |c| decide(c, &up, &manifest, &sha))
            .await?
    };
    match decision {
        Decision::Store => store(state, up, checked).await,
        other => not_stored(state, up, other).await,
    }
}

/// Acts on a decision other than [`Decision::Store`].
async fn not_stored(state: &AppState, up: &Upload, decision: Decision) -> Result<()> {
    match decision {
        Decision::Duplicate => duplicate(state, up).await,
        Decision::Reject(r) => reject(state, up, r).await,
        Decision::Disposed(d) => Err(super::refuse(state, up, d).await),
        Decision::Store => unreachable!("a recording to store is stored, not refused"),
    }
}

/// Runs the vault's verification on the blocking pool.
async fn check(state: &AppState, up: &Upload) -> Result<Result<Checked, Rejection>> {
    let device = up.device_id.clone();
    let pem: String = state
        .db()
        .call(move |c| {
            c.query_row(
                "SELECT public_key_pem FROM devices WHERE id = ?1",
                [&device],
                |r| r.get(0),
            )
        })
        .await?;
    let path = state.uploads().part_path(&up.id);
    let keyring = state.keyring();
    let device = up.device_id.clone();
    blocking(move || {
        let key = PublicKey::from_pem(&pem)
            .map_err(|e| std::io::Error::other(format!("device {device}'s stored key: {e}")))?;
        check_file(&path, &keyring, &device, &key)
    })
    .await
}

/// The vault's checks of the file, plus its size and SHA-256. I/O errors
/// are the server's problem, not the recording's, and are not rejections.
fn check_file(
    path: &Path,
    keyring: &Keyring,
    device_id: &str,
    key: &PublicKey,
) -> Result<Result<Checked, Rejection>> {
    let who = DeviceIdentity { id: device_id, key };
    let verified = match verify_recording(path, keyring, who) {
        Ok(v) => v,
        Err(VaultError::Io { source, .. } | VaultError::Stream(source)) => {
            return Err(source.into());
        }
        Err(e @ VaultError::BadSignature { .. }) => {
            // Say whose recording it is when it names another device.
            let claimed = scan_recording(path)
                .ok()
                .map(|s| s.manifest.manifest.device_id);
            return Ok(Err(match claimed {
                Some(other) if other != device_id => Rejection::WrongDevice {
                    recorded_by: other,
                    uploaded_by: device_id.to_owned(),
                },
                _ => Rejection::Invalid(e),
            }));
        }
        Err(e) => return Ok(Err(Rejection::Invalid(e))),
    };
    let (bytes, sha256) = sha256_file(path)?;
    Ok(Ok(Checked {
        manifest: verified.manifest,
        bytes,
        sha256,
        gaps: verified.gaps,
        pauses: verified.pauses,
    }))
}

fn sha256_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        match file.read(&mut buf)? {
            0 => return Ok((total, hex::encode(hash.finalize()))),
            n => {
                hash.update(&buf[..n]);
                total += n as u64;
            }
        }
    }
}

/// The device and SHA-256 of the contact's stored recording, if any.
pub(crate) fn stored_recording(
    conn: &Connection,
    contact_id: &str,
) -> rusqlite::Result<Option<(String, String)>> {
    conn.query_row(
        "SELECT device_id, sha256 FROM recordings WHERE contact_id = ?1",
        [contact_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// The server's checks of a verified manifest against the upload and the
/// contact. Run before storing and again inside the storing transaction,
/// so a concurrent upload for the same contact cannot slip in between.
fn decide(
    conn: &Connection,
    up: &Upload,
    m: &Manifest,
    sha256: &str,
) -> rusqlite::Result<Decision> {
    // First: nothing of an erased or expired contact is kept, whoever
    // sends it.
    if let Some(d) = super::disposal(conn, &up.contact_id)? {
        return Ok(Decision::Disposed(d));
    }
    if m.contact_id != up.contact_id {
        return Ok(Decision::Reject(Rejection::WrongContact {
            recording: m.contact_id.clone(),
            upload: up.contact_id.clone(),
        }));
    }
    if m.device_id != up.device_id {
        return Ok(Decision::Reject(Rejection::WrongDevice {
            recorded_by: m.device_id.clone(),
            uploaded_by: up.device_id.clone(),
        }));
    }
    if let Some((stored_by, stored_sha)) = stored_recording(conn, &up.contact_id)? {
        return Ok(if stored_by == up.device_id && stored_sha == sha256 {
            Decision::Duplicate
        } else {
            Decision::Reject(Rejection::AlreadyStored {
                contact_id: up.contact_id.clone(),
                stored_by,
            })
        });
    }
    let contact: Option<(String, i64, i64)> = conn
        .query_row(
            "SELECT windows_login, start_at, end_at FROM contacts WHERE contact_id = ?1",
            [&up.contact_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((login, start, end)) = contact else {
        return Ok(Decision::Reject(Rejection::UnknownContact(
            up.contact_id.clone(),
        )));
    };
    // Windows logins compare like the `NOCASE` columns: ASCII case folding.
    if !login.eq_ignore_ascii_case(&m.agent) {
        return Ok(Decision::Reject(Rejection::WrongAgent {
            contact_id: up.contact_id.clone(),
            agent: m.agent.clone(),
            handled_by: login,
        }));
    }
    let contact = TimeRange::new(start, end);
    // The trim is on the device's clock; its signed offset places it on
    // ours (a PC minutes off still records the right moments).
    let shift = |t: i64| t.saturating_add(m.clock_offset);
    let trim = TimeRange::new(shift(m.trim.start), shift(m.trim.end));
    if !trim.overlaps(&contact) {
        return Ok(Decision::Reject(Rejection::OutsideContact {
            contact_id: up.contact_id.clone(),
            trim,
            contact,
        }));
    }
    Ok(Decision::Store)
}

/// Where an upload's recording is stored: sharded by the id's first byte
/// so no directory grows huge.
pub(super) fn storage_key(upload_id: &str) -> String {
    let hex = upload_id.trim_start_matches("up-");
    let name = FileKind::Recording.file_name(upload_id);
    format!("{}/{name}", &hex[..2.min(hex.len())])
}

async fn store(state: &AppState, up: &Upload, checked: Checked) -> Result<()> {
    let key = storage_key(&up.id);
    let path = state.uploads().part_path(&up.id);
    {
        let (store, key, path) = (state.recordings().clone(), key.clone(), path.clone());
        blocking(move || Ok(store.put(&key, &path)?)).await?;
    }
    crate::crashpoint::hit("store.put");
    let committed = {
        let (up, key) = (up.clone(), key.clone());
        state
            .db()
            .call(move |c| commit_stored(c, &up, &checked, &key))
            .await
    };
    let verdict = match committed {
        Ok(None) => None,
        Ok(Some(changed)) => Some(changed),
        Err(e) => {
            unstore(state, &key).await;
            return Err(e);
        }
    };
    crate::crashpoint::hit("store.committed");
    if let Some(decision) = verdict {
        // Another upload of this contact was stored meanwhile, or the
        // contact was erased: the object no row names goes.
        unstore(state, &key).await;
        return not_stored(state, up, decision).await;
    }
    remove_file(&path);
    tracing::info!(upload = %up.id, device = %up.device_id, contact = ?up.contact_id,
        key = %key, "recording stored");
    acknowledge(state, up);
    crate::crashpoint::hit("store.acknowledged");
    Ok(())
}

/// `gaps` as stored in `recordings.gaps`: `[[start, end], ...]`, µs.
fn gaps_json(gaps: &[deskrec_vault::TimeRange]) -> String {
    serde_json::to_string(&gaps.iter().map(|g| [g.start, g.end]).collect::<Vec<_>>())
        .expect("integers always serialise")
}

/// The storing transaction. `Some(decision)` when the checks no longer
/// say store (nothing written).
fn commit_stored(
    conn: &mut Connection,
    up: &Upload,
    checked: &Checked,
    key: &str,
) -> Result<Option<Decision>> {
    let tx = crate::db::write_tx(conn)?;
    match decide(&tx, up, &checked.manifest, &checked.sha256)? {
        Decision::Store => {}
        other => return Ok(Some(other)),
    }
    let now = now_micros();
    let trim = checked.manifest.trim;
    tx.execute(
        "INSERT INTO recordings (contact_id, device_id, upload_id, storage_key, bytes, sha256,
                                 trim_start, trim_end, stored_at, gaps, pauses)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            up.contact_id,
            up.device_id,
            up.id,
            key,
            checked.bytes as i64,
            checked.sha256,
            trim.start,
            trim.end,
            now,
            gaps_json(&checked.gaps),
            serde_json::to_string(&checked.pauses).expect("pause spans always serialise")
        ],
    )?;
    set_upload_state(&tx, up, "stored", None)?;
    tx.execute(
        "UPDATE contacts SET status = 'uploaded', status_reason = NULL, updated_at = ?2
         WHERE contact_id = ?1",
        params![up.contact_id, now],
    )?;
    mark_delivered(&tx, up)?;
    audit::record(
        &tx,
        &Actor::Device(up.device_id.clone()),
        "recording.store",
        &up.contact_id,
        json!({ "upload": up.id, "bytes": checked.bytes, "sha256": checked.sha256,
                "storage_key": key, "trim": [trim.start, trim.end] }),
    )?;
    tx.commit()?;
    Ok(None)
}

/// Moves a receiving upload to its final state; an upload that stopped
/// receiving meanwhile is gone.
fn set_upload_state(
    conn: &Connection,
    up: &Upload,
    state: &str,
    reason: Option<&str>,
) -> Result<()> {
    let n = conn.execute(
        "UPDATE uploads SET state = ?2, reason = ?3, updated_at = ?4
         WHERE id = ?1 AND state = 'receiving'",
        params![up.id, state, reason, now_micros()],
    )?;
    if n != 1 {
        return Err(UploadError::Gone {
            id: up.id.clone(),
            state: super::UploadState::Terminated,
            reason: None,
        });
    }
    Ok(())
}

/// The device's relay entries of the contact are done.
fn mark_delivered(conn: &Connection, up: &Upload) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE deliveries SET outcome = 'uploaded', outcome_reason = NULL
         WHERE device_id = ?1 AND contact = (SELECT id FROM contacts WHERE contact_id = ?2)",
        params![up.device_id, up.contact_id],
    )?;
    Ok(())
}

/// Removes an object whose database row did not commit.
async fn unstore(state: &AppState, key: &str) {
    let (store, k) = (state.recordings().clone(), key.to_owned());
    if let Err(e) = blocking(move || Ok(store.delete(&k)?)).await {
        tracing::warn!(key = %key, error = %e, "could not remove an unreferenced recording");
    }
}

/// The same recording again from the same device: done, and say so again.
async fn duplicate(state: &AppState, up: &Upload) -> Result<()> {
    let u = up.clone();
    state
        .db()
        .call(move |c| {
            let tx = crate::db::write_tx(c)?;
            set_upload_state(
                &tx,
                &u,
                "stored",
                Some("identical to the recording already stored"),
            )?;
            mark_delivered(&tx, &u)?;
            tx.commit()?;
            Ok::<_, UploadError>(())
        })
        .await?;
    remove_file(&state.uploads().part_path(&up.id));
    tracing::info!(upload = %up.id, device = %up.device_id, contact = ?up.contact_id,
        "recording uploaded again, identical to the stored one");
    acknowledge(state, up);
    Ok(())
}

/// Records the rejection (upload, contact unless it has a recording, audit)
/// and deletes the bytes. Always returns [`UploadError::Rejected`].
async fn reject(state: &AppState, up: &Upload, rejection: Rejection) -> Result<()> {
    let reason = rejection.to_string();
    {
        let (u, reason) = (up.clone(), reason.clone());
        state
            .db()
            .call(move |c| {
                let tx = crate::db::write_tx(c)?;
                set_upload_state(&tx, &u, "rejected", Some(&reason))?;
                tx.execute(
                    "UPDATE contacts SET status = 'failed', status_reason = ?2, updated_at = ?3
                     WHERE contact_id = ?1
                       AND NOT EXISTS (SELECT 1 FROM recordings WHERE contact_id = ?1)",
                    params![u.contact_id, reason, now_micros()],
                )?;
                audit::record(
                    &tx,
                    &Actor::Device(u.device_id.clone()),
                    "recording.reject",
                    &u.contact_id,
                    json!({ "upload": u.id, "reason": reason }),
                )?;
                tx.commit()?;
                Ok::<_, UploadError>(())
            })
            .await?;
    }
    remove_file(&state.uploads().part_path(&up.id));
    tracing::warn!(upload = %up.id, device = %up.device_id, contact = ?up.contact_id,
        %reason, "recording rejected");
    Err(UploadError::Rejected(rejection))
}

/// Tells the device, if connected, that it may delete its copy.
fn acknowledge(state: &AppState, up: &Upload) {
    let msg = ServerMessage::RecordingStored(RecordingStored {
        contact_id: up.contact_id.clone(),
    });
    if !state.hub().post(&up.device_id, msg) {
        tracing::debug!(device = %up.device_id, "device not connected; the upload's answer acknowledges");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_show_times_to_the_second() {
        assert_eq!(
            utc::to_second(1_795_510_800_200_000),
            "2026-11-24T09:00:00Z"
        );
    }

    #[test]
    fn storage_keys_are_sharded_by_the_ids_first_byte() {
        assert_eq!(storage_key("up-ab12"), "ab/up-ab12.dskr");
    }
}

//! Contacts to recordings to the server.
//!
//! For each queued contact whose time (plus padding) has passed on the
//! agent's clock: convert the server's times with the measured clock
//! offset, pad, splice the covering chunks from the local segments into one
//! recording signed with the device key, and upload it with tus — created
//! once, resumed from the server's offset after any doubt, PATCHed in
//! pieces with the confirmed offset committed after each. The recording is
//! deleted once the server has acknowledged it (the final PATCH's 204, or
//! `recording_stored` on the RTE channel). A contact no segment covers is
//! reported `not_recorded`. A contact the server answers 410 `erased` or
//! `expired` for (its content was erased, or its retention ended, while
//! this PC could not upload) is final: the contact becomes `disposed`,
//! nothing is retried, and the local copy is deleted as after an upload.
//!
//! Every step is committed before it starts, so a crash resumes: a contact
//! left `splicing` is spliced again (the recording file appears only
//! whole), one left `uploading` asks the server for its offset.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deskrec_client::{ClientError, HttpConnection};
use deskrec_protocol::{UnrecoverableReason, UploadLimits};
use deskrec_vault::{FileKind, SpliceRequest, TimeRange, VaultError, utc};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::contacts::{self, Contact, ContactState, Recording};
use crate::engine::Shared;
use crate::pacer::Pacer;
use crate::view::NoticeKind;
use crate::{AgentError, DataDir};

/// Longest sleep between looks at the queue.
const IDLE: Duration = Duration::from_secs(30);
/// Splice attempts before a contact whose segments cannot be read is
/// reported `damaged`.
const MAX_SPLICE_ATTEMPTS: u32 = 5;
/// Margin after a contact's padded end before splicing, beyond one
/// chunk: the recorder's last chunk must be on disk.
const SETTLE_US: i64 = 1_000_000;

/// Startup repair: contacts cut mid-splice go back to the queue; recording
/// files the database does not know (a crash between a commit and an
/// unlink, or an unfinished splice) are deleted.
pub(crate) async fn recover(db: &crate::db::Db, dir: &DataDir) -> Result<(), AgentError> {
    let recordings = dir.recordings();
    db.call(move |c| {
        c.execute(
            "UPDATE contacts SET state = 'queued' WHERE state = 'splicing'",
            [],
        )?;
        let live = contacts::live_recording_paths(c)?;
        let entries = match std::fs::read_dir(&recordings) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(AgentError::io(&recordings)(e)),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !live.contains(&path) {
                tracing::info!(file = %path.display(), "removing a leftover recording file");
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(())
    })
    .await
}

/// Works the queue until shutdown.
pub(crate) async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let idle = Mutex::new(Vec::new());
    loop {
        let mut wake = IDLE;
        match work_due(&shared, &idle, &shutdown).await {
            Ok(w) => wake = wake.min(w),
            Err(e) => shared.error("contact queue", &e).await,
        }
        tokio::select! {
            _ = tokio::time::sleep(wake) => {}
            _ = shared.work.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The policy's upload limits (the defaults before the first policy).
fn upload_limits(shared: &Shared) -> UploadLimits {
    shared
        .policy
        .borrow()
        .as_ref()
        .map(|p| p.policy.upload)
        .unwrap_or_default()
}

/// One pass over the due contacts, `max_parallel` at a time (a splice of
/// one overlaps the upload of another); returns when to look again.
/// Connections to the server are reused across contacts through `idle`.
async fn work_due(
    shared: &Arc<Shared>,
    idle: &Mutex<Vec<HttpConnection>>,
    shutdown: &watch::Receiver<bool>,
) -> Result<Duration, AgentError> {
    let now = shared.now();
    let due = shared.db.call(move |c| contacts::due(c, now)).await?;
    let parallel = upload_limits(shared).max_parallel.max(1) as usize;
    let waits: Vec<Result<Duration, AgentError>> = futures_util::stream::iter(due)
        .map(|contact| async move {
            if *shutdown.borrow() {
                return Ok(IDLE);
            }
            let mut conn = idle.lock().expect("idle connections").pop();
            let wait = attempt(shared, &mut conn, contact).await;
            if let Some(c) = conn.filter(HttpConnection::is_open) {
                idle.lock().expect("idle connections").push(c);
            }
            wait
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    let mut wake = IDLE;
    for w in waits {
        wake = wake.min(w?);
    }
    let next = shared.db.call(|c| contacts::next_attempt(c)).await?;
    if let Some(at) = next {
        let wait = (at - shared.now()).max(0) as u64;
        wake = wake.min(Duration::from_micros(wait));
    }
    Ok(wake)
}

/// Advances one contact; a failure is scheduled for a retry with backoff
/// (and its connection dropped). Returns when to look at it again.
async fn attempt(
    shared: &Arc<Shared>,
    conn: &mut Option<HttpConnection>,
    contact: Contact,
) -> Result<Duration, AgentError> {
    let id = contact.contact_id.clone();
    let attempts = contact.attempts;
    match step(shared, conn, contact).await {
        Ok(w) => Ok(w.unwrap_or(IDLE)),
        Err(e) => {
            *conn = None;
            let delay = shared.backoff(attempts);
            let (now, text) = (shared.now(), e.to_string());
            let at = now + delay.as_micros() as i64;
            shared
                .db
                .call(move |c| contacts::retry_later(c, &id, &text, at, now))
                .await?;
            shared.queue_changed();
            shared.error("contact", &e).await;
            Ok(delay)
        }
    }
}

/// Advances one contact; `Some(wait)` when it is not ready yet.
async fn step(
    shared: &Arc<Shared>,
    conn: &mut Option<HttpConnection>,
    contact: Contact,
) -> Result<Option<Duration>, AgentError> {
    match contact.state {
        ContactState::Queued | ContactState::Splicing => {
            if let Some(wait) = splice(shared, &contact).await? {
                return Ok(Some(wait));
            }
            let id = contact.contact_id.clone();
            match shared.db.call(move |c| contacts::get(c, &id)).await? {
                Some(c) if c.state == ContactState::Uploading => upload(shared, conn, c).await,
                _ => Ok(None),
            }
        }
        ContactState::Uploading => upload(shared, conn, contact).await,
        ContactState::Done | ContactState::Unrecoverable | ContactState::Disposed => Ok(None),
    }
}

/// The range to splice for a contact, on the agent's clock.
pub fn requested_range(contact: &Contact, offset_us: i64, pad: Duration) -> TimeRange {
    let pad = pad.as_micros() as i64;
    TimeRange::new(
        contact.start - offset_us - pad,
        contact.end - offset_us + pad,
    )
}

/// Splices the contact's recording; `Some(wait)` when its time has not
/// passed yet or the clock offset is still unknown.
async fn splice(shared: &Arc<Shared>, contact: &Contact) -> Result<Option<Duration>, AgentError> {
    let Some(offset) = shared.offset() else {
        // The first measurement follows the first hello.
        return Ok(Some(Duration::from_secs(1)));
    };
    let requested = requested_range(contact, offset.offset_us, shared.config.pad);
    let chunk_us = (shared.config.chunk_seconds * 1e6) as i64;
    let ready_at = requested.end + chunk_us + SETTLE_US;
    let now = shared.now();
    if now < ready_at {
        return Ok(Some(Duration::from_micros((ready_at - now) as u64)));
    }
    let id = contact.contact_id.clone();
    let segments_dir = shared.config.data_dir.segments();
    let candidates = shared
        .db
        .call(move |c| {
            contacts::set_state(c, &id, ContactState::Splicing, now)?;
            crate::segments::refresh(c, &segments_dir, now)?;
            crate::segments::overlapping(c, requested)
        })
        .await?;
    shared.queue_changed();
    if candidates.is_empty() {
        return not_recorded(shared, contact, requested)
            .await
            .map(|()| None);
    }
    let dir = shared.config.data_dir.recordings();
    let out = dir.join(FileKind::Recording.file_name(&file_name(&contact.contact_id)));
    let req = SpliceRequest {
        contact_id: contact.contact_id.clone(),
        agent: contact.windows_login.clone(),
        requested,
        segments: candidates,
        clock_offset: offset.offset_us,
    };
    let key = shared.creds.device_key.clone();
    let target = out.clone();
    std::fs::create_dir_all(&dir).map_err(AgentError::io(&dir))?;
    let result = tokio::task::spawn_blocking(move || deskrec_vault::splice(&req, &key, &target))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let outcome = match result {
        Ok(o) => o,
        Err(VaultError::NotCovered(_)) => {
            return not_recorded(shared, contact, requested)
                .await
                .map(|()| None);
        }
        Err(e) if contact.attempts + 1 >= MAX_SPLICE_ATTEMPTS => {
            let (id, reason) = (&contact.contact_id, UnrecoverableReason::Damaged);
            give_up(shared, id, reason, e.to_string(), false).await?;
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let rec = Recording {
        path: out,
        bytes: outcome.bytes,
    };
    tracing::info!(contact = %contact.contact_id, bytes = rec.bytes, chunks = outcome.chunks,
        trim = %outcome.manifest.trim, "recording spliced");
    let (id, now) = (contact.contact_id.clone(), shared.now());
    shared
        .db
        .call(move |c| contacts::store_recording(c, &id, &rec, &outcome.manifest, now))
        .await?;
    shared.queue_changed();
    Ok(None)
}

/// Reports a contact with no segment: `segments_deleted` when retention
/// (or someone) deleted the segments of its time, else what the timeline
/// says of that time: `not_eligible`, or `not_recorded` (logged off, PC or
/// agent off) with the states in the detail.
async fn not_recorded(
    shared: &Shared,
    contact: &Contact,
    requested: TimeRange,
) -> Result<(), AgentError> {
    let span = format!(
        "{} to {}",
        utc::rfc3339(requested.start),
        utc::rfc3339(requested.end)
    );
    let (deleted, timeline) = shared
        .db
        .call(move |c| {
            Ok((
                crate::segments::deleted_overlapping(c, requested)?,
                crate::timeline::during(c, requested)?,
            ))
        })
        .await?;
    let (reason, detail) = match deleted {
        Some(why) => (
            UnrecoverableReason::SegmentsDeleted,
            format!("the segments covering {span} (PC clock) were deleted ({why})"),
        ),
        None => {
            let (reason, states) = crate::timeline::explain(&timeline);
            (
                reason,
                format!("no segment on this PC covers {span} (PC clock); {states}"),
            )
        }
    };
    tracing::info!(contact = %contact.contact_id, %detail, "contact not recorded");
    give_up(shared, &contact.contact_id, reason, detail, false).await
}

/// Uploads the contact's recording from where the server is.
async fn upload(
    shared: &Arc<Shared>,
    conn: &mut Option<HttpConnection>,
    contact: Contact,
) -> Result<Option<Duration>, AgentError> {
    let id = contact.contact_id.clone();
    let lookup = id.clone();
    let Some(rec) = shared
        .db
        .call(move |c| contacts::recording(c, &lookup))
        .await?
    else {
        // The file is gone (deleted by hand?): splice again.
        let now = shared.now();
        shared
            .db
            .call(move |c| contacts::set_state(c, &id, ContactState::Queued, now))
            .await?;
        return Ok(Some(Duration::ZERO));
    };
    let limit = upload_limits(shared).max_recording_bytes;
    if rec.bytes > limit {
        let detail = format!(
            "the recording is {} bytes, over the server's limit of {limit} (setting upload.max_recording_bytes)",
            rec.bytes
        );
        tracing::warn!(contact = %id, %detail, "recording too large to upload");
        too_large(shared, &id, detail).await?;
        return Ok(None);
    }
    if conn.as_ref().is_none_or(|c| !c.is_open()) {
        *conn = Some(HttpConnection::connect(&shared.server()).await?);
    }
    let http = conn.as_mut().expect("connected above");
    let credential = shared.creds.credential.as_str();
    let mut url = contact.upload_url.clone();
    for _ in 0..3 {
        let location = match url.take() {
            Some(u) => u,
            None => {
                let u = match http.tus_create(credential, rec.bytes, &id).await {
                    Ok(u) => u,
                    Err(e) => return disposed_or(shared, &id, e.into()).await,
                };
                commit_offset(shared, &id, Some(&u), 0).await?;
                tracing::info!(contact = %id, upload = %u, bytes = rec.bytes, "upload created");
                u
            }
        };
        match send(shared, http, &id, &location, &rec).await {
            Ok(()) => {
                acknowledged(shared, &id).await?;
                return Ok(None);
            }
            // Before the upload's own 410: this one is the contact's.
            Err(e) if disposal(&e).is_some() => return disposed_or(shared, &id, e).await,
            Err(AgentError::Client(ClientError::Api {
                status: 404 | 410, ..
            })) => {
                tracing::info!(contact = %id, upload = %location, "upload gone; starting a new one");
                commit_offset(shared, &id, None, 0).await?;
            }
            Err(AgentError::Client(ClientError::Api {
                status: 409, code, ..
            })) if code == "offset_mismatch" => {
                url = Some(location); // ask for the offset again
            }
            Err(AgentError::Client(ClientError::Api {
                status: 409, code, ..
            })) if code == "already_stored" => {
                acknowledged(shared, &id).await?;
                return Ok(None);
            }
            Err(AgentError::Client(ClientError::Api {
                status: 422,
                message,
                ..
            })) => {
                // The server refused the recording and shows why on the
                // contact; nothing to send it.
                give_up(
                    shared,
                    &id,
                    UnrecoverableReason::Damaged,
                    message.clone(),
                    true,
                )
                .await?;
                rejected(shared, &id, &message).await;
                return Ok(None);
            }
            Err(AgentError::Client(ClientError::Api {
                status: 413,
                message,
                ..
            })) => {
                // The limit changed after the policy came.
                too_large(shared, &id, message).await?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
    }
    Err(AgentError::UploadRefused {
        contact: id.to_string(),
    })
}

/// The server's codes for a contact whose recorded content it erased or
/// let expire (the playback routes' 410 codes too).
const DISPOSAL_CODES: [&str; 2] = ["erased", "expired"];

/// `Some((code, message))` when `e` is the server's final 410 for the
/// contact (not for one upload of it, `upload_gone`, which a new upload
/// follows).
fn disposal(e: &AgentError) -> Option<(&str, &str)> {
    match e {
        AgentError::Client(ClientError::Api {
            status: 410,
            code,
            message,
        }) if DISPOSAL_CODES.contains(&code.as_str()) => Some((code, message)),
        _ => None,
    }
}

/// Settles a contact the server disposed of ([`disposal`]); any other
/// error is handed back for a retry.
async fn disposed_or(
    shared: &Shared,
    id: &str,
    e: AgentError,
) -> Result<Option<Duration>, AgentError> {
    let Some((code, message)) = disposal(&e) else {
        return Err(e);
    };
    tracing::warn!(contact = %id, disposal = code, %message,
        "the server disposed of the contact; its recording is deleted, not uploaded");
    let what = if code == "expired" {
        "expired"
    } else {
        "was erased"
    };
    let (cid, code, detail, now) = (
        id.to_owned(),
        code.to_owned(),
        message.to_owned(),
        shared.now(),
    );
    let rec = shared
        .db
        .call(move |c| contacts::disposed_on_server(c, &cid, &code, &detail, now))
        .await?;
    if let Some(rec) = rec {
        delete_local(shared, &rec).await;
        shared.notice(
            NoticeKind::Disposed,
            "Recording not uploaded",
            format!(
                "Contact {id} {what} on the server before its recording arrived; \
                 the recording was deleted from this PC."
            ),
        );
        shared.queue_changed();
    }
    Ok(None)
}

/// Deletes a local recording whose contact is finished (after the commit
/// that says so: a crash in between leaves only a file that the next
/// start removes).
async fn delete_local(shared: &Shared, rec: &Recording) {
    match std::fs::remove_file(&rec.path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            shared
                .error("cannot delete a finished contact's recording", &e)
                .await
        }
    }
}

/// Gives up on a contact with `reason`; `told` when the server already
/// knows (no outcome to send).
async fn give_up(
    shared: &Shared,
    id: &str,
    reason: UnrecoverableReason,
    detail: String,
    told: bool,
) -> Result<(), AgentError> {
    let (id, now) = (id.to_owned(), shared.now());
    shared
        .db
        .call(move |c| contacts::set_unrecoverable(c, &id, reason, &detail, told, now))
        .await?;
    if !told {
        shared.outbox.notify_one();
    }
    shared.queue_changed();
    Ok(())
}

/// The recording is larger than the server takes: the server is told why.
async fn too_large(shared: &Shared, id: &str, detail: String) -> Result<(), AgentError> {
    give_up(
        shared,
        id,
        UnrecoverableReason::TooLarge,
        detail.clone(),
        false,
    )
    .await?;
    rejected(shared, id, &detail).await;
    Ok(())
}

/// A contact's recording will not reach the server: the agent hears of
/// it, and the attention icon shows for a while.
async fn rejected(shared: &Shared, id: &str, why: &str) {
    let body = format!("The recording of contact {id} was not accepted: {why}");
    shared.notice(NoticeKind::Rejected, "Upload refused", body.clone());
    shared.alert("Upload refused", body).await;
}

/// HEAD for the offset, then PATCHes to the end; Ok when the server
/// answered the last one (verified and stored).
async fn send(
    shared: &Arc<Shared>,
    http: &mut HttpConnection,
    id: &str,
    location: &str,
    rec: &Recording,
) -> Result<(), AgentError> {
    let credential = shared.creds.credential.as_str();
    let mut offset = http.tus_offset(credential, location).await?;
    commit_offset(shared, id, Some(location), offset).await?;
    loop {
        let cap = upload_limits(shared).max_bytes_per_second;
        let piece = Pacer::piece_bytes(cap, shared.config.upload_chunk_bytes as u64);
        let len = (rec.bytes - offset).min(piece) as usize;
        shared.pacer.pace(len as u64, cap).await;
        let path = rec.path.clone();
        let body = tokio::task::spawn_blocking(move || read_at(&path, offset, len))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
        let last = offset + len as u64 == rec.bytes;
        let new = http
            .tus_patch(credential, location, offset, body.into())
            .await?;
        commit_offset(shared, id, Some(location), new).await?;
        tracing::debug!(contact = %id, offset = new, bytes = rec.bytes, "upload progressed");
        if last && new == rec.bytes {
            return Ok(());
        }
        offset = new;
    }
}

async fn commit_offset(
    shared: &Shared,
    id: &str,
    url: Option<&str>,
    offset: u64,
) -> Result<(), AgentError> {
    let (id, url, now) = (id.to_owned(), url.map(str::to_owned), shared.now());
    let cid = id.clone();
    shared
        .db
        .call(move |c| contacts::set_upload(c, &id, url.as_deref(), offset, now))
        .await?;
    shared.upload_progressed(&cid, offset);
    Ok(())
}

fn read_at(path: &Path, offset: u64, len: usize) -> Result<Vec<u8>, AgentError> {
    let mut f = std::fs::File::open(path).map_err(AgentError::io(path))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(AgentError::io(path))?;
    let mut buf = vec![0; len];
    f.read_exact(&mut buf).map_err(AgentError::io(path))?;
    Ok(buf)
}

/// The server has the contact's recording: done, local copy deleted
/// (after the commit, so a crash in between leaves only a file that the
/// next start removes).
pub(crate) async fn acknowledged(shared: &Shared, id: &str) -> Result<(), AgentError> {
    let (id, now) = (id.to_owned(), shared.now());
    let cid = id.clone();
    let rec = shared
        .db
        .call(move |c| contacts::stored_on_server(c, &cid, now))
        .await?;
    if let Some(rec) = rec {
        delete_local(shared, &rec).await;
        tracing::info!(contact = %id, "recording uploaded; local copy deleted");
        shared.rates.lock().expect("rates lock").remove(&id);
        shared.notice(
            NoticeKind::Uploaded,
            "Recording uploaded",
            format!(
                "Contact {id} ({}) is on the server.",
                human_bytes(rec.bytes)
            ),
        );
        shared.queue_changed();
    }
    Ok(())
}

/// A contact id as a file name, distinct for distinct ids and at most
/// [`MAX_NAME`] bytes: ASCII letters, digits and `-` stay, anything else
/// becomes `_` and its code point in six hex digits (fixed width: `/8` and
/// U+02F8 must not meet). An id that is still too long is cut, and the
/// SHA-256 of the whole id follows a `~`, which the escaped form never
/// holds, so the two forms cannot meet either.
fn file_name(id: &str) -> String {
    let mut s = String::new();
    for ch in id.chars() {
        if ch.is_ascii_alphanumeric() || ch == '-' {
            s.push(ch);
        } else {
            s.push_str(&format!("_{:06x}", ch as u32));
        }
    }
    if s.len() <= MAX_NAME {
        return s;
    }
    let digest = <sha2::Sha256 as sha2::Digest>::digest(id.as_bytes());
    let hash: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    s.truncate(MAX_NAME - 1 - hash.len()); // ASCII only: any cut is a char boundary
    format!("{s}~{hash}")
}

/// The longest contact file name, before its `.dskr`: well under the 255
/// bytes of every file system the agent runs on.
const MAX_NAME: usize = 200;

/// Bytes in the unit people read: `2.0 MB`.
fn human_bytes(b: u64) -> String {
    match b {
        0..1_000_000 => format!("{:.0} KB", b as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        _ => format!("{:.2} GB", b as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_convert_with_the_offset_and_pad() {
        let c = Contact {
            contact_id: "c".into(),
            seq: 1,
            windows_login: "ann".into(),
            start: 1_000_000_000,
            end: 1_060_000_000,
            state: ContactState::Queued,
            upload_url: None,
            upload_offset: 0,
            attempts: 0,
        };
        // The server is 300 s ahead of the agent: agent times are earlier.
        let r = requested_range(&c, 300_000_000, Duration::from_secs(5));
        assert_eq!(r, TimeRange::new(695_000_000, 765_000_000));
        assert_eq!(file_name("acd/8 x"), "acd_00002f8_000020x");
    }

    #[test]
    fn contact_file_names_never_collide_and_stay_short() {
        // Variable-width escapes once gave these one name.
        assert_ne!(file_name("/8"), file_name("\u{2f8}"));
        assert_ne!(file_name("a_"), file_name("a_00005f"));
        let long = "x".repeat(300);
        let longer = format!("{long}y");
        for id in [&long, &longer, &"é".repeat(100)] {
            let name = file_name(id);
            assert!(name.len() <= MAX_NAME, "{} bytes", name.len());
            assert!(name.is_ascii());
        }
        assert_ne!(file_name(&long), file_name(&longer));
        assert_eq!(file_name(&long), file_name(&long), "stable");
    }
}

//! The tus upload of a contact's recording: created once, resumed from
//! the server's offset after any doubt, PATCHed in pieces with the
//! confirmed offset committed after each, and the server's refusals sorted
//! into retry, restart and give up.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use deskrec_client::{ClientError, HttpConnection};
use deskrec_protocol::UnrecoverableReason;

use super::outcome::{acknowledged, disposal, disposed_or, give_up, rejected, too_large};
use super::upload_limits;
use crate::AgentError;
use crate::contacts::{self, Contact, ContactState, Recording};
use crate::engine::Shared;
use crate::pacer::Pacer;

/// Uploads the contact's recording from where the server is.
pub(super) async fn upload(
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

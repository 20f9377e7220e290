//! The tus 1.0.0 endpoints under `/api/v1/uploads`: core (HEAD, PATCH),
//! OPTIONS, creation (POST), termination (DELETE) and checksum.
//!
//! Every request needs a device credential (`Authorization: Bearer`), then
//! `Tus-Resumable: 1.0.0` (OPTIONS excepted). A device sees only its own
//! uploads: another device's upload answers 404 like a missing one. Errors
//! are the API's `{code, message}` JSON; every answer carries
//! `Tus-Resumable`. The wire description is in `docs/protocol.md`.
//!
//! A PATCH body is written as it arrives; when it ends early (the agent's
//! connection dropped, or a newer request for the upload took over) the
//! bytes that did arrive are synced and the new offset committed, so the
//! agent resumes from the last byte the server has. With `Upload-Checksum`
//! a body counts only whole and matching, otherwise nothing is appended.
//! The body is handled in its own task, so a client hanging up cannot
//! cancel the handler between writing bytes and recording them.

use std::io::SeekFrom;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{options, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::BodyExt;
use sha1::Digest as _;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::sync::watch;

use super::{Result, Upload, UploadError, UploadState, verdict};
use crate::api::{ApiError, bearer};
use crate::enrollment;
use crate::state::AppState;

/// The protocol version spoken, in `Tus-Resumable` and `Tus-Version`.
pub const TUS_VERSION: &str = "1.0.0";

/// The extensions offered, in `Tus-Extension`.
pub const TUS_EXTENSIONS: &str = "creation,termination,checksum";

/// The checksum algorithms accepted in `Upload-Checksum`.
pub const CHECKSUM_ALGORITHMS: &str = "sha1,sha256";

/// The media type of a PATCH body.
const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

/// A PATCH body that sends nothing for this long counts as interrupted:
/// its bytes so far are kept and the upload is free for a retry.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a request waits for the request holding its upload to let go.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// The upload routes; merged into the API router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/uploads", post(create).options(discover))
        .route(
            "/api/v1/uploads/{id}",
            options(discover)
                .head(status)
                .patch(append)
                .delete(terminate),
        )
        .layer(axum::middleware::map_response(tus_headers))
}

/// Every tus answer says which version it speaks; a refused version also
/// says which one to use.
async fn tus_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(TUS_RESUMABLE, HeaderValue::from_static(TUS_VERSION));
    if resp.status() == StatusCode::PRECONDITION_FAILED {
        resp.headers_mut()
            .insert(TUS_VERSION_HEADER, HeaderValue::from_static(TUS_VERSION));
    }
    resp
}

const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
const TUS_VERSION_HEADER: HeaderName = HeaderName::from_static("tus-version");
const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");

/// The authenticated device of a tus request (and, except for OPTIONS, a
/// request that speaks tus 1.0.0).
struct TusDevice(String);

impl FromRequestParts<AppState> for TusDevice {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Credentials first: an unauthenticated caller learns nothing else.
        let credential = bearer(&parts.headers)
            .ok_or_else(ApiError::unauthorized)?
            .to_owned();
        let device = state
            .db()
            .call(move |c| enrollment::authenticate(c, &credential))
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        if parts.method != Method::OPTIONS
            && text(&parts.headers, TUS_RESUMABLE.as_str()) != Some(TUS_VERSION)
        {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "unsupported_tus_version",
                format!("this server speaks tus {TUS_VERSION}: send Tus-Resumable: {TUS_VERSION}"),
            ));
        }
        Ok(TusDevice(device))
    }
}

fn text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

pub(crate) fn number(headers: &HeaderMap, name: &str) -> Result<Option<u64>> {
    text(headers, name)
        .map(|v| {
            v.parse().map_err(|_| {
                UploadError::BadRequest(format!("{name} must be a non-negative integer"))
            })
        })
        .transpose()
}

/// `OPTIONS`: what this server supports, and the size limit now in force.
async fn discover(
    TusDevice(_): TusDevice,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let limit = state
        .db()
        .call(|c| crate::directory::load_settings(c))
        .await?
        .upload
        .max_recording_bytes;
    Ok((
        StatusCode::NO_CONTENT,
        [
            (TUS_VERSION_HEADER.as_str(), TUS_VERSION.to_owned()),
            ("tus-extension", TUS_EXTENSIONS.to_owned()),
            ("tus-max-size", limit.to_string()),
            ("tus-checksum-algorithm", CHECKSUM_ALGORITHMS.to_owned()),
        ],
    )
        .into_response())
}

/// `POST`: a new upload of `Upload-Length` bytes for the contact named by
/// `contact_id` in `Upload-Metadata`.
async fn create(
    TusDevice(device): TusDevice,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if headers.contains_key("upload-defer-length") {
        return Err(bad("Upload-Defer-Length is not supported: send Upload-Length").into());
    }
    let length = number(&headers, UPLOAD_LENGTH.as_str())?
        .ok_or_else(|| bad("Upload-Length is required"))?;
    if length == 0 {
        return Err(bad("Upload-Length must be at least 1: a recording is never empty").into());
    }
    let contact_id = metadata(
        text(&headers, "upload-metadata").unwrap_or(""),
        "contact_id",
    )?
    .filter(|c| !c.is_empty())
    .ok_or_else(|| bad("Upload-Metadata must carry contact_id (base64)"))?;
    let limits = state.limits();
    let (max_open, reserve) = (limits.open_uploads_per_device, limits.disk_reserve());
    let dir = state.uploads().dir().to_owned();
    let free = tokio::task::spawn_blocking(move || crate::limits::free_bytes(&dir))
        .await
        .ok()
        .flatten();
    // Bytes an upload may take before the disk is at its reserve.
    let room = free.map(|free| free.saturating_sub(reserve));
    let upload = {
        let device = device.clone();
        state
            .db()
            .call(move |c| super::create(c, &device, &contact_id, length, max_open, room))
            .await?
    };
    // The row is committed first; PATCH creates the file if it is missing.
    tokio::fs::File::create(state.uploads().part_path(&upload.id))
        .await
        .map_err(UploadError::from)?;
    tracing::info!(upload = %upload.id, %device, contact = ?upload.contact_id, length,
        "upload created");
    Ok((
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/api/v1/uploads/{}", upload.id)),
            (UPLOAD_OFFSET, "0".to_owned()),
        ],
    )
        .into_response())
}

fn bad(message: &str) -> UploadError {
    UploadError::BadRequest(message.to_owned())
}

/// The value of `key` in an `Upload-Metadata` header (`key base64,…`).
pub(crate) fn metadata(header: &str, key: &str) -> Result<Option<String>> {
    for pair in header.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once(' ').unwrap_or((pair, ""));
        if k == key {
            let bytes = STANDARD
                .decode(v.trim())
                .map_err(|_| bad(&format!("Upload-Metadata: {key} is not base64")))?;
            let value = String::from_utf8(bytes)
                .map_err(|_| bad(&format!("Upload-Metadata: {key} is not UTF-8")))?;
            return Ok(Some(value));
        }
    }
    Ok(None)
}

/// Takes the device's upload `id` from whichever request holds it. The
/// owner is checked first: taking the lock interrupts a PATCH in flight,
/// and another device that learnt the id must not be able to do that.
async fn lock(state: &AppState, id: &str, device: &str) -> Result<super::Guard> {
    let (upload, owner) = (id.to_owned(), device.to_owned());
    state
        .db()
        .call(move |c| super::find(c, &upload, &owner))
        .await?
        .ok_or(UploadError::NotFound)?;
    state
        .uploads()
        .locks()
        .acquire(id, LOCK_WAIT)
        .await
        .ok_or(UploadError::Busy)
}

/// The device's upload `id`, if it still is (or was successfully) one.
/// One whose contact's content was erased or expired meanwhile is
/// refused ([`super::refuse`]): every request after a disposal is, not
/// only the creation.
async fn current(state: &AppState, id: &str, device: &str) -> Result<Upload> {
    let (id, device) = (id.to_owned(), device.to_owned());
    let (up, disposal) = state
        .db()
        .call(move |c| {
            let Some(up) = super::find(c, &id, &device)? else {
                return Ok(None);
            };
            let disposal = super::disposal(c, &up.contact_id)?;
            Ok::<_, rusqlite::Error>(Some((up, disposal)))
        })
        .await?
        .ok_or(UploadError::NotFound)?;
    if let Some(disposal) = disposal.filter(|_| up.state != UploadState::Stored) {
        return Err(super::refuse(state, &up, disposal).await);
    }
    let expired = up.state == UploadState::Receiving && up.expires_at <= crate::db::now_micros();
    match up.state {
        UploadState::Receiving if !expired => Ok(up),
        UploadState::Stored => Ok(up),
        state => Err(UploadError::Gone {
            id: up.id,
            state: if expired {
                UploadState::Terminated
            } else {
                state
            },
            reason: up.reason,
        }),
    }
}

/// `HEAD`: how many bytes the server has. A stored upload reports all of
/// them, so an agent that missed the final answer sees it is done.
async fn status(
    TusDevice(device): TusDevice,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // Taking the lock lets a PATCH still writing record its bytes first,
    // so the offset is the true one.
    let _guard = lock(&state, &id, &device).await?;
    let up = current(&state, &id, &device).await?;
    Ok((
        StatusCode::OK,
        [
            (UPLOAD_OFFSET, up.received.to_string()),
            (UPLOAD_LENGTH, up.length.to_string()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response())
}

/// `DELETE`: the agent gives the upload up; its bytes are deleted.
async fn terminate(
    TusDevice(device): TusDevice,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let _guard = lock(&state, &id, &device).await?;
    let up = current(&state, &id, &device).await?;
    if up.state == UploadState::Stored {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "upload_complete",
            "the upload is complete and its recording stored; it cannot be terminated",
        ));
    }
    let terminated = {
        let id = id.clone();
        state
            .db()
            .call(move |c| super::terminate(c, &id, "terminated by the agent"))
            .await
            .map_err(UploadError::from)?
    };
    if terminated {
        super::remove_file(&state.uploads().part_path(&id));
        tracing::info!(upload = %id, %device, "upload terminated");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A PATCH's headers, checked before any byte is read.
#[derive(Debug)]
struct PatchRequest {
    offset: u64,
    content_length: Option<u64>,
    checksum: Option<Checksum>,
}

/// `Upload-Checksum`: the algorithm and the expected digest.
#[derive(Debug)]
pub(crate) struct Checksum {
    pub(crate) sha256: bool,
    pub(crate) expected: Vec<u8>,
}

impl Checksum {
    pub(crate) fn parse(value: &str) -> Result<Self> {
        let (algorithm, digest) = value
            .split_once(' ')
            .ok_or_else(|| bad("Upload-Checksum must be \"<algorithm> <base64 digest>\""))?;
        let sha256 = match algorithm {
            "sha1" => false,
            "sha256" => true,
            other => {
                return Err(bad(&format!(
                    "checksum algorithm {other:?} is not supported (use one of {CHECKSUM_ALGORITHMS})"
                )));
            }
        };
        let expected = STANDARD
            .decode(digest.trim())
            .map_err(|_| bad("Upload-Checksum: the digest is not base64"))?;
        Ok(Self { sha256, expected })
    }

    fn hasher(&self) -> Hasher {
        if self.sha256 {
            Hasher::Sha256(<sha2::Sha256 as sha2::Digest>::new())
        } else {
            Hasher::Sha1(sha1::Sha1::new())
        }
    }
}

enum Hasher {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => sha2::Digest::update(h, data),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => sha2::Digest::finalize(h).to_vec(),
        }
    }
}

/// `PATCH`: append the body at `Upload-Offset`. The PATCH that brings the
/// last byte answers only once the recording is verified and stored (204)
/// or refused (422, or 409 `already_stored`, or 410 `erased`/`expired`
/// when the contact's content was disposed of).
async fn append(
    TusDevice(device): TusDevice,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let content_type = text(&headers, header::CONTENT_TYPE.as_str()).unwrap_or("");
    if !content_type.eq_ignore_ascii_case(OFFSET_OCTET_STREAM) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("a PATCH body must be {OFFSET_OCTET_STREAM}"),
        ));
    }
    let req = PatchRequest {
        offset: number(&headers, UPLOAD_OFFSET.as_str())?
            .ok_or_else(|| bad("Upload-Offset is required"))?,
        content_length: number(&headers, header::CONTENT_LENGTH.as_str())?,
        checksum: text(&headers, "upload-checksum")
            .map(Checksum::parse)
            .transpose()?,
    };
    // Its own task: if the client hangs up, hyper drops this handler, but
    // the bytes that arrived must still be synced and recorded.
    let offset = tokio::spawn(patch(state, device, id, req, body))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    Ok((
        StatusCode::NO_CONTENT,
        [(UPLOAD_OFFSET, offset.to_string())],
    )
        .into_response())
}

/// The PATCH itself, holding the upload's lock; returns the new offset.
async fn patch(
    state: AppState,
    device: String,
    id: String,
    req: PatchRequest,
    body: Body,
) -> Result<u64> {
    let mut guard = lock(&state, &id, &device).await?;
    let up = current(&state, &id, &device).await?;
    if req.offset != up.received {
        return Err(UploadError::OffsetMismatch {
            expected: up.received,
            got: req.offset,
        });
    }
    if req
        .content_length
        .is_some_and(|n| n > up.length - up.received)
    {
        return Err(UploadError::PastLength { length: up.length });
    }
    if up.state == UploadState::Stored {
        return Ok(up.received); // nothing left to send: done before
    }
    let mut up = up;
    if !up.is_complete() {
        let path = state.uploads().part_path(&id);
        let (received, whole) = write_body(&path, &up, &req, body, &mut guard.takeover).await?;
        crate::crashpoint::hit("patch.synced");
        if received != up.received {
            let (upload, from) = (id.clone(), up.received);
            let advanced = state
                .db()
                .call(move |c| super::advance(c, &upload, from, received))
                .await?;
            if !advanced {
                return Err(current(&state, &up.id, &device).await.err().unwrap_or(
                    UploadError::Interrupted {
                        received: up.received,
                    },
                ));
            }
            crate::crashpoint::hit("patch.advanced");
            tracing::debug!(upload = %id, received, length = up.length, "upload progressed");
        }
        up.received = received;
        if !whole {
            tracing::info!(upload = %id, received, "upload body interrupted; bytes kept");
            return Err(UploadError::Interrupted { received });
        }
    }
    if up.is_complete() {
        // Also reached by an empty PATCH at the end: a retry after the
        // server failed to finish (the last byte is committed first).
        verdict::finish(&state, &up).await?;
    }
    Ok(up.received)
}

/// Appends the body to the upload's file, synced. Returns the bytes the
/// file now holds and whether the body arrived whole. With a checksum, a
/// body that is not whole and matching appends nothing.
async fn write_body(
    path: &std::path::Path,
    up: &Upload,
    req: &PatchRequest,
    mut body: Body,
    takeover: &mut watch::Receiver<u64>,
) -> Result<(u64, bool)> {
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .await?;
    let on_disk = file.metadata().await?.len();
    if on_disk < up.received {
        // Synced bytes are gone (the file was damaged or removed): rather
        // than fail forever, go back to what is there; the agent resumes
        // from it.
        tracing::error!(upload = %up.id, on_disk, received = up.received,
            "upload file is shorter than its recorded offset; resuming from the file");
        return Ok((on_disk, false));
    }
    // Bytes past the recorded offset were written but never committed (a
    // crash, or a body refused by its checksum): they do not count.
    file.set_len(up.received).await?;
    file.seek(SeekFrom::Start(up.received)).await?;
    let mut hasher = req.checksum.as_ref().map(Checksum::hasher);
    let room = up.length - up.received;
    let (mut got, mut ended, mut overflow) = (0u64, false, false);
    loop {
        let frame = tokio::select! {
            _ = takeover.changed() => break,
            f = tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()) => f,
        };
        let data = match frame {
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue, // trailers
            },
            Ok(None) => {
                ended = true;
                break;
            }
            // The connection failed or went quiet.
            Ok(Some(Err(_))) | Err(_) => break,
        };
        if data.len() as u64 > room - got {
            overflow = true;
            break;
        }
        if let Some(h) = hasher.as_mut() {
            h.update(&data);
        }
        file.write_all(&data).await?;
        got += data.len() as u64;
    }
    // hyper ends a body whose connection dropped like a finished one; the
    // declared length tells them apart.
    let whole = ended && req.content_length.is_none_or(|n| n == got);
    let refused = if overflow {
        Some(UploadError::PastLength { length: up.length })
    } else if let (Some(h), Some(sum)) = (hasher, &req.checksum) {
        if !whole {
            Some(UploadError::Interrupted {
                received: up.received,
            })
        } else if h.finish() != sum.expected {
            Some(UploadError::ChecksumMismatch)
        } else {
            None
        }
    } else {
        None
    };
    if refused.is_some() {
        file.set_len(up.received).await?;
    }
    file.flush().await?;
    file.sync_data().await?;
    match refused {
        Some(e) => Err(e),
        None => Ok((up.received + got, whole)),
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        let status = |code: u16| StatusCode::from_u16(code).expect("a valid status");
        let (status, code) = match &e {
            UploadError::Disposed { disposal, .. } => {
                return crate::api::gone(disposal, e.to_string());
            }
            UploadError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            UploadError::Gone { .. } => (StatusCode::GONE, "upload_gone"),
            UploadError::OffsetMismatch { .. } => (StatusCode::CONFLICT, "offset_mismatch"),
            UploadError::TooLarge { .. } | UploadError::PastLength { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
            }
            UploadError::UnknownContact(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_contact"),
            UploadError::NotDelivered(_) => (StatusCode::FORBIDDEN, "contact_not_delivered"),
            UploadError::TooManyOpen { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_uploads"),
            UploadError::InsufficientStorage => {
                (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage")
            }
            UploadError::AlreadyStored(_)
            | UploadError::Rejected(verdict::Rejection::AlreadyStored { .. }) => {
                (StatusCode::CONFLICT, "already_stored")
            }
            // tus' checksum extension: 460 Checksum Mismatch.
            UploadError::ChecksumMismatch => (status(460), "checksum_mismatch"),
            UploadError::Interrupted { .. } => (StatusCode::BAD_REQUEST, "interrupted"),
            UploadError::Busy => (StatusCode::LOCKED, "upload_busy"),
            UploadError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            UploadError::Rejected(_) => (StatusCode::UNPROCESSABLE_ENTITY, "recording_rejected"),
            UploadError::Store(_)
            | UploadError::Db(_)
            | UploadError::Io(_)
            | UploadError::Directory(_) => return ApiError::internal(&e),
        };
        ApiError::new(status, code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_finds_base64_values_and_keys_without_values() {
        let h = "filename Yy0xLmRza3I=, flag,contact_id Yy0x";
        assert_eq!(metadata(h, "contact_id").unwrap().as_deref(), Some("c-1"));
        assert_eq!(metadata(h, "flag").unwrap().as_deref(), Some(""));
        assert_eq!(metadata(h, "missing").unwrap(), None);
        assert!(metadata("contact_id !!", "contact_id").is_err());
    }

    #[test]
    fn checksums_parse_known_algorithms_only() {
        let c = Checksum::parse("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=").unwrap();
        assert!(!c.sha256);
        assert_eq!(c.expected.len(), 20);
        let mut h = c.hasher();
        h.update(b"hello world");
        assert_eq!(h.finish(), c.expected);
        assert!(Checksum::parse("md5 AAAA").is_err());
        assert!(Checksum::parse("sha1").is_err());
    }
}

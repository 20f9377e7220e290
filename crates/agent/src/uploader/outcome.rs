//! How a contact ends: uploaded and acknowledged, disposed of by the
//! server, or given up with a reason; the local copy deleted and the user
//! told.

use std::time::Duration;

use deskrec_client::ClientError;
use deskrec_protocol::UnrecoverableReason;

use crate::AgentError;
use crate::contacts::{self, Recording};
use crate::engine::Shared;
use crate::view::NoticeKind;

/// The server's codes for a contact whose recorded content it erased or
/// let expire (the playback routes' 410 codes too).
const DISPOSAL_CODES: [&str; 2] = ["erased", "expired"];

/// `Some((code, message))` when `e` is the server's final 410 for the
/// contact (not for one upload of it, `upload_gone`, which a new upload
/// follows).
pub(super) fn disposal(e: &AgentError) -> Option<(&str, &str)> {
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
pub(super) async fn disposed_or(
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
pub(super) async fn give_up(
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
pub(super) async fn too_large(shared: &Shared, id: &str, detail: String) -> Result<(), AgentError> {
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
pub(super) async fn rejected(shared: &Shared, id: &str, why: &str) {
    let body = format!("The recording of contact {id} was not accepted: {why}");
    shared.notice(NoticeKind::Rejected, "Upload refused", body.clone());
    shared.alert("Upload refused", body).await;
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

/// Bytes in the unit people read: `2.0 MB`.
fn human_bytes(b: u64) -> String {
    match b {
        0..1_000_000 => format!("{:.0} KB", b as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        _ => format!("{:.2} GB", b as f64 / 1e9),
    }
}

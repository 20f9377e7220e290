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
//!
//! One file an idea: this one works the queue (a pool of connections,
//! contacts in parallel, retries with backoff); `splice` makes a contact's
//! recording, `tus` uploads it, `outcome` settles how a contact ends, and
//! `recover` repairs what a crash left at start-up.

mod outcome;
mod recover;
mod splice;
mod tus;

pub(crate) use outcome::acknowledged;
pub(crate) use recover::recover;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use deskrec_client::HttpConnection;
use deskrec_protocol::UploadLimits;
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::AgentError;
use crate::contacts::{self, Contact, ContactState};
use crate::engine::Shared;

/// Longest sleep between looks at the queue.
const IDLE: Duration = Duration::from_secs(30);

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
pub(super) fn upload_limits(shared: &Shared) -> UploadLimits {
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
            if let Some(wait) = splice::splice(shared, &contact).await? {
                return Ok(Some(wait));
            }
            let id = contact.contact_id.clone();
            match shared.db.call(move |c| contacts::get(c, &id)).await? {
                Some(c) if c.state == ContactState::Uploading => tus::upload(shared, conn, c).await,
                _ => Ok(None),
            }
        }
        ContactState::Uploading => tus::upload(shared, conn, contact).await,
        ContactState::Done | ContactState::Unrecoverable | ContactState::Disposed => Ok(None),
    }
}

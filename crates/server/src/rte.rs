//! The RTE WebSocket: one session per connected agent.
//!
//! The agent authenticates the upgrade request with its device credential
//! (`Authorization: Bearer …`), then sends [`Hello`]; the session answers
//! with the policy for the Hello's Windows login and keeps it current: on
//! every directory change it re-evaluates and sends the policy again if it
//! differs (and closes if the device was revoked). Per-connection state is
//! the device id, the login and the last policy sent — small enough for
//! thousands of agents.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{State, ws::rejection::WebSocketUpgradeRejection};
use axum::http::HeaderMap;
use axum::response::Response;
use deskrec_protocol::{
    AgentMessage, ClockReply, Hello, PROTOCOL_VERSION, Policy, RteError, ServerMessage, Watermark,
};
use tokio::time::Instant;

use crate::api::{ApiError, bearer};
use crate::db::now_micros;
use crate::directory::DirectoryError;
use crate::state::AppState;
use crate::{audit, contacts, eligibility, enrollment};

/// How long an agent has to send Hello after connecting.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest message accepted from an agent; every RTE message is small.
const MAX_MESSAGE_BYTES: usize = 64 << 10;

/// Read buffer per RTE socket.
const RTE_BUFFER_BYTES: usize = 4 << 10;

/// Contacts read from the database per query while relaying.
const RELAY_BATCH: usize = 256;

/// A watermark change is forwarded after this delay, so an ACD moving it
/// with every import costs each session one update a second, not one per
/// import.
const WATERMARK_DEBOUNCE: Duration = Duration::from_secs(1);

/// `GET /api/v1/rte`: authenticates the device, then upgrades.
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // Authenticate before anything else, so an unauthenticated caller learns
    // nothing, not even whether it spoke WebSocket correctly.
    let credential = bearer(&headers)
        .ok_or_else(ApiError::unauthorized)?
        .to_owned();
    let device_id = state
        .db()
        .call(move |c| enrollment::authenticate(c, &credential))
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let ws = ws.map_err(|r| ApiError::new(r.status(), "websocket_required", r.body_text()))?;
    Ok(ws
        .max_message_size(MAX_MESSAGE_BYTES)
        // tungstenite's defaults (128 KiB read buffer) are sized for bulk
        // transfer; RTE messages are small and a server holds thousands of
        // sockets, so this is most of the memory per agent.
        .read_buffer_size(RTE_BUFFER_BYTES)
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            let session = Session {
                state,
                device_id,
                login: String::new(),
                last_policy: None,
                sent_seq: 0,
                sent_watermark: None,
            };
            session.run(socket).await
        }))
}

/// Why a session ends early.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    /// The socket failed or closed.
    #[error("connection closed")]
    Closed,
    /// The database failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

impl From<rusqlite::Error> for SessionError {
    fn from(e: rusqlite::Error) -> Self {
        SessionError::Directory(e.into())
    }
}

/// One connected agent.
struct Session {
    /// Shared server state.
    state: AppState,
    /// The authenticated device; fixed for the connection.
    device_id: String,
    /// Windows login from the latest Hello.
    login: String,
    /// The last policy sent, to send only changes.
    last_policy: Option<Policy>,
    /// The highest contact sequence number sent on this connection (or
    /// the agent's cursor from its Hello).
    sent_seq: u64,
    /// The last watermark sent.
    sent_watermark: Option<i64>,
}

impl Session {
    async fn run(mut self, mut socket: WebSocket) {
        let device = self.device_id.clone();
        match self.serve(&mut socket).await {
            Ok(()) | Err(SessionError::Closed) => {
                tracing::debug!(%device, "RTE session ended")
            }
            Err(e) => {
                tracing::error!(%device, error = %e, "RTE session failed");
                let _ = send_error(&mut socket, "internal", "internal server error").await;
            }
        }
        let _ = socket.send(Message::Close(None)).await;
    }

    async fn serve(&mut self, socket: &mut WebSocket) -> Result<(), SessionError> {
        let mut changes = self.state.directory_changes();
        let mut closing = self.state.closing();
        let mut watermark = self.state.watermark();
        let mut watermark_due: Option<Instant> = None;
        // Registered before Hello so no contact imported meanwhile is missed:
        // its wake-up waits in the mailbox.
        let mut mailbox = self.state.hub().register(&self.device_id);
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, next_message(socket)).await {
            Err(_) => {
                send_error(socket, "hello_required", "send hello first").await?;
                return Ok(());
            }
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => {
                send_error(socket, "bad_message", &e.to_string()).await?;
                return Ok(());
            }
            Ok(Some(Ok(AgentMessage::Hello(h)))) => h,
            Ok(Some(Ok(_))) => {
                send_error(socket, "hello_required", "the first message must be hello").await?;
                return Ok(());
            }
        };
        if !self.hello(socket, hello).await? {
            return Ok(());
        }
        let w = *watermark.borrow_and_update();
        self.relay(socket, w).await?;
        loop {
            tokio::select! {
                    msg = next_message(socket) => match msg {
                        None => return Ok(()),
                        Some(Err(e)) => send_error(socket, "bad_message", &e.to_string()).await?,
                        Some(Ok(AgentMessage::Hello(h))) => {
                            if !self.hello(socket, h).await? {
                                return Ok(());
                            }
                            let w = *watermark.borrow_and_update();
            self.relay(socket, w).await?;
                        }
                        Some(Ok(AgentMessage::ClockProbe(p))) => {
                            let t1 = now_micros();
                            let reply = ClockReply { t0: p.t0, t1, t2: now_micros() };
                            send(socket, &ServerMessage::ClockReply(reply)).await?;
                        }
                        Some(Ok(AgentMessage::ContactAck(ack))) => {
                            if ack.seq > self.sent_seq {
                                let m = format!("ack of contact {} which was not sent (last sent {})", ack.seq, self.sent_seq);
                                send_error(socket, "bad_ack", &m).await?;
                            } else {
                                let device = self.device_id.clone();
                                self.state.db().call(move |c| contacts::acknowledge(c, &device, ack.seq)).await?;
                            }
                        }
                        Some(Ok(AgentMessage::ContactOutcome(outcome))) => {
                            let device = self.device_id.clone();
                            let (id, seq) = (outcome.contact_id.clone(), outcome.seq);
                            let known = self.state.db().call(move |c| {
                                let tx = c.transaction()?;
                                let known = contacts::unrecoverable(&tx, &device, &outcome)?;
                                tx.commit()?;
                                Ok::<_, DirectoryError>(known)
                            }).await?;
                            if known {
                                tracing::info!(device = %self.device_id, contact = ?id, "device has no recording of the contact");
                            } else {
                                let m = format!("contact {id} was never relayed to this device as {seq}");
                                send_error(socket, "unknown_contact", &m).await?;
                            }
                        }
                        Some(Ok(AgentMessage::SegmentReport(report))) => {
                            let device = self.device_id.clone();
                            tracing::warn!(device = %device, segment = report.started_at, deleted = %report.deleted,
                                "the device deleted a segment with discrepancies");
                            self.state.db().call(move |c| audit::segment_report(c, &device, &report)).await?;
                        }
                        Some(Ok(AgentMessage::Heartbeat(hb))) => {
                            let device = self.device_id.clone();
                            let status = serde_json::to_string(&hb.status).unwrap_or_default();
                            self.state.db().call(move |c| enrollment::record_status(c, &device, &status)).await?;
                        }
                    },
                    () = mailbox.wake.notified() => {
                        let w = *watermark.borrow();
                        self.relay(socket, w).await?;
                    }
                    Some(msg) = mailbox.posted.recv() => send(socket, &msg).await?,
                    changed = watermark.changed() => {
                        if changed.is_err() {
                            return Ok(());
                        }
                        watermark_due.get_or_insert_with(|| Instant::now() + WATERMARK_DEBOUNCE);
                    }
                    () = tokio::time::sleep_until(watermark_due.unwrap_or_else(Instant::now)), if watermark_due.is_some() => {
                        watermark_due = None;
                        let w = *watermark.borrow_and_update();
            self.relay(socket, w).await?;
                    }
                    changed = changes.changed() => {
                        if changed.is_err() {
                            return Ok(()); // the server is gone
                        }
                        let device = self.device_id.clone();
                        let active = self.state.db().call(move |c| enrollment::is_active(c, &device)).await?;
                        if !active {
                            send_error(socket, "device_revoked", "this device has been revoked").await?;
                            let _ = socket.send(Message::Close(Some(CloseFrame {
                                code: close_code::POLICY,
                                reason: "device revoked".into(),
                            }))).await;
                            return Ok(());
                        }
                        self.send_policy(socket).await?;
                    }
                    _ = closing.changed() => {
                        let _ = socket.send(Message::Close(Some(CloseFrame {
                            code: close_code::AWAY,
                            reason: "server shutting down".into(),
                        }))).await;
                        return Ok(());
                    }
                }
        }
    }

    /// Handles a Hello; returns false if the session must end.
    async fn hello(&mut self, socket: &mut WebSocket, hello: Hello) -> Result<bool, SessionError> {
        if hello.version != PROTOCOL_VERSION {
            let m = format!(
                "protocol version {} is not supported (server speaks {PROTOCOL_VERSION})",
                hello.version
            );
            send_error(socket, "unsupported_version", &m).await?;
            return Ok(false);
        }
        if hello.device_id != self.device_id {
            send_error(
                socket,
                "device_mismatch",
                "device_id does not match the credential",
            )
            .await?;
            return Ok(false);
        }
        // Sequence numbers are SQLite integers: a cursor past i64::MAX
        // would turn negative there and replay the whole queue.
        let cursor = hello.last_contact_cursor.unwrap_or(0);
        if i64::try_from(cursor).is_err() {
            let m = format!("last_contact_cursor {cursor} is past the largest sequence number");
            send_error(socket, "bad_cursor", &m).await?;
            return Ok(false);
        }
        self.login = hello.windows_login.clone();
        self.sent_seq = cursor;
        let device = self.device_id.clone();
        self.state
            .db()
            .call(move |c| {
                let tx = c.transaction()?;
                enrollment::record_hello(&tx, &device, &hello.windows_login, &hello.agent_version)?;
                contacts::login_seen(&tx, &device, &hello.windows_login)?;
                tx.commit()?;
                Ok::<_, DirectoryError>(())
            })
            .await?;
        // `?`: the login is the device's text; quoted and escaped, a CR or
        // LF in it cannot start a forged log line.
        tracing::info!(device = %self.device_id, login = ?self.login, "agent hello");
        // A new Hello always gets a policy, even if unchanged.
        self.last_policy = None;
        self.send_policy(socket).await?;
        Ok(true)
    }

    /// Sends every queued contact after `sent_seq`, in order, then the
    /// watermark if it moved. The caller reads `watermark` before this
    /// queries the queue, so everything queued before the watermark was
    /// published goes out before it.
    async fn relay(
        &mut self,
        socket: &mut WebSocket,
        watermark: Option<i64>,
    ) -> Result<(), SessionError> {
        loop {
            let (device, after) = (self.device_id.clone(), self.sent_seq);
            let batch = self
                .state
                .db()
                .call(move |c| contacts::pending_for(c, &device, after, RELAY_BATCH))
                .await?;
            let Some(last) = batch.last().map(|c| c.seq) else {
                break;
            };
            for contact in batch {
                send(socket, &ServerMessage::Contact(contact)).await?;
                self.state.metrics().contacts_relayed.inc();
            }
            self.sent_seq = last;
        }
        if let Some(before) = watermark.filter(|w| Some(*w) > self.sent_watermark) {
            send(socket, &ServerMessage::Watermark(Watermark { before })).await?;
            self.sent_watermark = Some(before);
        }
        Ok(())
    }

    /// Evaluates the policy and sends it if it differs from the last one.
    async fn send_policy(&mut self, socket: &mut WebSocket) -> Result<(), SessionError> {
        let (device, login, key) = (
            self.device_id.clone(),
            self.login.clone(),
            self.state.server_key().clone(),
        );
        let policy = self
            .state
            .db()
            .call(move |c| {
                let tx = c.transaction()?;
                let p = eligibility::evaluate(&tx, &device, &login, &key)?;
                tx.commit()?;
                Ok::<_, DirectoryError>(p)
            })
            .await?;
        if self.last_policy.as_ref() != Some(&policy) {
            tracing::debug!(device = %self.device_id, record = policy.record, reason = policy.reason.as_str(), "policy");
            send(socket, &ServerMessage::Policy(policy.clone())).await?;
            self.last_policy = Some(policy);
        }
        Ok(())
    }
}

/// The next agent message, `None` when the connection is over. Pings are
/// answered by the WebSocket layer and skipped here.
async fn next_message(socket: &mut WebSocket) -> Option<Result<AgentMessage, String>> {
    loop {
        match socket.recv().await? {
            Ok(Message::Text(t)) => {
                return Some(AgentMessage::from_json(t.as_str()).map_err(|e| e.to_string()));
            }
            Ok(Message::Binary(_)) => {
                return Some(Err("binary frames are not part of the protocol".into()));
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Close(_)) | Err(_) => return None,
        }
    }
}

async fn send(socket: &mut WebSocket, msg: &ServerMessage) -> Result<(), SessionError> {
    socket
        .send(Message::Text(msg.to_json().into()))
        .await
        .map_err(|_| SessionError::Closed)
}

async fn send_error(socket: &mut WebSocket, code: &str, message: &str) -> Result<(), SessionError> {
    let e = RteError {
        code: code.into(),
        message: message.into(),
    };
    send(socket, &ServerMessage::Error(e)).await
}

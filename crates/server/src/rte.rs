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
        // tungstenite's frame limit is 16 MiB by default: a frame is read
        // whole before the message limit is looked at.
        .max_frame_size(MAX_MESSAGE_BYTES)
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
                online: false,
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
    Db(#[from] rusqlite::Error),
    /// The device's policy could not be evaluated.
    #[error(transparent)]
    Policy(#[from] DirectoryError),
    /// A contact's outcome or a login's sighting could not be stored.
    #[error(transparent)]
    Contacts(#[from] contacts::ContactError),
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
    /// Whether this connection has said Hello already (see
    /// `contacts::login_seen`).
    online: bool,
}

impl Session {
    async fn run(mut self, mut socket: WebSocket) {
        let device = self.device_id.clone();
        let close = match self.serve(&mut socket).await {
            Ok(close) => close,
            Err(SessionError::Closed) => None,
            Err(e) => {
                tracing::error!(%device, error = %e, "RTE session failed");
                let _ = send_error(&mut socket, "internal", "internal server error").await;
                Some(frame(close_code::ERROR, "internal server error"))
            }
        };
        if let Some(f) = &close {
            tracing::debug!(%device, code = f.code, reason = %f.reason, "RTE session closed by the server");
        } else {
            tracing::debug!(%device, "RTE session ended");
        }
        let _ = socket.send(Message::Close(close)).await;
    }

    /// Serves the session until it ends: `Ok(Some(frame))` when the server
    /// ends it (the frame's code says why), `Ok(None)` when the agent did.
    ///
    /// Hello first ([`first_hello`]), then one loop over every source of
    /// work; each event's handling is a method returning [`Step`].
    async fn serve(&mut self, socket: &mut WebSocket) -> Result<Option<CloseFrame>, SessionError> {
        let mut changes = self.state.directory_changes();
        let mut closing = self.state.closing();
        let mut watermark = self.state.watermark();
        let mut watermark_due: Option<Instant> = None;
        let idle = self.state.limits().rte_idle();
        let mut heard = Instant::now();
        let mut ping = tokio::time::interval_at(Instant::now() + idle / 3, idle / 3);
        let mut budget = Budget::new(Instant::now());
        // Registered before Hello so no contact imported meanwhile is missed:
        // its wake-up waits in the mailbox. A newer session of the same
        // device supersedes this one.
        let mut mailbox = self.state.hub().register(&self.device_id);
        let hello = match first_hello(socket, &mut heard).await? {
            Ok(hello) => hello,
            Err(end) => return Ok(end),
        };
        if let Some(end) = self.hello(socket, hello).await? {
            return Ok(Some(end));
        }
        let w = *watermark.borrow_and_update();
        self.relay(socket, w).await?;
        loop {
            let due = watermark_due.unwrap_or_else(Instant::now);
            let step = tokio::select! {
                msg = next_message(socket, &mut heard) => {
                    self.on_message(socket, msg, &mut budget, &mut watermark).await?
                }
                () = mailbox.wake.notified() => {
                    let w = *watermark.borrow();
                    self.relay(socket, w).await?;
                    Step::Go
                }
                Some(msg) = mailbox.posted.recv() => {
                    send(socket, &msg).await?;
                    Step::Go
                }
                () = mailbox.superseded.notified() => Step::end(
                    close_code::POLICY,
                    "a newer session of this device replaced this one",
                ),
                _ = ping.tick() => ping_or_end(socket, heard, idle).await?,
                changed = watermark.changed() => match changed {
                    Err(_) => Step::End(None),
                    Ok(()) => {
                        watermark_due.get_or_insert_with(|| Instant::now() + WATERMARK_DEBOUNCE);
                        Step::Go
                    }
                },
                () = tokio::time::sleep_until(due), if watermark_due.is_some() => {
                    watermark_due = None;
                    let w = *watermark.borrow_and_update();
                    self.relay(socket, w).await?;
                    Step::Go
                }
                changed = changes.changed() => match changed {
                    // The server is gone.
                    Err(_) => Step::End(None),
                    Ok(()) => self.on_directory_change(socket).await?,
                },
                _ = closing.changed() => Step::end(close_code::AWAY, "server shutting down"),
            };
            if let Step::End(close) = step {
                return Ok(close);
            }
        }
    }

    /// One message from the agent: refused when it is not a protocol
    /// message or over the budget, else handled.
    async fn on_message(
        &mut self,
        socket: &mut WebSocket,
        incoming: Incoming,
        budget: &mut Budget,
        watermark: &mut tokio::sync::watch::Receiver<Option<i64>>,
    ) -> Result<Step, SessionError> {
        let msg = match incoming {
            Incoming::Message(m) => m,
            other => return Ok(Step::End(refuse(socket, other).await?)),
        };
        // Every message below costs a database write.
        if !budget.spend(Instant::now()) {
            let why = "too many messages: slow down and reconnect";
            send_error(socket, "rate_limited", why).await?;
            return Ok(Step::end(close_code::POLICY, "rate limited"));
        }
        Ok(match self.handle(socket, msg, watermark).await? {
            Some(end) => Step::End(Some(end)),
            None => Step::Go,
        })
    }

    /// The directory changed: a revoked device is told and closed, any
    /// other gets its policy again if it changed.
    async fn on_directory_change(&mut self, socket: &mut WebSocket) -> Result<Step, SessionError> {
        let device = self.device_id.clone();
        let active = self
            .state
            .db()
            .call(move |c| enrollment::is_active(c, &device))
            .await?;
        if !active {
            send_error(socket, "device_revoked", "this device has been revoked").await?;
            return Ok(Step::end(close_code::POLICY, "device revoked"));
        }
        self.send_policy(socket).await?;
        Ok(Step::Go)
    }

    /// Handles one agent message after Hello; `Some` ends the session.
    async fn handle(
        &mut self,
        socket: &mut WebSocket,
        msg: AgentMessage,
        watermark: &mut tokio::sync::watch::Receiver<Option<i64>>,
    ) -> Result<Option<CloseFrame>, SessionError> {
        match msg {
            AgentMessage::Hello(h) => {
                if let Some(end) = self.hello(socket, h).await? {
                    return Ok(Some(end));
                }
                let w = *watermark.borrow_and_update();
                self.relay(socket, w).await?;
            }
            AgentMessage::ClockProbe(p) => {
                let t1 = now_micros();
                let reply = ClockReply {
                    t0: p.t0,
                    t1,
                    t2: now_micros(),
                };
                send(socket, &ServerMessage::ClockReply(reply)).await?;
            }
            AgentMessage::ContactAck(ack) => {
                if ack.seq > self.sent_seq {
                    let m = format!(
                        "ack of contact {} which was not sent (last sent {})",
                        ack.seq, self.sent_seq
                    );
                    send_error(socket, "bad_ack", &m).await?;
                } else {
                    let device = self.device_id.clone();
                    self.state
                        .db()
                        .call(move |c| contacts::acknowledge(c, &device, ack.seq))
                        .await?;
                }
            }
            AgentMessage::ContactOutcome(outcome) => {
                let device = self.device_id.clone();
                let (id, seq) = (outcome.contact_id.clone(), outcome.seq);
                let known = self
                    .state
                    .db()
                    .call(move |c| {
                        let tx = crate::db::write_tx(c)?;
                        let known = contacts::unrecoverable(&tx, &device, &outcome)?;
                        tx.commit()?;
                        Ok::<_, SessionError>(known)
                    })
                    .await?;
                if known {
                    tracing::info!(device = %self.device_id, contact = ?id, "device has no recording of the contact");
                } else {
                    let m = format!("contact {id} was never relayed to this device as {seq}");
                    send_error(socket, "unknown_contact", &m).await?;
                }
            }
            AgentMessage::SegmentReport(report) => {
                let device = self.device_id.clone();
                tracing::warn!(device = %device, segment = report.started_at, deleted = %report.deleted,
                    "the device deleted a segment with discrepancies");
                self.state
                    .db()
                    .call(move |c| audit::segment_report(c, &device, &report))
                    .await?;
            }
            AgentMessage::Pause(report) => {
                let device = self.device_id.clone();
                tracing::info!(device = %device, pause = %report.pause_id, source = report.source.as_str(),
                    ended = report.ended_at.is_some(), "pause reported");
                self.state
                    .db()
                    .call(move |c| crate::pause::report(c, &device, &report, now_micros()))
                    .await?;
            }
            AgentMessage::Heartbeat(hb) => {
                let device = self.device_id.clone();
                let status = serde_json::to_string(&hb.status).unwrap_or_default();
                self.state
                    .db()
                    .call(move |c| enrollment::record_status(c, &device, &status))
                    .await?;
            }
        }
        Ok(None)
    }

    /// Handles a Hello; `Some` ends the session.
    async fn hello(
        &mut self,
        socket: &mut WebSocket,
        hello: Hello,
    ) -> Result<Option<CloseFrame>, SessionError> {
        if hello.version != PROTOCOL_VERSION {
            let m = format!(
                "protocol version {} is not supported (server speaks {PROTOCOL_VERSION})",
                hello.version
            );
            send_error(socket, "unsupported_version", &m).await?;
            return Ok(Some(frame(
                close_code::POLICY,
                "unsupported protocol version",
            )));
        }
        if hello.device_id != self.device_id {
            send_error(
                socket,
                "device_mismatch",
                "device_id does not match the credential",
            )
            .await?;
            return Ok(Some(frame(close_code::POLICY, "device mismatch")));
        }
        // Sequence numbers are SQLite integers: a cursor past i64::MAX
        // would turn negative there and replay the whole queue.
        let cursor = hello.last_contact_cursor.unwrap_or(0);
        if i64::try_from(cursor).is_err() {
            let m = format!("last_contact_cursor {cursor} is past the largest sequence number");
            send_error(socket, "bad_cursor", &m).await?;
            return Ok(Some(frame(close_code::POLICY, "bad cursor")));
        }
        self.login = hello.windows_login.clone();
        self.sent_seq = cursor;
        let (device, hub, online) = (
            self.device_id.clone(),
            self.state.hub().clone(),
            self.online,
        );
        let elsewhere = self
            .state
            .db()
            .call(move |c| {
                let tx = crate::db::write_tx(c)?;
                let login = &hello.windows_login;
                // See `contacts::login_seen`: a connection's first Hello
                // covers the time the device was unheard from.
                let since = match online {
                    true => now_micros(),
                    false => enrollment::last_seen(&tx, &device)?.unwrap_or(0),
                };
                // Connected devices whose session user is this login too.
                let elsewhere: Vec<String> = enrollment::showing_login(&tx, login, &device)?
                    .into_iter()
                    .filter(|d| hub.is_connected(d))
                    .collect();
                if !login.is_empty() && !elsewhere.is_empty() {
                    audit::record(
                        &tx,
                        &audit::Actor::Device(device.clone()),
                        "login.concurrent",
                        login,
                        serde_json::json!({ "device": device, "also_on": elsewhere }),
                    )?;
                }
                enrollment::record_hello(&tx, &device, login, &hello.agent_version)?;
                contacts::login_seen(&tx, &device, login, since)?;
                tx.commit()?;
                Ok::<_, SessionError>(elsewhere)
            })
            .await?;
        self.online = true;
        if !self.login.is_empty() && !elsewhere.is_empty() {
            self.state.metrics().logins_concurrent.inc();
            tracing::warn!(device = %self.device_id, login = ?self.login, also_on = ?elsewhere,
                "a login is live on two devices at once: one of them may be forging it");
        }
        // `?`: the login is the device's text; quoted and escaped, a CR or
        // LF in it cannot start a forged log line.
        tracing::info!(device = %self.device_id, login = ?self.login, "agent hello");
        // A new Hello always gets a policy, even if unchanged.
        self.last_policy = None;
        self.send_policy(socket).await?;
        Ok(None)
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
        let mut policy = self
            .state
            .db()
            .call(move |c| {
                let tx = crate::db::write_tx(c)?;
                let p = eligibility::evaluate(&tx, &device, &login, &key)?;
                tx.commit()?;
                Ok::<_, DirectoryError>(p)
            })
            .await?;
        policy.server_pins = Some(self.state.tls().pins());
        if self.last_policy.as_ref() != Some(&policy) {
            tracing::debug!(device = %self.device_id, record = policy.record, reason = policy.reason.as_str(), "policy");
            send(socket, &ServerMessage::Policy(policy.clone())).await?;
            self.last_policy = Some(policy);
        }
        Ok(())
    }
}

/// What the agent sent next.
enum Incoming {
    /// A protocol message.
    Message(AgentMessage),
    /// A text frame that is not a protocol message.
    Malformed(String),
    /// A binary frame: not part of the protocol.
    Binary,
    /// A frame or message over [`MAX_MESSAGE_BYTES`].
    TooBig,
    /// The connection is over (closed by the agent, or broken).
    Gone,
}

/// The next agent message. Pings and pongs are answered by the WebSocket
/// layer and skipped here; every frame counts as hearing from the agent.
async fn next_message(socket: &mut WebSocket, heard: &mut Instant) -> Incoming {
    loop {
        let Some(frame) = socket.recv().await else {
            return Incoming::Gone;
        };
        *heard = Instant::now();
        return match frame {
            Ok(Message::Text(t)) => match AgentMessage::from_json(t.as_str()) {
                Ok(m) => Incoming::Message(m),
                Err(e) => Incoming::Malformed(e.to_string()),
            },
            Ok(Message::Binary(_)) => Incoming::Binary,
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Close(_)) => Incoming::Gone,
            Err(e) if too_big(&e) => Incoming::TooBig,
            Err(_) => Incoming::Gone,
        };
    }
}

/// Whether a read failed because a frame or message was over the limit.
fn too_big(e: &axum::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|e| e.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}

/// What a session does after one event.
enum Step {
    /// Goes on.
    Go,
    /// Ends: with this close frame from the server, or `None` when the
    /// agent (or the server's shutdown of its channels) ended it.
    End(Option<CloseFrame>),
}

impl Step {
    /// The server ends the session with `code` and `reason`.
    fn end(code: u16, reason: &str) -> Self {
        Step::End(Some(frame(code, reason)))
    }
}

/// Waits for the agent's Hello: `Err(end)` when the session ends instead
/// (too slow, another message first, or not a protocol message).
async fn first_hello(
    socket: &mut WebSocket,
    heard: &mut Instant,
) -> Result<Result<Hello, Option<CloseFrame>>, SessionError> {
    match tokio::time::timeout(HELLO_TIMEOUT, next_message(socket, heard)).await {
        Err(_) => {
            send_error(socket, "hello_required", "send hello first").await?;
            Ok(Err(Some(frame(close_code::POLICY, "no hello"))))
        }
        Ok(Incoming::Message(AgentMessage::Hello(h))) => Ok(Ok(h)),
        Ok(Incoming::Message(_)) => {
            let why = "the first message must be hello";
            send_error(socket, "hello_required", why).await?;
            Ok(Err(Some(frame(close_code::POLICY, why))))
        }
        Ok(other) => Ok(Err(refuse(socket, other).await?)),
    }
}

/// The keep-alive tick: a ping, or the end when nothing was heard from
/// the agent for `idle`.
async fn ping_or_end(
    socket: &mut WebSocket,
    heard: Instant,
    idle: Duration,
) -> Result<Step, SessionError> {
    if heard.elapsed() >= idle {
        return Ok(Step::end(
            close_code::POLICY,
            "nothing heard from the agent in time",
        ));
    }
    socket
        .send(Message::Ping(Default::default()))
        .await
        .map_err(|_| SessionError::Closed)?;
    Ok(Step::Go)
}

/// Ends the session over something that is not a protocol message: the
/// agent is told why, then the close code says it too.
async fn refuse(
    socket: &mut WebSocket,
    incoming: Incoming,
) -> Result<Option<CloseFrame>, SessionError> {
    let (code, error, why) = match incoming {
        Incoming::Malformed(e) => (close_code::INVALID, "bad_message", e),
        Incoming::Binary => (
            close_code::UNSUPPORTED,
            "bad_message",
            "binary frames are not part of the protocol".to_owned(),
        ),
        Incoming::TooBig => (
            close_code::SIZE,
            "too_big",
            format!("a message is at most {MAX_MESSAGE_BYTES} bytes"),
        ),
        Incoming::Gone | Incoming::Message(_) => return Ok(None),
    };
    // A socket that failed on an oversize frame may take no more; the
    // close below is still attempted.
    let _ = send_error(socket, error, &why).await;
    Ok(Some(frame(code, error)))
}

/// A close frame with `code` and a short `reason` (at most 123 bytes).
fn frame(code: u16, reason: &str) -> CloseFrame {
    CloseFrame {
        code,
        reason: reason.into(),
    }
}

/// Database-writing messages a session may send: a burst of [`BURST`],
/// then [`PER_SECOND`] a second. An agent sends a heartbeat a minute and
/// an ack per contact; a flood from one device cannot monopolise the one
/// database connection.
struct Budget {
    tokens: f64,
    at: Instant,
}

/// Messages a session may send at once: room for an agent back from a
/// week offline acking a few thousand contacts.
const BURST: f64 = 5_000.0;
/// Messages a second a session may send on average.
const PER_SECOND: f64 = 50.0;

impl Budget {
    fn new(now: Instant) -> Self {
        Self {
            tokens: BURST,
            at: now,
        }
    }

    /// Spends one message; false when the budget is gone.
    fn spend(&mut self, now: Instant) -> bool {
        let refill = now.duration_since(self.at).as_secs_f64() * PER_SECOND;
        self.tokens = (self.tokens + refill).min(BURST);
        self.at = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_allows_a_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = Budget::new(t0);
        for i in 0..BURST as usize {
            assert!(b.spend(t0), "message {i} of the burst");
        }
        assert!(!b.spend(t0), "past the burst");
        let later = t0 + Duration::from_secs(1);
        for i in 0..PER_SECOND as usize {
            assert!(b.spend(later), "message {i} of the next second");
        }
        assert!(!b.spend(later));
    }
}

//! The RTE client: one connection at a time, reconnecting with
//! exponential backoff and jitter.
//!
//! On each connection: hello with the durable cursor; then, as messages
//! come, the policy is cached (the first one ends the uploads' back-offs:
//! the server is reachable), clock replies are collected into an offset
//! (the median of a few probes, again every `clock_interval`), each
//! contact is committed to the database *before* its `contact_ack` goes
//! out, the watermark is stored, and `recording_stored` finishes its
//! contact. Heartbeats report the real status; unrecoverable contacts'
//! outcomes are sent as they are decided. A new session login sends a new
//! hello.

use std::sync::Arc;

use deskrec_client::RteSocket;
use deskrec_protocol::{
    AgentMessage, AgentStatus, ClockProbe, ContactAck, Heartbeat, Hello, PROTOCOL_VERSION,
    ServerMessage,
};
use tokio::sync::watch;

use crate::AgentError;
use crate::clock::{self, ClockOffset};
use crate::db::{get_meta, keys, put_meta};
use crate::engine::{Connection, Shared, sleep_or_shutdown};
use crate::policy::CachedPolicy;

/// Runs connections until shutdown.
pub(crate) async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut attempt = 0u32;
    loop {
        if *shutdown.borrow() {
            return;
        }
        shared
            .update_live(|l| l.connection = Connection::Connecting)
            .await;
        let mut session = Session::new(&shared);
        let result = session.run(&mut shutdown).await;
        let now = shared.now();
        shared
            .update_live(|l| {
                l.connection = Connection::Offline;
                l.offline_since.get_or_insert(now);
            })
            .await;
        if session.welcomed {
            attempt = 0;
        }
        match result {
            Ok(()) if *shutdown.borrow() => return,
            Ok(()) => tracing::info!("the server closed the RTE connection"),
            Err(e) => shared.error("RTE connection", &e).await,
        }
        let delay = shared.backoff(attempt);
        attempt = attempt.saturating_add(1);
        tracing::debug!(?delay, "reconnecting later");
        if sleep_or_shutdown(delay, &mut shutdown).await {
            return;
        }
    }
}

/// One connection's state.
struct Session<'a> {
    shared: &'a Shared,
    /// A policy arrived: the connection is up.
    welcomed: bool,
    /// Clock samples of the measurement in progress.
    samples: Vec<(i64, i64)>,
}

impl<'a> Session<'a> {
    fn new(shared: &'a Shared) -> Self {
        Self {
            shared,
            welcomed: false,
            samples: Vec::new(),
        }
    }

    async fn run(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), AgentError> {
        let shared = self.shared;
        let mut sock = RteSocket::connect(&shared.server(), &shared.creds.credential).await?;
        let mut login_rx = shared.login.subscribe();
        let login = login_rx.borrow_and_update().clone();
        self.hello(&mut sock, &login).await?;
        self.probe(&mut sock).await?;
        let mut heartbeat = tokio::time::interval(shared.config.heartbeat_interval);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut clock_round = tokio::time::interval(shared.config.clock_interval);
        clock_round.tick().await; // the first round is the one just started
        loop {
            tokio::select! {
                msg = sock.recv() => match msg? {
                    Some(msg) => self.handle(&mut sock, msg).await?,
                    None => return Ok(()),
                },
                _ = heartbeat.tick(), if self.welcomed => {
                    let status = status(shared).await?;
                    sock.send(&AgentMessage::Heartbeat(Heartbeat { status })).await?;
                }
                _ = clock_round.tick() => {
                    self.samples.clear();
                    self.probe(&mut sock).await?;
                }
                _ = shared.outbox.notified(), if self.welcomed => self.send_outbox(&mut sock).await?,
                changed = login_rx.changed() => {
                    if changed.is_ok() {
                        let login = login_rx.borrow_and_update().clone();
                        self.hello(&mut sock, &login).await?;
                    }
                }
                _ = shutdown.changed() => {
                    let _ = sock.close().await;
                    return Ok(());
                }
            }
        }
    }

    async fn hello(&mut self, sock: &mut RteSocket, login: &str) -> Result<(), AgentError> {
        let shared = self.shared;
        let cursor: Option<u64> = shared.db.call(|c| get_meta(c, keys::CURSOR)).await?;
        sock.send(&AgentMessage::Hello(Hello {
            version: PROTOCOL_VERSION,
            device_id: shared.identity.device_id.clone(),
            windows_login: login.to_owned(),
            host: shared.identity.host.clone(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            last_contact_cursor: cursor,
        }))
        .await?;
        tracing::info!(login, ?cursor, "hello sent");
        Ok(())
    }

    async fn probe(&mut self, sock: &mut RteSocket) -> Result<(), AgentError> {
        let t0 = self.shared.now();
        sock.send(&AgentMessage::ClockProbe(ClockProbe { t0 }))
            .await?;
        Ok(())
    }

    async fn handle(&mut self, sock: &mut RteSocket, msg: ServerMessage) -> Result<(), AgentError> {
        let shared = self.shared;
        match msg {
            ServerMessage::Policy(policy) => {
                // A bad announcement is refused and logged; the policy
                // itself still applies (it came over the pinned channel).
                if let Some(pins) = &policy.server_pins
                    && let Err(e) = crate::pins::follow(shared, pins).await
                {
                    tracing::warn!(error = %e, "the server's TLS pins are not followed");
                }
                let cached = CachedPolicy {
                    policy,
                    login: shared.login.borrow().clone(),
                    received_at: shared.now(),
                };
                tracing::info!(
                    record = cached.policy.record,
                    reason = cached.policy.reason.as_str(),
                    "policy received"
                );
                let stored = cached.clone();
                shared
                    .db
                    .call(move |c| put_meta(c, keys::POLICY, &stored))
                    .await?;
                shared.policy.send_replace(Some(cached));
                shared.status_changed();
                if !self.welcomed {
                    self.welcomed = true;
                    let now = shared.now();
                    shared
                        .update_live(|l| {
                            l.connection = Connection::Connected;
                            l.offline_since = None;
                            l.connected_at = Some(now);
                        })
                        .await;
                    self.send_outbox(sock).await?;
                    shared.retry_uploads_now("the server is back").await?;
                }
            }
            ServerMessage::ClockReply(reply) => {
                let t3 = shared.now();
                self.samples.push(clock::sample(&reply, t3));
                if (self.samples.len() as u32) < shared.config.clock_probes {
                    self.probe(sock).await?;
                } else if let Some(offset) = clock::estimate(&self.samples, t3) {
                    self.store_offset(offset).await?;
                }
            }
            ServerMessage::Contact(contact) => {
                let now = shared.now();
                let relay = contact.clone();
                let cursor = shared
                    .db
                    .call(move |c| crate::contacts::store_relay(c, &relay, now))
                    .await?;
                // Stored durably: now the server may forget it.
                sock.send(&AgentMessage::ContactAck(ContactAck { seq: contact.seq }))
                    .await?;
                tracing::info!(contact = %contact.contact_id, seq = contact.seq, cursor, "contact stored");
                shared.queue_changed();
                shared.work.notify_one();
            }
            ServerMessage::Watermark(w) => {
                shared
                    .db
                    .call(move |c| {
                        let old: Option<i64> = get_meta(c, keys::WATERMARK)?;
                        if old.is_none_or(|o| o < w.before) {
                            put_meta(c, keys::WATERMARK, &w.before)?;
                        }
                        Ok(())
                    })
                    .await?;
            }
            ServerMessage::RecordingStored(stored) => {
                crate::uploader::acknowledged(shared, &stored.contact_id).await?;
            }
            ServerMessage::Pause(p) => {
                let started = crate::pause::start(
                    shared,
                    deskrec_protocol::PauseSource::Api,
                    Some(p.pause_id.clone()),
                    &p.reason,
                    &p.requested_by,
                    Some(p.max_seconds),
                )
                .await;
                if let Err(e) = started {
                    shared.error("the server's pause was refused", &e).await;
                }
            }
            ServerMessage::Resume(r) => {
                crate::pause::end(shared, |p| p.id == r.pause_id, "resumed").await?;
            }
            ServerMessage::Error(e) => {
                shared
                    .error("the server reported", &format!("{}: {}", e.code, e.message))
                    .await;
            }
        }
        Ok(())
    }

    async fn store_offset(&mut self, offset: ClockOffset) -> Result<(), AgentError> {
        tracing::info!(
            offset_us = offset.offset_us,
            rtt_us = offset.rtt_us,
            "clock offset measured"
        );
        *self.shared.offset.lock().expect("offset lock") = Some(offset);
        self.shared
            .db
            .call(move |c| put_meta(c, keys::CLOCK, &offset))
            .await?;
        self.shared.work.notify_one();
        Ok(())
    }

    /// Sends what waits in the database for the server: contact outcomes,
    /// then deleted segments' discrepancy reports; each is marked sent
    /// after it went out (at least once: the server ignores repeats).
    async fn send_outbox(&mut self, sock: &mut RteSocket) -> Result<(), AgentError> {
        let outcomes = self
            .shared
            .db
            .call(|c| crate::contacts::unsent_outcomes(c))
            .await?;
        for o in outcomes {
            sock.send(&AgentMessage::ContactOutcome(o.clone())).await?;
            tracing::info!(contact = %o.contact_id, reason = o.reason.as_str(), "outcome sent");
            self.shared
                .db
                .call(move |c| crate::contacts::outcome_sent(c, &o.contact_id, o.seq))
                .await?;
        }
        let pauses = self.shared.db.call(|c| crate::pause::unreported(c)).await?;
        for p in pauses {
            sock.send(&AgentMessage::Pause(p.clone())).await?;
            self.shared
                .db
                .call(move |c| crate::pause::reported(c, &p))
                .await?;
        }
        let reports = self
            .shared
            .db
            .call(|c| crate::segments::pending_reports(c))
            .await?;
        for r in reports {
            let started_at = r.started_at;
            sock.send(&AgentMessage::SegmentReport(r)).await?;
            tracing::info!(segment = started_at, "segment report sent");
            self.shared
                .db
                .call(move |c| crate::segments::report_sent(c, started_at))
                .await?;
        }
        Ok(())
    }
}

/// The heartbeat's status, from the live state and the database.
async fn status(shared: &Shared) -> Result<AgentStatus, AgentError> {
    let (segments, counts) = shared
        .db
        .call(|c| Ok((crate::segments::summary(c)?, crate::contacts::counts(c)?)))
        .await?;
    let live = shared.live.get();
    Ok(AgentStatus {
        recording: live.state,
        segments_on_disk: segments.count,
        uploads_queued: counts.queued + counts.splicing + counts.uploading,
        disk_free_bytes: crate::status::disk_free(&shared.config.data_dir.segments()).unwrap_or(0),
        errors: live.last_error.into_iter().collect(),
    })
}

//! The engine: one task per concern, sharing the database and a little
//! live state.
//!
//! - the RTE client ([`crate::rte`]): connection, hello with the cursor,
//!   policy, clock offset, contacts, watermark, heartbeats;
//! - the recording controller ([`crate::recording`]): starts and stops the
//!   recorder as the cached policy and the session user say;
//! - the uploader ([`crate::uploader`]): splices queued contacts and
//!   uploads them;
//! - retention ([`crate::retention`]): deletes segments no contact needs,
//!   and enforces the policy's hard limits.
//!
//! Tasks talk through the database (the truth) and a few wake-ups; the
//! live state ([`Live`]) is what the status shows and is written to the
//! database as it changes, so `deskrec-agent status` can read it from
//! another process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deskrec_capture::{CaptureError, ForegroundWindow, FrameSource};
use deskrec_client::ServerAddress;
use deskrec_protocol::RecordingState;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;

use crate::clock::{Clock, ClockOffset, SystemClock};
use crate::db::{Db, get_meta, keys};
use crate::enroll::{Credentials, Identity};
use crate::handle::{AgentHandle, EVENT_BACKLOG, Event, Rate};
use crate::indicator::{Alert, Indicator};
use crate::live::LiveStatus;
use crate::lock::DirLock;
use crate::policy::CachedPolicy;
use crate::session::{FixedSession, SessionWatcher, platform_watcher};
use crate::view::{Notice, NoticeKind, Status};
use crate::{AgentError, DataDir};

/// Makes the session watcher when the agent starts.
pub type SessionFactory = Arc<dyn Fn() -> Box<dyn SessionWatcher> + Send + Sync>;

/// Opens the probe of the window in front when recording starts under a
/// policy with pause rules.
pub type ForegroundFactory =
    Arc<dyn Fn() -> Result<Box<dyn ForegroundWindow>, CaptureError> + Send + Sync>;

/// Opens the picture source when recording starts.
pub type SourceFactory =
    Arc<dyn Fn() -> Result<Box<dyn FrameSource + Send>, CaptureError> + Send + Sync>;

/// How the agent runs. [`AgentConfig::new`] gives the production defaults.
#[derive(Clone)]
pub struct AgentConfig {
    /// The data directory.
    pub data_dir: DataDir,
    /// A fixed session user's login (`--login`); `None` follows the
    /// [`session`](Self::session) watcher.
    pub login: Option<String>,
    /// The session watcher (logind, WTS) when no fixed login is given.
    pub session: SessionFactory,
    /// The screen (or, in tests, the synthetic source).
    pub source: SourceFactory,
    /// Which window is in front, for the policy's pause rules.
    pub foreground: ForegroundFactory,
    /// The agent's clock.
    pub clock: Arc<dyn Clock>,
    /// Padding added before and after each contact.
    pub pad: Duration,
    /// How long a cached policy is followed without the server.
    pub policy_max_age: Duration,
    /// Time between heartbeats.
    pub heartbeat_interval: Duration,
    /// Time between clock measurements while connected.
    pub clock_interval: Duration,
    /// Probes per clock measurement (the median is kept).
    pub clock_probes: u32,
    /// First reconnect delay; doubles up to `backoff_max`, with jitter.
    pub backoff_initial: Duration,
    /// Longest reconnect and retry delay.
    pub backoff_max: Duration,
    /// Bytes per upload PATCH (the offset is committed after each).
    pub upload_chunk_bytes: usize,
    /// The recorder's chunk length, seconds (what a crash can lose).
    pub chunk_seconds: f64,
    /// Time between retention passes.
    pub retention_interval: Duration,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("data_dir", &self.data_dir)
            .field("login", &self.login)
            .field("pad", &self.pad)
            .finish_non_exhaustive()
    }
}

impl AgentConfig {
    /// The defaults: the screen, the system clock, 5 s padding, a policy
    /// good for 7 days offline, a heartbeat a minute, the clock measured
    /// every 10 minutes with 5 probes, reconnects from 1 s up to 60 s,
    /// 4 MiB per PATCH, retention every minute.
    pub fn new(data_dir: DataDir) -> Self {
        Self {
            data_dir,
            login: None,
            session: Arc::new(platform_watcher),
            source: Arc::new(screen_source),
            foreground: Arc::new(deskrec_capture::foreground_window),
            clock: Arc::new(SystemClock),
            pad: Duration::from_secs(5),
            policy_max_age: Duration::from_secs(7 * 24 * 3600),
            heartbeat_interval: Duration::from_secs(60),
            clock_interval: Duration::from_secs(600),
            clock_probes: 5,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            upload_chunk_bytes: 4 << 20,
            chunk_seconds: 2.0,
            retention_interval: Duration::from_secs(60),
        }
    }
}

/// The screen of this PC.
fn screen_source() -> Result<Box<dyn FrameSource + Send>, CaptureError> {
    #[cfg(target_os = "linux")]
    return Ok(Box::new(deskrec_capture::X11Source::open(
        &deskrec_capture::X11Options::new(),
    )?));
    // Where Windows lets no capture method start, record marked blank
    // frames and keep trying: the logon stays covered, and the recording
    // shows when the screen could not be captured.
    #[cfg(windows)]
    return Ok(Box::new(deskrec_capture::WindowsSource::or_blank(
        deskrec_capture::WindowsOptions::default(),
    )?));
    #[cfg(not(any(target_os = "linux", windows)))]
    Err(CaptureError::InvalidSettings(
        "screen capture is not available on this platform".into(),
    ))
}

/// The login of the user running this process (`DOMAIN\user` on Windows).
pub fn process_login() -> String {
    #[cfg(windows)]
    {
        let user = std::env::var("USERNAME").unwrap_or_default();
        match std::env::var("USERDOMAIN") {
            Ok(d) if !d.is_empty() && !user.is_empty() => format!("{d}\\{user}"),
            _ => user,
        }
    }
    #[cfg(unix)]
    {
        // The account database, not $USER: services and cron jobs may not
        // set it, and it can say anything.
        unix_user_name().unwrap_or_else(|| std::env::var("USER").unwrap_or_default())
    }
    #[cfg(not(any(windows, unix)))]
    std::env::var("USER").unwrap_or_default()
}

/// The name of this process's effective user, from the account database.
#[cfg(unix)]
fn unix_user_name() -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to a live local of the advertised size;
    // `pw_name` points into `buf`, read before `buf` is dropped.
    let rc = unsafe {
        libc::getpwuid_r(
            libc::geteuid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty())
}

/// The server connection, as the status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    /// Not connected (waiting to retry).
    Offline,
    /// Connecting.
    Connecting,
    /// Hello sent, policy received.
    Connected,
}

/// The live state: what the status shows besides the database's counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Live {
    /// Recording state.
    pub state: RecordingState,
    /// Why, as a short code: the policy's reason (`eligible`,
    /// `user_inactive`, ...) or the engine's (`started`, `agent_stopped`, ...).
    pub reason: String,
    /// The session login.
    pub login: String,
    /// Whether the session is locked (recording goes on).
    #[serde(default)]
    pub locked: bool,
    /// The segment being written.
    pub current_segment: Option<String>,
    /// The server connection.
    pub connection: Connection,
    /// When the connection last came up (agent clock, µs).
    pub connected_at: Option<i64>,
    /// Since when the server has been unreachable (µs), while it is.
    #[serde(default)]
    pub offline_since: Option<i64>,
    /// A one-off problem shown for a while (a refused upload, segments
    /// deleted at the disk floor).
    #[serde(default)]
    pub alert: Option<crate::indicator::Alert>,
    /// The last error, for people.
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<i64>,
    /// When this was written (agent clock, µs).
    pub updated_at: i64,
}

impl Live {
    /// The status of an agent that has just started: paused, offline.
    pub(crate) fn starting(login: String, now: i64) -> Self {
        Self {
            state: RecordingState::Paused,
            reason: "starting".into(),
            login,
            locked: false,
            current_segment: None,
            connection: Connection::Offline,
            connected_at: None,
            offline_since: Some(now),
            alert: None,
            last_error: None,
            last_error_at: None,
            updated_at: now,
        }
    }
}

/// State the tasks share.
pub(crate) struct Shared {
    pub config: AgentConfig,
    pub db: Db,
    pub identity: Identity,
    pub creds: Credentials,
    /// The server's address with the pins trusted now (see `crate::pins`):
    /// read with [`Shared::server`].
    server: std::sync::Mutex<ServerAddress>,
    pub policy: watch::Sender<Option<CachedPolicy>>,
    pub login: watch::Sender<String>,
    /// The session or system is ending (`logoff`, `shutdown`): recording
    /// stops until a user logs on again or the end is cancelled.
    pub ending: watch::Sender<Option<&'static str>>,
    /// Whether the recorder is running (the controller keeps it current).
    pub recording: watch::Sender<bool>,
    /// Pauses in effect, and the recorder's switch.
    pub pauses: crate::pause::Pauses,
    pub offset: Mutex<Option<ClockOffset>>,
    pub live: LiveStatus,
    /// Contacts changed: the uploader looks again.
    pub work: Notify,
    /// Outcomes or segment reports are waiting: the RTE client sends them.
    pub outbox: Notify,
    /// The upload bandwidth cap, shared by all uploads.
    pub pacer: crate::pacer::Pacer,
    /// Changes, for front ends ([`crate::AgentHandle::subscribe`]).
    pub events: broadcast::Sender<Event>,
    /// Each upload's rate, from its confirmed offsets.
    pub rates: Mutex<HashMap<String, Rate>>,
}

impl Shared {
    /// The server's address, pinned to the keys trusted now.
    pub fn server(&self) -> ServerAddress {
        self.server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Trusts new pins from now on (they are stored first).
    pub fn set_server(&self, addr: ServerAddress) {
        *self.server.lock().unwrap_or_else(|e| e.into_inner()) = addr;
    }

    /// Now on the agent's clock.
    pub fn now(&self) -> i64 {
        self.config.clock.now()
    }

    /// Changes the live state and writes it to the database if it
    /// changed, telling subscribers.
    pub async fn update_live(&self, f: impl FnOnce(&mut Live)) {
        let segment = self.live.get().current_segment;
        if self.live.update(&self.db, self.now(), f).await {
            self.status_changed();
            if self.live.get().current_segment != segment {
                self.queue_changed();
            }
        }
    }

    /// The status now, from memory.
    pub fn status(&self) -> Status {
        let live = self.live.get();
        let policy = self.policy.borrow().clone();
        let desktop = policy
            .as_ref()
            .map(|p| p.policy.desktop.clone())
            .unwrap_or_default();
        let pause = self.pauses.current_at(self.now());
        Status {
            indicator: Indicator::of(&live, pause.as_ref(), self.now()),
            state: live.state,
            reason: live.reason,
            login: live.login,
            locked: live.locked,
            enrolled: true,
            device_id: Some(self.identity.device_id.clone()),
            server_url: Some(self.identity.url.clone()),
            connection: live.connection,
            connected_at: live.connected_at,
            offline_since: live.offline_since,
            current_segment: live
                .current_segment
                .map(|p| crate::handle::file_name(std::path::Path::new(&p))),
            last_error: live.last_error,
            last_error_at: live.last_error_at,
            disk_free_bytes: crate::status::disk_free(&self.config.data_dir.segments()),
            disk_floor_bytes: policy
                .as_ref()
                .map(|p| p.policy.retention.min_free_disk_bytes),
            pause,
            pause_reasons: policy
                .as_ref()
                .map(|p| p.policy.pause.agent_reasons.clone())
                .unwrap_or_default(),
            allow_quit: desktop.allow_quit,
            offline_notice_minutes: desktop.offline_notice_minutes,
            updated_at: live.updated_at,
        }
    }

    /// Tells subscribers the status changed (nobody listening is fine).
    pub fn status_changed(&self) {
        let _ = self.events.send(Event::Status(Box::new(self.status())));
    }

    /// Tells subscribers the queue changed.
    pub fn queue_changed(&self) {
        let _ = self.events.send(Event::Queue);
    }

    /// Tells the agent at the keyboard (through subscribers).
    pub fn notice(&self, kind: NoticeKind, title: &str, body: String) {
        let at = self.now();
        tracing::info!(?kind, %body, "{title}");
        let _ = self.events.send(Event::Notice(Notice {
            kind,
            title: title.into(),
            body,
            at,
        }));
    }

    /// Raises the attention icon for a while ([`crate::indicator::ALERT_US`]).
    pub async fn alert(&self, headline: &str, detail: String) {
        let alert = Alert {
            headline: headline.into(),
            detail,
            at: self.now(),
        };
        self.update_live(|l| l.alert = Some(alert)).await;
    }

    /// Makes the uploads waiting on a back-off due now and wakes the
    /// uploader; returns how many there were. `why` goes in the log.
    ///
    /// A back-off outlives the outage that caused it: after an hour
    /// offline it has grown to `backoff_max`, and it is stored, so it
    /// survives a restart. Whenever the server is known to be reachable
    /// again (the RTE connection is welcomed) or the agent asks, waiting
    /// out the rest of it would only delay the contact's recording.
    pub async fn retry_uploads_now(&self, why: &'static str) -> Result<u64, AgentError> {
        let now = self.now();
        let moved = self
            .db
            .call(move |c| crate::contacts::retry_now(c, now))
            .await?;
        if moved > 0 {
            tracing::info!(contacts = moved, "retrying uploads now: {why}");
            self.work.notify_one();
            self.queue_changed();
        }
        Ok(moved)
    }

    /// An upload's server offset was confirmed.
    pub fn upload_progressed(&self, id: &str, offset: u64) {
        let now = self.now();
        crate::handle::progress(&mut self.rates.lock().expect("rates lock"), id, offset, now);
        self.queue_changed();
    }

    /// Records an error for the status (and logs it).
    pub async fn error(&self, what: &str, e: &(dyn std::fmt::Display + Sync)) {
        let text = format!("{what}: {e}");
        tracing::warn!("{text}");
        let now = self.now();
        self.update_live(|l| {
            l.last_error = Some(text);
            l.last_error_at = Some(now);
        })
        .await;
    }

    /// The clock offset to use: the last measured (zero before the first
    /// measurement, with a warning in the log).
    pub fn offset(&self) -> Option<ClockOffset> {
        *self.offset.lock().expect("offset lock")
    }

    /// A delay growing with `attempt` (from `backoff_initial`, doubling, at
    /// most `backoff_max`), with full jitter in its upper half so many PCs
    /// do not reconnect in step.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self.config.backoff_initial.as_micros() as u64;
        let max = self.config.backoff_max.as_micros() as u64;
        let d = base.saturating_mul(1u64 << attempt.min(20)).min(max).max(1);
        let jitter = getrandom::u64().unwrap_or(0) % (d / 2 + 1);
        Duration::from_micros(d / 2 + jitter)
    }
}

/// A running agent.
pub struct Agent {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    /// The tasks, by name (for the log when one is slow to stop).
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    /// The data directory, held until [`Agent::shutdown`] has finished
    /// (not by `Shared`: a front end's handle may outlive the engine, and
    /// must not keep the next engine out).
    lock: DirLock,
}

impl Agent {
    /// Loads the enrollment and the state and starts the tasks.
    pub async fn start(config: AgentConfig) -> Result<Self, AgentError> {
        let dir = config.data_dir.clone();
        // Before anything else: a second engine must not touch the state.
        let lock = DirLock::acquire(&dir, config.clock.now())?;
        let db = dir.open_db()?;
        let (identity, creds) = crate::enroll::load_from(&db, &dir, &dir.secret_store())?;
        let addr = identity.address()?;
        let (policy, offset): (Option<CachedPolicy>, Option<ClockOffset>) = db
            .call(|c| Ok((get_meta(c, keys::POLICY)?, get_meta(c, keys::CLOCK)?)))
            .await?;
        crate::uploader::recover(&db, &dir).await?;
        let watcher: Box<dyn SessionWatcher> = match &config.login {
            Some(login) => Box::new(FixedSession(login.clone())),
            None => (config.session)(),
        };
        let now = config.clock.now();
        let shared = Arc::new(Shared {
            live: LiveStatus::new(Live::starting(
                config.login.clone().unwrap_or_default(),
                now,
            )),
            policy: watch::Sender::new(policy),
            login: watch::Sender::new(config.login.clone().unwrap_or_default()),
            ending: watch::Sender::new(None),
            recording: watch::Sender::new(false),
            pauses: crate::pause::Pauses::default(),
            offset: Mutex::new(offset),
            config,
            db,
            identity,
            creds,
            server: std::sync::Mutex::new(addr),
            work: Notify::new(),
            outbox: Notify::new(),
            pacer: crate::pacer::Pacer::new(),
            events: broadcast::channel(EVENT_BACKLOG).0,
            rates: Mutex::new(HashMap::new()),
        });
        crate::pause::restore(&shared).await?;
        shared.update_live(|l| l.reason = "started".into()).await;
        let (shutdown, rx) = watch::channel(false);
        let tasks = vec![
            (
                "session",
                tokio::spawn(crate::session::follow::run(
                    shared.clone(),
                    watcher,
                    rx.clone(),
                )),
            ),
            (
                "rte",
                tokio::spawn(crate::rte::run(shared.clone(), rx.clone())),
            ),
            (
                "recording",
                tokio::spawn(crate::recording::run(shared.clone(), rx.clone())),
            ),
            (
                "uploader",
                tokio::spawn(crate::uploader::run(shared.clone(), rx.clone())),
            ),
            (
                "retention",
                tokio::spawn(crate::retention::run(shared.clone(), rx)),
            ),
        ];
        tracing::info!(device = %shared.identity.device_id, "agent started");
        Ok(Self {
            shared,
            shutdown,
            tasks,
            lock,
        })
    }

    /// The live state now.
    pub fn live(&self) -> Live {
        self.shared.live.get()
    }

    /// A handle for front ends: status, queue, audit, events.
    pub fn handle(&self) -> AgentHandle {
        AgentHandle {
            shared: self.shared.clone(),
        }
    }

    /// Stops every task: the recorder finishes its segment, the RTE
    /// socket is closed, an upload in flight is abandoned (it resumes at
    /// the next start).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for (name, mut task) in self.tasks {
            // Every task stops within moments of the signal; one that does
            // not is named in the log (it is still waited for: a segment
            // being finished must not be cut short).
            let finished = match tokio::time::timeout(SLOW_STOP, &mut task).await {
                Ok(finished) => finished,
                Err(_) => {
                    tracing::warn!(task = name, after = ?SLOW_STOP, "an engine task is slow to stop");
                    task.await
                }
            };
            if let Err(e) = finished {
                tracing::error!(task = name, error = %e, "agent task failed");
            }
        }
        self.shared
            .update_live(|l| {
                l.connection = Connection::Offline;
                l.current_segment = None;
                l.state = RecordingState::Paused;
                l.reason = "agent_stopped".into();
            })
            .await;
        // Everything is written: the next engine may have the directory.
        drop(self.lock);
    }
}

/// How long a task may take to stop before the log names it.
const SLOW_STOP: Duration = Duration::from_secs(3);

/// Waits for `d` or for shutdown; true when shutting down.
pub(crate) async fn sleep_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = shutdown.changed() => true,
    }
}

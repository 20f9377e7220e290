//! A notification server (`org.freedesktop.Notifications`) that records
//! what an app asks to show.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedValue, Value};

use crate::bus::PrivateBus;
use crate::error::Result;
use crate::wait::watch_until;

/// The server's well-known bus name.
pub const NOTIFICATIONS_NAME: &str = "org.freedesktop.Notifications";
/// Its object path.
pub const NOTIFICATIONS_PATH: &str = "/org/freedesktop/Notifications";

/// What `GetCapabilities` answers: plain text bodies and action buttons,
/// like a common desktop's server (no markup, no images).
pub const CAPABILITIES: &[&str] = &["actions", "body"];

/// One `Notify` call, as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The id the server answered (the call's `replaces_id` when that
    /// named a notification, else a new one).
    pub id: u32,
    /// `app_name`: the app as the user knows it.
    pub app_name: String,
    /// `replaces_id`: 0, or a notification this one updates.
    pub replaces_id: u32,
    /// `app_icon`: an icon name or `file://` URI.
    pub app_icon: String,
    /// `summary`: the title line.
    pub summary: String,
    /// `body`: the text under it.
    pub body: String,
    /// `actions`: pairs of key and label (`["default", "Open"]`).
    pub actions: Vec<String>,
    /// `hints`: `urgency` (a byte), `category`, `desktop-entry`, ...
    pub hints: HashMap<String, OwnedValue>,
    /// `expire_timeout` in ms: -1 the server's default, 0 never.
    pub expire_timeout: i32,
    /// When the server received it.
    pub received: Instant,
    /// Why it was closed, once it was (`NotificationClosed` reasons: 1
    /// expired, 2 dismissed by the user, 3 closed by the app).
    pub closed: Option<u32>,
}

impl Notification {
    /// Hint `name` if it is a string (`category`, `desktop-entry`).
    pub fn hint_str(&self, name: &str) -> Option<&str> {
        match self.hints.get(name).map(|v| &**v) {
            Some(Value::Str(s)) => Some(s.as_str()),
            _ => None,
        }
    }

    /// The `urgency` hint: 0 low, 1 normal, 2 critical.
    pub fn urgency(&self) -> Option<u8> {
        match self.hints.get("urgency").map(|v| &**v) {
            Some(Value::U8(u)) => Some(*u),
            _ => None,
        }
    }
}

/// Notifications received, in order, and the last id handed out.
#[derive(Debug, Default)]
struct Log {
    notifications: Vec<Notification>,
    last_id: u32,
}

/// The `org.freedesktop.Notifications` interface.
struct Server {
    log: watch::Sender<Log>,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Server {
    #[allow(clippy::too_many_arguments)] // The protocol's.
    async fn notify(
        &self,
        app_name: String,
        replaces_id: u32,
        app_icon: String,
        summary: String,
        body: String,
        actions: Vec<String>,
        hints: HashMap<String, OwnedValue>,
        expire_timeout: i32,
    ) -> u32 {
        let mut id = 0;
        self.log.send_modify(|log| {
            id = if replaces_id != 0 && log.notifications.iter().any(|n| n.id == replaces_id) {
                replaces_id
            } else {
                log.last_id += 1;
                log.last_id
            };
            log.notifications.push(Notification {
                id,
                app_name,
                replaces_id,
                app_icon,
                summary,
                body,
                actions,
                hints,
                expire_timeout,
                received: Instant::now(),
                closed: None,
            });
        });
        id
    }

    async fn close_notification(
        &self,
        id: u32,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> zbus::fdo::Result<()> {
        if close(&self.log, id, 3) {
            Self::notification_closed(&emitter, id, 3).await?;
        }
        Ok(())
    }

    async fn get_capabilities(&self) -> Vec<&'static str> {
        CAPABILITIES.to_vec()
    }

    #[zbus(out_args("name", "vendor", "version", "spec_version"))]
    async fn get_server_information(
        &self,
    ) -> (&'static str, &'static str, &'static str, &'static str) {
        ("deskrec-e2e", "Deskrec", env!("CARGO_PKG_VERSION"), "1.2")
    }

    #[zbus(signal)]
    async fn notification_closed(
        emitter: &SignalEmitter<'_>,
        id: u32,
        reason: u32,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn action_invoked(
        emitter: &SignalEmitter<'_>,
        id: u32,
        action_key: &str,
    ) -> zbus::Result<()>;
}

/// Marks every open notification `id` closed for `reason`; whether any was.
fn close(log: &watch::Sender<Log>, id: u32, reason: u32) -> bool {
    log.send_if_modified(|log| {
        let mut any = false;
        for n in log.notifications.iter_mut().filter(|n| n.id == id) {
            if n.closed.is_none() {
                n.closed = Some(reason);
                any = true;
            }
        }
        any
    })
}

/// A desktop's notification server on a private bus: owns
/// `org.freedesktop.Notifications` and records each notification an app
/// sends, instead of showing it. Tests read [`received`](Self::received)
/// or [`wait_for`](Self::wait_for) one, and can play the user
/// ([`invoke_action`](Self::invoke_action), [`close`](Self::close)).
///
/// Dropping it stops serving.
#[derive(Debug)]
pub struct Notifications {
    /// The connection that owns the name and serves the interface.
    conn: zbus::Connection,
    /// The record, changed by the interface.
    log: watch::Sender<Log>,
}

impl Notifications {
    /// Starts the server on `bus`. Fails if another one owns the name
    /// there.
    pub async fn start(bus: &PrivateBus) -> Result<Self> {
        let (log, _) = watch::channel(Log::default());
        let conn = bus
            .builder()?
            .serve_at(NOTIFICATIONS_PATH, Server { log: log.clone() })?
            .name(NOTIFICATIONS_NAME)?
            .build()
            .await?;
        Ok(Self { conn, log })
    }

    /// Every notification received so far, in order (an update with
    /// `replaces_id` is a new entry with the same id).
    pub fn received(&self) -> Vec<Notification> {
        self.log.borrow().notifications.clone()
    }

    /// Waits up to `limit` for a notification that `check` accepts (one
    /// already received counts) and returns the first such; `what`
    /// describes it for the timeout message.
    pub async fn wait_for(
        &self,
        limit: Duration,
        what: &str,
        mut check: impl FnMut(&Notification) -> bool,
    ) -> Result<Notification> {
        let mut rx = self.log.subscribe();
        watch_until(
            &mut rx,
            limit,
            what,
            |log| log.notifications.iter().find(|n| check(n)).cloned(),
            |log| {
                let seen: Vec<_> = log
                    .notifications
                    .iter()
                    .map(|n| format!("#{} {:?}: {:?}", n.id, n.summary, n.body))
                    .collect();
                format!("{seen:?}")
            },
        )
        .await
    }

    /// Plays a user clicking action `key` of notification `id`
    /// (`"default"`: the notification itself): sends `ActionInvoked`, then
    /// `NotificationClosed` (reason 2, dismissed).
    pub async fn invoke_action(&self, id: u32, key: &str) -> Result<()> {
        let emitter = SignalEmitter::new(&self.conn, NOTIFICATIONS_PATH)?;
        Server::action_invoked(&emitter, id, key).await?;
        self.close(id, 2).await
    }

    /// Closes notification `id` for `reason` (1 expired, 2 dismissed by
    /// the user) and sends `NotificationClosed`, if it was open.
    pub async fn close(&self, id: u32, reason: u32) -> Result<()> {
        if close(&self.log, id, reason) {
            let emitter = SignalEmitter::new(&self.conn, NOTIFICATIONS_PATH)?;
            Server::notification_closed(&emitter, id, reason).await?;
        }
        Ok(())
    }
}

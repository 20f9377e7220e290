//! The session watcher on Linux: the agent follows logind's active session
//! (logon, user switch, logoff, lock) and holds a shutdown until its
//! segment is finished. The real server and recorder; logind itself cannot
//! run here (no systemd as PID 1), so a small logind speaking the same
//! D-Bus interfaces runs on a private, real `dbus-daemon`.

#![cfg(target_os = "linux")]
// The fake logind's D-Bus methods are generated undocumented.
#![allow(missing_docs)]

use crate::common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deskrec_agent::clock::SystemClock;
use deskrec_agent::session::logind::LogindWatcher;
use deskrec_agent::{Agent, DataDir};
use deskrec_protocol::RecordingState;
use deskrec_vault::{ScanDepth, scan_segment};
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedFd, OwnedObjectPath};

use common::{ANN, TestServer, config, eligible_enrolled, enroll_agent, wait_for, wait_status};

const WAIT: Duration = Duration::from_secs(20);
const SEAT: &str = "/org/freedesktop/login1/seat/seat0";
const MANAGER: &str = "/org/freedesktop/login1";
const ANN_SESSION: &str = "/org/freedesktop/login1/session/_32";
const GREETER_SESSION: &str = "/org/freedesktop/login1/session/c1";

/// A private message bus (`dbus-daemon`), stopped on drop.
struct Bus {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Bus {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .arg(format!(
                "--address=unix:path={}",
                dir.path().join("bus").display()
            ))
            .stdout(Stdio::piped())
            .spawn()
            .expect("dbus-daemon (apt-get install dbus-daemon)");
        let mut out = child.stdout.take().unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8];
        while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        Self {
            child,
            address: String::from_utf8(line).unwrap(),
            _dir: dir,
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// logind's Manager: hands out delay inhibitors (pipes whose read end it
/// keeps, so a test sees when the agent closes its end).
#[derive(Default)]
struct Manager {
    inhibitors: Arc<Mutex<Vec<std::io::PipeReader>>>,
}

#[zbus::interface(name = "org.freedesktop.login1.Manager")]
impl Manager {
    async fn inhibit(&self, what: &str, _who: &str, _why: &str, mode: &str) -> OwnedFd {
        assert_eq!((what, mode), ("shutdown", "delay"));
        let (reader, writer) = std::io::pipe().unwrap();
        self.inhibitors.lock().unwrap().push(reader);
        OwnedFd::from(std::os::fd::OwnedFd::from(writer))
    }

    #[zbus(signal)]
    async fn prepare_for_shutdown(emitter: &SignalEmitter<'_>, start: bool) -> zbus::Result<()>;
}

struct Seat {
    active: (String, OwnedObjectPath),
}

#[zbus::interface(name = "org.freedesktop.login1.Seat")]
impl Seat {
    #[zbus(property)]
    async fn active_session(&self) -> (String, OwnedObjectPath) {
        self.active.clone()
    }
}

struct Session {
    name: String,
    class: String,
}

#[zbus::interface(name = "org.freedesktop.login1.Session")]
impl Session {
    #[zbus(property)]
    async fn name(&self) -> String {
        self.name.clone()
    }
    #[zbus(property)]
    async fn class(&self) -> String {
        self.class.clone()
    }
    #[zbus(property)]
    async fn locked_hint(&self) -> bool {
        false
    }
    #[zbus(signal)]
    async fn lock(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;
    #[zbus(signal)]
    async fn unlock(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;
}

/// The fake logind on `bus`, with ann's session and a greeter's; the
/// greeter's is active first.
struct Logind {
    conn: zbus::Connection,
    inhibitors: Arc<Mutex<Vec<std::io::PipeReader>>>,
}

impl Logind {
    async fn start(bus: &Bus) -> Self {
        let manager = Manager::default();
        let inhibitors = manager.inhibitors.clone();
        let session = |name: &str, class: &str| Session {
            name: name.into(),
            class: class.into(),
        };
        let conn = zbus::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .name("org.freedesktop.login1")
            .unwrap()
            .serve_at(MANAGER, manager)
            .unwrap()
            .serve_at(
                SEAT,
                Seat {
                    active: ("c1".into(), path(GREETER_SESSION)),
                },
            )
            .unwrap()
            .serve_at(ANN_SESSION, session(ANN, "user"))
            .unwrap()
            .serve_at(GREETER_SESSION, session("lightdm", "greeter"))
            .unwrap()
            .build()
            .await
            .unwrap();
        Self { conn, inhibitors }
    }

    /// Makes `session` (an object path, `/` for none) the seat's active one.
    async fn activate(&self, id: &str, session: &str) {
        let seat = self
            .conn
            .object_server()
            .interface::<_, Seat>(SEAT)
            .await
            .unwrap();
        seat.get_mut().await.active = (id.into(), path(session));
        seat.get()
            .await
            .active_session_changed(seat.signal_emitter())
            .await
            .unwrap();
    }

    async fn lock_ann(&self) {
        let emitter = SignalEmitter::new(&self.conn, ANN_SESSION).unwrap();
        Session::lock(&emitter).await.unwrap();
    }

    async fn prepare_for_shutdown(&self, start: bool) {
        let emitter = SignalEmitter::new(&self.conn, MANAGER).unwrap();
        Manager::prepare_for_shutdown(&emitter, start)
            .await
            .unwrap();
    }

    fn inhibitors_taken(&self) -> usize {
        self.inhibitors.lock().unwrap().len()
    }

    /// Waits until the newest inhibitor is released (its pipe closed).
    async fn wait_released(&self) {
        let reader = self.inhibitors.lock().unwrap().last().unwrap().try_clone();
        let mut reader = reader.unwrap();
        tokio::time::timeout(
            WAIT,
            tokio::task::spawn_blocking(move || {
                let mut buf = [0u8; 1];
                // EOF once every copy of the write end is closed.
                assert_eq!(reader.read(&mut buf).unwrap(), 0);
            }),
        )
        .await
        .expect("the agent released the shutdown inhibitor")
        .unwrap();
    }
}

fn path(p: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(p).unwrap()
}

/// Every segment file in `dir` is finished (has its end record).
fn all_segments_finished(dir: &DataDir) -> bool {
    std::fs::read_dir(dir.segments()).unwrap().all(|e| {
        let scan = scan_segment(&e.unwrap().path(), ScanDepth::Full).unwrap();
        scan.is_complete()
    })
}

fn audit_actions(dir: &DataDir) -> Vec<String> {
    deskrec_agent::status::audit(dir, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_follows_logon_lock_logoff_and_finishes_its_segment_before_shutdown() {
    let bus = Bus::start();
    let logind = Logind::start(&bus).await;
    let s = TestServer::start().await;
    let (_tmp, dir) = eligible_enrolled(&s).await;
    let mut cfg = config(&dir, ANN, Arc::new(SystemClock));
    cfg.login = None;
    let address = bus.address.clone();
    cfg.session = Arc::new(move || Box::new(LogindWatcher::at(address.clone(), "seat0")));
    let agent = Agent::start(cfg).await.unwrap();

    // The greeter is nobody.
    let r = wait_status(&dir, WAIT, "the greeter's session followed", |r| {
        r.reason == "no_session_user" && r.policy.is_some()
    })
    .await;
    assert_eq!((r.state, r.login.as_str()), (RecordingState::Paused, ""));
    wait_for(WAIT, "a shutdown inhibitor", || async {
        (logind.inhibitors_taken() == 1).then_some(())
    })
    .await;

    // Ann logs on: recording.
    logind.activate("2", ANN_SESSION).await;
    wait_status(&dir, WAIT, "ann recording", |r| {
        r.state == RecordingState::Recording && r.login == ANN && r.segments.count >= 1
    })
    .await;

    // A lock is shown; recording goes on.
    logind.lock_ann().await;
    let r = wait_status(&dir, WAIT, "the lock shown", |r| r.locked).await;
    assert_eq!(r.state, RecordingState::Recording);

    // Shutdown: the inhibitor goes only once the segment is finished.
    logind.prepare_for_shutdown(true).await;
    logind.wait_released().await;
    assert!(all_segments_finished(&dir), "a segment was left open");
    let r = deskrec_agent::status::report(&dir).unwrap();
    assert_eq!(
        (r.state, r.reason.as_str(), r.current_segment),
        (RecordingState::Paused, "session_ending: shutdown", None)
    );

    // The shutdown is cancelled: recording again, under a new inhibitor.
    logind.prepare_for_shutdown(false).await;
    wait_status(&dir, WAIT, "recording after the cancelled shutdown", |r| {
        r.state == RecordingState::Recording && r.current_segment.is_some()
    })
    .await;
    assert_eq!(logind.inhibitors_taken(), 2);

    // Logoff: back to the greeter, the recorder stopped.
    logind.activate("c1", GREETER_SESSION).await;
    wait_status(&dir, WAIT, "ann logged off", |r| {
        r.state == RecordingState::Paused && r.login.is_empty() && r.current_segment.is_none()
    })
    .await;
    assert!(all_segments_finished(&dir));
    agent.shutdown().await;

    let actions = audit_actions(&dir);
    for action in [
        "session.logoff",
        "session.user",
        "session.locked",
        "session.ending",
        "session.end_cancelled",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_logind_the_agent_follows_the_user_running_it() {
    let s = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    enroll_agent(&s, &dir).await;
    let mut cfg = config(&dir, ANN, Arc::new(SystemClock));
    cfg.login = None;
    let nowhere = format!("unix:path={}", tmp.path().join("no-bus").display());
    cfg.session = Arc::new(move || Box::new(LogindWatcher::at(nowhere.clone(), "seat0")));
    let agent = Agent::start(cfg).await.unwrap();
    let me = deskrec_agent::process_login();
    assert!(!me.is_empty(), "the account database names the user");
    wait_status(&dir, WAIT, "the process user followed", |r| r.login == me).await;
    agent.shutdown().await;
}

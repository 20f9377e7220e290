//! Fixtures for the agent's tests: the real server from the server's own
//! test fixtures (started in-process on a real TLS socket), and helpers to
//! enroll and run agents against it.

// Test plumbing; each test binary uses part of it.
#![allow(missing_docs, dead_code)]

pub use deskrec_server::testing as server;

use deskrec_agent::DataDir;
use deskrec_agent::enroll::{self, Identity};
use serde_json::Value;
pub use server::TestServer;

/// A fresh compact enrollment token for `s`.
pub async fn enrollment_token(s: &TestServer) -> String {
    let t = s.admin("POST", "/enrollment-tokens", Value::Null).await;
    t["enrollment_token"].as_str().unwrap().to_owned()
}

/// Enrolls an agent data directory with `s`.
pub async fn enroll_agent(s: &TestServer, dir: &DataDir) -> Identity {
    let token = enrollment_token(s).await;
    let id = enroll::enroll(dir, &dir.secret_store(), &token, "PC-agent", 0)
        .await
        .unwrap();
    enrolled_long_ago(s, &id);
    id
}

/// Dates the device's enrollment on the server two hours back. The tests
/// place contacts and segments in the last hour, as if the PC had been
/// recording then, and the server relays a login's contacts to a device
/// only from its enrollment on.
fn enrolled_long_ago(s: &TestServer, id: &Identity) {
    server_db(s)
        .execute(
            "UPDATE devices SET enrolled_at = enrolled_at - 7200000000 WHERE id = ?1",
            [&id.device_id],
        )
        .unwrap();
}

/// Ann made eligible on `s` ([`eligible_setup`]), and a fresh agent data
/// directory enrolled there (the temporary directory must outlive the
/// test).
pub async fn eligible_enrolled(s: &TestServer) -> (tempfile::TempDir, DataDir) {
    eligible_setup(s).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    enroll_agent(s, &dir).await;
    (tmp, dir)
}

/// Ann made eligible on `s`, and a fresh data directory enrolled through a
/// [`Proxy`] in front of `s`: the agent reaches the server only through
/// it, so a test can cut, throttle or hold the network.
pub async fn eligible_behind_proxy(s: &TestServer) -> (Proxy, tempfile::TempDir, DataDir) {
    eligible_setup(s).await;
    let proxy = Proxy::start(s.addr).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    proxy.enroll(s, &dir).await;
    (proxy, tmp, dir)
}

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deskrec_agent::clock::{Clock, SystemClock};
use deskrec_agent::status::StatusReport;
use deskrec_agent::{Agent, AgentConfig};
use deskrec_capture::SyntheticSource;
use deskrec_protocol::EnrollmentToken;
use serde_json::json;

/// The login that may be recorded (after [`eligible_setup`]).
pub const ANN: &str = "ann";

/// Short segments and GOPs, a role with `record_screen`, and `ann` in it.
pub async fn eligible_setup(s: &TestServer) -> Value {
    s.admin(
        "PATCH",
        "/settings",
        json!({"segment_seconds": 10, "gop_seconds": 2}),
    )
    .await;
    s.put_role("agent", &["record_screen"]).await;
    s.add_user("Ann", ANN, &["agent"]).await
}

/// The engine started on `dir` for [`ANN`] with [`config`] and the
/// system clock.
pub async fn start_ann(dir: &DataDir) -> Agent {
    Agent::start(config(dir, ANN, Arc::new(SystemClock)))
        .await
        .expect("the agent starts")
}

/// An agent configuration for tests: the synthetic source, 1 s padding
/// and chunks, fast heartbeats and reconnects.
pub fn config(dir: &DataDir, login: &str, clock: Arc<dyn Clock>) -> AgentConfig {
    let mut c = AgentConfig::new(dir.clone());
    c.login = Some(login.to_owned());
    c.source = Arc::new(|| {
        Ok(Box::new(SyntheticSource::new(640, 360)?.with_fixed_clock(
            Instant::now(),
            Duration::from_millis(200),
        )))
    });
    c.foreground = Arc::new(|| Ok(Box::new(NoWindow)));
    c.clock = clock;
    c.pad = Duration::from_secs(1);
    c.chunk_seconds = 1.0;
    c.heartbeat_interval = Duration::from_secs(1);
    c.backoff_initial = Duration::from_millis(100);
    c.backoff_max = Duration::from_secs(1);
    c.upload_chunk_bytes = 64 << 10;
    c.retention_interval = Duration::from_millis(500);
    c
}

/// The synthetic desktop has no windows: pause rules never match.
pub struct NoWindow;

impl deskrec_capture::ForegroundWindow for NoWindow {
    fn foreground(
        &mut self,
    ) -> Result<Option<deskrec_capture::WindowInfo>, deskrec_capture::CaptureError> {
        Ok(None)
    }
}

/// Enrolls a fresh data directory and starts an agent in it.
pub async fn start_agent(
    s: &TestServer,
    root: &std::path::Path,
    login: &str,
    clock: Arc<dyn Clock>,
) -> (Agent, DataDir) {
    let dir = DataDir::new(root);
    enroll_agent(s, &dir).await;
    let agent = Agent::start(config(&dir, login, clock)).await.unwrap();
    (agent, dir)
}

/// Polls the agent's status until `done` holds (fails after `within`).
pub async fn wait_status(
    dir: &DataDir,
    within: Duration,
    what: &str,
    done: impl Fn(&StatusReport) -> bool,
) -> StatusReport {
    let end = Instant::now() + within;
    loop {
        let r = deskrec_agent::status::report(dir).unwrap();
        if done(&r) {
            return r;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}: {r:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls until `f` returns `Some`.
pub async fn wait_for<T, F: Future<Output = Option<T>>>(
    within: Duration,
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A µs time as RFC 3339, as the contacts API takes it.
pub use deskrec_vault::utc::rfc3339;

/// Imports one contact of `login` (server clock times).
pub async fn import_contact(s: &TestServer, id: &str, login: &str, start: i64, end: i64) {
    s.admin(
        "POST",
        "/contacts",
        json!({"contacts": [{"contact_id": id, "windows_login": login,
                             "start": rfc3339(start), "end": rfc3339(end)}]}),
    )
    .await;
}

/// The server's view of a contact.
pub async fn server_contact(s: &TestServer, id: &str) -> Value {
    s.admin("GET", &format!("/contacts/{id}"), Value::Null)
        .await
}

/// Waits until the server's contact has `status`.
pub async fn wait_contact_status(
    s: &TestServer,
    id: &str,
    status: &str,
    within: Duration,
) -> Value {
    wait_for(within, &format!("contact {id} {status}"), || async {
        let c = server_contact(s, id).await;
        (c["status"] == status).then_some(c)
    })
    .await
}

/// Files in the agent's recordings directory.
pub fn local_recordings(dir: &DataDir) -> usize {
    std::fs::read_dir(dir.recordings()).map_or(0, |d| d.count())
}

/// A TCP relay in front of the server that can be cut, slowed down or
/// made to hold the server's answers: the network (or the server) going
/// away, for the agent.
pub struct Proxy {
    pub addr: SocketAddr,
    relay: Arc<Relay>,
    accept: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Relay {
    down: AtomicBool,
    /// Agent-to-server bytes per second; 0: as fast as they come.
    rate: AtomicU64,
    /// Server-to-agent bytes wait while set.
    hold: AtomicBool,
    /// Sets `hold` once one connection has sent this many bytes; 0: never.
    hold_after: AtomicU64,
    conns: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Relay {
    /// Copies one direction of a connection, as the switches say.
    async fn pump(
        &self,
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        upstream: bool,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = vec![0; 4096];
        let mut sent = 0u64;
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if upstream {
                let rate = self.rate.load(Ordering::SeqCst);
                if rate > 0 {
                    tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate as f64)).await;
                }
                sent += n as u64;
                let after = self.hold_after.load(Ordering::SeqCst);
                if after > 0 && sent >= after {
                    self.hold.store(true, Ordering::SeqCst);
                }
            } else {
                while self.hold.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            if to.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    }
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let relay = Arc::new(Relay::default());
        let r = relay.clone();
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if r.down.load(Ordering::SeqCst) {
                    continue; // dropped: connection reset
                }
                let r2 = r.clone();
                let task = tokio::spawn(async move {
                    if let Ok(outbound) = tokio::net::TcpStream::connect(target).await {
                        let (ir, iw) = inbound.into_split();
                        let (or, ow) = outbound.into_split();
                        tokio::join!(r2.pump(ir, ow, true), r2.pump(or, iw, false));
                    }
                });
                r.conns.lock().unwrap().push(task.abort_handle());
            }
        });
        Self {
            addr,
            relay,
            accept,
        }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.relay.down.store(true, Ordering::SeqCst);
        for c in self.relay.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// Lets connections through again, at full speed, nothing held.
    pub fn heal(&self) {
        self.relay.rate.store(0, Ordering::SeqCst);
        self.relay.hold_after.store(0, Ordering::SeqCst);
        self.relay.hold.store(false, Ordering::SeqCst);
        self.relay.down.store(false, Ordering::SeqCst);
    }

    /// Limits what the agent sends to `bytes_per_second`.
    pub fn throttle(&self, bytes_per_second: u64) {
        self.relay.rate.store(bytes_per_second, Ordering::SeqCst);
    }

    /// Once one connection has sent `bytes`, the server's answers (on
    /// every connection) stop reaching the agent: the server got a request
    /// whose answer the agent never sees. Until [`heal`](Self::heal).
    pub fn hold_answers_after(&self, bytes: u64) {
        self.relay.hold_after.store(bytes, Ordering::SeqCst);
    }

    /// Whether [`hold_answers_after`](Self::hold_answers_after) tripped.
    pub fn holding(&self) -> bool {
        self.relay.hold.load(Ordering::SeqCst)
    }

    /// An enrollment token for `s` that sends the agent through this proxy.
    pub async fn token(&self, s: &TestServer) -> String {
        let mut t = EnrollmentToken::decode(&enrollment_token(s).await).unwrap();
        t.url = format!("https://127.0.0.1:{}", self.addr.port());
        t.encode()
    }

    /// Enrolls `dir` with `s` through this proxy.
    pub async fn enroll(&self, s: &TestServer, dir: &DataDir) -> Identity {
        let token = self.token(s).await;
        let id = enroll::enroll(dir, &dir.secret_store(), &token, "PC-agent", 0)
            .await
            .unwrap();
        enrolled_long_ago(s, &id);
        id
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// Writes one finished segment into `dir` as the recorder would name it,
/// on a clock of the caller's choosing (a PC whose clock is wrong): real
/// OpenH264 pictures of the synthetic source, one every 2 s from `start`
/// for `seconds`, a keyframe (and a new chunk) every 10 s, encrypted for
/// the test server's key.
pub fn write_segment(dir: &std::path::Path, device_id: &str, start: i64, seconds: i64) {
    use deskrec_capture::{EncoderConfig, FrameSource, H264Encoder};
    use deskrec_vault::{Frame, SegmentParams, SegmentWriter};
    const STEP: i64 = 2_000_000;
    std::fs::create_dir_all(dir).unwrap();
    let params = SegmentParams {
        device_id: device_id.into(),
        started_at: start,
        width: 640,
        height: 360,
        frame_rate: 0.5,
    };
    let path = deskrec_recorder::segment_path(dir, start);
    let mut w = SegmentWriter::create(&path, &params, server::test_key().public()).unwrap();
    let mut enc = H264Encoder::new(EncoderConfig::new(640, 360)).unwrap();
    let mut src = SyntheticSource::new(640, 360)
        .unwrap()
        .with_fixed_clock(Instant::now(), Duration::from_millis(STEP as u64 / 1000));
    let mut chunk = Vec::new();
    for n in 0..seconds * 1_000_000 / STEP {
        let key = n % 5 == 0;
        let e = enc.encode(&src.next_frame().unwrap(), key).unwrap();
        assert_eq!(e.keyframe, key, "frame {n}");
        if key && !chunk.is_empty() {
            w.append_chunk(&std::mem::take(&mut chunk)).unwrap();
        }
        chunk.push(Frame {
            pts: start + n * STEP,
            duration: STEP as u32,
            keyframe: e.keyframe,
            data: e.data,
            pause: None,
        });
    }
    w.append_chunk(&chunk).unwrap();
    w.finish().unwrap();
}

/// The manifests of the recordings the server stored.
pub fn stored_manifests(s: &TestServer) -> Vec<deskrec_vault::Manifest> {
    stored_recordings(s)
        .iter()
        .map(|f| deskrec_vault::scan_recording(f).unwrap().manifest.manifest)
        .collect()
}

/// The `.dskr` files the server stored.
pub fn stored_recordings(s: &TestServer) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p
                .extension()
                .is_some_and(|x| x == deskrec_vault::FileKind::Recording.extension())
            {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&s.dir.path().join("recordings"), &mut files);
    files
}

/// The server's database, read beside the running server.
pub fn server_db(s: &TestServer) -> rusqlite::Connection {
    let db = rusqlite::Connection::open(s.dir.path().join("deskrec.db")).unwrap();
    // The server writes beside the test.
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db
}

/// The server's tus uploads for a contact: (length, received, state).
pub fn server_uploads(s: &TestServer, contact: &str) -> Vec<(u64, u64, String)> {
    let db = server_db(s);
    let mut stmt = db
        .prepare("SELECT length, received, state FROM uploads WHERE contact_id = ?1")
        .unwrap();
    stmt.query_map([contact], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// How many tus PATCHes the server answered with success.
pub async fn successful_patches(s: &TestServer) -> u64 {
    s.metrics()
        .await
        .lines()
        .filter(|l| {
            l.starts_with("deskrec_http_requests_total{")
                && l.contains(r#"method="PATCH""#)
                && l.contains(r#"status="2xx""#)
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
        .sum()
}

/// How many requests the server's upload routes (`/api/v1/uploads…`:
/// creation, HEAD, PATCH, DELETE) answered, whatever the answer.
pub async fn upload_requests(s: &TestServer) -> u64 {
    s.metrics()
        .await
        .lines()
        .filter(|l| {
            l.starts_with("deskrec_http_requests_total{") && l.contains(r#"route="/api/v1/uploads"#)
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
        .sum()
}

/// The contact's recording was stored once and nothing else: one upload,
/// complete, one recording file, one `stored` outcome.
pub async fn assert_stored_once(s: &TestServer, contact: &str) {
    let ups = server_uploads(s, contact);
    assert_eq!(ups.len(), 1, "one upload: {ups:?}");
    let (length, received, state) = &ups[0];
    assert_eq!((received, state.as_str()), (length, "stored"), "{ups:?}");
    assert_eq!(stored_recordings(s).len(), 1, "one recording stored");
    assert_eq!(
        s.metric(r#"deskrec_uploads_finished_total{outcome="stored"}"#)
            .await,
        Some(1.0)
    );
}

/// The `deskrec-agent` binary running for `ann` on `dir` (synthetic
/// source, 1 s padding), as a PC runs it.
pub struct AgentProcess(tokio::process::Child);

impl AgentProcess {
    pub fn run(dir: &DataDir) -> Self {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_deskrec-agent"))
            .args([
                "run",
                "--login",
                ANN,
                "--pad-seconds",
                "1",
                "--source",
                "synthetic",
            ])
            .arg("--data-dir")
            .arg(dir.root())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Self(child)
    }

    /// `kill -9`.
    pub async fn kill9(mut self) {
        self.0.start_kill().unwrap(); // SIGKILL
        self.0.wait().await.unwrap();
    }

    /// SIGTERM, as at shutdown; the agent must exit cleanly.
    #[cfg(unix)]
    pub async fn terminate(mut self) {
        let pid = self.0.id().unwrap() as i32;
        // SAFETY: signalling our own child, which has not been reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = tokio::time::timeout(Duration::from_secs(20), self.0.wait())
            .await
            .expect("the agent stops on SIGTERM")
            .unwrap();
        assert!(status.success(), "{status}");
    }
}

/// How long each synthetic picture is on screen (5 fps, the default).
pub const FRAME_US: i64 = 200_000;

/// [`config`] with a source that notes the agent's clock each time the
/// recorder opens it: picture `n` is on screen from `n * FRAME_US` after.
pub fn numbered_config(dir: &DataDir, login: &str) -> (AgentConfig, Arc<Mutex<Vec<i64>>>) {
    let opened: Arc<Mutex<Vec<i64>>> = Arc::default();
    let mut c = config(dir, login, Arc::new(deskrec_agent::clock::SystemClock));
    let o = opened.clone();
    c.source = Arc::new(move || {
        let source = SyntheticSource::new(640, 360)?
            .with_fixed_clock(Instant::now(), Duration::from_micros(FRAME_US as u64));
        o.lock()
            .unwrap()
            .push(deskrec_agent::clock::SystemClock.now());
        Ok(Box::new(source))
    });
    (c, opened)
}

/// Exports the one recording the server stored to MP4 with the server's
/// key and decodes it as a player shows it.
#[cfg(target_os = "linux")]
pub fn exported_video(s: &TestServer, dir: &DataDir) -> deskrec_capture::testing::DecodedVideo {
    let recordings = stored_recordings(s);
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    let (identity, creds) = deskrec_agent::enroll::load(dir, &dir.secret_store()).unwrap();
    let keyring = deskrec_vault::Keyring::from(server::test_key().clone());
    let device = deskrec_vault::DeviceIdentity {
        id: &identity.device_id,
        key: creds.device_key.public(),
    };
    let mp4 = s.dir.path().join("export.mp4");
    deskrec_vault::export_mp4(&recordings[0], &keyring, device, &mp4).unwrap();
    deskrec_capture::testing::DecodedVideo::decode(&mp4)
}

/// The picture numbers of [`exported_video`], in order.
#[cfg(target_os = "linux")]
pub fn exported_picture_numbers(s: &TestServer, dir: &DataDir) -> Vec<u32> {
    exported_video(s, dir)
        .frames
        .iter()
        .map(|f| f.number().expect("a numbered picture"))
        .collect()
}

/// Runs the `deskrec-agent` command with `args`.
pub async fn agent_cli<I, S>(args: I) -> std::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    tokio::process::Command::new(env!("CARGO_BIN_EXE_deskrec-agent"))
        .args(args)
        .output()
        .await
        .expect("deskrec-agent runs")
}

/// Runs the `deskrec-agent` command with `args`, which must succeed, and
/// reads the JSON it prints.
pub async fn agent_cli_json<I, S>(args: I) -> Value
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = agent_cli(args).await;
    assert!(
        out.status.success(),
        "deskrec-agent failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "deskrec-agent printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

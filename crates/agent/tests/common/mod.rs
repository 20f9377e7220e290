//! Fixtures for the agent's tests: the real server from the server's own
//! test fixtures (started in-process on a real TLS socket), and helpers to
//! enroll and run agents against it.

// Test plumbing; each test binary uses part of it.
#![allow(missing_docs, dead_code)]

#[path = "../../../server/tests/util/mod.rs"]
pub mod server;

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
    enroll::enroll(dir, &dir.secret_store(), &token, "PC-agent", 0)
        .await
        .unwrap()
}

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deskrec_agent::clock::Clock;
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
    s.admin(
        "PUT",
        "/roles/agent",
        json!({"permissions": ["record_screen"]}),
    )
    .await;
    s.admin(
        "POST",
        "/users",
        json!({"name": "Ann", "windows_login": ANN, "roles": ["agent"]}),
    )
    .await
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
pub fn rfc3339(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us).unwrap().to_string()
}

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

/// A TCP relay in front of the server that can be cut: the network (or
/// the server) going away, for the agent.
pub struct Proxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: connection reset
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns2.lock().unwrap().push(task.abort_handle());
            }
        });
        Self {
            addr,
            up,
            conns,
            accept,
        }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// Lets connections through again.
    pub fn heal(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// An enrollment token for `s` that sends the agent through this proxy.
    pub async fn token(&self, s: &TestServer) -> String {
        let mut t = EnrollmentToken::decode(&enrollment_token(s).await).unwrap();
        t.url = format!("https://127.0.0.1:{}", self.addr.port());
        t.encode()
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
    let path = dir.join(format!("{start}.dseg"));
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
        });
    }
    w.append_chunk(&chunk).unwrap();
    w.finish().unwrap();
}

/// The manifests of the recordings the server stored.
pub fn stored_manifests(s: &TestServer) -> Vec<deskrec_vault::Manifest> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "dskr") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&s.dir.path().join("recordings"), &mut files);
    files
        .iter()
        .map(|f| deskrec_vault::scan_recording(f).unwrap().manifest.manifest)
        .collect()
}

//! Test fixtures, for this crate's tests and other crates' (feature
//! `test-utils`): a server on a real TLS socket (port 0, fresh data dir)
//! and clients that pin its certificate by SHA-256 fingerprint, the way an
//! agent does with the fingerprint from its enrollment token.

// Fixture fields and helpers are self-explanatory test plumbing.
#![allow(missing_docs)]

pub mod recording;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::{AppState, Config, serve};
use deskrec_protocol::{
    AgentMessage, EnrollRequest, EnrollResponse, EnrollmentToken, Hello, PROTOCOL_VERSION, Policy,
    ServerMessage,
};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

/// How long a test waits for any one message.
pub const WAIT: Duration = Duration::from_secs(10);

/// One RSA key for the whole test binary (generation is slow): used as the
/// server's recording key and as devices' signing keys.
pub fn test_key() -> &'static deskrec_vault::PrivateKey {
    static KEY: OnceLock<deskrec_vault::PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| deskrec_vault::PrivateKey::generate().unwrap())
}

/// A running server in this process.
pub struct TestServer {
    client: Client,
    pub state: AppState,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// What a client knows of a server: where it is, the certificate to pin,
/// the tokens in its data directory. [`TestServer`] derefs to it; a
/// server in another process (`Client::new`) is reached the same way.
pub struct Client {
    pub addr: std::net::SocketAddr,
    pub fingerprint: String,
    pub admin_token: String,
    /// The server's data directory.
    pub data: std::path::PathBuf,
}

impl std::ops::Deref for TestServer {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_in(tempfile::tempdir().unwrap()).await
    }

    pub async fn start_in(dir: tempfile::TempDir) -> Self {
        Self::start_with(dir, |_| {}).await
    }

    /// The test configuration for `dir` (port 0, loopback).
    ///
    /// No disk reserve: how full the machine's disk is must not decide
    /// a test (`uploads.rs` tests the reserve with its own).
    pub fn config(dir: &std::path::Path) -> Config {
        let mut config = Config {
            data_dir: dir.to_owned(),
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Config::default()
        };
        config.limits.disk_reserve_mib = 0;
        config
    }

    /// Starts with the test configuration changed by `configure`.
    pub async fn start_with(dir: tempfile::TempDir, configure: impl FnOnce(&mut Config)) -> Self {
        let key_path = dir.path().join("recording-key.pem");
        if !key_path.exists() {
            test_key().save(&key_path).unwrap();
        }
        let mut config = Self::config(dir.path());
        configure(&mut config);
        let listener = {
            let socket = match config.listen {
                std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
            }
            .unwrap();
            // A restart on the same address (agents know the server's URL)
            // must not wait out its old connections' TIME_WAIT: tokio sets
            // this on Unix, but not on Windows, where the tests run under
            // wine.
            socket.set_reuseaddr(true).unwrap();
            socket.bind(config.listen).unwrap();
            socket.listen(1024).unwrap()
        };
        let addr = listener.local_addr().unwrap();
        let state = AppState::open(&config, addr).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(serve(listener, state.clone(), async {
            let _ = rx.await;
        }));
        let client = Client::new(addr, state.tls().fingerprint.clone(), dir.path());
        Self {
            client,
            state,
            dir,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// The server's public-key pin, as tokens carry it.
    pub fn pin(&self) -> String {
        self.state.tls().pin.to_string()
    }

    /// What the server announces at `GET /api/v1/tls/pins`.
    pub fn pins(&self) -> deskrec_protocol::ServerPins {
        self.state.tls().pins()
    }

    /// Stops the server and waits for `serve` to return; keeps the data dir.
    pub async fn stop(mut self) -> tempfile::TempDir {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(15), self.task.take().unwrap())
            .await
            .expect("serve returns after shutdown")
            .unwrap();
        self.dir
    }
}

impl Client {
    /// The server at `addr` whose certificate has `fingerprint` and whose
    /// data directory is `data`.
    pub fn new(addr: std::net::SocketAddr, fingerprint: String, data: &std::path::Path) -> Self {
        let admin_token = std::fs::read_to_string(data.join("admin-token"))
            .unwrap()
            .trim()
            .to_owned();
        Self {
            addr,
            fingerprint,
            admin_token,
            data: data.to_owned(),
        }
    }

    /// The metrics bearer token.
    pub fn metrics_token(&self) -> String {
        std::fs::read_to_string(self.data.join("metrics-token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    pub fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    pub async fn tls(&self) -> TlsStream<TcpStream> {
        self.tls_from("127.0.0.1".parse().unwrap()).await.unwrap()
    }

    /// A TLS connection from the loopback address `local` (any of
    /// 127.0.0.0/8), or the error that ended it.
    pub async fn tls_from(&self, local: std::net::IpAddr) -> std::io::Result<TlsStream<TcpStream>> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(std::net::SocketAddr::new(local, 0))?;
        let tcp = socket.connect(self.addr).await?;
        let connector = TlsConnector::from(pinned_client(&self.fingerprint()));
        connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
    }

    /// Sends `req` on a fresh connection and reads the whole answer.
    pub async fn send(&self, req: hyper::Request<Full<Bytes>>) -> Reply {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(self.tls().await))
                .await
                .unwrap();
        tokio::spawn(conn);
        let resp = sender.send_request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    /// One HTTP request on a fresh connection: status and JSON body (Null if
    /// the body is empty).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> (u16, Value) {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", content_type);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let reply = self
            .send(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
            .await;
        let bytes = &reply.body;
        let json = if bytes.is_empty() {
            Value::Null
        } else if !reply.header("content-type").starts_with("application/json") {
            // Text answers (metrics, pages) come back as a JSON string.
            Value::String(reply.text())
        } else {
            serde_json::from_slice(bytes)
                .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {bytes:?}"))
        };
        (reply.status, json)
    }

    /// An admin call that must succeed.
    pub async fn admin(&self, method: &str, path: &str, body: Value) -> Value {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let (status, json) = self
            .request(
                method,
                &format!("/api/v1/admin{path}"),
                Some(&self.admin_token),
                "application/json",
                &body,
            )
            .await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {json}"
        );
        json
    }

    /// Creates or replaces the role `name` granting `permissions`.
    pub async fn put_role(&self, name: &str, permissions: &[&str]) -> Value {
        let body = serde_json::json!({ "permissions": permissions });
        self.admin("PUT", &format!("/roles/{name}"), body).await
    }

    /// Creates the active user `name` with `windows_login` and `roles`;
    /// returns the user as the API answers it.
    pub async fn add_user(&self, name: &str, windows_login: &str, roles: &[&str]) -> Value {
        let body =
            serde_json::json!({ "name": name, "windows_login": windows_login, "roles": roles });
        self.admin("POST", "/users", body).await
    }

    /// The Prometheus text of `/api/v1/metrics`.
    pub async fn metrics(&self) -> String {
        let r = self
            .send(
                hyper::Request::builder()
                    .uri("/api/v1/metrics")
                    .header("host", "localhost")
                    .header("authorization", format!("Bearer {}", self.metrics_token()))
                    .body(Default::default())
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status, 200);
        assert!(
            r.header("content-type")
                .starts_with("application/openmetrics-text")
        );
        r.text()
    }

    /// The value of the metrics sample `series` (name and labels exactly
    /// as exported), if present.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.trim().parse().unwrap())
    }

    /// The audit rows of `action` on `target`, newest first.
    pub async fn audited(&self, action: &str, target: &str) -> Vec<Value> {
        let path = format!(
            "/audit?action={action}&target={}",
            target.replace(':', "%3A")
        );
        self.admin("GET", &path, Value::Null)
            .await
            .as_array()
            .unwrap()
            .clone()
    }

    /// Erases a contact's recording and audio as an administrator does.
    pub async fn erase(&self, contact: &str) -> Value {
        self.admin(
            "POST",
            &format!("/contacts/{contact}/erase"),
            serde_json::json!({"reason": "the customer asked for erasure"}),
        )
        .await
    }

    pub async fn audit_count(&self) -> usize {
        self.admin("GET", "/audit?limit=1000", Value::Null)
            .await
            .as_array()
            .unwrap()
            .len()
    }

    /// Creates an enrollment token (checking it pins this server) and
    /// enrolls a device with it, signing with the test key.
    pub async fn enroll(&self) -> EnrollResponse {
        self.enroll_key(test_key()).await
    }

    /// Enrolls a device whose signing key is `key`.
    pub async fn enroll_key(&self, key: &deskrec_vault::PrivateKey) -> EnrollResponse {
        let t = self.admin("POST", "/enrollment-tokens", Value::Null).await;
        let token = EnrollmentToken::decode(t["enrollment_token"].as_str().unwrap()).unwrap();
        assert_eq!(token.cert_sha256, self.fingerprint());
        assert!(token.pin.is_some());
        assert_eq!(token.url, format!("https://127.0.0.1:{}", self.addr.port()));
        let (status, body) = self.enroll_with_key(&token.token, key).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_value(body).unwrap()
    }

    pub async fn enroll_with(&self, token: &str) -> (u16, Value) {
        self.enroll_with_key(token, test_key()).await
    }

    pub async fn enroll_with_key(
        &self,
        token: &str,
        key: &deskrec_vault::PrivateKey,
    ) -> (u16, Value) {
        self.enroll_host(token, key, "PC-17").await
    }

    /// Enrolls a PC named `host` with `token`: the status and the answer.
    pub async fn enroll_host(
        &self,
        token: &str,
        key: &deskrec_vault::PrivateKey,
        host: &str,
    ) -> (u16, Value) {
        let req = EnrollRequest {
            token: token.to_owned(),
            public_key_pem: key.public().to_pem(),
            host: host.into(),
        };
        self.request(
            "POST",
            "/api/v1/enroll",
            None,
            "application/json",
            &serde_json::to_string(&req).unwrap(),
        )
        .await
    }

    /// Opens the RTE WebSocket with this credential.
    pub async fn rte(&self, credential: Option<&str>) -> Result<Agent, tungstenite::Error> {
        let mut req = format!("wss://localhost:{}/api/v1/rte", self.addr.port())
            .into_client_request()
            .unwrap();
        if let Some(c) = credential {
            req.headers_mut()
                .insert("authorization", format!("Bearer {c}").parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::client_async(req, self.tls().await).await?;
        Ok(Agent { ws })
    }

    /// Enrolls a device and connects it.
    pub async fn agent(&self) -> (Agent, String) {
        let d = self.enroll().await;
        (self.rte(Some(&d.credential)).await.unwrap(), d.device_id)
    }
}

/// A whole HTTP answer.
// Not every test binary reads every part.
#[allow(dead_code)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

#[allow(dead_code)]
impl Reply {
    /// A header's value as text ("" if absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// An agent's end of the RTE channel.
pub struct Agent {
    pub ws: WebSocketStream<TlsStream<TcpStream>>,
}

impl Agent {
    pub async fn send(&mut self, msg: &AgentMessage) {
        self.ws.send(Message::text(msg.to_json())).await.unwrap();
    }

    /// The next server message (fails after [`WAIT`]).
    pub async fn recv(&mut self) -> ServerMessage {
        self.try_recv(WAIT).await.expect("a server message in time")
    }

    /// The next server message within `wait`, or None (timeout or close).
    pub async fn try_recv(&mut self, wait: Duration) -> Option<ServerMessage> {
        loop {
            match tokio::time::timeout(wait, self.ws.next()).await.ok()?? {
                Ok(Message::Text(t)) => return Some(ServerMessage::from_json(t.as_str()).unwrap()),
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                Ok(_) | Err(_) => return None,
            }
        }
    }

    pub async fn hello_raw(&mut self, device_id: &str, login: &str, version: u32) -> ServerMessage {
        self.send_hello(device_id, login, version, None).await;
        self.recv().await
    }

    async fn send_hello(
        &mut self,
        device_id: &str,
        login: &str,
        version: u32,
        cursor: Option<u64>,
    ) {
        self.send(&AgentMessage::Hello(Hello {
            version,
            device_id: device_id.into(),
            windows_login: login.into(),
            host: "PC-17".into(),
            agent_version: "test".into(),
            last_contact_cursor: cursor,
        }))
        .await;
    }

    /// Sends Hello and returns the policy.
    pub async fn hello(&mut self, device_id: &str, login: &str) -> Policy {
        self.hello_at(device_id, login, None).await
    }

    /// Sends Hello with a contact cursor and returns the policy.
    pub async fn hello_at(&mut self, device_id: &str, login: &str, cursor: Option<u64>) -> Policy {
        self.send_hello(device_id, login, PROTOCOL_VERSION, cursor)
            .await;
        match self.recv().await {
            ServerMessage::Policy(p) => p,
            other => panic!("expected a policy, got {other:?}"),
        }
    }
}

/// A rustls client that accepts exactly the certificate this pin matches,
/// as an agent does.
pub fn pinned_client(pin: &str) -> Arc<ClientConfig> {
    deskrec_client::pinned_tls(&[pin.parse().expect("a pin")])
}

/// Reads an answer's status line (None if the connection ends first).
pub async fn read_status<S: tokio::io::AsyncReadExt + Unpin>(stream: &mut S) -> Option<u16> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(2).any(|w| w == b"\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
    }
    std::str::from_utf8(&got)
        .ok()?
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()
}

/// The paths a router matches. axum has no API to list routes, so this
/// reads them from the router's `Debug` output (the `path_router` part,
/// before the fallback router), leaving out the catch-all paths `nest`
/// registers for a nested router's fallback.
pub fn router_paths(router: &impl std::fmt::Debug) -> std::collections::BTreeSet<String> {
    let debug = format!("{router:?}");
    let routes = debug
        .split_once("fallback_router")
        .map_or(debug.as_str(), |(routes, _)| routes);
    let mut paths = std::collections::BTreeSet::new();
    let mut chars = routes.chars();
    // Every quoted string that starts with '/' is a path.
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => s.extend(chars.next()),
                '"' => break,
                c => s.push(c),
            }
        }
        if s.starts_with('/') {
            paths.insert(s);
        }
    }
    const NEST_TAIL: &str = "{*__private__axum_nest_tail_param}";
    let nested: Vec<String> = paths
        .iter()
        .filter_map(|p| p.strip_suffix(NEST_TAIL))
        .map(str::to_owned)
        .collect();
    for prefix in nested {
        paths.remove(&format!("{prefix}{NEST_TAIL}"));
        paths.remove(&prefix);
        paths.remove(prefix.trim_end_matches('/'));
    }
    assert!(
        paths.contains("/api/v1/health") && paths.contains("/api/v1/admin/users"),
        "could not read the routes from axum's Debug output (did axum change it?): \
         {paths:?}\n{debug}"
    );
    assert!(
        !paths.iter().any(|p| p.contains("__private__axum")),
        "an unexpected axum-internal route: {paths:?}"
    );
    paths
}

/// `path` with every `{param}` replaced by `value` (not encoded).
pub fn concrete(path: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').expect("a closed placeholder") + open;
        out.push_str(&rest[..open]);
        out.push_str(value);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// A WAV file (16-bit PCM, mono) of a `hz` tone lasting `seconds` at
/// `rate` samples a second, written by hand so tests need no tool for it.
pub fn wav_tone(hz: f64, seconds: f64, rate: u32) -> Vec<u8> {
    let samples = (seconds * f64::from(rate)) as u32;
    let data_len = samples * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let t = f64::from(i) / f64::from(rate);
        let v = (t * hz * std::f64::consts::TAU).sin() * 12_000.0;
        out.extend_from_slice(&(v as i16).to_le_bytes());
    }
    out
}

//! Hostile clients against the real server: what one client may hold,
//! what a device may claim, and what the server refuses (issue 13).
//!
//! Unix only: these tests bind extra loopback addresses, kill the server
//! binary with signals and time deadlines, which wine (where the Windows
//! build's tests run) does not reproduce; the server's Windows build is
//! not where these defences differ.
#![cfg(unix)]

use crate::fixtures;
use deskrec_server::testing as util;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use deskrec_protocol::{AgentMessage, EnrollResponse, Hello, PROTOCOL_VERSION, ServerMessage};
use fixtures::spawn_server;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use util::TestServer;

/// A server whose request deadline is `secs` and whose addresses may hold
/// `per_address` connections each.
async fn limited(secs: u64, per_address: usize) -> TestServer {
    TestServer::start_with(tempfile::tempdir().unwrap(), |c| {
        c.limits.request_timeout_secs = secs;
        c.limits.connections_per_address = per_address;
    })
    .await
}

fn loopback(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

/// Reads until the server closes the connection (or `wait` passes):
/// whatever it said, and whether it closed.
async fn until_closed<S: AsyncReadExt + Unpin>(stream: &mut S, wait: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_request_body_that_never_arrives_is_cut_off_at_the_deadline() {
    let s = limited(2, 100).await;
    for path in ["/api/v1/enroll", "/login", "/api/v1/admin/users"] {
        let mut tls = s.tls().await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: localhost\r\norigin: https://localhost\r\n\
             content-type: application/json\r\ncontent-length: 1000\r\n\r\n{{"
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let (answer, closed) = until_closed(&mut tls, Duration::from_secs(10)).await;
        assert!(closed, "{path}: the connection is still held after 10 s");
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{path}: {:?}",
            started.elapsed()
        );
        if let Some(status) = answer.split(' ').nth(1) {
            assert!(status.starts_with('4'), "{path}: {answer}");
        }
    }
}

#[tokio::test]
async fn headers_that_never_end_and_idle_connections_are_closed() {
    let s = limited(2, 100).await;
    // Nothing at all after the handshake.
    let mut silent = s.tls().await;
    // Half a request.
    let mut half = s.tls().await;
    half.write_all(b"GET /api/v1/health HTTP/1.1\r\nhost: loc")
        .await
        .unwrap();
    // One whole request, then nothing (keep-alive).
    let mut idle = s.tls().await;
    idle.write_all(b"GET /api/v1/health HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    for (name, stream) in [
        ("silent", &mut silent),
        ("half", &mut half),
        ("idle", &mut idle),
    ] {
        let (said, closed) = until_closed(stream, Duration::from_secs(10)).await;
        assert!(closed, "{name}: still open after 10 s ({said})");
    }
}

#[tokio::test]
async fn one_address_holds_at_most_its_share_of_connections() {
    let s = limited(30, 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(s.tls_from(loopback(2)).await.expect("within the share"));
    }
    let refused = s.tls_from(loopback(2)).await;
    assert!(refused.is_err(), "a fourth connection from one address");
    // Another address is not affected, and a supervisor signs in.
    s.tls_from(loopback(3)).await.expect("another address");
    let (status, body) = s.request("GET", "/api/v1/health", None, "", "").await;
    assert_eq!((status, &body["status"]), (200, &json!("ok")));
    assert_eq!(
        s.metric("deskrec_connections_refused_total").await,
        Some(1.0)
    );
    // A slot comes back when its connection closes.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.tls_from(loopback(2)).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the closed connection's slot came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn device_keys_under_2048_or_over_4096_bits_are_refused() {
    let s = TestServer::start().await;
    for (bits, pem) in [
        (1024, include_str!("data/rsa-1024.pub.pem")),
        (8192, include_str!("data/rsa-8192.pub.pem")),
    ] {
        let t = s.admin("POST", "/enrollment-tokens", Value::Null).await;
        let req = json!({"token": t["token"], "public_key_pem": pem, "host": "h"}).to_string();
        let (status, body) = s
            .request("POST", "/api/v1/enroll", None, "application/json", &req)
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("invalid_key")),
            "{bits} bits: {body}"
        );
    }
}

#[tokio::test]
async fn a_cursor_past_the_largest_sequence_number_is_refused_not_a_replay() {
    let s = TestServer::start().await;
    let device = s.enroll().await;
    let mut agent = s.rte(Some(&device.credential)).await.unwrap();
    agent.hello(&device.device_id, "CORP\\ann").await;
    s.admin(
        "POST",
        "/contacts",
        json!({"contacts": [{"contact_id": "c1", "windows_login": "CORP\\ann",
            "start": "2030-11-25T09:00:00Z", "end": "2030-11-25T09:02:00Z"}]}),
    )
    .await;
    assert!(matches!(agent.recv().await, ServerMessage::Contact(c) if c.seq == 1));
    for cursor in [1u64 << 63, u64::MAX] {
        let mut agent = s.rte(Some(&device.credential)).await.unwrap();
        agent
            .send(&AgentMessage::Hello(Hello {
                version: PROTOCOL_VERSION,
                device_id: device.device_id.clone(),
                windows_login: "CORP\\ann".into(),
                host: "PC-17".into(),
                agent_version: "test".into(),
                last_contact_cursor: Some(cursor),
            }))
            .await;
        match agent.try_recv(Duration::from_secs(3)).await {
            Some(ServerMessage::Error(e)) => assert_eq!(e.code, "bad_cursor", "{cursor}"),
            other => panic!("cursor {cursor}: expected bad_cursor, got {other:?}"),
        }
        // The session is over; nothing was replayed.
        assert!(agent.try_recv(Duration::from_millis(500)).await.is_none());
    }
}

/// Reads the agent's side until the server closes: the error codes it
/// sent before, and the close code (None if the socket just ended).
async fn closed_with(agent: &mut util::Agent) -> (Vec<String>, Option<u16>) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut errors = Vec::new();
    loop {
        match tokio::time::timeout(util::WAIT, agent.ws.next()).await {
            Err(_) => panic!("the server did not close in time; errors so far {errors:?}"),
            Ok(None) | Ok(Some(Err(_))) => return (errors, None),
            Ok(Some(Ok(Message::Close(frame)))) => {
                return (errors, frame.map(|f| u16::from(f.code)));
            }
            Ok(Some(Ok(Message::Text(t)))) => {
                if let ServerMessage::Error(e) = ServerMessage::from_json(t.as_str()).unwrap() {
                    errors.push(e.code);
                }
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[tokio::test]
async fn malformed_oversize_binary_and_flooding_rte_messages_get_their_close_codes() {
    let s = TestServer::start().await;
    abusive_rte_sessions_get_their_close_codes(&s).await;
    let (status, _) = s.request("GET", "/api/v1/health", None, "", "").await;
    assert_eq!(status, 200);
}

/// Malformed, binary, oversize and flooding messages, and a session that
/// does not start with hello: each closed with its code and error.
async fn abusive_rte_sessions_get_their_close_codes(s: &util::Client) {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let device = s.enroll().await;
    let heartbeat = AgentMessage::Heartbeat(deskrec_protocol::Heartbeat {
        status: deskrec_protocol::AgentStatus {
            recording: deskrec_protocol::RecordingState::Recording,
            segments_on_disk: 1,
            uploads_queued: 0,
            disk_free_bytes: 1 << 30,
            errors: Vec::new(),
        },
    })
    .to_json();
    let cases: [(&str, Vec<Message>, &str, u16); 5] = [
        (
            "malformed",
            vec![Message::text("{\"type\": \"no such")],
            "bad_message",
            1007,
        ),
        (
            "binary",
            vec![Message::binary(vec![1u8, 2, 3])],
            "bad_message",
            1003,
        ),
        (
            "oversize",
            vec![Message::text("x".repeat(100 << 10))],
            "too_big",
            1009,
        ),
        (
            "flood",
            (0..6_000)
                .map(|_| Message::text(heartbeat.clone()))
                .collect(),
            "rate_limited",
            1008,
        ),
        (
            "not hello first",
            vec![Message::text(heartbeat.clone())],
            "hello_required",
            1008,
        ),
    ];
    for (name, messages, error, code) in cases {
        let mut agent = s.rte(Some(&device.credential)).await.unwrap();
        if name != "not hello first" {
            // A login of its own: rounds on other devices are not
            // concurrent claims of one login.
            agent.hello(&device.device_id, &device.device_id).await;
        }
        for m in messages {
            if agent.ws.send(m).await.is_err() {
                break; // closed mid-flood
            }
        }
        let (errors, close) = closed_with(&mut agent).await;
        assert_eq!(close, Some(code), "{name}: errors {errors:?}");
        if name != "oversize" {
            assert!(errors.iter().any(|e| e == error), "{name}: {errors:?}");
        }
    }
}

#[tokio::test]
async fn a_silent_agent_is_closed_and_a_newer_session_replaces_the_older() {
    let s =
        TestServer::start_with(tempfile::tempdir().unwrap(), |c| c.limits.rte_idle_secs = 3).await;
    let device = s.enroll().await;
    // Silent: it reads nothing, so it answers no ping.
    let mut silent = s.rte(Some(&device.credential)).await.unwrap();
    silent.hello(&device.device_id, "CORP\\ann").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(s.state.hub().connected(), 0, "the server ended the session");
    // The client's reads hit the queued pings first, whose pongs fail on the
    // closed socket, so the close frame itself may not be read.
    let (_, close) = closed_with(&mut silent).await;
    assert!(matches!(close, Some(1008) | None), "{close:?}");
    // An agent that reads answers the pings and stays.
    let mut older = s.rte(Some(&device.credential)).await.unwrap();
    older.hello(&device.device_id, "CORP\\ann").await;
    // (Its reads answer the pings; nothing else comes in 5 s.)
    let quiet = tokio::time::timeout(Duration::from_secs(5), older.recv()).await;
    assert!(quiet.is_err(), "{quiet:?}");
    older
        .send(&AgentMessage::ClockProbe(deskrec_protocol::ClockProbe {
            t0: 1,
        }))
        .await;
    assert!(
        matches!(older.recv().await, ServerMessage::ClockReply(_)),
        "an agent that answers pings is still served after 5 s"
    );
    // One session per device: a newer one closes the older.
    let mut newer = s.rte(Some(&device.credential)).await.unwrap();
    newer.hello(&device.device_id, "CORP\\ann").await;
    let (_, close) = closed_with(&mut older).await;
    assert_eq!(close, Some(1008), "the older session");
    assert_eq!(s.state.hub().connected(), 1);
}

#[tokio::test]
async fn a_forged_agent_cannot_get_or_replace_another_logins_recording() {
    let s = TestServer::start().await;
    let (real, forger) = (s.enroll().await, s.enroll().await);
    let mut ann_pc = s.rte(Some(&real.credential)).await.unwrap();
    ann_pc.hello(&real.device_id, "CORP\\ann").await;
    let mut bob_pc = s.rte(Some(&forger.credential)).await.unwrap();
    bob_pc.hello(&forger.device_id, "CORP\\bob").await;
    // Ann's contact, while both PCs are connected.
    let start = jiff::Timestamp::now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let end = jiff::Timestamp::now();
    s.admin(
        "POST",
        "/contacts",
        json!({"contacts": [{"contact_id": "c-1", "windows_login": "CORP\\ann",
            "start": start.to_string(), "end": end.to_string()}]}),
    )
    .await;
    assert!(matches!(ann_pc.recv().await, ServerMessage::Contact(c) if c.contact_id == "c-1"));
    // Bob's PC now claims to be Ann's: it is told the policy, but not
    // given her contact, and its claim is flagged.
    bob_pc.hello(&forger.device_id, "CORP\\ann").await;
    let quiet = tokio::time::timeout(Duration::from_millis(700), bob_pc.recv()).await;
    assert!(quiet.is_err(), "the forger got {quiet:?}");
    let audit = s.admin("GET", "/audit?limit=50", Value::Null).await;
    let actions: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["action"].as_str().unwrap(), a["target"].as_str().unwrap()))
        .collect();
    assert!(
        actions.contains(&("login.concurrent", "CORP\\ann")),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("device.login_new", "CORP\\ann")),
        "{actions:?}"
    );
    assert_eq!(s.metric("deskrec_logins_concurrent_total").await, Some(1.0));
    // It cannot upload a recording of the contact either, so the real one
    // is not refused as already stored, and nothing is marked failed.
    let req = hyper::Request::builder()
        .method("POST")
        .uri("/api/v1/uploads")
        .header("host", "localhost")
        .header("authorization", format!("Bearer {}", forger.credential))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "1000")
        .header("upload-metadata", "contact_id Yy0x")
        .body(Default::default())
        .unwrap();
    let r = s.send(req).await;
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (403, Some("contact_not_delivered")),
        "{}",
        r.text()
    );
    let c = s.admin("GET", "/contacts/c-1", Value::Null).await;
    assert_eq!(c["status"], "pending");
    assert_eq!(c["deliveries"].as_array().unwrap().len(), 1, "{c}");
}

/// A PATCH of `body` at `offset` on its own connection: the status, or
/// None when the connection ended before an answer (the server died).
async fn patch_raw(
    c: &util::Client,
    credential: &str,
    path: &str,
    offset: usize,
    body: &[u8],
) -> Option<u16> {
    let mut tls = c.tls_from(loopback(1)).await.ok()?;
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {credential}\r\n\
         tus-resumable: 1.0.0\r\ncontent-type: application/offset+octet-stream\r\n\
         upload-offset: {offset}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.ok()?;
    tls.write_all(body).await.ok()?;
    util::read_status(&mut tls).await
}

/// A tus request without a body: status and headers.
async fn tus(
    c: &util::Client,
    method: &str,
    path: &str,
    credential: &str,
    extra: &[(&str, &str)],
) -> util::Reply {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("authorization", format!("Bearer {credential}"))
        .header("tus-resumable", "1.0.0");
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    c.send(req.body(Default::default()).unwrap()).await
}

/// A device with Ann logged on, Ann's contact `contact` imported (so it
/// is relayed to the device), and the device's recording of it.
async fn ann_recording(c: &util::Client, contact: &str) -> (EnrollResponse, util::Agent, Vec<u8>) {
    use util::recording::{SECOND, T0, Take};
    let device = c.enroll().await;
    let mut agent = c.rte(Some(&device.credential)).await.unwrap();
    agent.hello(&device.device_id, "CORP\\ann").await;
    let at = |us| deskrec_vault::utc::rfc3339(us);
    c.admin(
        "POST",
        "/contacts",
        json!({"contacts": [{"contact_id": contact, "windows_login": "CORP\\ann",
            "start": at(T0 + SECOND), "end": at(T0 + 7 * SECOND)}]}),
    )
    .await;
    let bytes = Take {
        device_id: &device.device_id,
        device_key: util::test_key(),
        contact_id: contact,
        agent: "CORP\\ann",
        requested: deskrec_vault::TimeRange::new(T0 + SECOND, T0 + 7 * SECOND),
        clock_offset: 0,
    }
    .record();
    (device, agent, bytes)
}

/// Creates an upload of `bytes` for `contact`: its path.
async fn create_upload(c: &util::Client, credential: &str, contact: &str, bytes: &[u8]) -> String {
    use base64::Engine;
    let length = bytes.len().to_string();
    let metadata = format!(
        "contact_id {}",
        base64::engine::general_purpose::STANDARD.encode(contact)
    );
    let created = tus(
        c,
        "POST",
        "/api/v1/uploads",
        credential,
        &[("upload-length", &length), ("upload-metadata", &metadata)],
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text());
    created.header("location").to_owned()
}

/// The stored recording of `contact`, read from the server's data
/// directory: exactly one, or the test fails.
fn stored_bytes(data: &std::path::Path, contact: &str) -> Vec<u8> {
    let db = rusqlite::Connection::open(data.join("deskrec.db")).unwrap();
    let keys: Vec<String> = db
        .prepare("SELECT storage_key FROM recordings WHERE contact_id = ?1")
        .unwrap()
        .query_map([contact], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(keys.len(), 1, "recordings of {contact}: {keys:?}");
    std::fs::read(data.join("recordings").join(&keys[0])).unwrap()
}

#[tokio::test]
async fn a_recording_the_agent_was_told_is_stored_survives_a_kill_at_every_step() {
    for point in deskrec_server::crashpoint::POINTS {
        let dir = tempfile::tempdir().unwrap();
        util::test_key()
            .save(&dir.path().join("recording-key.pem"))
            .unwrap();
        let mut first = spawn_server(dir.path(), Some(point));
        let c = &first.client;
        let (device, mut agent, bytes) = ann_recording(c, "c-1").await;
        let path = create_upload(c, &device.credential, "c-1", &bytes).await;
        let answer = patch_raw(c, &device.credential, &path, 0, &bytes).await;
        // Told, by the PATCH's answer or over RTE: the agent would delete
        // its copy now.
        let mut told = answer == Some(204);
        while let Some(m) = agent.try_recv(Duration::from_millis(300)).await {
            told |= matches!(m, ServerMessage::RecordingStored(_));
        }
        // It killed itself at the point: the test reached every step.
        let deadline = Instant::now() + Duration::from_secs(10);
        while first.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "{point}: never reached");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(first);
        let second = spawn_server(dir.path(), None);
        let c = &second.client;
        let contact = c.admin("GET", "/contacts/c-1", Value::Null).await;
        if told {
            assert_eq!(
                contact["status"], "uploaded",
                "{point}: told, then lost: {contact}"
            );
        }
        // The agent that was not told resumes, as it does after any drop.
        let mut path = path;
        for _ in 0..3 {
            let head = tus(c, "HEAD", &path, &device.credential, &[]).await;
            let status = match head.status {
                200 => {
                    let offset: usize = head.header("upload-offset").parse().unwrap();
                    patch_raw(c, &device.credential, &path, offset, &bytes[offset..]).await
                }
                404 | 410 => {
                    path = create_upload(c, &device.credential, "c-1", &bytes).await;
                    patch_raw(c, &device.credential, &path, 0, &bytes).await
                }
                other => panic!("{point}: HEAD answered {other}"),
            };
            if status == Some(204) {
                break;
            }
        }
        let contact = c.admin("GET", "/contacts/c-1", Value::Null).await;
        assert_eq!(contact["status"], "uploaded", "{point}: {contact}");
        assert!(
            stored_bytes(dir.path(), "c-1") == bytes,
            "{point}: the stored file differs from the upload"
        );
    }
}

/// Raises this process's open-file limit to its hard limit; fails when
/// that is under `need`.
#[cfg(target_os = "linux")]
fn open_files(need: u64) {
    // SAFETY: getrlimit and setrlimit only read and write `lim`.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        assert!(
            lim.rlim_cur >= need,
            "this test needs {need} open files; the hard limit is {}",
            lim.rlim_cur
        );
    }
}

/// A field of `/proc/<pid>/status`, in MiB.
#[cfg(target_os = "linux")]
fn proc_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB"))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .parse()
        .unwrap();
    kb / 1024.0
}

/// A sign-in form post on a fresh connection: its status.
#[cfg(target_os = "linux")]
async fn sign_in_status(c: &util::Client, login: &str, password: &str) -> u16 {
    let body = format!("login={}&password={password}", login.replace('\\', "%5C"));
    let req = hyper::Request::builder()
        .method("POST")
        .uri("/login")
        .header("host", "localhost")
        .header("origin", "https://localhost")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
        .unwrap();
    c.send(req).await.status
}

/// The server still answers, and the stored recording is still whole.
#[cfg(target_os = "linux")]
async fn still_serving(c: &util::Client, bytes: &[u8], group: &str) {
    let (status, _) = c.request("GET", "/api/v1/health", None, "", "").await;
    assert_eq!(status, 200, "after {group}");
    let contact = c.admin("GET", "/contacts/c-0", Value::Null).await;
    assert_eq!(contact["status"], "uploaded", "after {group}");
    assert!(stored_bytes(&c.data, "c-0") == bytes, "after {group}");
}

/// Hostile clients in numbers against the server binary on loopback; each
/// group is followed by a health check and a check that the recording
/// stored before is still there. Linux: it reads `/proc` and sets rlimits.
/// Run by `cargo xtask hostile` (part of `cargo xtask test`) against the
/// release build.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by `cargo xtask hostile`, against the release server"]
async fn hostile_clients_at_scale_leave_the_server_serving() {
    const SLOW: usize = 5_000;
    const SIGN_INS: usize = 10_000;
    open_files(SLOW as u64 + 1_000);
    let dir = tempfile::tempdir().unwrap();
    util::test_key()
        .save(&dir.path().join("recording-key.pem"))
        .unwrap();
    let server = spawn_server(dir.path(), None);
    let pid = server.child.id();
    let c = std::sync::Arc::new(util::Client::new(
        server.client.addr,
        server.client.fingerprint.clone(),
        dir.path(),
    ));
    c.put_role("supervisor", &["view_recordings"]).await;
    let vic = c.add_user("Vic", "CORP\\vic", &["supervisor"]).await;
    let password = "a long enough password";
    c.admin(
        "PUT",
        &format!("/users/{}/password", vic["id"]),
        json!({ "password": password }),
    )
    .await;
    let (device, _agent, bytes) = ann_recording(&c, "c-0").await;
    let path = create_upload(&c, &device.credential, "c-0", &bytes).await;
    assert_eq!(
        patch_raw(&c, &device.credential, &path, 0, &bytes).await,
        Some(204)
    );

    // 1. Sign-ins with 1 MB logins, 32 at a time.
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..32 {
        let c = c.clone();
        tasks.spawn(async move {
            let login_bytes = 1usize << 20;
            let mut statuses = std::collections::BTreeMap::<Option<u16>, usize>::new();
            for _ in (worker..SIGN_INS).step_by(32) {
                let Ok(mut tls) = c.tls_from(loopback(9)).await else {
                    *statuses.entry(None).or_default() += 1;
                    continue;
                };
                let head = format!(
                    "POST /login HTTP/1.1\r\nhost: localhost\r\norigin: https://localhost\r\n\
                     content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\nlogin=",
                    "login=".len() + login_bytes
                );
                // The megabyte is declared, not sent: the server refuses
                // it from the header (bytes it never reads would turn its
                // close into a reset that hides the answer).
                let _ = tls.write_all(head.as_bytes()).await;
                let status = util::read_status(&mut tls).await;
                *statuses.entry(status).or_default() += 1;
            }
            statuses
        });
    }
    let mut statuses = std::collections::BTreeMap::<Option<u16>, usize>::new();
    while let Some(done) = tasks.join_next().await {
        for (status, n) in done.unwrap() {
            *statuses.entry(status).or_default() += n;
        }
    }
    let rss = proc_mib(pid, "VmHWM:");
    eprintln!(
        "{SIGN_INS} sign-ins with 1 MB logins in {:?}: {statuses:?}; server peak RSS {rss:.0} MiB",
        started.elapsed()
    );
    assert_eq!(statuses.get(&Some(413)), Some(&SIGN_INS), "{statuses:?}");
    assert!(rss < 200.0, "peak RSS {rss:.0} MiB");
    still_serving(&c, &bytes, "the sign-in flood").await;

    // 2. Slow connections: headers, then a body that never comes, from
    // five addresses (each within its share).
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..50 {
        let c = c.clone();
        tasks.spawn(async move {
            let mut held = Vec::new();
            for i in (worker..SLOW).step_by(50) {
                let ip = loopback(2 + (i / 1_000) as u8);
                let mut tls = c
                    .tls_from(ip)
                    .await
                    .expect("a slow connection within its share");
                tls.write_all(
                    b"POST /api/v1/enroll HTTP/1.1\r\nhost: localhost\r\n\
                      content-type: application/json\r\ncontent-length: 1000\r\n\r\n{",
                )
                .await
                .unwrap();
                held.push(tls);
            }
            held
        });
    }
    let mut slow = Vec::new();
    while let Some(done) = tasks.join_next().await {
        slow.extend(done.unwrap());
    }
    eprintln!(
        "{} slow connections open in {:?}",
        slow.len(),
        started.elapsed()
    );
    // While they are held: a supervisor signs in and an agent uploads.
    let started = Instant::now();
    assert_eq!(sign_in_status(&c, "CORP\\vic", password).await, 303);
    let signed_in = started.elapsed();
    let (device, _agent, more) = ann_recording(&c, "c-1").await;
    let path = create_upload(&c, &device.credential, "c-1", &more).await;
    assert_eq!(
        patch_raw(&c, &device.credential, &path, 0, &more).await,
        Some(204)
    );
    eprintln!(
        "with them held: signed in in {signed_in:?}, enrolled and uploaded in {:?}; server RSS {:.0} MiB",
        started.elapsed(),
        proc_mib(pid, "VmRSS:")
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(slow);
    still_serving(&c, &bytes, "the slow connections").await;

    // 3. Malformed tus requests: each a 4xx, none a 5xx or a hang.
    let cred = device.credential.as_str();
    let upload = create_upload(&c, cred, "c-1", &more).await;
    let id = upload.rsplit('/').next().unwrap().to_owned();
    let octets = ("content-type", "application/offset+octet-stream");
    // Method, path, headers.
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/api/v1/uploads".into(),
            vec![
                ("upload-length", "-1"),
                ("upload-metadata", "contact_id Yy0x"),
            ],
        ),
        (
            "POST",
            "/api/v1/uploads".into(),
            vec![
                ("upload-length", "99999999999999999999999"),
                ("upload-metadata", "contact_id Yy0x"),
            ],
        ),
        (
            "POST",
            "/api/v1/uploads".into(),
            vec![
                ("upload-length", "18446744073709551615"),
                ("upload-metadata", "contact_id Yy0x"),
            ],
        ),
        (
            "POST",
            "/api/v1/uploads".into(),
            vec![
                ("upload-length", "10"),
                ("upload-metadata", "contact_id !!!"),
            ],
        ),
        (
            "POST",
            "/api/v1/uploads".into(),
            vec![
                ("upload-length", "10"),
                ("upload-metadata", "contact_id Li4vLi4vZXRj"),
            ],
        ),
        (
            "PATCH",
            upload.clone(),
            vec![octets, ("upload-offset", "-5")],
        ),
        (
            "PATCH",
            upload.clone(),
            vec![octets, ("upload-offset", "99999999")],
        ),
        (
            "PATCH",
            upload.clone(),
            vec![octets, ("upload-offset", "18446744073709551615")],
        ),
        (
            "PATCH",
            upload.clone(),
            vec![("content-type", "text/plain"), ("upload-offset", "0")],
        ),
        ("PATCH", upload.clone(), vec![("upload-offset", "0")]),
        (
            "PATCH",
            upload.clone(),
            vec![
                octets,
                ("upload-offset", "0"),
                ("upload-checksum", "md5 AAAA"),
            ],
        ),
        ("HEAD", format!("/api/v1/uploads/..%2F{id}"), vec![]),
        (
            "HEAD",
            "/api/v1/uploads/%2E%2E%2F%2E%2E%2Fdeskrec.db".to_owned(),
            vec![],
        ),
        ("HEAD", "/api/v1/uploads/../../deskrec.db".into(), vec![]),
        (
            "DELETE",
            format!("/api/v1/uploads/{id}%2F..%2F{id}"),
            vec![],
        ),
        (
            "PATCH",
            format!("/api/v1/uploads/{id}%00"),
            vec![octets, ("upload-offset", "0")],
        ),
    ];
    for (method, path, headers) in &cases {
        let r = tus(&c, method, path, cred, headers).await;
        assert!(
            (400..500).contains(&r.status),
            "{method} {path} {headers:?}: {} {}",
            r.status,
            r.text()
        );
    }
    // The upload those PATCHes aimed at is untouched and still completes.
    let head = tus(&c, "HEAD", &upload, cred, &[]).await;
    assert_eq!(head.header("upload-offset"), "0");
    assert_eq!(patch_raw(&c, cred, &upload, 0, &more).await, Some(204));
    still_serving(&c, &bytes, "the malformed tus requests").await;

    // 4. Abusive RTE sessions, 5 rounds of every kind.
    let started = Instant::now();
    for _ in 0..5 {
        abusive_rte_sessions_get_their_close_codes(&c).await;
    }
    eprintln!("abusive RTE sessions closed in {:?}", started.elapsed());
    still_serving(&c, &bytes, "the abusive RTE sessions").await;
}

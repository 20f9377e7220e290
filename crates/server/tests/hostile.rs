//! Hostile clients against the real server: what one client may hold,
//! what a device may claim, and what the server refuses (issue 13).

#[allow(dead_code)] // each test binary uses part of the fixtures
mod util;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use deskrec_protocol::{AgentMessage, Hello, PROTOCOL_VERSION, ServerMessage};
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
            "start": "2026-11-25T09:00:00Z", "end": "2026-11-25T09:02:00Z"}]}),
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
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let s = TestServer::start().await;
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
            (0..1_200)
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
            agent.hello(&device.device_id, "CORP\\ann").await;
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
    let (status, _) = s.request("GET", "/api/v1/health", None, "", "").await;
    assert_eq!(status, 200);
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

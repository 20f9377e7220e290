//! Integration tests over real TLS sockets.

use deskrec_server::testing as util;

use std::time::Duration;

use deskrec_protocol::{AgentMessage, ClockProbe, PolicyReason, ServerMessage};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;
use util::{TestServer, WAIT};

/// Roles `agent` (record_screen) and `viewer` (view_recordings), and users
/// for every row of the eligibility matrix.
async fn seed(s: &TestServer) {
    s.put_role("agent", &["record_screen"]).await;
    s.put_role("viewer", &["view_recordings"]).await;
    for (name, login, active, roles) in [
        ("Ann", "CORP\\ann", true, vec!["agent"]),
        ("Ina", "CORP\\ina", false, vec!["agent"]),
        ("Nora", "CORP\\nora", true, vec![]),
        ("Vic", "CORP\\vic", true, vec!["viewer"]),
    ] {
        s.admin(
            "POST",
            "/users",
            json!({"name": name, "windows_login": login, "active": active, "roles": roles}),
        )
        .await;
    }
}

#[tokio::test]
async fn eligibility_matrix() {
    let s = TestServer::start().await;
    seed(&s).await;
    let (mut agent, dev) = s.agent().await;
    let key_id = s.state.server_key().key_id.clone();
    for (login, record, reason) in [
        ("CORP\\ann", true, PolicyReason::Eligible),
        ("corp\\ANN", true, PolicyReason::Eligible), // logins are case-insensitive
        // An unknown login looks like a user without the role: a device
        // cannot probe the directory.
        ("CORP\\nobody", false, PolicyReason::NoRecordPermission),
        ("CORP\\ina", false, PolicyReason::UserInactive),
        ("CORP\\nora", false, PolicyReason::NoRecordPermission), // no role
        ("CORP\\vic", false, PolicyReason::NoRecordPermission),  // role without record_screen
    ] {
        let p = agent.hello(&dev, login).await;
        assert_eq!((p.record, p.reason), (record, reason), "{login}");
        assert_eq!(p.server_key_id, key_id);
        assert_eq!(p.fps, 5.0);
        assert_eq!((p.segment_seconds, p.gop_seconds), (600, 10));
        assert!(
            p.server_public_key_pem
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );
    }
    s.admin("PATCH", "/settings", json!({"rte_enabled": false}))
        .await;
    let mut fresh = s.rte(Some(&s.enroll().await.credential)).await.unwrap();
    // `fresh` is a second device; its own Hello must name its own id.
    let devices = s.admin("GET", "/devices", Value::Null).await;
    let fresh_id = devices[0]["id"].as_str().unwrap().to_owned();
    let p = fresh.hello(&fresh_id, "CORP\\ann").await;
    assert_eq!((p.record, p.reason), (false, PolicyReason::RteDisabled));
}

#[tokio::test]
async fn auto_create_users_creates_an_unrecorded_user() {
    let s = TestServer::start().await;
    s.admin("PATCH", "/settings", json!({"auto_create_users": true}))
        .await;
    let (mut agent, dev) = s.agent().await;
    let p = agent.hello(&dev, "CORP\\newbie").await;
    assert_eq!(
        (p.record, p.reason),
        (false, PolicyReason::NoRecordPermission)
    );
    let users = s.admin("GET", "/users", Value::Null).await;
    assert_eq!(users[0]["windows_login"], "CORP\\newbie");
    let audit = s.admin("GET", "/audit", Value::Null).await;
    assert_eq!(audit[0]["action"], "user.create");
    assert_eq!(audit[0]["actor"], format!("device:{dev}"));
}

#[tokio::test]
async fn policy_push_reaches_a_connected_agent_when_a_role_loses_record_screen() {
    let s = TestServer::start().await;
    seed(&s).await;
    let (mut agent, dev) = s.agent().await;
    assert!(agent.hello(&dev, "CORP\\ann").await.record);

    // An unrelated change re-evaluates but pushes nothing.
    s.put_role("viewer", &["view_recordings", "admin"]).await;
    assert!(agent.try_recv(Duration::from_millis(300)).await.is_none());

    s.put_role("agent", &["view_recordings"]).await;
    match agent.recv().await {
        ServerMessage::Policy(p) => {
            assert_eq!(
                (p.record, p.reason),
                (false, PolicyReason::NoRecordPermission)
            )
        }
        other => panic!("expected a policy, got {other:?}"),
    }
    // And back.
    s.put_role("agent", &["record_screen"]).await;
    let ServerMessage::Policy(p) = agent.recv().await else {
        panic!()
    };
    assert!(p.record);
}

#[tokio::test]
async fn clock_probe_gets_a_reply() {
    let s = TestServer::start().await;
    let (mut agent, dev) = s.agent().await;
    agent.hello(&dev, "").await;
    agent
        .send(&AgentMessage::ClockProbe(ClockProbe { t0: 123 }))
        .await;
    let ServerMessage::ClockReply(r) = agent.recv().await else {
        panic!("no clock reply")
    };
    assert_eq!(r.t0, 123);
    assert!(r.t1 > 1_600_000_000_000_000 && r.t1 <= r.t2);
}

#[tokio::test]
async fn hello_is_checked() {
    let s = TestServer::start().await;
    let (mut agent, dev) = s.agent().await;
    let ServerMessage::Error(e) = agent.hello_raw(&dev, "x", 99).await else {
        panic!()
    };
    assert_eq!(e.code, "unsupported_version");
    let (mut agent, _) = s.agent().await;
    let ServerMessage::Error(e) = agent.hello_raw("dev-someone-else", "x", 1).await else {
        panic!()
    };
    assert_eq!(e.code, "device_mismatch");
    let (mut agent, _) = s.agent().await;
    agent
        .send(&AgentMessage::ClockProbe(ClockProbe { t0: 1 }))
        .await;
    let ServerMessage::Error(e) = agent.recv().await else {
        panic!()
    };
    assert_eq!(e.code, "hello_required");
}

#[tokio::test]
async fn enrollment_token_is_single_use() {
    let s = TestServer::start().await;
    let t = s
        .admin("POST", "/enrollment-tokens", json!({"ttl_seconds": 60}))
        .await;
    let secret = t["token"].as_str().unwrap();
    let (status, first) = s.enroll_with(secret).await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = s.enroll_with(secret).await;
    assert_eq!(
        (status, again["code"].as_str()),
        (403, Some("invalid_token"))
    );
    let (status, unknown) = s.enroll_with("not-a-token").await;
    assert_eq!(
        (status, unknown["code"].as_str()),
        (403, Some("invalid_token"))
    );
    // A bad key does not burn the token.
    let t = s.admin("POST", "/enrollment-tokens", Value::Null).await;
    let req = json!({"token": t["token"], "public_key_pem": "nope", "host": "h"}).to_string();
    let (status, body) = s
        .request("POST", "/api/v1/enroll", None, "application/json", &req)
        .await;
    assert_eq!((status, body["code"].as_str()), (422, Some("invalid_key")));
    assert_eq!(s.enroll_with(t["token"].as_str().unwrap()).await.0, 200);
    // The credential is stored hashed only.
    let db = std::fs::read(s.dir.path().join("deskrec.db")).unwrap();
    let wal = std::fs::read(s.dir.path().join("deskrec.db-wal")).unwrap_or_default();
    let cred = first["credential"].as_str().unwrap().as_bytes();
    for bytes in [&db, &wal] {
        assert!(!bytes.windows(cred.len()).any(|w| w == cred));
    }
}

/// Creates a fleet token; returns its id and secret.
async fn fleet_token(s: &TestServer, spec: Value) -> (i64, String) {
    let t = s.admin("POST", "/fleet-tokens", spec).await;
    let token =
        deskrec_protocol::EnrollmentToken::decode(t["enrollment_token"].as_str().unwrap()).unwrap();
    assert_eq!(token.cert_sha256, s.fingerprint(), "{t}");
    assert_eq!(token.pin, Some(s.pin()), "{t}");
    assert_eq!(token.token, t["token"].as_str().unwrap());
    (t["id"].as_i64().unwrap(), token.token)
}

/// The number of devices the server has.
async fn device_count(s: &TestServer) -> usize {
    s.admin("GET", "/devices", Value::Null)
        .await
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_fleet_token_enrolls_many_pcs_refuses_with_reasons_and_logs_every_attempt() {
    let s = TestServer::start().await;
    let (id, secret) = fleet_token(
        &s,
        json!({"name": "Leeds floor 2", "max_uses": 3, "host_pattern": "CC-LDS-*"}),
    )
    .await;
    let key = util::test_key();
    let mut devices = Vec::new();
    let mut expected = Vec::new();
    for (host, status, outcome) in [
        ("CC-LDS-0001", 200, "enrolled"),
        ("cc-lds-0002", 200, "enrolled"),
        ("CC-MAN-0001", 403, "host_not_allowed"),
        ("CC-LDS-0003", 200, "enrolled"),
        ("CC-LDS-0004", 403, "token_exhausted"),
    ] {
        let before = device_count(&s).await;
        let (got, body) = s.enroll_host(&secret, key, host).await;
        assert_eq!(got, status, "{host}: {body}");
        if status == 200 {
            devices.push(body["device_id"].as_str().unwrap().to_owned());
        } else {
            assert_eq!(body["code"], outcome, "{host}: {body}");
            assert!(
                body["message"]
                    .as_str()
                    .unwrap()
                    .contains("fleet enrollment token")
                    || body["message"].as_str().unwrap().contains("host name"),
                "{body}"
            );
            assert_eq!(device_count(&s).await, before, "a refusal enrolls nothing");
        }
        expected.push((host, outcome));
    }
    let distinct: std::collections::HashSet<&String> = devices.iter().collect();
    assert_eq!(distinct.len(), 3, "three distinct devices");

    let tokens = s.admin("GET", "/fleet-tokens", Value::Null).await;
    assert_eq!(tokens[0]["id"], id);
    assert_eq!(tokens[0]["uses"], 3);
    assert_eq!(tokens[0]["max_uses"], 3);
    assert!(
        tokens[0].get("token").is_none(),
        "the secret is never listed"
    );
    let uses = s
        .admin("GET", &format!("/fleet-tokens/{id}/uses"), Value::Null)
        .await;
    let got: Vec<(&str, &str)> = uses
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["host"].as_str().unwrap(), u["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(uses[0]["device_id"], devices[0].as_str());
    assert!(uses[2]["device_id"].is_null());
    // Every use is audited with its host.
    let audit = s.admin("GET", "/audit?limit=1000", Value::Null).await;
    let audited: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "fleet_token.use")
        .map(|e| {
            (
                e["detail"]["host"].as_str().unwrap(),
                e["detail"]["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    let mut audited_sorted = audited.clone();
    audited_sorted.sort_unstable();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort_unstable();
    assert_eq!(audited_sorted, expected_sorted);

    // Revoked and expired tokens say so; an unknown secret says nothing.
    let (revoked, revoked_secret) = fleet_token(&s, json!({"name": "r", "max_uses": 5})).await;
    let r = s
        .admin(
            "POST",
            &format!("/fleet-tokens/{revoked}/revoke"),
            Value::Null,
        )
        .await;
    assert_eq!(r["changed"], true);
    let (_, expired_secret) =
        fleet_token(&s, json!({"name": "e", "max_uses": 5, "ttl_seconds": 1})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = device_count(&s).await;
    for (secret, code) in [
        (revoked_secret.as_str(), "token_revoked"),
        (expired_secret.as_str(), "token_expired"),
        ("no-such-token", "invalid_token"),
    ] {
        let (status, body) = s.enroll_host(secret, key, "CC-LDS-0009").await;
        assert_eq!((status, body["code"].as_str()), (403, Some(code)), "{body}");
    }
    assert_eq!(device_count(&s).await, before);
    let uses = s
        .admin("GET", &format!("/fleet-tokens/{revoked}/uses"), Value::Null)
        .await;
    assert_eq!(uses[0]["outcome"], "token_revoked");

    // Requests that make no token, and unknown tokens, are errors.
    for bad in [
        json!({"name": "x", "max_uses": 0}),
        json!({"name": "x", "max_uses": 5, "host_pattern": "CC-[A]*"}),
        json!({"name": "", "max_uses": 5}),
    ] {
        let (status, body) = s
            .request(
                "POST",
                "/api/v1/admin/fleet-tokens",
                Some(&s.admin_token),
                "application/json",
                &bad.to_string(),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("invalid")),
            "{bad}"
        );
    }
    let (status, _) = s
        .request(
            "GET",
            "/api/v1/admin/fleet-tokens/999/uses",
            Some(&s.admin_token),
            "application/json",
            "",
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn twenty_pcs_at_once_on_a_fleet_token_for_ten_give_exactly_ten_devices() {
    let s = TestServer::start().await;
    let (id, secret) = fleet_token(&s, json!({"name": "burst", "max_uses": 10})).await;
    let key = util::test_key();
    let attempts = (0..20).map(|i| {
        let (s, secret) = (&s, &secret);
        async move { s.enroll_host(secret, key, &format!("PC-{i:02}")).await }
    });
    let results = futures_util::future::join_all(attempts).await;
    let enrolled = results.iter().filter(|(status, _)| *status == 200).count();
    let exhausted = results
        .iter()
        .filter(|(status, body)| *status == 403 && body["code"] == "token_exhausted")
        .count();
    assert_eq!((enrolled, exhausted), (10, 10), "{results:?}");
    assert_eq!(device_count(&s).await, 10);
    let tokens = s.admin("GET", "/fleet-tokens", Value::Null).await;
    assert_eq!(tokens[0]["uses"], 10);
    let uses = s
        .admin("GET", &format!("/fleet-tokens/{id}/uses"), Value::Null)
        .await;
    assert_eq!(
        uses.as_array().unwrap().len(),
        20,
        "every attempt is logged"
    );
}

#[tokio::test]
async fn revoked_device_is_refused_and_disconnected() {
    let s = TestServer::start().await;
    let d = s.enroll().await;
    let mut agent = s.rte(Some(&d.credential)).await.unwrap();
    agent.hello(&d.device_id, "CORP\\ann").await;
    s.admin(
        "POST",
        &format!("/devices/{}/revoke", d.device_id),
        Value::Null,
    )
    .await;
    let ServerMessage::Error(e) = agent.recv().await else {
        panic!("expected an error")
    };
    assert_eq!(e.code, "device_revoked");
    assert!(
        agent.try_recv(WAIT).await.is_none(),
        "the connection closes"
    );
    match s.rte(Some(&d.credential)).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a revoked device connected"),
    }
    let devices = s.admin("GET", "/devices", Value::Null).await;
    assert!(devices[0]["revoked_at"].is_i64());
}

#[tokio::test]
async fn rte_refuses_missing_and_wrong_credentials() {
    let s = TestServer::start().await;
    for cred in [None, Some("wrong"), Some(s.admin_token.as_str())] {
        match s.rte(cred).await {
            Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401, "{cred:?}"),
            _ => panic!("{cred:?} was not refused"),
        }
    }
}

#[tokio::test]
async fn every_admin_endpoint_refuses_missing_and_wrong_tokens() {
    let s = TestServer::start().await;
    let device_credential = s.enroll().await.credential;
    let endpoints = deskrec_server::api::admin::endpoints();
    assert!(endpoints.len() >= 10);
    for e in &endpoints {
        let path = format!("/api/v1/admin{}", e.path)
            .replace("{id}", "1")
            .replace("{name}", "agent");
        for token in [
            None,
            Some("wrong"),
            Some(""),
            Some(device_credential.as_str()),
        ] {
            let (status, body) = s
                .request(e.method.as_str(), &path, token, "application/json", "{}")
                .await;
            assert_eq!(status, 401, "{} {path} with {token:?}", e.method);
            assert_eq!(body["code"], "unauthorized");
        }
        // With the right token the route exists (whatever the body's fate).
        let (status, body) = s
            .request(
                e.method.as_str(),
                &path,
                Some(&s.admin_token),
                "application/json",
                "{}",
            )
            .await;
        assert!(
            status != 401 && status != 405,
            "{} {path}: {status} {body}",
            e.method
        );
        if status == 404 {
            assert_ne!(body["message"], "no such endpoint", "{} {path}", e.method);
        }
    }
    // Unknown admin paths are refused the same way, so they reveal nothing.
    let (status, _) = s
        .request("GET", "/api/v1/admin/nope", None, "application/json", "")
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn bulk_import_is_idempotent_and_audited_once() {
    let s = TestServer::start().await;
    s.put_role("agent", &["record_screen"]).await;
    let users = json!([
        {"name": "Ann", "windows_login": "CORP\\ann", "roles": ["agent"]},
        {"name": "Bob", "windows_login": "CORP\\bob", "active": false},
        {"name": "Cy", "windows_login": "CORP\\cy", "roles": ["agent", "agent"]},
    ]);
    let before = s.audit_count().await;
    let r = s.admin("POST", "/users/import", users.clone()).await;
    assert_eq!(r, json!({"created": 3, "updated": 0, "unchanged": 0}));
    assert_eq!(s.audit_count().await, before + 3);
    let listed = s.admin("GET", "/users", Value::Null).await;

    let r = s.admin("POST", "/users/import", users).await;
    assert_eq!(r, json!({"created": 0, "updated": 0, "unchanged": 3}));
    assert_eq!(
        s.audit_count().await,
        before + 3,
        "nothing audited the second time"
    );
    assert_eq!(s.admin("GET", "/users", Value::Null).await, listed);

    // The same data as CSV is also a no-op; a changed row is one update.
    let csv = "name,windows_login,active,roles\nAnn,corp\\ann,true,agent\nBob,CORP\\bob,false,\nCy,CORP\\cy,yes,agent\n";
    let (status, r) = s
        .request(
            "POST",
            "/api/v1/admin/users/import",
            Some(&s.admin_token),
            "text/csv",
            csv,
        )
        .await;
    assert_eq!(
        (status, r),
        (200, json!({"created": 0, "updated": 0, "unchanged": 3}))
    );
    let csv = csv.replace("Bob,CORP\\bob,false,", "Bob,CORP\\bob,true,agent");
    let (_, r) = s
        .request(
            "POST",
            "/api/v1/admin/users/import",
            Some(&s.admin_token),
            "text/csv",
            &csv,
        )
        .await;
    assert_eq!(r, json!({"created": 0, "updated": 1, "unchanged": 2}));
    assert_eq!(s.audit_count().await, before + 4);

    // An invalid record fails the whole import and writes nothing.
    let bad = json!([
        {"name": "Dee", "windows_login": "CORP\\dee"},
        {"name": "Eve", "windows_login": "CORP\\eve", "roles": ["no-such-role"]},
    ]);
    let (status, body) = s
        .request(
            "POST",
            "/api/v1/admin/users/import",
            Some(&s.admin_token),
            "application/json",
            &bad.to_string(),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (422, Some("invalid")));
    assert_eq!(
        s.admin("GET", "/users", Value::Null)
            .await
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn admin_errors_are_json() {
    let s = TestServer::start().await;
    let t = Some(s.admin_token.as_str());
    let (status, body) = s
        .request("POST", "/api/v1/admin/users", t, "application/json", "{")
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")));
    let (status, body) = s
        .request("GET", "/api/v1/admin/users/999", t, "application/json", "")
        .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let u = json!({"name": "A", "windows_login": "CORP\\a"}).to_string();
    s.request("POST", "/api/v1/admin/users", t, "application/json", &u)
        .await;
    let (status, body) = s
        .request("POST", "/api/v1/admin/users", t, "application/json", &u)
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("conflict")));
    let (status, body) = s
        .request("GET", "/nowhere", None, "application/json", "")
        .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, body) = s
        .request("GET", "/api/v1/health", None, "application/json", "")
        .await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
}

#[tokio::test]
async fn restart_reuses_certificate_token_and_data() {
    let s = TestServer::start().await;
    let (fingerprint, token) = (s.fingerprint(), s.admin_token.clone());
    s.put_role("agent", &["record_screen"]).await;
    let (mut agent, dev) = s.agent().await;
    agent.hello(&dev, "x").await;
    let dir = s.stop().await; // graceful: the open RTE session is closed
    assert!(agent.try_recv(WAIT).await.is_none());
    let s = TestServer::start_in(dir).await;
    assert_eq!(
        (s.fingerprint(), s.admin_token.clone()),
        (fingerprint, token)
    );
    let roles = s.admin("GET", "/roles", Value::Null).await;
    assert_eq!(
        roles,
        json!([{"name": "agent", "permissions": ["record_screen"]}])
    );
    #[cfg(unix)]
    for f in ["admin-token", "recording-key.pem", "tls/key.pem"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.dir.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
}

#[tokio::test]
async fn the_next_tls_key_is_announced_signed_and_forgeries_are_refused() {
    use deskrec_client::{Pin, verify_pins};
    let s = TestServer::start().await;
    let other = TestServer::start().await;
    let pin: Pin = s.pin().parse().unwrap();

    // Before a next key: a signed "none", served without authentication
    // and in every policy.
    let (status, served) = s.request("GET", "/api/v1/tls/pins", None, "", "").await;
    assert_eq!(status, 200);
    let served: deskrec_protocol::ServerPins = serde_json::from_value(served).unwrap();
    let verified = verify_pins(&[pin], &served).unwrap();
    assert_eq!((verified.current, verified.next), (pin, None));
    let (mut agent, device) = s.agent().await;
    let policy = agent.hello(&device, "ann").await;
    assert_eq!(policy.server_pins, Some(served));

    let change = s.admin("POST", "/tls/next-key", Value::Null).await;
    let announced = s.pins();
    let next = verify_pins(&[pin], &announced).unwrap().next.unwrap();
    assert_eq!(change["next_pin"], next.to_string());
    // Asking again announces the same key.
    let again = s.admin("POST", "/tls/next-key", Value::Null).await;
    assert_eq!(again["next_pin"], change["next_pin"]);
    assert_eq!(s.pins(), announced);
    // The connected agent gets it at once, in a new policy.
    match agent.recv().await {
        ServerMessage::Policy(p) => assert_eq!(p.server_pins, Some(announced.clone())),
        other => panic!("expected a policy, got {other:?}"),
    }
    // An agent pinning the certificate (before public-key pins) accepts it.
    assert!(verify_pins(&[s.fingerprint().parse().unwrap()], &announced).is_ok());

    let refused = |pins: &deskrec_protocol::ServerPins, why: &str| {
        let err = verify_pins(&[pin], pins).unwrap_err().to_string();
        assert!(err.contains(why), "{err}");
    };
    // Another server's announcement: its certificate is not pinned.
    refused(&other.pins(), "matches no pinned key");
    // A next pin swapped or stripped in transit.
    let mut forged = announced.clone();
    forged.next_pin = Some(other.pin());
    refused(&forged, "does not verify");
    forged.next_pin = None;
    refused(&forged, "does not verify");
    // Another key's signature beside this server's certificate.
    let mut spliced = other.pins();
    spliced.certificate = announced.certificate.clone();
    refused(&spliced, "does not verify");
}

#[tokio::test]
async fn tls_key_changes_that_cannot_happen_say_why() {
    let s = TestServer::start().await;
    let (status, body) = s
        .request(
            "POST",
            "/api/v1/admin/tls/rotate",
            Some(&s.admin_token),
            "application/json",
            "",
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("tls_key_unchanged")),
        "{body}"
    );
    // A configured certificate's next key is the configuration's.
    let dir = s.stop().await;
    let tls = dir.path().join("tls");
    let s = TestServer::start_with(tempfile::tempdir().unwrap(), |c| {
        c.tls.cert = Some(tls.join("cert.pem"));
        c.tls.key = Some(tls.join("key.pem"));
    })
    .await;
    for path in ["/api/v1/admin/tls/next-key", "/api/v1/admin/tls/rotate"] {
        let (status, body) = s
            .request("POST", path, Some(&s.admin_token), "application/json", "")
            .await;
        assert_eq!(status, 409, "{path}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("next_key"),
            "{body}"
        );
    }
}

//! Enrollment against the real server over pinned TLS.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use deskrec_agent::clock::SystemClock;
use deskrec_agent::secrets::{CREDENTIAL, SecretStore};
use deskrec_agent::{Agent, AgentError, Connection, DataDir, enroll};
use deskrec_protocol::EnrollmentToken;
use serde_json::Value;

use common::{TestServer, agent_cli, agent_cli_json, enroll_agent, enrollment_token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_stores_identity_and_owner_only_secrets_and_registers_the_key() {
    let s = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path().join("agent"));
    let id = enroll_agent(&s, &dir).await;
    assert!(id.device_id.starts_with("dev-"), "{id:?}");
    assert_eq!(id.pin, s.pin());

    let (stored, creds) = enroll::load(&dir, &dir.secret_store()).unwrap();
    assert_eq!(stored, id);
    // The server registered exactly the key the PC keeps.
    let devices = s.admin("GET", "/devices", Value::Null).await;
    let device = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id.device_id.as_str())
        .expect("the device is listed");
    assert_eq!(device["key_id"], creds.device_key.id().to_string());
    assert_eq!(device["host"], "PC-agent");
    #[cfg(unix)]
    for name in [CREDENTIAL, deskrec_agent::secrets::DEVICE_KEY] {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(dir.secrets().join(name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
    }
    // The credential opens the RTE channel.
    assert!(s.rte(Some(&creds.credential)).await.is_ok());

    // A second enrollment is refused before the token is spent.
    let token = enrollment_token(&s).await;
    let again = enroll::enroll(&dir, &dir.secret_store(), &token, "PC-agent", 0).await;
    assert!(
        matches!(again, Err(AgentError::AlreadyEnrolled { .. })),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_with_another_fingerprint_is_refused_and_nothing_is_enrolled() {
    let s = TestServer::start().await;
    let mut token = EnrollmentToken::decode(&enrollment_token(&s).await).unwrap();
    token.pin = Some(format!("spki-sha256:{}", "00".repeat(32)));
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let err = enroll::enroll(&dir, &dir.secret_store(), &token.encode(), "PC", 0)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("TLS"), "{err}");
    assert!(dir.secret_store().get(CREDENTIAL).unwrap().is_none());
    assert!(matches!(
        enroll::load(&dir, &dir.secret_store()),
        Err(AgentError::NotEnrolled { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_enroll_command_enrolls_and_prints_the_identity() {
    let s = TestServer::start().await;
    let token = enrollment_token(&s).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("agent");
    let printed = agent_cli_json([
        "enroll".as_ref(),
        token.as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--host".as_ref(),
        "PC-cli".as_ref(),
    ])
    .await;
    assert_eq!(printed["host"], "PC-cli");
    let dir = DataDir::new(&data);
    let (id, _) = enroll::load(&dir, &dir.secret_store()).unwrap();
    assert_eq!(printed["device_id"], id.device_id.as_str());
    // The token is spent: a second PC cannot use it.
    let other = tmp.path().join("other");
    let again = agent_cli([
        "enroll".as_ref(),
        token.as_ref(),
        "--data-dir".as_ref(),
        other.as_os_str(),
    ])
    .await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("invalid_token"));
}

/// The identity the agent has stored now.
fn stored_identity(dir: &DataDir) -> enroll::Identity {
    enroll::load(dir, &dir.secret_store()).unwrap().0
}

/// Waits until the stored identity satisfies `done`.
async fn wait_identity(
    dir: &DataDir,
    what: &str,
    done: impl Fn(&enroll::Identity) -> bool,
) -> enroll::Identity {
    common::wait_for(Duration::from_secs(30), what, || {
        let id = Some(stored_identity(dir)).filter(&done);
        async move { id }
    })
    .await
}

/// Starts an agent as `ann` on the enrolled `dir`.
async fn start(dir: &DataDir) -> Agent {
    Agent::start(common::config(dir, "ann", Arc::new(SystemClock)))
        .await
        .unwrap()
}

/// Waits until the agent on `dir` is connected to its server.
async fn wait_connected(dir: &DataDir, what: &str) {
    common::wait_status(dir, Duration::from_secs(30), what, |r| {
        r.server.connection == Connection::Connected
    })
    .await;
}

/// Restarts `s` on the same address (agents know its URL).
async fn restart(s: TestServer, configure: impl FnOnce(&mut deskrec_server::Config)) -> TestServer {
    let addr = s.addr;
    let dir = s.stop().await;
    TestServer::start_with(dir, |c| {
        c.listen = addr;
        configure(c);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_for_the_same_key_keeps_agents_connected() {
    // A configured certificate, as from a CA: renewal issues a new
    // certificate for the same key.
    let certs = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let (cert_path, key_path) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let issue = |name: &str| {
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), name.into()]).unwrap();
        std::fs::write(&cert_path, params.self_signed(&key).unwrap().pem()).unwrap();
    };
    issue("rec-2026.example");
    let files = |c: &mut deskrec_server::Config| {
        c.tls.cert = Some(cert_path.clone());
        c.tls.key = Some(key_path.clone());
    };
    let s = TestServer::start_with(tempfile::tempdir().unwrap(), files).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let id = enroll_agent(&s, &dir).await;
    assert!(id.pin.starts_with("spki-sha256:"), "{id:?}");

    issue("rec-2027.example");
    let s = restart(s, files).await;
    let agent = start(&dir).await;
    wait_connected(&dir, "connected").await;
    agent.shutdown().await;
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_follow_an_announced_key_through_a_rotation_and_others_are_cut_off() {
    let s = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let (following, asleep) = (
        DataDir::new(tmp.path().join("a")),
        DataDir::new(tmp.path().join("b")),
    );
    let old = enroll_agent(&s, &following).await.pin;
    enroll_agent(&s, &asleep).await;
    let agent = start(&following).await;
    wait_connected(&following, "connected").await;

    // The connected agent hears of the next key at once.
    let change = s.admin("POST", "/tls/next-key", Value::Null).await;
    let next = change["next_pin"].as_str().unwrap().to_owned();
    assert_eq!(change["current_pin"], old.as_str());
    wait_identity(&following, "the next key to be trusted", |id| {
        id.next_pin.as_deref() == Some(next.as_str()) && id.pin == old
    })
    .await;
    assert_eq!(stored_identity(&asleep).next_pin, None);

    // The server changes key at its next start; the agent follows it.
    assert_eq!(
        s.admin("POST", "/tls/rotate", Value::Null).await["next_pin"],
        next.as_str()
    );
    let s = restart(s, |_| {}).await;
    assert_eq!(s.pins().next_pin, None);
    wait_identity(&following, "the new key to be the pin", |id| {
        id.pin == next && id.next_pin.is_none()
    })
    .await;
    wait_connected(&following, "connected again").await;
    agent.shutdown().await;

    // A PC that never heard of the new key cannot be fooled into trusting
    // it, and says why.
    let (_, creds) = enroll::load(&asleep, &asleep.secret_store()).unwrap();
    let addr = stored_identity(&asleep).address().unwrap();
    match deskrec_client::RteSocket::connect(&addr, &creds.credential).await {
        Err(e) => assert!(e.to_string().contains("TLS"), "{e}"),
        Ok(_) => panic!("a PC that missed the announcement connected after the rotation"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_enrolled_with_a_certificate_pin_upgrades_to_the_key_pin() {
    let s = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let id = enroll_agent(&s, &dir).await;
    // The identity as agents before public-key pins stored it.
    let legacy = serde_json::json!({
        "device_id": id.device_id, "url": id.url, "host": id.host,
        "enrolled_at": id.enrolled_at, "cert_sha256": s.fingerprint(),
    });
    rusqlite::Connection::open(dir.db_path())
        .unwrap()
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'identity'",
            [legacy.to_string()],
        )
        .unwrap();
    assert_eq!(stored_identity(&dir).pin, s.fingerprint());

    let agent = start(&dir).await;
    let upgraded =
        wait_identity(&dir, "the key pin", |id| id.pin.starts_with("spki-sha256:")).await;
    assert_eq!(upgraded.pin, s.pin());
    agent.shutdown().await;
}

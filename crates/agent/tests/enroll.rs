//! Enrollment against the real server over pinned TLS.

mod common;

use deskrec_agent::secrets::{CREDENTIAL, SecretStore};
use deskrec_agent::{AgentError, DataDir, enroll};
use deskrec_protocol::EnrollmentToken;
use serde_json::Value;

use common::{TestServer, enroll_agent, enrollment_token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_stores_identity_and_owner_only_secrets_and_registers_the_key() {
    let s = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path().join("agent"));
    let id = enroll_agent(&s, &dir).await;
    assert!(id.device_id.starts_with("dev-"), "{id:?}");
    assert_eq!(id.cert_sha256, s.fingerprint());

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
    token.cert_sha256 = "00".repeat(32);
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
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_deskrec-agent"))
        .arg("enroll")
        .arg(&token)
        .arg("--data-dir")
        .arg(&data)
        .arg("--host")
        .arg("PC-cli")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["host"], "PC-cli");
    let dir = DataDir::new(&data);
    let (id, _) = enroll::load(&dir, &dir.secret_store()).unwrap();
    assert_eq!(printed["device_id"], id.device_id.as_str());
    // The token is spent: a second PC cannot use it.
    let again = tokio::process::Command::new(env!("CARGO_BIN_EXE_deskrec-agent"))
        .args(["enroll", &token, "--data-dir"])
        .arg(tmp.path().join("other"))
        .output()
        .await
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("invalid_token"));
}

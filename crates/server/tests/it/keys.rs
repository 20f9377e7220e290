//! The recording key: encrypted at rest with a passphrase, rotated without
//! losing old recordings, and pushed to agents.

use deskrec_server::testing as util;

use deskrec_protocol::ServerMessage;
use deskrec_server::AppState;
use serde_json::Value;
use util::{TestServer, test_key};

#[tokio::test]
async fn rotation_pushes_the_new_key_and_keeps_the_old_one() {
    let s = TestServer::start().await;
    let (mut agent, dev) = s.agent().await;
    let before = agent.hello(&dev, "CORP\\ann").await;
    assert_eq!(before.server_key_id, test_key().id().to_string());

    let r = s.admin("POST", "/recording-key/rotate", Value::Null).await;
    assert_eq!(r["old_key_id"], before.server_key_id);
    let new_id = r["new_key_id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, before.server_key_id);
    match agent.recv().await {
        ServerMessage::Policy(p) => {
            assert_eq!(p.server_key_id, new_id);
            let key = deskrec_vault::PublicKey::from_pem(&p.server_public_key_pem).unwrap();
            assert_eq!(key.id().to_string(), new_id);
        }
        other => panic!("expected the new policy, got {other:?}"),
    }
    let audit = s.admin("GET", "/audit?limit=5", Value::Null).await;
    assert_eq!(audit[0]["action"], "recording_key.rotate", "{audit}");

    // Both keys open recordings, before and after a restart.
    let ids = |s: &TestServer| {
        let ring = s.state.keyring();
        [before.server_key_id.clone(), new_id.clone()]
            .map(|id| ring.get(&id.parse().unwrap()).is_ok())
    };
    assert_eq!(ids(&s), [true, true]);
    let s = TestServer::start_in(s.stop().await).await;
    assert_eq!(ids(&s), [true, true]);
    let (mut agent, dev) = s.agent().await;
    assert_eq!(agent.hello(&dev, "CORP\\ann").await.server_key_id, new_id);
}

#[tokio::test]
async fn a_passphrase_encrypts_the_key_at_rest_and_is_required_after() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let pass_file = secrets.path().join("passphrase");
    std::fs::write(&pass_file, "long random passphrase\n").unwrap();
    let with_pass = |c: &mut deskrec_server::Config| {
        c.recording_key.passphrase_file = Some(pass_file.clone());
    };
    let s = TestServer::start_with(dir, with_pass).await;
    s.admin("POST", "/recording-key/rotate", Value::Null).await;
    let dir = s.stop().await;
    for f in std::fs::read_dir(dir.path().join("recording-keys")).unwrap() {
        let pem = std::fs::read_to_string(f.unwrap().path()).unwrap();
        assert!(deskrec_vault::is_encrypted_pem(&pem));
    }
    let pem = std::fs::read_to_string(dir.path().join("recording-key.pem")).unwrap();
    assert!(deskrec_vault::is_encrypted_pem(&pem));
    assert!(!pem.contains("BEGIN PRIVATE KEY"));

    // Without the passphrase the server refuses to start, and says why.
    let err = AppState::open(
        &TestServer::config(dir.path()),
        "127.0.0.1:1".parse().unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("recording-key.pem") && err.contains("encrypted"),
        "{err}"
    );
    // With the wrong one too.
    std::fs::write(&pass_file, "wrong").unwrap();
    let mut config = TestServer::config(dir.path());
    with_pass(&mut config);
    let err = AppState::open(&config, "127.0.0.1:1".parse().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("wrong passphrase"), "{err}");
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_is_made_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let s = TestServer::start_in(dir).await;
    let mode = std::fs::metadata(s.dir.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

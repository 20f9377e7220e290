//! The handle a front end holds (the tray app): status from memory, the
//! queue, the audit log, the event subscription, "retry now", diagnostics
//! and one engine per data directory — against the real server over TLS
//! and the real recorder with the synthetic source.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use deskrec_agent::clock::SystemClock;
use deskrec_agent::{Agent, AgentError, Event, IndicatorKind, Status};
use deskrec_protocol::RecordingState;
use serde_json::json;
use tokio::sync::broadcast;

use common::{
    ANN, TestServer, config, eligible_setup, enroll_agent, import_contact, start_ann,
    wait_contact_status, wait_for,
};

const WAIT: Duration = Duration::from_secs(30);

/// The next status event that satisfies `done`, within `within`.
async fn next_status(
    events: &mut broadcast::Receiver<Event>,
    within: Duration,
    what: &str,
    done: impl Fn(&Status) -> bool,
) -> Status {
    tokio::time::timeout(within, async {
        loop {
            match events.recv().await {
                Ok(Event::Status(s)) if done(&s) => return *s,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("events ended: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no status event for {what} within {within:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handle_shows_status_queue_and_audit_and_tells_of_policy_changes_within_a_second() {
    let s = TestServer::start().await;
    let ann = eligible_setup(&s).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = deskrec_agent::DataDir::new(tmp.path());
    enroll_agent(&s, &dir).await;
    let agent = start_ann(&dir).await;
    let handle = agent.handle();
    let mut events = handle.subscribe();

    // Recording, from memory: the icon and the words follow.
    let st = next_status(&mut events, WAIT, "recording", |s| {
        s.state == RecordingState::Recording && s.current_segment.is_some()
    })
    .await;
    assert_eq!(st.indicator.kind, IndicatorKind::Recording, "{st:#?}");
    assert!(st.indicator.detail.contains(ANN), "{st:#?}");
    assert_eq!(handle.status().login, ANN);

    // The queue: the segment being written, then a contact to its upload.
    let queue = handle.queue().await.unwrap();
    assert!(queue.segments.iter().any(|s| s.writing), "{queue:#?}");
    let start = deskrec_vault::now_micros();
    tokio::time::sleep(Duration::from_secs(2)).await;
    import_contact(&s, "h-1", ANN, start, deskrec_vault::now_micros()).await;
    let mut uploaded = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !uploaded {
        assert!(Instant::now() < deadline, "no upload notice");
        if let Ok(Ok(Event::Notice(n))) =
            tokio::time::timeout(Duration::from_secs(1), events.recv()).await
        {
            uploaded = n.kind == deskrec_agent::NoticeKind::Uploaded && n.body.contains("h-1");
        }
    }
    wait_contact_status(&s, "h-1", "uploaded", WAIT).await;
    let queue = handle.queue().await.unwrap();
    let c = queue
        .contacts
        .iter()
        .find(|c| c.contact_id == "h-1")
        .unwrap_or_else(|| panic!("{queue:#?}"));
    assert_eq!(c.state, "done");
    assert_eq!(Some(c.uploaded_bytes), c.bytes, "{c:#?}");
    assert_eq!(queue.uploaded_today.contacts, 1);
    let audit = handle.audit(50).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "recording.uploaded" && e.target == "h-1"),
        "{audit:#?}"
    );

    // The server deactivates ann: a subscriber hears of it within a second
    // of the policy reaching the agent.
    let id = ann["id"].as_i64().unwrap();
    s.admin("PATCH", &format!("/users/{id}"), json!({"active": false}))
        .await;
    let st = next_status(&mut events, Duration::from_secs(1), "not eligible", |s| {
        s.state == RecordingState::NotEligible
    })
    .await;
    assert_eq!(st.indicator.kind, IndicatorKind::NotRecording);
    assert!(st.indicator.detail.contains("not active"), "{st:#?}");
    s.admin("PATCH", &format!("/users/{id}"), json!({"active": true}))
        .await;
    next_status(
        &mut events,
        Duration::from_secs(1),
        "recording again",
        |s| s.state == RecordingState::Recording,
    )
    .await;

    // Diagnostics: this test runs as root or not; either way the answer
    // follows the rule (administrators in, others need the PIN).
    match handle.diagnostics(None).await {
        Ok(d) => {
            assert!(deskrec_agent::is_admin());
            assert_eq!(d.server_fingerprint, s.pin());
            assert!(!d.segments.is_empty());
        }
        Err(AgentError::Refused(_)) => assert!(!deskrec_agent::is_admin()),
        Err(e) => panic!("{e}"),
    }
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_engine_on_the_same_directory_is_refused_and_the_first_goes_on() {
    let s = TestServer::start().await;
    eligible_setup(&s).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = deskrec_agent::DataDir::new(tmp.path());
    enroll_agent(&s, &dir).await;
    let first = start_ann(&dir).await;
    let handle = first.handle();
    wait_for(WAIT, "the first engine recording", || async {
        (handle.status().state == RecordingState::Recording).then_some(())
    })
    .await;
    match Agent::start(config(&dir, ANN, Arc::new(SystemClock))).await {
        Err(AgentError::DirectoryInUse { holder, data_dir }) => {
            assert!(holder.contains(&std::process::id().to_string()), "{holder}");
            assert_eq!(data_dir, tmp.path());
        }
        Err(e) => panic!("refused for the wrong reason: {e}"),
        Ok(_) => panic!("a second engine started on the same directory"),
    }
    // The first is unharmed: still recording, its segment still growing.
    let before = handle.queue().await.unwrap();
    let bytes = |q: &deskrec_agent::Queue| q.segments.iter().map(|s| s.bytes).sum::<u64>();
    wait_for(WAIT, "the first engine's segments growing", || {
        let handle = handle.clone();
        let before = bytes(&before);
        async move { (bytes(&handle.queue().await.unwrap()) > before).then_some(()) }
    })
    .await;
    assert_eq!(handle.status().state, RecordingState::Recording);
    first.shutdown().await;
    // Freed at shutdown: the next engine may start.
    let again = Agent::start(config(&dir, ANN, Arc::new(SystemClock)))
        .await
        .expect("the directory is free once the first engine stopped");
    again.shutdown().await;
}

/// The supervisor PIN of [`diagnostics_need_an_administrator_or_the_pin_and_the_bundle_holds_no_secret`].
const PIN: &str = "4711-2024";

/// Diagnostics as the user running this test: an administrator (root)
/// without a PIN, anyone else with the policy's PIN only; the saved
/// bundle holds no key, credential, token or PIN. Run as root, the test
/// then runs itself again as `nobody` for the other side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnostics_need_an_administrator_or_the_pin_and_the_bundle_holds_no_secret() {
    use argon2::password_hash::PasswordHasher;

    let s = TestServer::start().await;
    eligible_setup(&s).await;
    let phc = argon2::Argon2::default()
        .hash_password(PIN.as_bytes())
        .unwrap()
        .to_string();
    s.admin(
        "PATCH",
        "/settings",
        json!({"desktop": {"diagnostics_pin_phc": phc}}),
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = deskrec_agent::DataDir::new(tmp.path());
    let token = common::enrollment_token(&s).await;
    deskrec_agent::enroll::enroll(&dir, &dir.secret_store(), &token, "PC-agent", 0)
        .await
        .unwrap();
    let agent = start_ann(&dir).await;
    let handle = agent.handle();
    // Recording: the policy, and with it the PIN's hash, has arrived.
    wait_for(WAIT, "recording", || async {
        (handle.status().state == RecordingState::Recording).then_some(())
    })
    .await;

    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(logs.join("deskrec.log"), "INFO agent started\n").unwrap();
    let admin = deskrec_agent::is_admin();
    let pin = if admin {
        handle
            .diagnostics(None)
            .await
            .expect("an administrator needs no PIN");
        None
    } else {
        for wrong in [None, Some("0000"), Some("")] {
            assert!(
                matches!(handle.diagnostics(wrong).await, Err(AgentError::Refused(_))),
                "diagnostics shown to a non-administrator with PIN {wrong:?}"
            );
            assert!(
                matches!(
                    handle.save_diagnostics(wrong, Some(&logs), &out).await,
                    Err(AgentError::Refused(_))
                ),
                "diagnostics saved for a non-administrator with PIN {wrong:?}"
            );
        }
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "nothing saved");
        Some(PIN)
    };
    let d = handle
        .diagnostics(pin)
        .await
        .expect("the right PIN opens it");
    assert!(!d.segments.is_empty(), "{d:#?}");

    // The bundle, unpacked and searched for every secret the PC holds.
    let zip = handle
        .save_diagnostics(pin, Some(&logs), &out)
        .await
        .unwrap();
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip).unwrap()).unwrap();
    let mut text = String::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).unwrap();
        std::io::Read::read_to_string(&mut f, &mut text).unwrap();
    }
    assert!(
        text.contains(&d.device_id),
        "the bundle holds the diagnostics"
    );
    assert!(text.contains("INFO agent started"), "and the logs");
    let secret = |name| {
        use deskrec_agent::secrets::SecretStore;
        let value = dir.secret_store().get(name).unwrap().expect("stored");
        String::from_utf8(value.to_vec()).unwrap()
    };
    let credential = secret(deskrec_agent::secrets::CREDENTIAL);
    let key = secret(deskrec_agent::secrets::DEVICE_KEY);
    let mut secrets = vec![
        credential.trim(),
        token.as_str(),
        PIN,
        phc.as_str(),
        "PRIVATE KEY",
    ];
    secrets.extend(key.lines().filter(|l| l.len() > 20));
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "the bundle holds a secret: {secret}"
        );
    }
    agent.shutdown().await;

    #[cfg(unix)]
    if admin {
        run_as_nobody(
            "diagnostics_need_an_administrator_or_the_pin_and_the_bundle_holds_no_secret",
        );
    }
}

/// Runs `test` of this module of the test binary as the unprivileged user
/// `nobody` (from a copy it can read: the target directory may be under
/// /root).
#[cfg(unix)]
fn run_as_nobody(test: &str) {
    // The harness names a test by its path without the crate: `handle::…`.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let test = format!("{module}::{test}");
    use std::os::unix::fs::PermissionsExt;
    let copy = tempfile::tempdir().unwrap();
    std::fs::set_permissions(copy.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = copy.path().join("handle-test");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe)
        .args(["--exact", &test, "--nocapture"])
        .current_dir(copy.path())
        .env("HOME", copy.path())
        .output()
        .expect("setpriv (util-linux) runs");
    assert!(
        out.status.success(),
        "as nobody:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "the test ran as nobody: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

//! Recording follows the server's policy: the real server over TLS, the
//! real recorder with the synthetic source.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use deskrec_agent::clock::{Clock, SystemClock};
use deskrec_protocol::RecordingState;
use serde_json::json;

use common::{
    ANN, TestServer, agent_cli_json, eligible_setup, import_contact, start_agent,
    wait_contact_status, wait_status,
};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eligible_user_records_until_the_policy_says_stop_and_an_unknown_one_never_does() {
    let s = TestServer::start().await;
    let ann_user = eligible_setup(&s).await;
    let tmp = tempfile::tempdir().unwrap();
    let (ann, ann_dir) = start_agent(&s, &tmp.path().join("ann"), ANN, Arc::new(SystemClock)).await;
    let (bob, bob_dir) =
        start_agent(&s, &tmp.path().join("bob"), "bob", Arc::new(SystemClock)).await;

    let r = wait_status(&ann_dir, WAIT, "ann recording into a segment", |r| {
        r.state == RecordingState::Recording && r.segments.count >= 1 && r.current_segment.is_some()
    })
    .await;
    assert_eq!(r.reason, "eligible");
    assert_eq!(r.login, ANN);
    assert_eq!(r.server.connection, deskrec_agent::Connection::Connected);
    assert!(r.clock_offset.is_some(), "{r:#?}");
    // The segments grow while ann is eligible.
    let grown = wait_status(&ann_dir, WAIT, "ann's segments growing", |n| {
        n.segments.bytes > r.segments.bytes
    })
    .await;

    // The policy is stored a moment before the recording state follows it.
    let r = wait_status(&bob_dir, WAIT, "bob's policy applied", |r| {
        r.policy.is_some() && r.reason != "no_policy"
    })
    .await;
    assert_eq!(
        (r.state, r.reason.as_str()),
        // Unknown to the server, told as a user without the role.
        (RecordingState::NotEligible, "no_record_permission")
    );
    assert_eq!(r.segments.count, 0);
    assert!(r.current_segment.is_none());

    // The server deactivates ann: the pushed policy stops the recorder.
    let id = ann_user["id"].as_i64().unwrap();
    s.admin("PATCH", &format!("/users/{id}"), json!({"active": false}))
        .await;
    let r = wait_status(&ann_dir, WAIT, "ann stopped", |r| {
        r.state == RecordingState::NotEligible
    })
    .await;
    assert_eq!(r.reason, "user_inactive");
    assert!(r.current_segment.is_none());
    let inactive_at = SystemClock.now();
    // Stopped means stopped: nothing more is written.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = deskrec_agent::status::report(&ann_dir).unwrap().segments;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = deskrec_agent::status::report(&ann_dir).unwrap().segments;
    assert_eq!(before, after);
    assert!(after.bytes >= grown.segments.bytes);

    // The status command prints the same state for the tray.
    let v = agent_cli_json([
        "status".as_ref(),
        "--data-dir".as_ref(),
        ann_dir.root().as_os_str(),
    ])
    .await;
    assert_eq!(
        (v["state"].as_str(), v["reason"].as_str()),
        (Some("not_eligible"), Some("user_inactive"))
    );
    assert_eq!(v["segments"]["count"], after.count);
    assert_eq!(v["server"]["connection"], "connected");
    assert!(v["clock_offset"]["offset_us"].is_i64(), "{v}");

    // A contact while ann was not eligible: the PC says so.
    import_contact(
        &s,
        "c-inactive",
        ANN,
        inactive_at + 1_500_000,
        inactive_at + 2_500_000,
    )
    .await;
    let c = wait_contact_status(&s, "c-inactive", "unrecoverable", WAIT).await;
    let reason = c["status_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("not_eligible") && reason.contains("user_inactive"),
        "{c}"
    );

    ann.shutdown().await;
    bob.shutdown().await;
    let r = deskrec_agent::status::report(&ann_dir).unwrap();
    assert_eq!(
        (r.reason.as_str(), r.server.connection),
        ("agent_stopped", deskrec_agent::Connection::Offline)
    );
}

//! Retention against the real server: segments behind the watermark that
//! no queued contact needs are analysed and deleted, one a queued contact
//! needs is kept; a hard limit deletes it anyway, and the contact is then
//! reported `segments_deleted`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use deskrec_agent::clock::{Clock, SystemClock};
use deskrec_agent::{Agent, DataDir};
use serde_json::json;

use common::*;

const WAIT: Duration = Duration::from_secs(30);
const SECOND: i64 = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_behind_the_watermark_go_unless_a_queued_contact_needs_them() {
    let s = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let id = enroll_agent(&s, &dir).await;
    let now = SystemClock.now();
    let (old, needed) = (now - 1200 * SECOND, now - 600 * SECOND);
    write_segment(&dir.segments(), &id.device_id, old, 60);
    write_segment(&dir.segments(), &id.device_id, needed, 60);
    // ann is unknown here: the PC does not record beside these segments.
    let agent = Agent::start(config(&dir, ANN, Arc::new(SystemClock)))
        .await
        .unwrap();
    wait_status(&dir, WAIT, "connected", |r| r.clock_offset.is_some()).await;

    // A contact during the second segment that is not over yet, and the
    // contact centre's promise that everything before a minute ago is in.
    s.admin(
        "POST",
        "/contacts",
        json!({"contacts": [{"contact_id": "c-long", "windows_login": ANN,
                             "start": rfc3339(needed + 10 * SECOND),
                             "end": rfc3339(now + 3600 * SECOND)}],
               "watermark": rfc3339(now - 60 * SECOND)}),
    )
    .await;
    let r = wait_status(&dir, WAIT, "the old segment deleted", |r| {
        r.segments.count == 1
    })
    .await;
    assert_eq!(r.segments.oldest, Some(needed));
    assert_eq!(r.contacts.queued, 1);
    assert!(!dir.segments().join(format!("{old}.dseg")).exists());
    assert!(dir.segments().join(format!("{needed}.dseg")).exists());
    let audit = dir
        .open_db()
        .unwrap()
        .call_blocking(|c| deskrec_agent::db::recent_audit(c, 50))
        .unwrap();
    let deleted: Vec<_> = audit
        .iter()
        .filter(|(_, action, _, _)| action == "segment.deleted")
        .collect();
    assert_eq!(deleted.len(), 1, "{audit:?}");
    let detail: serde_json::Value = serde_json::from_str(&deleted[0].3).unwrap();
    assert_eq!(detail["reason"], "watermark");
    assert_eq!(detail["findings"]["chunks"], 6, "{detail}");
    assert_eq!(detail["findings"]["truncated"], false);
    assert_eq!(detail["findings"]["damage"], serde_json::Value::Null);
    assert_eq!(detail["findings"]["gaps"], json!([]));

    // A quota of one byte: the hard limit deletes the needed segment too.
    s.admin(
        "PATCH",
        "/settings",
        json!({"retention": {"max_age_days": 30, "max_bytes": 1, "min_free_disk_bytes": 0}}),
    )
    .await;
    wait_status(&dir, WAIT, "the quota applied", |r| r.segments.count == 0).await;
    // The contact centre corrects the contact's end: the PC no longer has
    // its segments and says why.
    import_contact(
        &s,
        "c-long",
        ANN,
        needed + 10 * SECOND,
        needed + 50 * SECOND,
    )
    .await;
    let c = wait_contact_status(&s, "c-long", "unrecoverable", WAIT).await;
    let reason = c["status_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("segments_deleted") && reason.contains("max_bytes"),
        "{c}"
    );
    agent.shutdown().await;
}

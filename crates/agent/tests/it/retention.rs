//! Retention against the real server: segments behind the watermark that
//! no queued contact needs are analysed and deleted, one a queued contact
//! needs is kept; a hard limit deletes it anyway, and the contact is then
//! reported `segments_deleted`.

use crate::common;

use std::time::Duration;

use deskrec_agent::DataDir;
use deskrec_agent::clock::{Clock, SystemClock};
use deskrec_vault::FileKind;
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
    let (cut, old, needed) = (now - 1800 * SECOND, now - 1200 * SECOND, now - 600 * SECOND);
    write_segment(&dir.segments(), &id.device_id, old, 60);
    write_segment(&dir.segments(), &id.device_id, needed, 60);
    // One a crash cut short: no end record, its last chunk half written.
    write_segment(&dir.segments(), &id.device_id, cut, 60);
    let cut_path = deskrec_recorder::segment_path(&dir.segments(), cut);
    let len = std::fs::metadata(&cut_path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cut_path)
        .unwrap()
        .set_len(len - 5000)
        .unwrap();
    // ann is unknown here: the PC does not record beside these segments.
    let agent = start_ann(&dir).await;
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
    let r = wait_status(&dir, WAIT, "the old segments deleted", |r| {
        r.segments.count == 1
    })
    .await;
    assert_eq!(r.segments.oldest, Some(needed));
    assert_eq!(r.contacts.queued, 1);
    assert!(!deskrec_recorder::segment_path(&dir.segments(), old).exists());
    assert!(deskrec_recorder::segment_path(&dir.segments(), needed).exists());
    let audit = deskrec_agent::status::audit(&dir, 50).unwrap();
    let deleted: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "segment.deleted")
        .collect();
    assert_eq!(deleted.len(), 2, "{audit:?}");
    let detail_of = |start: i64| -> serde_json::Value {
        let row = deleted
            .iter()
            .find(|e| {
                e.target
                    .ends_with(&FileKind::Segment.file_name(&start.to_string()))
            })
            .unwrap_or_else(|| panic!("{start} deleted: {audit:?}"));
        serde_json::from_str(&row.detail).unwrap()
    };
    let detail = detail_of(old);
    assert_eq!(detail["reason"], "watermark");
    assert_eq!(detail["findings"]["chunks"], 6, "{detail}");
    assert_eq!(detail["findings"]["truncated"], false);
    assert_eq!(detail["findings"]["damage"], serde_json::Value::Null);
    assert_eq!(detail["findings"]["gaps"], json!([]));
    let detail = detail_of(cut);
    assert_eq!(detail["reason"], "watermark");
    assert_eq!(detail["findings"]["truncated"], true, "{detail}");
    assert_eq!(detail["findings"]["chunks"], 5, "{detail}");

    // The server hears of the damaged one only, once.
    let reports = wait_for(WAIT, "the segment report on the server", || async {
        let audit = s
            .admin("GET", "/audit?limit=500", serde_json::Value::Null)
            .await;
        let reports: Vec<serde_json::Value> = audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "segment.discrepancy")
            .cloned()
            .collect();
        (!reports.is_empty()).then_some(reports)
    })
    .await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["target"], format!("{}/{cut}", id.device_id));
    assert_eq!(reports[0]["actor"], format!("device:{}", id.device_id));
    assert_eq!(reports[0]["detail"]["findings"]["truncated"], true);
    assert_eq!(reports[0]["detail"]["deleted"], "watermark");

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg(target_os = "linux")] // mounts a tmpfs
async fn at_the_disk_floor_the_oldest_segments_go_until_the_floor_is_kept() {
    use deskrec_capture::testing::Tmpfs;
    let s = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    // The segments on a small volume of their own (the database is not).
    std::fs::create_dir_all(dir.segments()).unwrap();
    let Some(_disk) = Tmpfs::mount_at(&dir.segments(), 8 << 20) else {
        return;
    };
    let id = enroll_agent(&s, &dir).await;
    let now = SystemClock.now();
    let starts = [
        now - 3000 * SECOND,
        now - 2000 * SECOND,
        now - 1000 * SECOND,
    ];
    for start in starts {
        write_segment(&dir.segments(), &id.device_id, start, 120);
    }
    let size = |start: i64| {
        std::fs::metadata(deskrec_recorder::segment_path(&dir.segments(), start))
            .unwrap()
            .len()
    };
    let free = deskrec_agent::status::disk_free(&dir.segments()).unwrap();
    // A floor that deleting the oldest segment reaches, and nothing less.
    let floor = free + size(starts[0]) / 2;
    s.admin(
        "PATCH",
        "/settings",
        json!({"retention": {"max_age_days": 30, "max_bytes": 1u64 << 40,
                             "min_free_disk_bytes": floor}}),
    )
    .await;
    // ann is unknown here: the PC does not record beside these segments,
    // and no watermark came, so only the floor deletes.
    let agent = start_ann(&dir).await;
    let r = wait_status(&dir, WAIT, "the floor kept", |r| r.segments.count < 3).await;
    // Another pass deletes nothing more.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r2 = deskrec_agent::status::report(&dir).unwrap();
    agent.shutdown().await;
    assert_eq!(r2.segments.count, 2, "{r:#?}");
    assert_eq!(r2.segments.oldest, Some(starts[1]));
    assert!(r2.disk_free_bytes.unwrap() >= floor, "{r2:#?}");
    let audit = deskrec_agent::status::audit(&dir, 50).unwrap();
    let deleted: Vec<serde_json::Value> = audit
        .iter()
        .filter(|e| e.action == "segment.deleted")
        .map(|e| serde_json::from_str(&e.detail).unwrap())
        .collect();
    assert_eq!(deleted.len(), 1, "{audit:?}");
    assert_eq!(deleted[0]["reason"], "disk_floor");
    assert!(deleted[0]["findings"]["chunks"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_segments_of_a_contact_erased_before_its_upload_go_like_an_uploaded_ones() {
    let s = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let id = enroll_agent(&s, &dir).await;
    let now = SystemClock.now();
    let start = now - 1200 * SECOND;
    write_segment(&dir.segments(), &id.device_id, start, 60);
    // ann is unknown here: the PC does not record beside this segment. It
    // says who is logged on once, then is switched off.
    let agent = start_ann(&dir).await;
    wait_status(&dir, WAIT, "connected", |r| r.clock_offset.is_some()).await;
    agent.shutdown().await;

    // While it is off, a contact of that segment comes in, the contact
    // centre's watermark passes it, and the customer's erasure is done.
    s.admin(
        "POST",
        "/contacts",
        json!({"contacts": [{"contact_id": "c-gone", "windows_login": ANN,
                             "start": rfc3339(start + 10 * SECOND),
                             "end": rfc3339(start + 40 * SECOND)}],
               "watermark": rfc3339(now - 60 * SECOND)}),
    )
    .await;
    s.erase("c-gone").await;

    // Back on, the PC splices the contact, the server refuses it for good,
    // and nothing holds the segment back any more.
    let agent = start_ann(&dir).await;
    let r = wait_status(&dir, WAIT, "the contact disposed, its segment gone", |r| {
        r.contacts.disposed == 1 && r.segments.count == 0
    })
    .await;
    assert_eq!(r.contacts.uploading, 0, "{r:#?}");
    assert_eq!(local_recordings(&dir), 0);
    assert!(stored_recordings(&s).is_empty());
    let audit = deskrec_agent::status::audit(&dir, 50).unwrap();
    let deleted = audit
        .iter()
        .find(|e| e.action == "segment.deleted")
        .unwrap_or_else(|| panic!("{audit:?}"));
    let detail: serde_json::Value = serde_json::from_str(&deleted.detail).unwrap();
    assert_eq!(detail["reason"], "watermark", "{detail}");
    assert!(
        audit
            .iter()
            .any(|e| e.action == "recording.disposed_on_server"),
        "{audit:?}"
    );
    agent.shutdown().await;
}

//! Contacts to uploaded recordings, against the real server over TLS with
//! the real recorder (synthetic source).

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use deskrec_agent::clock::{Clock, SystemClock};
use deskrec_agent::{Agent, DataDir};
use deskrec_protocol::RecordingState;

use common::*;

const WAIT: Duration = Duration::from_secs(30);
const SECOND: i64 = 1_000_000;

/// Waits until ann's agent has recorded for `seconds` past now.
async fn recording_for(dir: &DataDir, seconds: i64) -> i64 {
    let r = wait_status(dir, WAIT, "recording", |r| {
        r.state == RecordingState::Recording && r.segments.count >= 1
    })
    .await;
    let from = r.segments.oldest.unwrap();
    tokio::time::sleep(Duration::from_micros((seconds * SECOND) as u64)).await;
    from
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_is_spliced_uploaded_and_deleted_and_one_without_segments_is_not_recorded() {
    let s = TestServer::start().await;
    eligible_setup(&s).await;
    let tmp = tempfile::tempdir().unwrap();
    let (agent, dir) = start_agent(&s, tmp.path(), ANN, Arc::new(SystemClock)).await;
    recording_for(&dir, 4).await;

    let now = SystemClock.now();
    import_contact(&s, "c-live", ANN, now - 3 * SECOND, now - SECOND).await;
    // An hour ago, before this PC recorded anything.
    import_contact(&s, "c-old", ANN, now - 3600 * SECOND, now - 3590 * SECOND).await;

    let c = wait_contact_status(&s, "c-live", "uploaded", WAIT).await;
    assert_eq!(c["deliveries"][0]["acknowledged"], true, "{c}");
    let old = wait_contact_status(&s, "c-old", "unrecoverable", WAIT).await;
    let reason = old["status_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("not_recorded"), "{old}");
    assert!(reason.contains("no segment on this PC covers"), "{old}");
    assert!(reason.contains("the agent was not running"), "{old}");

    let r = wait_status(&dir, WAIT, "both contacts finished", |r| {
        r.contacts.done == 1 && r.contacts.unrecoverable == 1
    })
    .await;
    assert_eq!(
        (r.contacts.queued, r.contacts.splicing, r.contacts.uploading),
        (0, 0, 0)
    );
    assert_eq!(r.contact_cursor, Some(2));
    assert_eq!(
        local_recordings(&dir),
        0,
        "the uploaded recording is deleted"
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_during_an_outage_is_uploaded_after_the_server_comes_back() {
    let s = TestServer::start().await;
    let (proxy, _tmp, dir) = eligible_behind_proxy(&s).await;
    let agent = start_ann(&dir).await;
    recording_for(&dir, 1).await;

    // The server goes away; the PC keeps recording under its cached policy.
    proxy.cut();
    wait_status(&dir, WAIT, "offline", |r| {
        r.server.connection == deskrec_agent::Connection::Offline
    })
    .await;
    let start = SystemClock.now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let end = SystemClock.now();
    let r = deskrec_agent::status::report(&dir).unwrap();
    assert_eq!(r.state, RecordingState::Recording, "{r:#?}");
    // The contact centre reports the contact while the PC cannot hear.
    import_contact(&s, "c-outage", ANN, start, end).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(server_contact(&s, "c-outage").await["status"], "pending");

    proxy.heal();
    wait_contact_status(&s, "c-outage", "uploaded", WAIT).await;
    wait_status(&dir, WAIT, "done", |r| r.contacts.done == 1).await;
    assert_eq!(local_recordings(&dir), 0);
    agent.shutdown().await;
}

/// A contact `id` of ann's whose recording is spliced while the network
/// is cut: the agent (behind the returned proxy, cut) holds it, waiting to
/// upload.
async fn spliced_while_offline(
    s: &TestServer,
    id: &str,
) -> (Proxy, tempfile::TempDir, DataDir, Agent) {
    let (proxy, tmp, dir) = eligible_behind_proxy(s).await;
    let agent = start_ann(&dir).await;
    recording_for(&dir, 1).await;
    // The contact reaches the PC while it is on the call; the network goes
    // before the PC can upload its recording.
    let now = SystemClock.now();
    import_contact(s, id, ANN, now - SECOND, now + 3 * SECOND).await;
    wait_status(&dir, WAIT, "the contact relayed", |r| {
        r.contacts.queued == 1
    })
    .await;
    proxy.cut();
    wait_status(&dir, WAIT, "spliced and waiting to upload", |r| {
        r.contacts.uploading == 1 && r.server.connection == deskrec_agent::Connection::Offline
    })
    .await;
    (proxy, tmp, dir, agent)
}

/// A back-off grows to its cap over a long outage and is stored, so it
/// outlives both the outage and the process (an upgrade restarts the
/// agent). When the server answers again the upload goes at once, not when
/// the back-off would have ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_backed_off_during_an_outage_goes_as_soon_as_the_server_is_back() {
    let s = TestServer::start().await;
    let (proxy, _tmp, dir, agent) = spliced_while_offline(&s, "c-backoff").await;
    agent.shutdown().await;

    // The attempts failed; after a long outage the next one would be an
    // hour away.
    let db = rusqlite::Connection::open(dir.db_path()).unwrap();
    let later = SystemClock.now() + 3600 * SECOND;
    let backed_off = db
        .execute(
            "UPDATE contacts SET next_attempt_at = ?1
             WHERE contact_id = 'c-backoff' AND state = 'uploading' AND attempts > 0",
            [later],
        )
        .unwrap();
    assert_eq!(backed_off, 1, "the upload failed while offline");

    // The agent starts again, still offline, then the server comes back.
    let agent = start_ann(&dir).await;
    wait_status(&dir, WAIT, "offline", |r| {
        r.server.connection == deskrec_agent::Connection::Offline
    })
    .await;
    proxy.heal();
    wait_contact_status(&s, "c-backoff", "uploaded", WAIT).await;
    assert_stored_once(&s, "c-backoff").await;
    agent.shutdown().await;
}

/// A PC whose clock is `skew` off: contact times (server clock) are moved
/// onto the PC's clock by the measured offset, so the recording covers the
/// contact as the PC recorded it.
async fn skewed_contact_is_cropped_on_the_pc_clock(skew: i64) {
    let s = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let id = enroll_agent(&s, &dir).await;
    let clock: Arc<dyn Clock> = Arc::new(deskrec_agent::clock::SkewedClock { skew_us: skew });
    // The contact: 6 minutes, ending 4 minutes ago (server clock).
    let now = SystemClock.now();
    let (start, end) = (now - 600 * SECOND, now - 240 * SECOND);
    // What the PC recorded, on its own clock: a minute either side.
    write_segment(
        &dir.segments(),
        &id.device_id,
        start + skew - 60 * SECOND,
        480,
    );
    // ann is not eligible here, so the PC's recorder does not run beside
    // the segment written above.
    let agent = Agent::start(config(&dir, ANN, clock)).await.unwrap();
    let r = wait_status(&dir, WAIT, "a clock offset", |r| r.clock_offset.is_some()).await;
    let measured = r.clock_offset.unwrap().offset_us;
    assert!(
        (measured + skew).abs() < 100_000,
        "offset {measured} for a skew of {skew}"
    );

    import_contact(&s, "c-skew", ANN, start, end).await;
    wait_contact_status(&s, "c-skew", "uploaded", WAIT).await;
    let manifests = stored_manifests(&s);
    assert_eq!(manifests.len(), 1);
    let m = &manifests[0];
    // Padded by 1 s, on the PC's clock, within the offset's precision.
    let near = |got: i64, want: i64| (got - want).abs() < 100_000;
    assert!(
        near(m.requested.start, start + skew - SECOND),
        "{:?}",
        m.requested
    );
    assert!(
        near(m.requested.end, end + skew + SECOND),
        "{:?}",
        m.requested
    );
    assert_eq!(m.trim, m.requested, "the segment covers all of it");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pc_clock_five_minutes_ahead_still_crops_the_contact() {
    skewed_contact_is_cropped_on_the_pc_clock(300 * SECOND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pc_clock_five_minutes_behind_still_crops_the_contact() {
    skewed_contact_is_cropped_on_the_pc_clock(-300 * SECOND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_cut_mid_upload_resumes_from_the_servers_offset() {
    const PIECE: u64 = 8 << 10;
    let s = TestServer::start().await;
    let (proxy, _tmp, dir) = eligible_behind_proxy(&s).await;
    let mut cfg = config(&dir, ANN, Arc::new(SystemClock));
    cfg.upload_chunk_bytes = PIECE as usize;
    let agent = Agent::start(cfg).await.unwrap();
    recording_for(&dir, 4).await;

    // A slow line, so the upload takes a few seconds.
    proxy.throttle(32 << 10);
    let now = SystemClock.now();
    import_contact(&s, "c-cut", ANN, now - 3 * SECOND, now - SECOND).await;
    let r = wait_status(&dir, WAIT, "the upload under way", |r| {
        r.uploads.first().is_some_and(|u| u.offset >= 2 * PIECE)
    })
    .await;
    proxy.cut();
    let up = &r.uploads[0];
    assert!(up.offset < up.bytes, "cut mid-upload: {up:?}");
    wait_status(&dir, WAIT, "offline", |r| {
        r.server.connection == deskrec_agent::Connection::Offline
    })
    .await;
    // The server keeps what arrived, the interrupted PATCH's bytes too
    // (recorded once its handler sees the body end).
    let mut ups = server_uploads(&s, "c-cut");
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = server_uploads(&s, "c-cut");
        if now == ups {
            break;
        }
        ups = now;
    }
    assert_eq!(ups.len(), 1, "{ups:?}");
    let (length, received, state) = ups[0].clone();
    assert_eq!((length, state.as_str()), (up.bytes, "receiving"));
    assert!(
        received >= up.offset && received < length,
        "{received} of {length}"
    );
    let patches = successful_patches(&s).await;

    proxy.heal();
    wait_contact_status(&s, "c-cut", "uploaded", WAIT).await;
    wait_status(&dir, WAIT, "done", |r| r.contacts.done == 1).await;
    // Resumed where the server was: only the rest was sent, in the same
    // upload.
    assert_eq!(
        successful_patches(&s).await - patches,
        (length - received).div_ceil(PIECE),
        "PATCHes after the cut, from {received} of {length}"
    );
    assert_stored_once(&s, "c-cut").await;
    assert_eq!(local_recordings(&dir), 0);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg(target_os = "linux")] // ffmpeg and the decoder fixture
async fn the_exported_video_starts_and_ends_with_what_was_on_screen() {
    let s = TestServer::start().await;
    let (_tmp, dir) = eligible_enrolled(&s).await;
    let (mut cfg, opened) = numbered_config(&dir, ANN);
    cfg.pad = Duration::ZERO;
    let agent = Agent::start(cfg).await.unwrap();
    recording_for(&dir, 4).await;

    // Times inside pictures, not on their edges.
    let now = SystemClock.now();
    let (start, end) = (now - 3 * SECOND + 50_000, now - SECOND - 70_000);
    import_contact(&s, "c-frames", ANN, start, end).await;
    wait_contact_status(&s, "c-frames", "uploaded", WAIT).await;
    agent.shutdown().await;

    let opened = opened.lock().unwrap().clone();
    assert_eq!(opened.len(), 1, "the recorder opened the source once");
    let on_screen = |t: i64| ((t - opened[0]) / FRAME_US) as u32;
    let numbers = exported_picture_numbers(&s, &dir);
    let (first, last) = (numbers[0], *numbers.last().unwrap());
    assert!(
        first.abs_diff(on_screen(start)) <= 1,
        "first picture {first}, on screen at the start {}: {numbers:?}",
        on_screen(start)
    );
    assert!(
        last.abs_diff(on_screen(end)) <= 1,
        "last picture {last}, on screen at the end {}: {numbers:?}",
        on_screen(end)
    );
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
}

/// Sets the server's upload limits (two uploads at a time).
async fn set_upload_limits(s: &TestServer, max_recording_bytes: u64, cap: Option<u64>) {
    let upload = serde_json::json!({"max_recording_bytes": max_recording_bytes,
                                    "max_parallel": 2, "max_bytes_per_second": cap});
    s.admin(
        "PATCH",
        "/settings",
        serde_json::json!({ "upload": upload }),
    )
    .await;
}

/// The server's upload rows for `contact`: (length, created_at, updated_at).
fn upload_times(s: &TestServer, contact: &str) -> (u64, i64, i64) {
    server_db(s).query_row(
        "SELECT length, created_at, updated_at FROM uploads WHERE contact_id = ?1 AND state = 'stored'",
        [contact],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_uploads_share_the_bandwidth_cap() {
    const CAP: u64 = 16 << 10;
    let s = TestServer::start().await;
    eligible_setup(&s).await;
    set_upload_limits(&s, 1 << 30, Some(CAP)).await;
    let tmp = tempfile::tempdir().unwrap();
    let (agent, dir) = start_agent(&s, tmp.path(), ANN, Arc::new(SystemClock)).await;
    recording_for(&dir, 6).await;
    let now = SystemClock.now();
    // Two contacts over the same time: two recordings, uploaded together.
    for id in ["c-a", "c-b"] {
        import_contact(&s, id, ANN, now - 5 * SECOND, now - SECOND).await;
    }
    for id in ["c-a", "c-b"] {
        wait_contact_status(&s, id, "uploaded", Duration::from_secs(120)).await;
    }
    agent.shutdown().await;
    let (a, b) = (upload_times(&s, "c-a"), upload_times(&s, "c-b"));
    let bytes = a.0 + b.0;
    // At this cap a piece is the pacer's smallest, 16 KiB: one second's
    // worth (the pacer's unit tests check the rule).
    let piece = CAP;
    assert!(bytes > 3 * piece, "recordings big enough to pace: {bytes}");
    // Together they took at least their bytes at the cap, less the last
    // piece (sent, not waited for).
    let took = a.2.max(b.2) - a.1.min(b.1);
    let least = (bytes - piece) as f64 / CAP as f64 * 1e6;
    assert!(
        took as f64 >= least * 0.95,
        "{bytes} bytes in {took} µs: over the cap of {CAP} B/s"
    );
    // And they overlapped: the second started before the first ended.
    assert!(a.1.max(b.1) < a.2.min(b.2), "{a:?} {b:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_over_the_servers_limit_is_reported_too_large() {
    let s = TestServer::start().await;
    eligible_setup(&s).await;
    set_upload_limits(&s, 1000, None).await;
    let tmp = tempfile::tempdir().unwrap();
    let (agent, dir) = start_agent(&s, tmp.path(), ANN, Arc::new(SystemClock)).await;
    recording_for(&dir, 4).await;
    let now = SystemClock.now();
    import_contact(&s, "c-big", ANN, now - 3 * SECOND, now - SECOND).await;
    let c = wait_contact_status(&s, "c-big", "unrecoverable", WAIT).await;
    let reason = c["status_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("too_large") && reason.contains("max_recording_bytes"),
        "{c}"
    );
    assert!(server_uploads(&s, "c-big").is_empty(), "nothing was sent");
    wait_status(&dir, WAIT, "the recording given up", |r| {
        r.contacts.unrecoverable == 1
    })
    .await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_erased_while_the_pc_was_offline_is_refused_once_and_its_recording_deleted() {
    let s = TestServer::start().await;
    let (proxy, _tmp, dir, agent) = spliced_while_offline(&s, "c-erased").await;
    assert_eq!(local_recordings(&dir), 1, "the recording waits on the PC");

    // Meanwhile the customer's erasure request is carried out.
    let erased = s.erase("c-erased").await;
    assert_eq!(erased["disposal"]["state"], "erased", "{erased}");
    let before = upload_requests(&s).await;

    proxy.heal();
    let r = wait_status(&dir, WAIT, "the contact disposed", |r| {
        r.contacts.disposed == 1
    })
    .await;
    // No contact with work left: none holds segments back from retention.
    assert_eq!(
        (
            r.contacts.queued,
            r.contacts.splicing,
            r.contacts.uploading,
            r.contacts.done
        ),
        (0, 0, 0, 0),
        "{r:#?}"
    );
    assert_eq!(local_recordings(&dir), 0, "the local recording is deleted");
    // The agent says why.
    let db = rusqlite::Connection::open(dir.db_path()).unwrap();
    let (state, reason, detail): (String, String, String) = db
        .query_row(
            "SELECT state, reason, detail FROM contacts WHERE contact_id = 'c-erased'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((state.as_str(), reason.as_str()), ("disposed", "erased"));
    assert!(detail.contains("erased on the server"), "{detail}");

    // The server stored nothing, and was asked once: it refused the
    // creation, and the agent never tried again.
    assert!(
        stored_recordings(&s).is_empty(),
        "{:?}",
        stored_recordings(&s)
    );
    assert!(server_uploads(&s, "c-erased").is_empty());
    assert_eq!(s.audited("upload.refused", "c-erased").await.len(), 1);
    assert_eq!(
        upload_requests(&s).await - before,
        1,
        "one refused creation"
    );
    // Several of the tests' back-offs (at most 1 s) later, still nothing.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(upload_requests(&s).await - before, 1, "never retried");
    assert_eq!(local_recordings(&dir), 0);
    agent.shutdown().await;
}

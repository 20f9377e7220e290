//! `kill -9` of the `deskrec-agent` process while it records and while it
//! splices and uploads: after a restart the contact is uploaded exactly
//! once and nothing is left behind.

use crate::common;

use std::time::Duration;

use deskrec_agent::DataDir;
use deskrec_agent::clock::{Clock, SystemClock};
use deskrec_protocol::RecordingState;

use common::*;

const WAIT: Duration = Duration::from_secs(30);
const SECOND: i64 = 1_000_000;

/// Whether the agent is recording into at least one segment.
fn is_recording(r: &deskrec_agent::status::StatusReport) -> bool {
    r.state == RecordingState::Recording && r.segments.count >= 1
}

/// Starts the agent on `dir` and waits until it records.
async fn start_recording(dir: &DataDir) -> AgentProcess {
    let agent = AgentProcess::run(dir);
    wait_status(dir, WAIT, "recording", is_recording).await;
    agent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_recording_and_while_uploading_the_contact_arrives_once() {
    let s = TestServer::start().await;
    let (_tmp, dir) = eligible_enrolled(&s).await;

    let agent = start_recording(&dir).await;
    let start = SystemClock.now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    agent.kill9().await;
    let end = SystemClock.now();

    // Back up: recording goes on in a new segment; the cut one stays
    // readable up to its last chunk.
    let agent = AgentProcess::run(&dir);
    wait_status(&dir, WAIT, "recording again", |r| {
        is_recording(r) && r.segments.count >= 2
    })
    .await;
    import_contact(&s, "c-kill", ANN, start, end).await;
    // Killed again while the contact is being stored, spliced or sent.
    wait_for(WAIT, "the contact relayed", || async {
        let c = server_contact(&s, "c-kill").await;
        (c["deliveries"][0]["acknowledged"] == true).then_some(())
    })
    .await;
    agent.kill9().await;

    let agent = AgentProcess::run(&dir);
    wait_contact_status(&s, "c-kill", "uploaded", WAIT).await;
    let r = wait_status(&dir, WAIT, "done", |r| r.contacts.done == 1).await;
    assert_eq!(
        r.contacts.uploading + r.contacts.queued + r.contacts.splicing,
        0
    );
    let manifests = stored_manifests(&s);
    assert_eq!(manifests.len(), 1, "stored once");
    // It comes from the segment the first kill cut: the padding is
    // clipped to where recording began and where it was cut.
    let trim = manifests[0].trim;
    assert!(
        trim.start <= start && trim.start >= start - SECOND - 100_000,
        "{trim:?} for {start}"
    );
    assert!(trim.end <= end + SECOND + 100_000, "{trim:?} for {end}");
    assert_eq!(local_recordings(&dir), 0, "nothing left behind");
    agent.kill9().await;
}

/// The last contact of the day: the PC is shut down (or loses power)
/// before the contact reaches the server, the contact is imported while
/// the PC is off, and the next morning's agent uploads its recording.
async fn end_of_day(power_cut: bool) {
    let s = TestServer::start().await;
    let (_tmp, dir) = eligible_enrolled(&s).await;

    let agent = start_recording(&dir).await;
    let start = SystemClock.now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let end = SystemClock.now();
    // Past the end and its padding, and (for the power cut) past the
    // chunk that holds them: only whole chunks survive a crash.
    tokio::time::sleep(Duration::from_secs(3)).await;
    if power_cut {
        agent.kill9().await;
    } else {
        // SIGTERM exists on Unix only; the Windows build compiles this
        // function for the power-cut case alone.
        #[cfg(unix)]
        {
            agent.terminate().await;
            let r = deskrec_agent::status::report(&dir).unwrap();
            assert_eq!(r.reason, "agent_stopped", "{r:#?}");
        }
        #[cfg(not(unix))]
        unreachable!("graceful shutdown is tested on Unix only");
    }

    import_contact(&s, "c-evening", ANN, start, end).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(server_contact(&s, "c-evening").await["status"], "pending");

    // Next morning: a new process on the same data directory.
    let agent = AgentProcess::run(&dir);
    wait_contact_status(&s, "c-evening", "uploaded", WAIT).await;
    let r = wait_status(&dir, WAIT, "done", |r| r.contacts.done == 1).await;
    assert_eq!(
        r.contacts.uploading + r.contacts.queued + r.contacts.splicing,
        0
    );
    assert_stored_once(&s, "c-evening").await;
    let trim = stored_manifests(&s)[0].trim;
    assert!(
        trim.start <= start && trim.end >= end,
        "{trim:?} for {start}..{end}"
    );
    assert_eq!(local_recordings(&dir), 0, "nothing left behind");
    agent.kill9().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shut_down_after_the_last_contact_the_recording_is_uploaded_next_morning() {
    end_of_day(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cut_after_the_last_contact_the_recording_is_uploaded_next_morning() {
    end_of_day(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_upload_before_the_local_copy_is_deleted_it_goes_once() {
    let s = TestServer::start().await;
    let (proxy, _tmp, dir) = eligible_behind_proxy(&s).await;

    let agent = start_recording(&dir).await;
    let start = SystemClock.now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let end = SystemClock.now();
    import_contact(&s, "c-ack", ANN, start, end).await;
    wait_for(WAIT, "the contact relayed", || async {
        let c = server_contact(&s, "c-ack").await;
        (c["deliveries"][0]["acknowledged"] == true).then_some(())
    })
    .await;
    // The line goes down before the contact is spliced: the recording
    // waits, and now its size is known.
    proxy.cut();
    let r = wait_status(&dir, WAIT, "spliced", |r| !r.uploads.is_empty()).await;
    let bytes = r.uploads[0].bytes;
    assert_eq!(r.uploads[0].offset, 0);

    // Back, but the server's answers stop once the whole recording is on
    // its way: the server stores it, the agent never hears so.
    proxy.heal();
    proxy.hold_answers_after(bytes);
    wait_contact_status(&s, "c-ack", "uploaded", WAIT).await;
    assert!(proxy.holding());
    agent.kill9().await;
    let r = deskrec_agent::status::report(&dir).unwrap();
    assert_eq!(r.contacts.uploading, 1, "{r:#?}");
    assert_eq!(local_recordings(&dir), 1, "the local copy is still there");

    proxy.cut();
    proxy.heal();
    let agent = AgentProcess::run(&dir);
    let r = wait_status(&dir, WAIT, "done", |r| r.contacts.done == 1).await;
    assert_eq!(
        r.contacts.uploading + r.contacts.queued + r.contacts.splicing,
        0
    );
    wait_for(WAIT, "the local copy deleted", || async {
        (local_recordings(&dir) == 0).then_some(())
    })
    .await;
    assert_stored_once(&s, "c-ack").await;
    assert_eq!(server_contact(&s, "c-ack").await["status"], "uploaded");
    agent.kill9().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_splicing_the_contact_arrives_once() {
    let s = TestServer::start().await;
    let (_tmp, dir) = eligible_enrolled(&s).await;

    let agent = start_recording(&dir).await;
    // (After the start, which clears leftovers there.) A file where the recordings directory goes: the splice cannot write
    // its output and the contact stays `splicing`, retried.
    std::fs::write(dir.recordings(), b"in the way").unwrap();
    let start = SystemClock.now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let end = SystemClock.now();
    import_contact(&s, "c-splice", ANN, start, end).await;
    wait_status(&dir, WAIT, "splicing", |r| {
        r.contacts.splicing == 1 && r.last_error.is_some()
    })
    .await;
    agent.kill9().await;

    std::fs::remove_file(dir.recordings()).unwrap();
    let agent = AgentProcess::run(&dir);
    wait_contact_status(&s, "c-splice", "uploaded", WAIT).await;
    let r = wait_status(&dir, WAIT, "done", |r| r.contacts.done == 1).await;
    assert_eq!(
        r.contacts.uploading + r.contacts.queued + r.contacts.splicing,
        0
    );
    assert_stored_once(&s, "c-splice").await;
    assert_eq!(local_recordings(&dir), 0, "nothing left behind");
    agent.kill9().await;
}

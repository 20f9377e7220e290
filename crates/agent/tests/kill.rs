//! `kill -9` of the `deskrec-agent` process while it records and while it
//! splices and uploads: after a restart the contact is uploaded exactly
//! once and nothing is left behind.

mod common;

use std::process::Stdio;
use std::time::Duration;

use deskrec_agent::DataDir;
use deskrec_agent::clock::{Clock, SystemClock};
use deskrec_protocol::RecordingState;
use tokio::process::{Child, Command};

use common::*;

const WAIT: Duration = Duration::from_secs(30);
const SECOND: i64 = 1_000_000;

fn run(dir: &DataDir) -> Child {
    Command::new(env!("CARGO_BIN_EXE_deskrec-agent"))
        .args([
            "run",
            "--login",
            ANN,
            "--pad-seconds",
            "1",
            "--source",
            "synthetic",
        ])
        .arg("--data-dir")
        .arg(dir.root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn kill9(mut child: Child) {
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_recording_and_while_uploading_the_contact_arrives_once() {
    let s = TestServer::start().await;
    eligible_setup(&s).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    enroll_agent(&s, &dir).await;

    let agent = run(&dir);
    let recording = |r: &deskrec_agent::status::StatusReport| {
        r.state == RecordingState::Recording && r.segments.count >= 1
    };
    wait_status(&dir, WAIT, "recording", recording).await;
    let start = SystemClock.now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    kill9(agent).await;
    let end = SystemClock.now();

    // Back up: recording goes on in a new segment; the cut one stays
    // readable up to its last chunk.
    let agent = run(&dir);
    wait_status(&dir, WAIT, "recording again", |r| {
        recording(r) && r.segments.count >= 2
    })
    .await;
    import_contact(&s, "c-kill", ANN, start, end).await;
    // Killed again while the contact is being stored, spliced or sent.
    wait_for(WAIT, "the contact relayed", || async {
        let c = server_contact(&s, "c-kill").await;
        (c["deliveries"][0]["acknowledged"] == true).then_some(())
    })
    .await;
    kill9(agent).await;

    let agent = run(&dir);
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
    kill9(agent).await;
}

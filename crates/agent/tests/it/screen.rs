//! The whole chain on a real screen: Xvfb, the X11 source, the recorder,
//! the agent, the real server over TLS, the vault's export and ffmpeg. A
//! painter shows numbered pictures at known times; the contact's recording
//! must start and end with what was on screen at the contact's start and
//! end.

#![cfg(target_os = "linux")]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use deskrec_agent::Agent;
use deskrec_agent::clock::{Clock, SystemClock};
use deskrec_capture::X11Source;
use deskrec_capture::testing::{Painter, Xvfb, require_program};
use deskrec_protocol::RecordingState;

use common::{
    ANN, TestServer, config, eligible_enrolled, exported_video, import_contact,
    wait_contact_status, wait_status,
};

const WAIT: Duration = Duration::from_secs(30);
/// How long each painted picture stays on screen: two frames at 5 fps, so
/// every picture is captured at least once.
const PICTURE: Duration = Duration::from_millis(400);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recording_of_the_real_screen_starts_and_ends_with_what_was_shown() {
    let Some(xvfb) = Xvfb::start(640, 360) else {
        return;
    };
    if !require_program("ffmpeg", "ffmpeg") {
        return;
    }
    let painter = Painter::new(&xvfb);
    painter.show(0);
    let s = TestServer::start().await;
    let (_tmp, dir) = eligible_enrolled(&s).await;
    let mut cfg = config(&dir, ANN, Arc::new(SystemClock));
    cfg.pad = Duration::ZERO;
    let options = xvfb.options();
    cfg.source = Arc::new(move || Ok(Box::new(X11Source::open(&options)?)));
    let agent = Agent::start(cfg).await.unwrap();
    wait_status(&dir, WAIT, "recording the screen", |r| {
        r.state == RecordingState::Recording && r.current_segment.is_some()
    })
    .await;

    // Pictures 1..=12, each on screen from the time noted to the next.
    let mut shown = vec![0];
    for n in 1..=12 {
        painter.show(n);
        painter.sync();
        shown.push(SystemClock.now());
        tokio::time::sleep(PICTURE).await;
    }
    // Contact times in the middle of pictures 3 and 9.
    let half = PICTURE.as_micros() as i64 * 3 / 4;
    let (start, end) = (shown[3] + half, shown[9] + half);
    import_contact(&s, "c-screen", ANN, start, end).await;
    wait_contact_status(&s, "c-screen", "uploaded", WAIT).await;
    agent.shutdown().await;

    let video = exported_video(&s, &dir);
    let numbers: Vec<u32> = video
        .frames
        .iter()
        .map(|f| f.number().expect("a numbered picture in every frame"))
        .collect();
    let (first, last) = (numbers[0], *numbers.last().unwrap());
    assert!(
        first.abs_diff(3) <= 1 && last.abs_diff(9) <= 1,
        "{numbers:?}"
    );
    assert!(numbers.windows(2).all(|w| w[0] <= w[1]), "{numbers:?}");
    let duration = video.frames.last().unwrap().time_us - video.frames[0].time_us;
    assert!(
        (duration - (end - start)).abs() <= 2 * 200_000,
        "{duration} µs of pictures for a {} µs contact",
        end - start
    );
}

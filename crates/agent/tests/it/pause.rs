//! Pauses with the real agent and server: by the agent, by the contact
//! centre's systems (the API, relayed over RTE), and by a window rule; and
//! on a real screen (Xvfb), a card number painted while recording is
//! paused is in no frame of the exported recording, while the same test
//! without a pause finds it.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use deskrec_agent::clock::{Clock, SystemClock};
use deskrec_agent::{Agent, AgentError};
use deskrec_protocol::RecordingState;
use serde_json::{Value, json};

use common::{ANN, TestServer, config, eligible_enrolled, server_db, wait_for, wait_status};
// Only the X11 test (Linux) imports a contact and waits for its upload.
#[cfg(target_os = "linux")]
use common::{import_contact, wait_contact_status};

const WAIT: Duration = Duration::from_secs(30);
const REASON: &str = "card_payment";

/// The pause settings every test uses: agents may pause for
/// [`REASON`], at most `max_seconds`; a window whose title says
/// "payment" pauses recording.
async fn pause_settings(s: &TestServer, max_seconds: u32) {
    s.admin(
        "PATCH",
        "/settings",
        json!({"pause": {"agent_reasons": [REASON], "max_seconds": max_seconds,
                         "rules": [{"reason": REASON, "title": "payment"}]}}),
    )
    .await;
}

/// Waits until the agent's recorder records the paused picture (or, with
/// `paused` false, the screen again).
async fn wait_paused(dir: &deskrec_agent::DataDir, paused: bool) {
    wait_status(
        dir,
        WAIT,
        if paused { "paused" } else { "recording again" },
        |r| {
            (r.state == RecordingState::Paused && r.reason == "paused") == paused
                && (paused || r.state == RecordingState::Recording)
        },
    )
    .await;
}

/// An agent on the synthetic screen, once it records.
async fn recording_agent(dir: &deskrec_agent::DataDir) -> Agent {
    let agent = Agent::start(config(dir, ANN, Arc::new(SystemClock)))
        .await
        .unwrap();
    wait_status(dir, WAIT, "recording", |r| {
        r.state == RecordingState::Recording
    })
    .await;
    agent
}

/// The server's audit rows of `action`, as (target, detail).
fn server_audit(s: &TestServer, action: &str) -> Vec<(String, Value)> {
    let db = server_db(s);
    let mut stmt = db
        .prepare("SELECT target, detail FROM audit WHERE action = ?1 ORDER BY id")
        .unwrap();
    stmt.query_map([action], |r| {
        Ok((
            r.get::<_, String>(0)?,
            serde_json::from_str(&r.get::<_, String>(1)?).unwrap(),
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Waits until the server has audited `n` rows of `action`.
async fn wait_server_audit(s: &TestServer, action: &str, n: usize) -> Vec<(String, Value)> {
    wait_for(WAIT, &format!("{n} {action} rows"), || async {
        let rows = server_audit(s, action);
        (rows.len() >= n).then_some(rows)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_pause_needs_a_reason_the_policy_allows_and_ends_at_its_maximum() {
    let s = TestServer::start().await;
    let (_tmp, dir) = eligible_enrolled(&s).await;
    let agent = recording_agent(&dir).await;
    let handle = agent.handle();
    // The default policy lets no agent pause.
    let refused = handle.pause(REASON).await.unwrap_err();
    assert!(matches!(refused, AgentError::Refused(_)), "{refused}");

    pause_settings(&s, 2).await;
    wait_for(WAIT, "the pause policy", || async {
        Some(()).filter(|_| handle.status().pause_reasons == [REASON])
    })
    .await;
    let refused = handle.pause("lunch").await.unwrap_err();
    assert!(refused.to_string().contains("card_payment"), "{refused}");
    assert!(handle.status().pause.is_none());

    let pause = handle.pause(REASON).await.unwrap();
    assert_eq!(handle.status().pause.map(|p| p.id), Some(pause.id.clone()));
    let until = pause.until.unwrap();
    assert!(
        (until - pause.started_at - 2_000_000).abs() < 1000,
        "{pause:?}"
    );
    wait_paused(&dir, true).await;
    // The status says when the recorder stopped recording the screen: at
    // once, not at its next tick.
    let shown = handle.status().pause.unwrap();
    let in_effect = shown.in_effect_at.expect("in effect once paused");
    assert!(
        (pause.started_at..pause.started_at + 1_000_000).contains(&in_effect),
        "{shown:?}"
    );
    // No resume asked: it ends by itself after 2 s.
    wait_paused(&dir, false).await;
    assert!(handle.status().pause.is_none());
    assert!(SystemClock.now() >= until);

    let audit = handle.audit(50).await.unwrap();
    let start = audit.iter().find(|a| a.action == "pause.start").unwrap();
    let end = audit.iter().find(|a| a.action == "pause.end").unwrap();
    assert_eq!(
        (start.target.as_str(), end.target.as_str()),
        (pause.id.as_str(), pause.id.as_str())
    );
    assert!(
        start.detail.contains(REASON) && start.detail.contains("\"agent\""),
        "{start:?}"
    );
    assert!(end.detail.contains("expired"), "{end:?}");
    // The server heard both, with the reason.
    let starts = wait_server_audit(&s, "pause.start", 1).await;
    let ends = wait_server_audit(&s, "pause.end", 1).await;
    assert_eq!(starts[0].1["reason"], REASON);
    assert_eq!(starts[0].1["source"], "agent");
    assert_eq!(ends[0].1["end"], "expired");
    assert!(starts[0].0.ends_with(&pause.id));
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_pauses_by_login_and_by_device_and_resumes_by_itself() {
    let s = TestServer::start().await;
    let (_tmp, dir) = eligible_enrolled(&s).await;
    pause_settings(&s, 60).await;
    let agent = recording_agent(&dir).await;
    let device = agent.handle().status().device_id.unwrap();

    // By login, resumed by the API.
    let answer = s
        .admin(
            "POST",
            "/pauses",
            json!({"windows_login": ANN, "reason": REASON, "requested_by": "payment-ivr"}),
        )
        .await;
    assert_eq!(answer["devices"], json!([device]));
    assert_eq!(answer["max_seconds"], 60);
    wait_paused(&dir, true).await;
    let id = answer["pause_id"].as_str().unwrap();
    assert_eq!(agent.handle().status().pause.unwrap().id, id);
    s.admin("POST", &format!("/pauses/{id}/resume"), json!({}))
        .await;
    wait_paused(&dir, false).await;

    // By device, for 2 s: no resume needed.
    let answer = s
        .admin(
            "POST",
            "/pauses",
            json!({"device_id": device, "reason": REASON, "max_seconds": 2}),
        )
        .await;
    assert_eq!(answer["max_seconds"], 2);
    wait_paused(&dir, true).await;
    wait_paused(&dir, false).await;

    // Audited on the server: the requests, the resume, and what the PC did.
    assert_eq!(server_audit(&s, "pause.request").len(), 2);
    assert_eq!(server_audit(&s, "pause.resume").len(), 1);
    let ends = wait_server_audit(&s, "pause.end", 2).await;
    let how: Vec<&str> = ends
        .iter()
        .map(|(_, d)| d["end"].as_str().unwrap())
        .collect();
    assert_eq!(how, ["resumed", "expired"]);
    let starts = server_audit(&s, "pause.start");
    assert_eq!(starts[0].1["requested_by"], "payment-ivr");
    assert!(
        starts
            .iter()
            .all(|(_, d)| d["source"] == "api" && d["reason"] == REASON)
    );

    // A login on no PC, a device that does not exist, a bad request.
    for (body, status) in [
        (json!({"windows_login": "nobody", "reason": REASON}), 404),
        (json!({"device_id": "no-such-pc", "reason": REASON}), 404),
        (json!({"reason": REASON}), 422),
        (json!({"windows_login": ANN, "reason": ""}), 422),
    ] {
        let (got, _) = s
            .request(
                "POST",
                "/api/v1/admin/pauses",
                Some(&s.admin_token),
                "application/json",
                &body.to_string(),
            )
            .await;
        assert_eq!(got, status, "{body}");
    }
    agent.shutdown().await;
    // Offline: the API says the PC cannot be paused.
    let (got, body) = s
        .request(
            "POST",
            "/api/v1/admin/pauses",
            Some(&s.admin_token),
            "application/json",
            &json!({"device_id": device, "reason": REASON}).to_string(),
        )
        .await;
    assert_eq!(got, 409, "{body}");
}

/// The screen tests: Xvfb and a real X11 capture.
#[cfg(target_os = "linux")]
mod screen {
    use super::*;
    use deskrec_capture::testing::{Painter, WindowManager, Xvfb, require_program};
    use deskrec_capture::{X11Foreground, X11Source};

    /// A card number in large type, where it is painted.
    const SECRET: &str = "4111 1111 1111 1111";
    const AT: (i32, i32) = (16, 300);
    const SCALE: usize = 4;

    /// How the secret test pauses recording, if at all.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Pause {
        None,
        Agent,
        Api,
        Rule,
    }

    /// Records a screen on which [`SECRET`] is painted for 2 s, paused by
    /// `how` around it; returns whether any frame of the contact's
    /// exported recording shows it, and the pauses the server stored for
    /// the recording.
    async fn secret_recorded(how: Pause) -> Option<(bool, Value)> {
        let xvfb = Xvfb::start(640, 360)?;
        if !require_program("ffmpeg", "ffmpeg") {
            return None;
        }
        let painter = Painter::new(&xvfb);
        painter.fill(0, &[(0, 0, 640, 360)]);
        let wm = WindowManager::new(&xvfb);
        let s = TestServer::start().await;
        let (_tmp, dir) = eligible_enrolled(&s).await;
        pause_settings(&s, 60).await;
        let mut cfg = config(&dir, ANN, Arc::new(SystemClock));
        cfg.pad = Duration::ZERO;
        let options = xvfb.options();
        cfg.source = Arc::new(move || Ok(Box::new(X11Source::open(&options)?)));
        let display = xvfb.display().to_owned();
        cfg.foreground = Arc::new(move || Ok(Box::new(X11Foreground::open(Some(&display))?)));
        let agent = Agent::start(cfg).await.unwrap();
        wait_status(&dir, WAIT, "recording the screen", |r| {
            r.state == RecordingState::Recording && r.current_segment.is_some()
        })
        .await;
        // The pause policy has reached the agent (its rules restart the
        // recorder with the probe).
        wait_for(WAIT, "the pause policy", || async {
            Some(()).filter(|_| agent.handle().status().pause_reasons == [REASON])
        })
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let start = SystemClock.now();
        tokio::time::sleep(Duration::from_secs(1)).await;

        let mut api_pause = None;
        let window = wm.create("Checkout: payment", "payterm", "PayTerm");
        match how {
            Pause::None => {}
            Pause::Agent => {
                agent.handle().pause(REASON).await.unwrap();
                wait_paused(&dir, true).await;
            }
            Pause::Api => {
                let answer = s
                    .admin(
                        "POST",
                        "/pauses",
                        json!({"windows_login": ANN, "reason": REASON}),
                    )
                    .await;
                api_pause = Some(answer["pause_id"].as_str().unwrap().to_owned());
                wait_paused(&dir, true).await;
            }
            // The window comes to the front and shows the number at once:
            // the recorder asks the rules again after each picture.
            Pause::Rule => wm.activate(Some(window)),
        }
        painter.write(SECRET, AT, SCALE);
        tokio::time::sleep(Duration::from_secs(2)).await;
        painter.fill(0, &[(0, 0, 640, 360)]);
        match how {
            Pause::None => {}
            Pause::Agent => assert!(agent.handle().resume().await.unwrap()),
            Pause::Api => {
                let id = api_pause.unwrap();
                s.admin("POST", &format!("/pauses/{id}/resume"), json!({}))
                    .await;
            }
            Pause::Rule => wm.activate(None),
        }
        if how != Pause::None {
            wait_paused(&dir, false).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let end = SystemClock.now();
        import_contact(&s, "c-secret", ANN, start, end).await;
        wait_contact_status(&s, "c-secret", "uploaded", WAIT).await;
        agent.shutdown().await;

        let video = common::exported_video(&s, &dir);
        assert!(video.frames.len() >= 5, "{} frames", video.frames.len());
        let (x, y) = (AT.0 as usize, AT.1 as usize);
        let shown = video
            .frames
            .iter()
            .any(|f| f.shows_text(SECRET, (x, y), SCALE));
        let pauses: String = server_db(&s)
            .query_row("SELECT pauses FROM recordings", [], |r| r.get(0))
            .unwrap();
        Some((shown, serde_json::from_str(&pauses).unwrap()))
    }

    /// The paths that pause: no frame shows the secret, and the recording
    /// marks the pause with its reason.
    async fn never_recorded(how: Pause) {
        let Some((shown, pauses)) = secret_recorded(how).await else {
            return;
        };
        assert!(!shown, "{how:?}: a frame shows the card number");
        let spans = pauses.as_array().unwrap();
        assert!(!spans.is_empty(), "{how:?}: no pause in the recording");
        assert!(spans.iter().all(|p| p["reason"] == REASON), "{pauses}");
        let longest = spans
            .iter()
            .map(|p| p["range"]["end"].as_i64().unwrap() - p["range"]["start"].as_i64().unwrap())
            .max()
            .unwrap();
        assert!(longest >= 1_500_000, "{how:?}: {pauses}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_a_pause_the_card_number_is_recorded() {
        // The check that the others can fail.
        if let Some((shown, pauses)) = secret_recorded(Pause::None).await {
            assert!(shown, "the detector misses the card number on screen");
            assert_eq!(pauses, json!([]));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_agent_pause_keeps_the_card_number_out_of_the_recording() {
        never_recorded(Pause::Agent).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_api_pause_keeps_the_card_number_out_of_the_recording() {
        never_recorded(Pause::Api).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_window_rule_keeps_the_card_number_out_of_the_recording() {
        never_recorded(Pause::Rule).await;
    }
}

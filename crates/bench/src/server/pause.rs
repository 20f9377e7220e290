//! The pause relay: how long a pause the contact centre's systems ask for
//! takes to stop the screen being recorded, with 1,000 agents connected.
//!
//! One real agent (the `deskrec-agent` engine, in this process, recording
//! a synthetic 1080p screen at the default 5 fps) joins the simulated
//! fleet. [`PAUSES`] times over, the bench asks the server's API to pause
//! it by login and measures from the start of that call to the moment the
//! agent's recorder handed its first paused picture to the encoder
//! ([`deskrec_agent::PauseView::in_effect_at`], on the same clock). Each
//! pause is then resumed through the API, and the next starts at a random
//! point of the recorder's frame interval.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use deskrec_agent::clock::{Clock, SystemClock};
use deskrec_agent::{Agent, AgentConfig, AgentHandle, DataDir};
use deskrec_capture::SyntheticSource;
use deskrec_client::Method;
use deskrec_protocol::RecordingState;
use serde_json::json;

use super::Admin;
use crate::synth::Rng;

/// Pauses timed.
pub const PAUSES: usize = 50;
/// The real agent's login.
const LOGIN: &str = "BENCH\\pauser";
/// The reason the API gives.
const REASON: &str = "card_payment";
/// Longest wait for any one step (the agent recording, a pause taking
/// effect, a resume).
const STEP_LIMIT: Duration = Duration::from_secs(30);
/// How often the agent's in-memory status is read while waiting.
const POLL: Duration = Duration::from_millis(2);

/// Enrolls and starts the real agent under `work`, times [`PAUSES`] API
/// pauses, stops it; the latencies in ms.
pub async fn run(work: &Path, admin: &mut Admin) -> Result<Vec<f64>> {
    admin.eligible_user("Pat Pauser", LOGIN).await?;
    let token = admin.enrollment_token().await?;
    let dir = DataDir::new(work.join("pause-agent"));
    std::fs::create_dir_all(dir.root())?;
    deskrec_agent::enroll::enroll(&dir, &dir.secret_store(), &token, "BENCH-PAUSE", 0)
        .await
        .context("enrolling the pause bench's agent")?;
    let mut config = AgentConfig::new(dir);
    config.login = Some(LOGIN.to_owned());
    config.source = Arc::new(|| Ok(Box::new(SyntheticSource::new(1920, 1080)?)));
    let agent = Agent::start(config).await?;
    let handle = agent.handle();
    let timed = async {
        wait(&handle, "the agent recording", |s| {
            s.state == RecordingState::Recording
        })
        .await?;
        let mut rng = Rng(15);
        let mut latencies = Vec::with_capacity(PAUSES);
        for _ in 0..PAUSES {
            latencies.push(pause_once(admin, &handle).await?);
            // Start the next pause anywhere within the 200 ms frame
            // interval, as a real ACD's would.
            tokio::time::sleep(Duration::from_millis(300 + rng.below(200) as u64)).await;
        }
        anyhow::Ok(latencies)
    }
    .await;
    agent.shutdown().await;
    timed
}

/// One API pause and its resume; the time to the first paused picture,
/// ms.
async fn pause_once(admin: &mut Admin, handle: &AgentHandle) -> Result<f64> {
    let asked = SystemClock.now();
    let answer = admin
        .call(
            Method::POST,
            "/api/v1/admin/pauses",
            Some(json!({"windows_login": LOGIN, "reason": REASON, "requested_by": "bench"})),
        )
        .await?;
    let id = answer["pause_id"]
        .as_str()
        .context("no pause_id in the answer")?
        .to_owned();
    let shown = wait(handle, "the paused picture", |s| {
        s.pause
            .as_ref()
            .is_some_and(|p| p.id == id && p.in_effect_at.is_some())
    })
    .await?;
    let in_effect = shown
        .pause
        .and_then(|p| p.in_effect_at)
        .context("the status lost the pause it showed")?;
    admin
        .call(
            Method::POST,
            &format!("/api/v1/admin/pauses/{id}/resume"),
            Some(json!({})),
        )
        .await?;
    wait(handle, "the resume", |s| s.pause.is_none()).await?;
    Ok((in_effect - asked) as f64 / 1e3)
}

/// Reads the agent's status until `done` holds.
async fn wait(
    handle: &AgentHandle,
    what: &str,
    done: impl Fn(&deskrec_agent::Status) -> bool,
) -> Result<deskrec_agent::Status> {
    let started = Instant::now();
    loop {
        let status = handle.status();
        if done(&status) {
            return Ok(status);
        }
        if started.elapsed() > STEP_LIMIT {
            bail!(
                "the pause bench's agent: no {what} within {STEP_LIMIT:?}: {} ({})",
                status.reason,
                status.last_error.unwrap_or_default()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

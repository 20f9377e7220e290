//! Recording follows the policy: the controller starts the recorder when
//! the cached policy says record for the session user, stops it when it
//! says stop (or expires, or the user changes), and restarts it when the
//! recording parameters change. The reason is always in the live status.
//!
//! The recorder's threads start and stop on the blocking pool (stopping
//! joins them after the segment is finished).

use std::sync::Arc;
use std::time::Duration;

use deskrec_protocol::{Policy, RecordingState};
use deskrec_recorder::{PauseControl, Recorder, RecorderConfig, RecorderState};
use deskrec_vault::PublicKey;
use tokio::sync::watch;

use crate::AgentError;
use crate::engine::Shared;
use crate::pause::WindowRules;
use crate::policy::{Decision, decide};

/// How often the controller looks at the recorder and the policy's age
/// even when nothing changed.
const TICK: Duration = Duration::from_secs(1);
/// How long after a recorder failure before trying again.
const RETRY: Duration = Duration::from_secs(10);

/// A running recorder and the policy it runs under.
struct Running {
    recorder: Recorder,
    policy: Policy,
}

/// Runs the controller until shutdown; the recorder is stopped (its
/// segment finished) on the way out.
pub(crate) async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut policy_rx = shared.policy.subscribe();
    let mut login_rx = shared.login.subscribe();
    let mut ending_rx = shared.ending.subscribe();
    let mut running: Option<Running> = None;
    let mut failed_at: Option<tokio::time::Instant> = None;
    loop {
        let decision = {
            let login = login_rx.borrow_and_update().clone();
            let cached = policy_rx.borrow_and_update().clone();
            let max_age = shared.config.policy_max_age.as_micros() as i64;
            match *ending_rx.borrow_and_update() {
                // The session or the PC is going: finish the segment now.
                Some(why) => Decision {
                    record: None,
                    state: RecordingState::Paused,
                    reason: format!("session_ending: {why}"),
                },
                None => decide(cached.as_ref(), &login, shared.now(), max_age),
            }
        };
        // Stop when the policy says so, or when its parameters changed
        // (restarted below under the new ones).
        let keep = match (&running, &decision.record) {
            (Some(r), Some(p)) => same_recording(&r.policy, p) && r.recorder.is_running(),
            _ => false,
        };
        if !keep && let Some(r) = running.take() {
            stop(&shared, r).await;
        }
        let mut shown = decision.clone();
        if let (None, Some(policy)) = (&running, &decision.record) {
            let may_retry = failed_at.is_none_or(|t| t.elapsed() >= RETRY);
            if may_retry {
                match start(&shared, policy.clone()).await {
                    Ok(r) => {
                        failed_at = None;
                        running = Some(r);
                    }
                    Err(e) => {
                        failed_at = Some(tokio::time::Instant::now());
                        shared.error("cannot start recording", &e).await;
                    }
                }
            }
            if running.is_none() {
                shown = Decision {
                    record: None,
                    state: RecordingState::Error,
                    reason: "recorder_failed".into(),
                };
            }
        }
        shared.recording.send_replace(running.is_some());
        if let Err(e) = follow_pauses(&shared, running.as_ref()).await {
            shared.error("cannot record a pause", &e).await;
        }
        report(&shared, &shown, running.as_ref()).await;
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = policy_rx.changed() => {}
            _ = login_rx.changed() => {}
            _ = ending_rx.changed() => {}
            _ = shutdown.changed() => {
                if let Some(r) = running.take() {
                    stop(&shared, r).await;
                }
                shared.recording.send_replace(false);
                return;
            }
        }
    }
}

/// Whether a running recorder can go on under `new` (the same key and
/// picture parameters).
fn same_recording(old: &Policy, new: &Policy) -> bool {
    old.fps == new.fps
        && old.segment_seconds == new.segment_seconds
        && old.gop_seconds == new.gop_seconds
        && old.server_key_id == new.server_key_id
        && old.pause.rules == new.pause.rules
}

/// Ends pauses whose time is up and records the recorder's rule pauses.
async fn follow_pauses(shared: &Shared, running: Option<&Running>) -> Result<(), AgentError> {
    crate::pause::expire(shared).await?;
    let paused = running.and_then(|r| r.recorder.status().rule_pause);
    crate::pause::observe_rule(shared, paused.as_deref()).await
}

async fn start(shared: &Arc<Shared>, policy: Policy) -> Result<Running, AgentError> {
    let key = PublicKey::from_pem(&policy.server_public_key_pem)?;
    let config = RecorderConfig {
        segment_dir: shared.config.data_dir.segments(),
        device_id: shared.identity.device_id.clone(),
        fps: policy.fps,
        gop_seconds: policy.gop_seconds as f64,
        segment_seconds: policy.segment_seconds as f64,
        chunk_seconds: shared.config.chunk_seconds.min(policy.gop_seconds as f64),
        ..RecorderConfig::default()
    };
    let source = shared.config.source.clone();
    let foreground = shared.config.foreground.clone();
    let switch = shared.pauses.switch.clone();
    let rules = policy.pause.rules.clone();
    let recorder = tokio::task::spawn_blocking(move || -> Result<Recorder, AgentError> {
        let source = source().map_err(deskrec_recorder::RecorderError::from)?;
        // The rules' probe opens only when there are rules; one that
        // cannot open stops recording from starting (and is retried),
        // rather than record what the rules are there to hide.
        let probe = match rules.is_empty() {
            true => None,
            false => WindowRules::new(
                &rules,
                foreground().map_err(deskrec_recorder::RecorderError::from)?,
            )?,
        };
        let pause = PauseControl::new(
            switch,
            probe.map(|p| Box::new(p) as Box<dyn deskrec_recorder::PauseProbe>),
        );
        Ok(Recorder::start(source, config, key, pause)?)
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    tracing::info!(
        fps = policy.fps,
        segment_seconds = policy.segment_seconds,
        "recording started"
    );
    Ok(Running { recorder, policy })
}

async fn stop(shared: &Shared, r: Running) {
    let result = tokio::task::spawn_blocking(move || r.recorder.stop())
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    match result {
        Ok(status) => tracing::info!(
            segments = status.segments,
            encoded = status.encoded,
            "recording stopped"
        ),
        Err(e) => shared.error("the recorder stopped with an error", &e).await,
    }
}

/// Puts the decision and the recorder's own state into the live status.
async fn report(shared: &Shared, decision: &Decision, running: Option<&Running>) {
    let (mut state, mut reason) = (decision.state, decision.reason.clone());
    let mut segment = None;
    if let Some(r) = running {
        let status = r.recorder.status();
        segment = status.current_segment.map(|p| p.display().to_string());
        match status.state {
            RecorderState::DiskFull(why) => {
                state = RecordingState::Error;
                reason = format!("disk_full: {why}");
            }
            RecorderState::Failed(why) => {
                state = RecordingState::Error;
                reason = format!("recorder_failed: {why}");
            }
            RecorderState::Recording | RecorderState::Stopped => {
                if status.paused.is_some() {
                    state = RecordingState::Paused;
                    reason = "paused".into();
                }
            }
        }
    }
    let login = shared.login.borrow().clone();
    shared
        .update_live(|l| {
            l.state = state;
            l.reason = reason;
            l.current_segment = segment;
            l.login = login;
        })
        .await;
}

#[cfg(test)]
mod tests {
    /// A policy's frame rate the recorder or the encoder refused would
    /// stop every agent from recording: the ranges must nest.
    #[test]
    fn every_frame_rate_a_policy_may_ask_for_can_be_recorded() {
        let (policy, encoder) = (
            deskrec_protocol::FPS_RANGE,
            deskrec_capture::encoder::FPS_RANGE,
        );
        assert!(encoder.start() <= policy.start() && policy.end() <= encoder.end());
        let config = |fps| deskrec_recorder::RecorderConfig {
            fps,
            ..Default::default()
        };
        for fps in [*policy.start(), 1.0, *policy.end()] {
            config(fps).validate().unwrap();
        }
    }
}

//! The policy the agent follows, cached so a PC keeps recording offline.
//!
//! The server sends a policy after every hello and when it changes. The
//! agent stores the last one with the login it was for and when it came;
//! it follows it while offline until it is older than the configured
//! maximum age, then pauses (`policy_expired`) until it hears from the
//! server again. A policy for another login never applies.

use deskrec_protocol::{Policy, RecordingState};
use serde::{Deserialize, Serialize};

/// The last policy received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedPolicy {
    /// The policy.
    pub policy: Policy,
    /// The session login it was evaluated for.
    pub login: String,
    /// When it arrived (agent clock, µs).
    pub received_at: i64,
}

/// What the agent should be doing about recording, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The policy to record under, when recording.
    pub record: Option<Policy>,
    /// The state to report.
    pub state: RecordingState,
    /// Why: the policy's reason (`eligible`, `unknown_login`…) or the
    /// agent's own (`no_session_user`, `no_policy`, `policy_expired`,
    /// `policy_for_another_user`).
    pub reason: String,
}

/// Decides from the cached policy, the session login and the time.
pub fn decide(cached: Option<&CachedPolicy>, login: &str, now: i64, max_age_us: i64) -> Decision {
    let pause = |reason: &str| Decision {
        record: None,
        state: RecordingState::Paused,
        reason: reason.into(),
    };
    if login.is_empty() {
        return pause("no_session_user");
    }
    let Some(cached) = cached else {
        return pause("no_policy");
    };
    if !cached.login.eq_ignore_ascii_case(login) {
        return pause("policy_for_another_user");
    }
    if now - cached.received_at > max_age_us {
        return pause("policy_expired");
    }
    let reason = cached.policy.reason.as_str().to_owned();
    if cached.policy.record {
        Decision {
            record: Some(cached.policy.clone()),
            state: RecordingState::Recording,
            reason,
        }
    } else {
        Decision {
            record: None,
            state: RecordingState::NotEligible,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deskrec_protocol::{PolicyReason, RetentionLimits, UploadLimits};

    fn cached(record: bool, reason: PolicyReason) -> CachedPolicy {
        CachedPolicy {
            policy: Policy {
                record,
                reason,
                fps: 5.0,
                segment_seconds: 600,
                gop_seconds: 10,
                retention: RetentionLimits::default(),
                upload: UploadLimits::default(),
                server_public_key_pem: String::new(),
                server_key_id: String::new(),
                desktop: Default::default(),
                server_pins: None,
                pause: Default::default(),
            },
            login: "CORP\\ann".into(),
            received_at: 1_000,
        }
    }

    #[test]
    fn decisions_and_their_reasons() {
        let yes = cached(true, PolicyReason::Eligible);
        let d = decide(Some(&yes), "corp\\ANN", 2_000, 10_000);
        assert_eq!(
            (d.state, d.reason.as_str()),
            (RecordingState::Recording, "eligible")
        );
        assert!(d.record.is_some());
        let no = cached(false, PolicyReason::UserInactive);
        let d = decide(Some(&no), "CORP\\ann", 2_000, 10_000);
        assert_eq!(
            (d.state, d.reason.as_str()),
            (RecordingState::NotEligible, "user_inactive")
        );
        for (c, login, now, reason) in [
            (Some(&yes), "", 2_000, "no_session_user"),
            (None, "CORP\\ann", 2_000, "no_policy"),
            (Some(&yes), "CORP\\bob", 2_000, "policy_for_another_user"),
            (Some(&yes), "CORP\\ann", 20_000, "policy_expired"),
        ] {
            let d = decide(c, login, now, 10_000);
            assert_eq!(
                (d.state, d.reason.as_str(), d.record.is_none()),
                (RecordingState::Paused, reason, true)
            );
        }
    }
}

//! The agent's state as a person reads it: one of four icons, a headline
//! and the reason in plain words. The engine decides this, not the tray
//! app, so every front end says the same thing.
//!
//! Precedence: something needs attention (not enrolled, disk full or at
//! its floor, a recording refused, the recorder failed) over a pause in
//! effect over offline (recording goes on, uploads wait) over recording
//! over not recording.

use deskrec_protocol::{PauseSource, RecordingState};
use serde::{Deserialize, Serialize};

use crate::PauseView;
use crate::engine::{Connection, Live};
use crate::pause::pause_label;

/// How long a one-off alert (a refused upload, segments deleted at the
/// disk floor) keeps the attention icon up.
pub(crate) const ALERT_US: i64 = 3_600_000_000;

/// The icon to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndicatorKind {
    /// The screen is being recorded and the server is reachable.
    Recording,
    /// The screen is not being recorded, for a reason that is not a fault.
    NotRecording,
    /// The server cannot be reached; recording goes on under the cached
    /// policy and uploads wait.
    Offline,
    /// Someone has to do something.
    Attention,
}

/// What the tray icon, its tooltip and the window's banner say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Indicator {
    /// The icon.
    pub kind: IndicatorKind,
    /// A few words: "Recording", "Not recording", …
    pub headline: String,
    /// Why, in a sentence or two, with what to do where there is something.
    pub detail: String,
}

/// A one-off problem the agent should see for a while.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// A few words.
    pub headline: String,
    /// The details.
    pub detail: String,
    /// When it happened (agent clock, µs).
    pub at: i64,
}

/// Why there is no running engine to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Absence {
    /// The PC has no enrollment, and none could be made.
    NotEnrolled {
        /// Why the enrollment from the deployment settings did not
        /// happen, if one was tried.
        why: Option<String>,
    },
    /// Another engine holds the data directory.
    DirectoryInUse {
        /// Who, for people.
        holder: String,
    },
    /// The engine could not start.
    Failed {
        /// Why, for people.
        message: String,
    },
}

impl Indicator {
    fn new(kind: IndicatorKind, headline: &str, detail: String) -> Self {
        Self {
            kind,
            headline: headline.into(),
            detail,
        }
    }

    /// What a running engine's live state and the pause in effect (if
    /// any) say at `now`.
    pub(crate) fn of(live: &Live, pause: Option<&PauseView>, now: i64) -> Self {
        use IndicatorKind::*;
        if let Some(a) = live.alert.as_ref().filter(|a| now - a.at < ALERT_US) {
            return Self::new(Attention, &a.headline, a.detail.clone());
        }
        let login = &live.login;
        let (reason, arg) = match live.reason.split_once(": ") {
            Some((r, a)) => (r, a),
            None => (live.reason.as_str(), ""),
        };
        if live.state == RecordingState::Error {
            let error = live.last_error.clone().unwrap_or_default();
            return match reason {
                "disk_full" => Self::new(
                    Attention,
                    "Disk full",
                    format!(
                        "The disk holding the recordings is full ({arg}). Recording resumes by itself when space is freed."
                    ),
                ),
                _ => Self::new(
                    Attention,
                    "Recording failed",
                    format!(
                        "The screen cannot be recorded: {}. Deskrec tries again every few seconds; if this stays, call IT.",
                        if arg.is_empty() { error.as_str() } else { arg }
                    ),
                ),
            };
        }
        // Connecting counts as offline: while the server cannot be
        // reached, each reconnect attempt would otherwise flip the icon and
        // tooltip to "Recording" and back, every back-off.
        let offline = live.connection != Connection::Connected;
        // A pause shows only where the screen would be recorded without
        // it: the recorder follows a pause within a frame (its state is
        // then `paused`), and a pause changes nothing for a PC that does
        // not record anyway.
        let would_record = live.state == RecordingState::Recording
            || (live.state == RecordingState::Paused && reason == "paused");
        if let Some(p) = pause.filter(|_| would_record) {
            return Self::paused(p, offline);
        }
        if live.state == RecordingState::Recording {
            let locked = if live.locked {
                " The session is locked; recording goes on."
            } else {
                ""
            };
            if offline {
                return Self::new(
                    Offline,
                    "Recording, offline",
                    format!(
                        "The recording server cannot be reached. Your screen is still recorded under the last policy; recordings upload when the server is back.{locked}"
                    ),
                );
            }
            return Self::new(
                Recording,
                "Recording",
                format!(
                    "Your screen is being recorded, as the server's policy for {login} says.{locked}"
                ),
            );
        }
        let why = match reason {
            "starting" | "started" => "Deskrec is starting.".to_string(),
            "no_session_user" => "Nobody is logged on to this PC.".into(),
            "session_ending" => {
                format!("The session is ending ({arg}); the last segment is being finished.")
            }
            "no_policy" => "Waiting for the recording server's policy.".into(),
            "policy_expired" => "The last policy from the recording server is too old to follow; recording resumes when the server is reachable.".into(),
            "policy_for_another_user" => {
                format!("Waiting for the recording server's policy for {login}.")
            }
            "agent_stopped" => "Deskrec is stopped.".into(),
            "rte_disabled" => "Recording is switched off on the recording server.".into(),
            "unknown_login" => format!("The recording server has no user with the login {login}."),
            "user_inactive" => format!("The user {login} is not active on the recording server."),
            "no_record_permission" => {
                format!("None of {login}'s roles on the recording server records the screen.")
            }
            other => format!("Not recording ({other})."),
        };
        if offline {
            return Self::new(
                NotRecording,
                "Not recording, offline",
                format!("{why} The recording server cannot be reached."),
            );
        }
        let headline = if live.state == RecordingState::NotEligible {
            "Not recording: not eligible"
        } else {
            "Not recording"
        };
        Self::new(NotRecording, headline, why)
    }

    /// Recording paused by `p`: who paused, for what, and how it ends.
    fn paused(p: &PauseView, offline: bool) -> Self {
        let label = pause_label(&p.reason);
        let (who, ends) = match p.source {
            PauseSource::Agent => (
                "You paused recording",
                "Resume it from Deskrec when you are done; it resumes by itself at the time limit the policy sets.",
            ),
            PauseSource::Api => (
                "The contact centre's systems paused recording",
                "It resumes when they end the pause, or by itself at the time limit the policy sets.",
            ),
            PauseSource::Rule => (
                "A window in front paused recording",
                "It resumes when that window is no longer in front.",
            ),
        };
        let offline = if offline {
            " The recording server cannot be reached."
        } else {
            ""
        };
        Self::new(
            IndicatorKind::NotRecording,
            &format!("Paused: {label}"),
            format!("{who} ({label}): your screen is not recorded. {ends}{offline}"),
        )
    }

    /// What the app shows when there is no engine.
    pub fn without_engine(absence: &Absence) -> Self {
        match absence {
            Absence::NotEnrolled { why } => Self::new(
                IndicatorKind::Attention,
                "Not enrolled",
                format!(
                    "This PC is not enrolled with a recording server, so nothing is recorded.{} IT deploys Deskrec with the server's address, key fingerprint and an enrollment token, or starts it once with --enroll URL TOKEN.",
                    why.as_ref().map(|w| format!(" {w}.")).unwrap_or_default()
                ),
            ),
            Absence::DirectoryInUse { holder } => Self::new(
                IndicatorKind::Attention,
                "Recorded by another session",
                format!(
                    "Another Deskrec agent on this PC holds the recordings ({holder}). This session's screen is not recorded."
                ),
            ),
            Absence::Failed { message } => Self::new(
                IndicatorKind::Attention,
                "Deskrec cannot start",
                format!("{message}. Call IT."),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(state: RecordingState, reason: &str, connection: Connection) -> Live {
        let mut l = Live::starting("ann".into(), 0);
        l.state = state;
        l.reason = reason.into();
        l.connection = connection;
        l
    }

    #[test]
    fn each_state_has_its_icon_and_words() {
        use Connection::{Connected, Connecting, Offline};
        use IndicatorKind::{Attention, NotRecording, Recording};
        use RecordingState as S;
        let cases = [
            (
                S::Recording,
                "eligible",
                Connected,
                Recording,
                "policy for ann",
            ),
            (
                S::Recording,
                "eligible",
                Offline,
                IndicatorKind::Offline,
                "cannot be reached",
            ),
            (
                S::Recording,
                "eligible",
                Connecting,
                IndicatorKind::Offline,
                "cannot be reached",
            ),
            (
                S::NotEligible,
                "user_inactive",
                Connected,
                NotRecording,
                "ann is not active",
            ),
            (
                S::NotEligible,
                "no_record_permission",
                Connected,
                NotRecording,
                "roles",
            ),
            (
                S::Paused,
                "no_session_user",
                Connected,
                NotRecording,
                "Nobody is logged on",
            ),
            (
                S::Paused,
                "session_ending: logoff",
                Connected,
                NotRecording,
                "ending (logoff)",
            ),
            (
                S::Paused,
                "no_policy",
                Offline,
                NotRecording,
                "cannot be reached",
            ),
            (
                S::Error,
                "disk_full: 0 bytes free",
                Connected,
                Attention,
                "0 bytes free",
            ),
            (
                S::Error,
                "recorder_failed: no display",
                Connected,
                Attention,
                "no display",
            ),
        ];
        for (state, reason, conn, kind, words) in cases {
            let i = Indicator::of(&live(state, reason, conn), None, 0);
            assert_eq!(i.kind, kind, "{reason}: {i:?}");
            assert!(i.detail.contains(words), "{reason}: {i:?}");
        }
    }

    #[test]
    fn an_alert_shows_for_an_hour_over_everything_else() {
        let mut l = live(RecordingState::Recording, "eligible", Connection::Connected);
        l.alert = Some(Alert {
            headline: "Upload refused".into(),
            detail: "the server refused contact c1".into(),
            at: 1_000,
        });
        assert_eq!(
            Indicator::of(&l, None, 2_000).kind,
            IndicatorKind::Attention
        );
        assert_eq!(
            Indicator::of(&l, None, 1_000 + ALERT_US).kind,
            IndicatorKind::Recording
        );
    }

    #[test]
    fn a_pause_names_its_reason_and_who_can_end_it_where_the_screen_would_be_recorded() {
        let pause = |source| PauseView {
            id: "p1".into(),
            source,
            reason: "card_payment".into(),
            started_at: 0,
            until: Some(1),
            in_effect_at: Some(0),
        };
        let recording = live(RecordingState::Recording, "eligible", Connection::Connected);
        let followed = live(RecordingState::Paused, "paused", Connection::Offline);
        for (source, words) in [
            (PauseSource::Agent, "You paused"),
            (PauseSource::Api, "contact centre's systems"),
            (PauseSource::Rule, "window in front"),
        ] {
            for l in [&recording, &followed] {
                let i = Indicator::of(l, Some(&pause(source)), 0);
                assert_eq!(i.kind, IndicatorKind::NotRecording, "{i:?}");
                assert_eq!(i.headline, "Paused: Card payment", "{i:?}");
                assert!(i.detail.contains(words), "{i:?}");
            }
        }
        // Not eligible anyway: that is what the agent needs to know.
        let ne = live(
            RecordingState::NotEligible,
            "user_inactive",
            Connection::Connected,
        );
        let i = Indicator::of(&ne, Some(&pause(PauseSource::Agent)), 0);
        assert_eq!(i.headline, "Not recording: not eligible", "{i:?}");
    }

    #[test]
    fn without_an_engine_someone_must_act() {
        for a in [
            Absence::NotEnrolled { why: None },
            Absence::DirectoryInUse {
                holder: "process 7".into(),
            },
            Absence::Failed {
                message: "disk".into(),
            },
        ] {
            assert_eq!(Indicator::without_engine(&a).kind, IndicatorKind::Attention);
        }
    }
}

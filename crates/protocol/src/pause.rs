//! Pausing recording: the policy's pause settings, the server's pause and
//! resume commands, and the agent's report of every pause.
//!
//! A pause has one of three sources ([`PauseSource`]): the agent at the
//! keyboard (from the tray, where the policy allows it), the contact
//! centre's systems (the server's pause API, relayed as [`PauseCommand`]),
//! or a policy rule matching the window in front. Every pause ends by
//! itself: an agent's or the API's at its maximum duration, a rule's when
//! the window leaves the front.

use serde::{Deserialize, Serialize};

/// How recording may be paused, part of the policy. Absent from older
/// servers' policies: no agent pause, no rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PausePolicy {
    /// The reasons an agent may give to pause from the tray; empty: the
    /// agent may not pause.
    pub agent_reasons: Vec<String>,
    /// Longest pause, seconds: an agent's or the API's pause ends then,
    /// and recording resumes by itself.
    pub max_seconds: u32,
    /// Rules pausing recording while a matching window is in front.
    pub rules: Vec<PauseRule>,
}

/// The defaults: no agent pause, at most 5 minutes, no rules.
impl Default for PausePolicy {
    fn default() -> Self {
        Self {
            agent_reasons: Vec::new(),
            max_seconds: 300,
            rules: Vec::new(),
        }
    }
}

/// Pause while the window in front matches. Patterns are regular
/// expressions, matched case-insensitively in the agent against the
/// window's title, its class (X11 `WM_CLASS`, the Windows class name) and
/// its process's executable name; every pattern given must match. Window
/// titles never leave the PC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseRule {
    /// The reason recorded with the pause, e.g. `card_payment`.
    pub reason: String,
    /// Pattern for the window's title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Pattern for the window's class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Pattern for the process's executable name, e.g. `^payterm(\.exe)?$`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
}

/// Who or what paused recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseSource {
    /// The agent at the keyboard, from the tray.
    Agent,
    /// The contact centre's systems, through the server's API.
    Api,
    /// A policy rule matching the window in front.
    Rule,
}

impl PauseSource {
    /// The wire name, e.g. `api`.
    pub fn as_str(self) -> &'static str {
        match self {
            PauseSource::Agent => "agent",
            PauseSource::Api => "api",
            PauseSource::Rule => "rule",
        }
    }
}

/// The server asks the agent to pause recording (sent at once to the
/// device's RTE session).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseCommand {
    /// The pause's id, chosen by the server; [`ResumeCommand`] and the
    /// agent's [`PauseReport`] name it.
    pub pause_id: String,
    /// Why, e.g. `card_payment`.
    pub reason: String,
    /// Who asked (the API client's name).
    pub requested_by: String,
    /// Recording resumes by itself after this many seconds (the agent
    /// also caps it at its policy's `max_seconds`).
    pub max_seconds: u32,
}

/// The server asks the agent to end a pause.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeCommand {
    /// The pause to end.
    pub pause_id: String,
    /// Who asked.
    pub requested_by: String,
}

/// A pause as the agent recorded it: sent when it starts and again when it
/// ends (at least once; the server keeps the latest by id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseReport {
    /// The pause's id (the server's for an API pause, the agent's own
    /// otherwise).
    pub pause_id: String,
    /// Who or what paused.
    pub source: PauseSource,
    /// Why.
    pub reason: String,
    /// Who asked: the session login, the API client, or the rule's number.
    pub requested_by: String,
    /// The session login when it started.
    pub windows_login: String,
    /// When it started (agent clock, µs).
    pub started_at: i64,
    /// When it would end by itself (agent clock, µs); `None` for a rule's.
    pub until: Option<i64>,
    /// When it ended, once it has (agent clock, µs).
    pub ended_at: Option<i64>,
    /// How it ended: `resumed` (asked), `expired` (its maximum duration),
    /// `window_left` (a rule's window left the front), `recording_stopped`.
    pub end: Option<String>,
}

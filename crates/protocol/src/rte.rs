//! The RTE ("real-time events") channel between an agent and the server.
//!
//! One WebSocket per agent process, text frames, one JSON object per frame,
//! tagged by `type`. The agent opens with [`Hello`]; the server answers with
//! a [`Policy`] and sends a new one whenever the directory changes. Either
//! side ignores nothing silently: an unknown `type` is a decode error, and
//! the server answers it with [`RteError`].

use serde::{Deserialize, Serialize};

/// Version of the RTE protocol this crate speaks, sent in [`Hello`]. The
/// server refuses versions it does not know with an `unsupported_version`
/// error, so incompatible agents fail loudly instead of misreading messages.
pub const PROTOCOL_VERSION: u32 = 1;

/// A message from the agent to the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    /// First message on every connection, and again when the session user
    /// changes.
    Hello(Hello),
    /// Start of an NTP-style clock exchange.
    ClockProbe(ClockProbe),
    /// Periodic status report.
    Heartbeat(Heartbeat),
    /// Every relayed contact up to a sequence number is safely queued on
    /// the agent.
    ContactAck(ContactAck),
    /// The agent cannot provide a relayed contact's recording.
    ContactOutcome(ContactOutcome),
    /// A segment the agent deleted had discrepancies (damage, truncation,
    /// gaps, time running backwards); sent at least once.
    SegmentReport(SegmentReport),
    /// A pause started or ended; sent at least once.
    Pause(crate::PauseReport),
}

/// A message from the server to the agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
// A policy is the largest message by far, and messages live only as long
// as one send or receive: boxing it would cost every reader for nothing.
#[allow(clippy::large_enum_variant)]
pub enum ServerMessage {
    /// Whether and how to record; sent after each Hello and on every
    /// directory change.
    Policy(Policy),
    /// Answer to a [`ClockProbe`].
    ClockReply(ClockReply),
    /// A customer contact this device may hold the screen recording of.
    Contact(ContactRelay),
    /// Every contact ending before a time has been relayed.
    Watermark(Watermark),
    /// A recording was verified and stored: the agent may delete its copy.
    RecordingStored(RecordingStored),
    /// Pause recording now (the contact centre's systems asked).
    Pause(crate::PauseCommand),
    /// End a pause the server started.
    Resume(crate::ResumeCommand),
    /// A protocol-level error; the connection may close after it.
    Error(RteError),
}

/// A contact relayed to a device. Contacts reach a device in `seq` order;
/// a contact id may come again with a higher `seq` when the contact centre
/// corrects its times, and the newer one wins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactRelay {
    /// The device's contact sequence number: strictly increasing per
    /// device, the value [`ContactAck`] and `Hello::last_contact_cursor`
    /// carry back.
    pub seq: u64,
    /// The contact centre's id of the contact.
    pub contact_id: String,
    /// Windows login of the agent who handled it.
    pub windows_login: String,
    /// Start on the server's clock, µs since the Unix epoch.
    pub start: i64,
    /// End on the server's clock, µs since the Unix epoch.
    pub end: i64,
}

/// The agent has committed every contact with `seq <= seq` to its own
/// storage; the server replays only later ones on the next connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactAck {
    /// Highest contiguous sequence number stored.
    pub seq: u64,
}

/// Every contact that ends before `before` (server clock, µs) has been
/// relayed on this connection or an earlier one: segments ending before it
/// that no queued contact overlaps may be deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// The watermark, µs since the Unix epoch, server clock.
    pub before: i64,
}

/// The server holds a verified recording of the contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingStored {
    /// The contact centre's id of the contact.
    pub contact_id: String,
}

/// The agent's final word on a contact it cannot upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactOutcome {
    /// The relay's sequence number.
    pub seq: u64,
    /// The contact centre's id of the contact.
    pub contact_id: String,
    /// Why there is no recording.
    pub reason: UnrecoverableReason,
    /// Details for people (what was missing, which segment was damaged).
    #[serde(default)]
    pub detail: String,
}

/// What the agent found reading a segment whole before deleting it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentFindings {
    /// Intact chunks.
    pub chunks: u64,
    /// Time covered by the intact chunks (agent clock, µs), if any.
    pub range: Option<[i64; 2]>,
    /// The first damaged record, e.g. `chunk 7 at byte N: digest mismatch`.
    pub damage: Option<String>,
    /// The segment has no end record (the recorder or the PC stopped
    /// without finishing it).
    pub truncated: bool,
    /// Time between consecutive chunks that no chunk covers (µs ranges).
    pub gaps: Vec<[i64; 2]>,
    /// Chunks that start before the previous one ends (the clock went back).
    pub time_backwards: u32,
    /// The file could not be read at all.
    pub unreadable: Option<String>,
}

impl SegmentFindings {
    /// Whether anything is wrong (a clean segment is not reported).
    pub fn has_discrepancies(&self) -> bool {
        self.damage.is_some()
            || self.truncated
            || !self.gaps.is_empty()
            || self.time_backwards > 0
            || self.unreadable.is_some()
    }
}

/// A deleted segment's discrepancies, for the server's audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentReport {
    /// The segment's start (agent clock, µs): with the device, its name.
    pub started_at: i64,
    /// Why it was deleted (`watermark`, `max_age`, `max_bytes`,
    /// `disk_floor`, `missing`).
    pub deleted: String,
    /// What was wrong with it.
    pub findings: SegmentFindings,
}

/// Why an agent has no recording for a contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnrecoverableReason {
    /// Nothing was recorded on this PC during the contact: the agent was
    /// logged off, the PC was off, or another user was logged on.
    NotRecorded,
    /// The policy said not to record the user at the time.
    NotEligible,
    /// The segments were deleted before the contact arrived (retention
    /// limits, disk floor).
    SegmentsDeleted,
    /// The segments exist but are damaged beyond use.
    Damaged,
    /// The recording is larger than the server accepts
    /// (`upload.max_recording_bytes`).
    TooLarge,
}

impl UnrecoverableReason {
    /// The reason's wire name, e.g. `not_recorded`.
    pub fn as_str(self) -> &'static str {
        match self {
            UnrecoverableReason::NotRecorded => "not_recorded",
            UnrecoverableReason::NotEligible => "not_eligible",
            UnrecoverableReason::SegmentsDeleted => "segments_deleted",
            UnrecoverableReason::Damaged => "damaged",
            UnrecoverableReason::TooLarge => "too_large",
        }
    }
}

/// The agent introduces itself and the user logged on at the PC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version the agent speaks ([`PROTOCOL_VERSION`]).
    pub version: u32,
    /// The device id received at enrollment; must match the credential.
    pub device_id: String,
    /// Windows login of the session user, e.g. `CORP\ann`; empty when no one
    /// is logged on.
    pub windows_login: String,
    /// The PC's host name, for people reading the device list.
    pub host: String,
    /// The agent's version string.
    pub agent_version: String,
    /// Cursor of the last contact the agent completed, or `None` if it never
    /// completed one; the server replays contacts after it.
    pub last_contact_cursor: Option<u64>,
}

/// Clock exchange, step 1: the agent's send time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockProbe {
    /// Agent clock at send, microseconds since the Unix epoch.
    pub t0: i64,
}

/// Clock exchange, step 2. With the agent's receive time `t3`, the agent's
/// offset to the server is `((t1 - t0) + (t2 - t3)) / 2` and the round trip
/// `(t3 - t0) - (t2 - t1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockReply {
    /// The probe's `t0`, echoed.
    pub t0: i64,
    /// Server clock when the probe arrived, µs since the Unix epoch.
    pub t1: i64,
    /// Server clock when the reply left, µs since the Unix epoch.
    pub t2: i64,
}

/// The agent's periodic status; the server keeps the last one per device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// What the agent is doing.
    pub status: AgentStatus,
}

/// The agent's state as shown to supervisors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// Recording state.
    pub recording: RecordingState,
    /// Segment files on disk.
    pub segments_on_disk: u64,
    /// Recordings waiting to be uploaded.
    pub uploads_queued: u64,
    /// Free bytes on the recordings volume.
    pub disk_free_bytes: u64,
    /// Recent errors, newest last (the agent bounds the list).
    #[serde(default)]
    pub errors: Vec<String>,
}

/// Recording state of an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    /// Capturing the screen.
    Recording,
    /// Eligible but paused (screen locked, no session, …).
    Paused,
    /// The policy says not to record.
    NotEligible,
    /// Capture failed; see `errors`.
    Error,
}

/// The frame rates a policy may ask for. The agent's recorder and encoder
/// take every one of them (their own range is checked to cover this one);
/// the server refuses settings outside it.
pub const FPS_RANGE: std::ops::RangeInclusive<f32> = 0.2..=60.0;

/// What the agent must do: record or not, and with which parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Record the session user's screen.
    pub record: bool,
    /// Why (`eligible` when `record` is true).
    pub reason: PolicyReason,
    /// Capture frame rate, frames per second, within [`FPS_RANGE`].
    #[serde(deserialize_with = "finite_fps")]
    pub fps: f32,
    /// Length of a segment file, seconds.
    pub segment_seconds: u32,
    /// Keyframe interval, seconds.
    pub gop_seconds: u32,
    /// Hard limits on the recordings kept on the PC.
    pub retention: RetentionLimits,
    /// Limits on uploads.
    pub upload: UploadLimits,
    /// The server's recording public key (SubjectPublicKeyInfo PEM): segment
    /// keys are wrapped under it.
    pub server_public_key_pem: String,
    /// Id of that key (hex SHA-256 of its DER), as written in segment headers.
    pub server_key_id: String,
    /// What the desktop app lets the agent at the keyboard do. Absent from
    /// older servers' policies, which get the defaults.
    #[serde(default)]
    pub desktop: DesktopPolicy,
    /// The server's TLS pins and its next key, signed (see
    /// [`crate::ServerPins`]): agents follow a change of the server's key
    /// through it. Absent from older servers' policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_pins: Option<crate::ServerPins>,
    /// How recording may be paused. Absent from older servers' policies.
    #[serde(default)]
    pub pause: crate::PausePolicy,
}

/// Reads [`Policy::fps`], refusing a number too large for an `f32`. Such a
/// number decodes as infinity, which JSON cannot carry: the policy would
/// encode with `"fps":null` and no longer decode (from the agent's cache,
/// say). Whether a finite rate is within [`FPS_RANGE`] is for the server
/// (which refuses to set it) and the encoder (which refuses to use it).
fn finite_fps<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    let fps = f32::deserialize(d)?;
    if fps.is_finite() {
        Ok(fps)
    } else {
        Err(serde::de::Error::custom(format!(
            "fps {fps} is not a frame rate: expected frames per second within {FPS_RANGE:?}"
        )))
    }
}

/// What the desktop (tray) app lets the agent at the keyboard do and how
/// it speaks to them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DesktopPolicy {
    /// Show a "Quit Deskrec" entry in the tray menu. Off by default: an
    /// agent must not be able to stop their own recording.
    pub allow_quit: bool,
    /// Tell the agent when the PC has been offline this long, minutes
    /// (recording goes on; uploads wait). 0: never.
    pub offline_notice_minutes: u32,
    /// The supervisors' PIN that opens the tray's Diagnostics view on any
    /// PC, as an Argon2id PHC string (`$argon2id$...`); `None`: only a
    /// local administrator may open it.
    pub diagnostics_pin_phc: Option<String>,
}

/// The defaults: no quit, offline notice after 15 minutes, no PIN.
impl Default for DesktopPolicy {
    fn default() -> Self {
        Self {
            allow_quit: false,
            offline_notice_minutes: 15,
            diagnostics_pin_phc: None,
        }
    }
}

/// Why a policy says record or not. The checks run in this order and the
/// first that fails is the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyReason {
    /// Every check passed: record.
    Eligible,
    /// RTE messaging is switched off server-wide.
    RteDisabled,
    /// No user has this Windows login.
    UnknownLogin,
    /// The user exists but is not active.
    UserInactive,
    /// None of the user's roles (possibly none at all) grants `record_screen`.
    NoRecordPermission,
}

impl PolicyReason {
    /// The reason's wire name, e.g. `unknown_login`.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyReason::Eligible => "eligible",
            PolicyReason::RteDisabled => "rte_disabled",
            PolicyReason::UnknownLogin => "unknown_login",
            PolicyReason::UserInactive => "user_inactive",
            PolicyReason::NoRecordPermission => "no_record_permission",
        }
    }
}

/// Hard retention limits: whichever is hit first deletes the oldest segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionLimits {
    /// Delete segments older than this, days.
    pub max_age_days: u32,
    /// Most bytes of segments kept.
    pub max_bytes: u64,
    /// Keep at least this many bytes free on the volume.
    pub min_free_disk_bytes: u64,
}

/// Upload limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadLimits {
    /// Largest recording the server accepts, bytes.
    pub max_recording_bytes: u64,
    /// Uploads in flight at once.
    pub max_parallel: u32,
    /// Bandwidth cap, bytes per second; `None` for no cap.
    pub max_bytes_per_second: Option<u64>,
}

/// The defaults a new server starts with: 30 days, 20 GiB, 2 GiB free.
impl Default for RetentionLimits {
    fn default() -> Self {
        Self {
            max_age_days: 30,
            max_bytes: 20 << 30,
            min_free_disk_bytes: 2 << 30,
        }
    }
}

/// The defaults a new server starts with: 2 GiB recordings, 2 at once, no cap.
impl Default for UploadLimits {
    fn default() -> Self {
        Self {
            max_recording_bytes: 2 << 30,
            max_parallel: 2,
            max_bytes_per_second: None,
        }
    }
}

/// A protocol error sent to the agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RteError {
    /// Stable code, e.g. `unsupported_version`, `bad_message`,
    /// `device_mismatch`, `hello_required`.
    pub code: String,
    /// Explanation for people.
    pub message: String,
}

impl AgentMessage {
    /// Decodes one text frame.
    pub fn from_json(text: &str) -> serde_json::Result<Self> {
        serde_json::from_str(text)
    }

    /// Encodes as one text frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("protocol messages always serialize")
    }
}

impl ServerMessage {
    /// Decodes one text frame.
    pub fn from_json(text: &str) -> serde_json::Result<Self> {
        serde_json::from_str(text)
    }

    /// Encodes as one text frame.
    pub fn to_json(&self) -> String {
        // Every field is a plain string, number, bool or option of those;
        // serde_json only fails on maps with non-string keys or on I/O.
        serde_json::to_string(self).expect("protocol messages always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> Policy {
        Policy {
            record: false,
            reason: PolicyReason::NoRecordPermission,
            fps: 5.0,
            segment_seconds: 600,
            gop_seconds: 10,
            retention: RetentionLimits::default(),
            upload: UploadLimits::default(),
            server_public_key_pem: "-----BEGIN PUBLIC KEY-----\n...".into(),
            server_key_id: "ab".repeat(32),
            desktop: DesktopPolicy::default(),
            server_pins: None,
            pause: crate::PausePolicy::default(),
        }
    }

    #[test]
    fn agent_messages_round_trip() {
        let msgs = [
            AgentMessage::Hello(Hello {
                version: PROTOCOL_VERSION,
                device_id: "dev-1".into(),
                windows_login: "CORP\\ann".into(),
                host: "PC-17".into(),
                agent_version: "0.1.0".into(),
                last_contact_cursor: Some(42),
            }),
            AgentMessage::ClockProbe(ClockProbe {
                t0: 1_700_000_000_000_000,
            }),
            AgentMessage::Heartbeat(Heartbeat {
                status: AgentStatus {
                    recording: RecordingState::Recording,
                    segments_on_disk: 3,
                    uploads_queued: 1,
                    disk_free_bytes: 1 << 35,
                    errors: vec!["encoder restarted".into()],
                },
            }),
            AgentMessage::ContactAck(ContactAck { seq: 9 }),
            AgentMessage::ContactOutcome(ContactOutcome {
                seq: 9,
                contact_id: "c-9".into(),
                reason: UnrecoverableReason::NotRecorded,
                detail: "no segment covers 09:00-09:05".into(),
            }),
            AgentMessage::SegmentReport(SegmentReport {
                started_at: 1_700_000_000_000_000,
                deleted: "watermark".into(),
                findings: SegmentFindings {
                    chunks: 5,
                    range: Some([1_700_000_000_000_000, 1_700_000_050_000_000]),
                    truncated: true,
                    gaps: vec![[1_700_000_010_000_000, 1_700_000_012_000_000]],
                    ..SegmentFindings::default()
                },
            }),
        ];
        for m in msgs {
            assert_eq!(AgentMessage::from_json(&m.to_json()).unwrap(), m);
        }
    }

    #[test]
    fn server_messages_round_trip() {
        let msgs = [
            ServerMessage::Policy(policy()),
            ServerMessage::ClockReply(ClockReply {
                t0: 1,
                t1: 5,
                t2: 6,
            }),
            ServerMessage::Error(RteError {
                code: "bad_message".into(),
                message: "no".into(),
            }),
            ServerMessage::Contact(ContactRelay {
                seq: 3,
                contact_id: "c-1".into(),
                windows_login: "CORP\\ann".into(),
                start: 10,
                end: 20,
            }),
            ServerMessage::Watermark(Watermark { before: 20 }),
            ServerMessage::RecordingStored(RecordingStored {
                contact_id: "c-1".into(),
            }),
        ];
        for m in msgs {
            assert_eq!(ServerMessage::from_json(&m.to_json()).unwrap(), m);
        }
    }

    #[test]
    fn wire_shape_is_tagged_snake_case() {
        let v = serde_json::to_value(ServerMessage::Policy(policy())).unwrap();
        assert_eq!(v["type"], "policy");
        assert_eq!(v["reason"], "no_record_permission");
        assert_eq!(v["retention"]["max_age_days"], 30);
        let v = serde_json::to_value(AgentMessage::ClockProbe(ClockProbe { t0: 7 })).unwrap();
        assert_eq!(v, json!({"type": "clock_probe", "t0": 7}));
        for r in [
            PolicyReason::Eligible,
            PolicyReason::RteDisabled,
            PolicyReason::UnknownLogin,
            PolicyReason::UserInactive,
            PolicyReason::NoRecordPermission,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }

    #[test]
    fn heartbeat_errors_default_to_empty() {
        let text = r#"{"type":"heartbeat","status":{"recording":"paused","segments_on_disk":0,"uploads_queued":0,"disk_free_bytes":10}}"#;
        let AgentMessage::Heartbeat(hb) = AgentMessage::from_json(text).unwrap() else {
            panic!("not a heartbeat");
        };
        assert!(hb.status.errors.is_empty());
    }

    #[test]
    fn a_frame_rate_too_large_for_an_f32_is_an_error() {
        // 1e39 overflows an f32 to infinity, which JSON cannot carry: it
        // would encode as `null` and the policy would no longer decode
        // (found by the `rte` fuzz target).
        let mut policy = serde_json::to_value(ServerMessage::Policy(policy())).unwrap();
        policy["fps"] = json!(1e39);
        let err = ServerMessage::from_json(&policy.to_string()).unwrap_err();
        assert!(err.to_string().contains("fps"), "{err}");
        policy["fps"] = json!(3.4e38);
        assert!(ServerMessage::from_json(&policy.to_string()).is_ok());
    }

    #[test]
    fn unknown_type_is_an_error() {
        assert!(AgentMessage::from_json(r#"{"type":"nope"}"#).is_err());
        assert!(AgentMessage::from_json(r#"{"t0":1}"#).is_err());
    }
}

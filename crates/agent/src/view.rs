//! What a front end shows of the agent: plain serde types, the same JSON
//! the tray window receives (`docs/tray.md`, "The window's IPC contract"),
//! so a window could later talk to an engine in another process (a
//! Windows service) without change.

use deskrec_protocol::RecordingState;
use serde::{Deserialize, Serialize};

use crate::engine::Connection;
use crate::indicator::Indicator;

/// The agent's status now, read from memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The icon to show and the plain words for it.
    pub indicator: Indicator,
    /// Recording state.
    pub state: RecordingState,
    /// Why, as the engine names it (`eligible`, `user_inactive`,
    /// `no_session_user`, …); [`Indicator::detail`] says it in words.
    pub reason: String,
    /// The session login.
    pub login: String,
    /// Whether the session is locked (recording goes on).
    pub locked: bool,
    /// Whether this PC is enrolled with a server.
    pub enrolled: bool,
    /// The enrolled device.
    pub device_id: Option<String>,
    /// The server's URL.
    pub server_url: Option<String>,
    /// The server connection.
    pub connection: Connection,
    /// When the connection last came up (agent clock, µs).
    pub connected_at: Option<i64>,
    /// Since when the PC has been without its server (µs), while it is.
    pub offline_since: Option<i64>,
    /// The segment being written (its file name).
    pub current_segment: Option<String>,
    /// The last error, for people.
    pub last_error: Option<String>,
    /// When it happened (µs).
    pub last_error_at: Option<i64>,
    /// Free bytes on the recordings volume.
    pub disk_free_bytes: Option<u64>,
    /// The free space the policy keeps (oldest segments go below it).
    pub disk_floor_bytes: Option<u64>,
    /// The pause in effect, if recording is paused.
    #[serde(default)]
    pub pause: Option<crate::PauseView>,
    /// The reasons the agent may pause for (empty: no pausing from the
    /// tray).
    #[serde(default)]
    pub pause_reasons: Vec<String>,
    /// Whether the policy lets the agent quit the app.
    pub allow_quit: bool,
    /// Minutes offline after which the agent is told (0: never).
    pub offline_notice_minutes: u32,
    /// When the status last changed (µs).
    pub updated_at: i64,
}

/// Segments and contacts on this PC.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    /// Segments on disk, oldest first.
    pub segments: Vec<SegmentEntry>,
    /// Contacts waiting, splicing or uploading, and those finished in the
    /// last 24 hours.
    pub contacts: Vec<ContactEntry>,
    /// Recordings uploaded in the last 24 hours.
    pub uploaded_today: UploadedToday,
}

/// A segment file on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// Its file name.
    pub name: String,
    /// Start (agent clock, µs).
    pub started_at: i64,
    /// End of its last intact chunk.
    pub ended_at: i64,
    /// Its size.
    pub bytes: u64,
    /// Finished: it will not grow.
    pub complete: bool,
    /// The recorder is writing it now.
    pub writing: bool,
}

/// A contact the server relayed, and how far its recording got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactEntry {
    /// The contact centre's id.
    pub contact_id: String,
    /// `queued`, `splicing`, `uploading`, `done`, `unrecoverable` or
    /// `disposed` (erased or expired on the server; `reason` says which).
    pub state: String,
    /// Start (server clock, µs).
    pub start: i64,
    /// End (server clock, µs).
    pub end: i64,
    /// The spliced recording's size (none before the splice).
    pub bytes: Option<u64>,
    /// Bytes the server has.
    pub uploaded_bytes: u64,
    /// Upload rate, bytes a second, while uploading.
    pub rate_bytes_per_second: Option<f64>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the next attempt is due, while waiting on a back-off.
    pub next_attempt_at: Option<i64>,
    /// The last failure, or an unrecoverable contact's detail.
    pub last_error: Option<String>,
    /// An unrecoverable contact's reason (`not_eligible`, `too_large`, …),
    /// or a disposed one's (`erased`, `expired`).
    pub reason: Option<String>,
    /// When its state last changed (µs).
    pub updated_at: i64,
}

/// Uploads finished recently.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedToday {
    /// Contacts uploaded.
    pub contacts: u64,
    /// Their recordings' bytes.
    pub bytes: u64,
}

/// An entry of the agent's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When (µs).
    pub at: i64,
    /// What (`session.logon`, `segment.deleted`, …).
    pub action: String,
    /// On what.
    pub target: String,
    /// Details, JSON.
    pub detail: String,
}

/// Something the agent at the keyboard should hear of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// What happened.
    pub kind: NoticeKind,
    /// One line.
    pub title: String,
    /// The details, in words.
    pub body: String,
    /// When (µs).
    pub at: i64,
}

/// The kinds of [`Notice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A contact's recording is on the server.
    Uploaded,
    /// The server refused a recording, or it cannot be sent.
    Rejected,
    /// The server erased the contact's content (or it expired) before the
    /// recording arrived: it was deleted here, not uploaded. Nothing for
    /// the agent to do.
    Disposed,
    /// Retention deleted segments to keep the disk floor or a hard limit.
    SegmentsDeleted,
    /// Recording was paused (the screen is not recorded).
    Paused,
    /// A pause ended: the screen is recorded again.
    Resumed,
}

/// A segment on disk with what a check of it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckedSegment {
    /// The segment.
    #[serde(flatten)]
    pub segment: SegmentEntry,
    /// Digest mismatches, time gaps, clock jumps, truncation, in words.
    pub discrepancies: Vec<String>,
}

/// The cached policy, for IT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyView {
    /// Record or not.
    pub record: bool,
    /// The server's reason.
    pub reason: String,
    /// The login it was evaluated for.
    pub login: String,
    /// When it arrived (agent clock, µs).
    pub received_at: i64,
    /// When it stops being followed without the server (µs).
    pub expires_at: i64,
    /// Frames a second.
    pub fps: f32,
    /// Segment length, seconds.
    pub segment_seconds: u32,
}

/// Everything IT and supervisors look at on a PC. Holds no key,
/// credential or token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// The enrolled device.
    pub device_id: String,
    /// This PC's host name as enrolled.
    pub host: String,
    /// The agent's version.
    pub version: String,
    /// The data directory.
    pub data_dir: String,
    /// The server's URL.
    pub server_url: String,
    /// The pinned server keys: `spki-sha256:<hex>`, and the announced next
    /// key after a space.
    pub server_fingerprint: String,
    /// The cached policy.
    pub policy: Option<PolicyView>,
    /// Server minus agent clock, µs.
    pub clock_offset_us: Option<i64>,
    /// When that was measured (µs).
    pub clock_measured_at: Option<i64>,
    /// The highest contact seq stored.
    pub contact_cursor: Option<u64>,
    /// The server's watermark (server clock, µs).
    pub watermark: Option<i64>,
    /// Every segment on disk, checked.
    pub segments: Vec<CheckedSegment>,
    /// The newest audit entries, newest first.
    pub audit: Vec<AuditEntry>,
    /// The status when this was taken.
    pub status: Status,
}

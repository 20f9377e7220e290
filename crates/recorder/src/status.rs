//! What the recorder reports while it runs.

use std::path::PathBuf;

use serde::Serialize;

/// The recorder's state, with the reason when it is not recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum RecorderState {
    /// Capturing and writing.
    Recording,
    /// The disk is full: frames are dropped until space returns; nothing
    /// already written is damaged.
    DiskFull(String),
    /// Stopped normally.
    Stopped,
    /// Stopped by an error it cannot recover from.
    Failed(String),
}

/// Counters and state, as the tray and `deskrec-agent status` show them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecorderStatus {
    /// Current state.
    #[serde(flatten)]
    pub state: RecorderState,
    /// Capture ticks so far.
    pub ticks: u64,
    /// Ticks whose picture had not changed: nothing was encoded.
    pub unchanged: u64,
    /// Frames encoded.
    pub encoded: u64,
    /// Macroblocks of the encoded frames that their pictures' change maps
    /// said were unchanged, so the encoder skipped them without comparing
    /// (a 1080p frame has 8160).
    pub unchanged_macroblocks: u64,
    /// Frames dropped because encoding or writing fell behind (the previous
    /// picture stays on screen longer in the recording).
    pub dropped_behind: u64,
    /// Frames dropped while the disk was full.
    pub dropped_disk_full: u64,
    /// Times the screen's size or monitor layout changed.
    pub layout_changes: u64,
    /// Segments finished.
    pub segments: u64,
    /// The segment being written.
    pub current_segment: Option<PathBuf>,
    /// Bytes written to segments.
    pub bytes: u64,
    /// Largest wall-clock drift from the recording timeline seen, in µs.
    pub max_clock_drift_us: i64,
    /// Why recording is paused, while the capture thread records the
    /// paused picture instead of the screen.
    pub paused: Option<String>,
    /// Why the rules (not the agent's switch) pause recording, as of the
    /// last capture tick.
    pub rule_pause: Option<String>,
    /// Paused pictures sent to the encoder (the first one is when the
    /// screen stopped being read).
    pub paused_frames: u64,
}

impl Default for RecorderStatus {
    fn default() -> Self {
        Self {
            state: RecorderState::Recording,
            ticks: 0,
            unchanged: 0,
            encoded: 0,
            unchanged_macroblocks: 0,
            dropped_behind: 0,
            dropped_disk_full: 0,
            layout_changes: 0,
            segments: 0,
            current_segment: None,
            bytes: 0,
            max_clock_drift_us: 0,
            paused: None,
            rule_pause: None,
            paused_frames: 0,
        }
    }
}

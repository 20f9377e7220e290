//! `deskrec-agent status`: the JSON the tray shows, read from the data
//! directory (the running agent writes its live state to the database as
//! it changes, so any process can report it).

use std::path::Path;

use deskrec_protocol::RecordingState;
use serde::Serialize;

use crate::clock::ClockOffset;
use crate::contacts::{Counts, UploadProgress};
use crate::db::{get_meta, keys};
use crate::engine::{Connection, Live};
use crate::enroll::Identity;
use crate::policy::CachedPolicy;
use crate::segments::Summary;
use crate::{AgentError, DataDir};

/// Everything the tray shows.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The enrolled device, if enrolled.
    pub device_id: Option<String>,
    /// Recording state (`recording`, `paused`, `not_eligible`, `error`).
    pub state: RecordingState,
    /// Why.
    pub reason: String,
    /// The session login.
    pub login: String,
    /// Whether the session is locked.
    pub locked: bool,
    /// The segment being written.
    pub current_segment: Option<String>,
    /// Segments on disk.
    pub segments: Summary,
    /// Contacts per state.
    pub contacts: Counts,
    /// Uploads in progress.
    pub uploads: Vec<UploadProgress>,
    /// The last error.
    pub last_error: Option<String>,
    /// When it happened (agent clock, µs).
    pub last_error_at: Option<i64>,
    /// The server connection.
    pub server: ServerStatus,
    /// The measured clock offset (server minus agent).
    pub clock_offset: Option<ClockOffset>,
    /// The cached policy's record flag and reason.
    pub policy: Option<PolicySummary>,
    /// The server's watermark (server clock, µs).
    pub watermark: Option<i64>,
    /// The highest contact seq stored.
    pub contact_cursor: Option<u64>,
    /// Free bytes on the recordings volume.
    pub disk_free_bytes: Option<u64>,
    /// When the live part was last written (agent clock, µs).
    pub updated_at: Option<i64>,
}

/// The server as the status shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ServerStatus {
    /// Its URL.
    pub url: Option<String>,
    /// `connected`, `connecting` or `offline`.
    pub connection: Connection,
    /// When the connection last came up.
    pub connected_at: Option<i64>,
}

/// The cached policy, briefly.
#[derive(Debug, Clone, Serialize)]
pub struct PolicySummary {
    /// Record or not.
    pub record: bool,
    /// The server's reason.
    pub reason: String,
    /// The login it is for.
    pub login: String,
    /// When it arrived.
    pub received_at: i64,
}

/// Reads the status from the data directory.
pub fn report(dir: &DataDir) -> Result<StatusReport, AgentError> {
    let db = dir.open_db()?;
    let segments_dir = dir.segments();
    db.call_blocking(|c| {
        crate::segments::refresh(c, &segments_dir, deskrec_vault::now_micros())?;
        let identity: Option<Identity> = get_meta(c, keys::IDENTITY)?;
        let live: Option<Live> = get_meta(c, keys::LIVE)?;
        let policy: Option<CachedPolicy> = get_meta(c, keys::POLICY)?;
        let (state, reason) = match &live {
            Some(l) => (l.state, l.reason.clone()),
            None if identity.is_none() => (RecordingState::Paused, "not_enrolled".into()),
            None => (RecordingState::Paused, "agent_not_started".into()),
        };
        Ok(StatusReport {
            device_id: identity.as_ref().map(|i| i.device_id.clone()),
            state,
            reason,
            login: live.as_ref().map(|l| l.login.clone()).unwrap_or_default(),
            locked: live.as_ref().is_some_and(|l| l.locked),
            current_segment: live.as_ref().and_then(|l| l.current_segment.clone()),
            segments: crate::segments::summary(c)?,
            contacts: crate::contacts::counts(c)?,
            uploads: crate::contacts::uploads(c)?,
            last_error: live.as_ref().and_then(|l| l.last_error.clone()),
            last_error_at: live.as_ref().and_then(|l| l.last_error_at),
            server: ServerStatus {
                url: identity.map(|i| i.url),
                connection: live.as_ref().map_or(Connection::Offline, |l| l.connection),
                connected_at: live.as_ref().and_then(|l| l.connected_at),
            },
            clock_offset: get_meta(c, keys::CLOCK)?,
            policy: policy.map(|p| PolicySummary {
                record: p.policy.record,
                reason: p.policy.reason.as_str().into(),
                login: p.login,
                received_at: p.received_at,
            }),
            watermark: get_meta(c, keys::WATERMARK)?,
            contact_cursor: get_meta(c, keys::CURSOR)?,
            disk_free_bytes: disk_free(&segments_dir),
            updated_at: live.map(|l| l.updated_at),
        })
    })
}

/// The newest `limit` audit entries of the agent in `dir`, newest first.
pub fn audit(dir: &DataDir, limit: u32) -> Result<Vec<crate::AuditEntry>, AgentError> {
    dir.open_db()?
        .call_blocking(|c| crate::db::recent_audit(c, limit))
}

/// Free bytes for unprivileged users on the volume holding `path` (or its
/// nearest existing parent); `None` where unknown.
pub fn disk_free(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    free_bytes(existing)
}

#[cfg(unix)]
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` a buffer of the right
    // type; statvfs writes it fully when it returns 0.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: initialised by the successful call above.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ by platform
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(windows)]
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::windows::ffi::OsStrExt;
    use windows::Win32::Storage::FileSystem::GetDiskFreeSpaceExW;
    use windows::core::PCWSTR;
    let wide: Vec<u16> = path.as_os_str().encode_wide().chain([0]).collect();
    let mut available = 0u64;
    // SAFETY: `wide` is NUL-terminated and outlives the call; the output
    // pointer is to a live local.
    unsafe { GetDiskFreeSpaceExW(PCWSTR(wide.as_ptr()), Some(&mut available), None, None) }.ok()?;
    Some(available)
}

#[cfg(not(any(unix, windows)))]
fn free_bytes(_path: &Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_known_for_a_path_not_created_yet() {
        let dir = tempfile::tempdir().unwrap();
        let free = disk_free(&dir.path().join("segments").join("not-yet"));
        assert!(free.is_some_and(|b| b > 0), "{free:?}");
    }
}

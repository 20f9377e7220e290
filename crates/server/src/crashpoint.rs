//! Crash points for the power-cut test: with `DESKREC_CRASH_AT=<name>` in
//! its environment, the server kills itself (SIGKILL, as `kill -9` does)
//! the moment it reaches the point of that name.
//!
//! They sit at each step between the last byte of an upload arriving and
//! the answer that tells the agent to delete its copy, so the test
//! (`tests/it/hostile.rs`) can prove that no step acknowledges before the
//! one it depends on is committed, and at the steps of a retention run and
//! an erasure (`tests/it/compliance.rs`). Unset, a point costs one comparison.

use std::sync::OnceLock;

/// The environment variable naming the point to crash at.
pub const ENV: &str = "DESKREC_CRASH_AT";

/// Every point, in the order an upload reaches them.
pub const POINTS: &[&str] = &[
    "patch.synced",
    "patch.advanced",
    "store.put",
    "store.committed",
    "store.acknowledged",
];

/// The points of a disposal (`compliance`): after its intent commits, and
/// after its files are deleted, before the outcome commits. Separate from
/// [`POINTS`], which an upload reaches.
pub const DISPOSAL_POINTS: &[&str] = &[
    "expire.intent",
    "expire.deleted",
    "erase.intent",
    "erase.deleted",
];

/// Kills the process if `DESKREC_CRASH_AT` names `point`.
pub fn hit(point: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    if AT.get_or_init(|| std::env::var(ENV).ok()).as_deref() != Some(point) {
        return;
    }
    debug_assert!(
        POINTS.contains(&point) || DISPOSAL_POINTS.contains(&point),
        "{point} is not listed in POINTS or DISPOSAL_POINTS"
    );
    eprintln!("deskrec-server: crash point {point} reached; killing the process");
    #[cfg(unix)]
    // SAFETY: kill(2) on our own pid; nothing is read or written.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort();
}

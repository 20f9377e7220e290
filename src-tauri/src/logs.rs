//! Logs: to standard error and to a daily file in the log directory, which
//! "Save diagnostics" puts in its bundle. Nothing secret is ever logged.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// File name prefix of the daily log files.
const PREFIX: &str = "deskrec-tray.log";

/// The user's log directory: `%LOCALAPPDATA%\Deskrec\logs` on Windows,
/// `$XDG_STATE_HOME/deskrec/logs` (`~/.local/state/deskrec/logs`)
/// elsewhere. Per user: each logon session's app logs its own.
pub fn default_dir() -> PathBuf {
    #[cfg(windows)]
    let base = std::env::var_os("LOCALAPPDATA")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("Deskrec");
    #[cfg(not(windows))]
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("deskrec");
    base.join("logs")
}

/// The file writer's guard: dropping it writes out what is buffered.
/// Tauri ends the process with `std::process::exit` after its last event,
/// which runs no destructors, so [`flush`] drops it by hand.
static GUARD: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// Starts logging (level from `RUST_LOG`, `info` by default); [`flush`]
/// writes out the file's last lines at exit.
pub fn init(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix(PREFIX)
        .max_log_files(7)
        .build(dir)
        .with_context(|| format!("opening a log file in {}", dir.display()))?;
    let (file, guard) = tracing_appender::non_blocking(file);
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter()),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(file)
                .with_filter(filter()),
        )
        .init();
    *GUARD.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
    Ok(())
}

/// Writes out the log file's buffered lines; the last call before exit
/// (lines logged after it reach standard error only).
pub fn flush() {
    drop(GUARD.lock().unwrap_or_else(|e| e.into_inner()).take());
}

use tracing_subscriber::Layer as _;

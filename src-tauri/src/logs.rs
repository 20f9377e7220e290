//! Logs: to standard error and to a daily file in the log directory, which
//! "Save diagnostics" puts in its bundle. Nothing secret is ever logged.

use std::path::{Path, PathBuf};

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

/// Starts logging (level from `RUST_LOG`, `info` by default); the guard
/// flushes the file when dropped.
pub fn init(dir: &Path) -> anyhow::Result<WorkerGuard> {
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
    Ok(guard)
}

use tracing_subscriber::Layer as _;

//! The one error type of the fixtures.

use std::time::Duration;

/// What went wrong in a fixture.
///
/// Tests usually `unwrap` or `?` these: the `Display` text is written to be
/// the whole failure message (what was waited for and how long, what the
/// bus answered).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `dbus-daemon` could not be started (not installed: Debian package
    /// `dbus-daemon`), or it exited without printing its address.
    #[error("dbus-daemon: {0}")]
    DbusDaemon(String),
    /// A D-Bus call, name request or connection failed.
    #[error("D-Bus: {0}")]
    Dbus(#[from] zbus::Error),
    /// A D-Bus service answered with an error.
    #[error("D-Bus: {0}")]
    Fdo(#[from] zbus::fdo::Error),
    /// A value on the bus did not have the type or shape the protocol gives
    /// it (e.g. a dbusmenu layout that is not `(ia{sv}av)`).
    #[error("protocol: {0}")]
    Protocol(String),
    /// A wait ended without its condition becoming true.
    #[error("timed out after {after:?} waiting for {what}{last}")]
    Timeout {
        /// What was waited for, as the test described it.
        what: String,
        /// How long it waited.
        after: Duration,
        /// The last state seen, for the failure message (`", last: ..."`
        /// or empty).
        last: String,
    },
    /// A menu entry to click does not exist, or a user could not click it
    /// (disabled or hidden).
    #[error("menu: {0}")]
    Menu(String),
    /// An icon file named by a tray item could not be read.
    #[error("icon file {path}: {source}")]
    IconFile {
        /// The file the item's `IconThemePath` and `IconName` point to.
        path: std::path::PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
}

impl From<zbus::zvariant::Error> for Error {
    fn from(e: zbus::zvariant::Error) -> Self {
        Self::Protocol(e.to_string())
    }
}

/// The fixtures' result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A timeout error for `what` after `after`, with the last state seen.
pub(crate) fn timeout(what: &str, after: Duration, last: Option<String>) -> Error {
    Error::Timeout {
        what: what.to_owned(),
        after,
        last: last.map(|l| format!(", last: {l}")).unwrap_or_default(),
    }
}

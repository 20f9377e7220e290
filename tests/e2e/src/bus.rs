//! A private D-Bus session bus: a real `dbus-daemon` on a socket in a
//! temporary directory, for one test.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::error::{Error, Result};

/// How long a D-Bus method call made by a fixture may take before it fails
/// (a hung app fails the test instead of hanging it).
pub const METHOD_TIMEOUT: Duration = Duration::from_secs(5);

/// The name of the environment variable that tells a D-Bus client (an app,
/// `notify-send`, `dbus-send`) which session bus to use.
pub const SESSION_BUS_VARIABLE: &str = "DBUS_SESSION_BUS_ADDRESS";

/// A private session bus: `dbus-daemon --session` listening on a socket in
/// a temporary directory, so a test's tray host, notification server and
/// app meet there and nowhere else (not on the desktop's own bus, not on
/// another test's).
///
/// The daemon is killed, and its socket removed, when this is dropped.
#[derive(Debug)]
pub struct PrivateBus {
    /// The `dbus-daemon` process; killed and reaped on drop.
    child: Child,
    /// The address the daemon printed (`unix:path=...,guid=...`).
    address: String,
    /// Holds the socket; removed after the daemon is gone (field order:
    /// dropped after `child` is killed in `Drop`).
    _dir: tempfile::TempDir,
}

impl PrivateBus {
    /// Starts a `dbus-daemon` with the standard session configuration on a
    /// fresh socket and returns once it accepts connections (it prints its
    /// address only after it listens).
    pub fn start() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("deskrec-e2e-bus")
            .tempdir()
            .map_err(|e| Error::DbusDaemon(format!("temporary directory: {e}")))?;
        let log_path = dir.path().join("dbus-daemon.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| Error::DbusDaemon(format!("log file: {e}")))?;
        let mut child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
            .arg(format!(
                "--address=unix:path={}",
                dir.path().join("bus").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // Its complaints (it cannot raise its fd limit unprivileged,
            // every time) go to a file, shown if it fails to start.
            .stderr(log)
            .spawn()
            .map_err(|e| {
                Error::DbusDaemon(format!(
                    "cannot run it (Debian: apt-get install dbus-daemon): {e}"
                ))
            })?;
        // One line, then the daemon keeps running; EOF means it exited.
        let mut out = child.stdout.take().expect("stdout is piped");
        let mut line = Vec::new();
        let mut byte = [0u8];
        while let Ok(1) = out.read(&mut byte) {
            if byte[0] == b'\n' {
                break;
            }
            line.push(byte[0]);
        }
        let address = String::from_utf8_lossy(&line).into_owned();
        let mut bus = Self {
            child,
            address,
            _dir: dir,
        };
        if !bus.address.starts_with("unix:") {
            let status = bus.child.try_wait().ok().flatten();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(Error::DbusDaemon(format!(
                "no address printed (exit status: {status:?}): {log}"
            )));
        }
        Ok(bus)
    }

    /// The bus address, for [`SESSION_BUS_VARIABLE`] in an app's
    /// environment or for [`zbus::connection::Builder::address`].
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The `dbus-daemon`'s process id (to see it is gone after drop).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Points `command` (an app under test, `notify-send`, ...) at this
    /// bus: sets [`SESSION_BUS_VARIABLE`] in its environment.
    pub fn configure<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command.env(SESSION_BUS_VARIABLE, &self.address)
    }

    /// A new connection to this bus, whose method calls time out after
    /// [`METHOD_TIMEOUT`].
    pub async fn connect(&self) -> Result<zbus::Connection> {
        Ok(self.builder()?.build().await?)
    }

    /// A connection builder for this bus (to own a name or serve objects
    /// before the connection starts), with [`METHOD_TIMEOUT`].
    pub fn builder(&self) -> Result<zbus::connection::Builder<'static>> {
        Ok(zbus::connection::Builder::address(self.address.as_str())?
            .method_timeout(METHOD_TIMEOUT))
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        // Already gone is fine: nothing else to clean up.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

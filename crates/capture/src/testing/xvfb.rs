//! [`Xvfb`]: a private virtual X server for one test.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use x11rb::rust_connection::RustConnection;

use super::require_program;
use crate::{X11Options, X11Source};

/// How long Xvfb may take to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Display numbers handed out by this process (shared by all its tests).
static NEXT_DISPLAY: AtomicU32 = AtomicU32::new(0);

/// An `Xvfb` server on a display of its own, stopped (SIGTERM) when
/// dropped.
///
/// It runs with `-nolisten tcp` (a Unix socket only) and `-noreset`, so
/// RandR monitors a client set stay after the client disconnects.
#[derive(Debug)]
pub struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    /// Starts a `width` x `height` 24-bit TrueColor screen and waits until
    /// it accepts connections.
    ///
    /// `None` when Xvfb is not installed and `CI` is unset (the caller
    /// skips its test; see [`require_program`]).
    #[must_use]
    pub fn start(width: u16, height: u16) -> Option<Self> {
        Self::start_with(&format!("{width}x{height}x24"), &[])
    }

    /// Starts `Xvfb :N -screen 0 <screen> -nolisten tcp -noreset
    /// <extra_args>` on a free display N, e.g. `screen` = `"640x480x16"`
    /// and `extra_args` = `["-extension", "MIT-SHM"]` to test what a
    /// server without shared memory does.
    ///
    /// `None` as for [`start`](Self::start).
    #[must_use]
    pub fn start_with(screen: &str, extra_args: &[&str]) -> Option<Self> {
        if !require_program("Xvfb", "xvfb") {
            return None;
        }
        for _ in 0..20 {
            if let Some(xvfb) = Self::spawn(free_display_number(), screen, extra_args) {
                return Some(xvfb);
            }
        }
        panic!("could not start Xvfb on any display");
    }

    /// Starts Xvfb on `:number`; `None` if it exits (the display was taken
    /// by a server that started meanwhile).
    fn spawn(number: u32, screen: &str, extra_args: &[&str]) -> Option<Self> {
        let display = format!(":{number}");
        let child = Command::new("Xvfb")
            .args([
                &display,
                "-screen",
                "0",
                screen,
                "-nolisten",
                "tcp",
                "-noreset",
            ])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning Xvfb");
        // From here on, dropping `xvfb` stops the server.
        let mut xvfb = Self { child, display };
        let socket = format!("/tmp/.X11-unix/X{number}");
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while Instant::now() < deadline {
            if xvfb.child.try_wait().expect("waiting for Xvfb").is_some() {
                return None;
            }
            if Path::new(&socket).exists() && RustConnection::connect(Some(&xvfb.display)).is_ok() {
                return Some(xvfb);
            }
            sleep(Duration::from_millis(20));
        }
        panic!(
            "Xvfb on {} did not come up in {STARTUP_TIMEOUT:?}",
            xvfb.display
        );
    }

    /// The display name, e.g. `":305"`, for `DISPLAY` or
    /// [`X11Options::display`].
    #[must_use]
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Options to capture this server.
    #[must_use]
    pub fn options(&self) -> X11Options {
        X11Options::new().display(&self.display)
    }

    /// A source with the default paths (MIT-SHM, DAMAGE).
    #[must_use]
    pub fn source(&self) -> X11Source {
        X11Source::open(&self.options()).expect("opening the X11 source")
    }

    /// The server's process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time the server has used so far (from `/proc/PID/schedstat`).
    #[must_use]
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/schedstat", self.pid()))
            .expect("reading Xvfb's schedstat");
        let nanos = stat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("schedstat starts with the CPU time in ns");
        Duration::from_nanos(nanos)
    }
}

impl Drop for Xvfb {
    /// SIGTERM rather than SIGKILL, so that Xvfb removes its socket and
    /// lock file.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits pid_t");
            // SAFETY: a plain system call; the child has not been reaped,
            // so the pid is still its own.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

/// A display number with neither a socket nor a lock file, counting up
/// from a number derived from the process id, so that parallel test
/// processes rarely try the same one (and retry when they do).
#[must_use]
pub fn free_display_number() -> u32 {
    let base = 300 + (std::process::id() % 300) * 10;
    loop {
        let n = base + NEXT_DISPLAY.fetch_add(1, Ordering::Relaxed);
        let taken = Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            || Path::new(&format!("/tmp/.X{n}-lock")).exists();
        if !taken {
            return n;
        }
    }
}

//! The server under test: the release `deskrec-server` binary in its own
//! process, so its memory is its own.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, ensure};
use deskrec_client::ServerAddress;

/// A running `deskrec-server`.
pub struct ServerProcess {
    child: Child,
    /// Where it listens, with its certificate fingerprint.
    pub address: ServerAddress,
    /// The admin bearer token from its data directory.
    pub admin_token: String,
}

impl ServerProcess {
    /// Starts the server on a free loopback port with a fresh data dir and
    /// waits until it listens.
    pub fn start(data_dir: &Path) -> Result<Self> {
        let exe = std::env::current_exe()?
            .with_file_name(format!("deskrec-server{}", std::env::consts::EXE_SUFFIX));
        ensure!(
            exe.is_file(),
            "{} is missing: build it first (`cargo xtask bench server` does)",
            exe.display()
        );
        let log = std::fs::File::create(data_dir.with_extension("log"))?;
        let mut child = Command::new(&exe)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let (mut listen, mut fingerprint) = (None, None);
        let stdout = child.stdout.take().context("server stdout")?;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if let Some(a) = line.strip_prefix("deskrec-server listening on ") {
                listen = Some(a.trim().to_owned());
            } else if let Some(f) = line.strip_prefix("TLS certificate SHA-256: ") {
                fingerprint = Some(f.trim().to_owned());
            }
            if listen.is_some() && fingerprint.is_some() {
                break;
            }
        }
        let (listen, fingerprint) = listen
            .zip(fingerprint)
            .context("the server exited before it listened (see its log next to the data dir)")?;
        let address = ServerAddress::new(&format!("https://{listen}"), &fingerprint)?;
        let admin_token = std::fs::read_to_string(data_dir.join("admin-token"))?
            .trim()
            .to_owned();
        Ok(Self {
            child,
            address,
            admin_token,
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Current resident memory, MB.
    pub fn rss_mb(&self) -> Result<f64> {
        rss_mb(self.pid())
    }

    /// Peak resident memory so far (VmHWM), MB.
    pub fn peak_rss_mb(&self) -> Result<f64> {
        status_kb(self.pid(), "VmHWM:").map(|kb| kb / 1024.0)
    }

    /// Stops it (SIGTERM: graceful shutdown) and waits.
    pub fn stop(mut self) -> Result<()> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory of `pid` (VmRSS), MB.
pub fn rss_mb(pid: u32) -> Result<f64> {
    status_kb(pid, "VmRSS:").map(|kb| kb / 1024.0)
}

fn status_kb(pid: u32, field: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    let kb = line[field.len()..].trim().trim_end_matches("kB").trim();
    Ok(kb.parse()?)
}

/// Raises this process's open-file limit (inherited by the server) to at
/// least `want`: 1,000 agents need 1,000 sockets on each side.
pub fn raise_fd_limit(want: u64) -> Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer.
    unsafe {
        ensure!(
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0,
            "getrlimit failed"
        );
        if lim.rlim_cur >= want {
            return Ok(());
        }
        ensure!(
            lim.rlim_max >= want,
            "the open-file limit is {} (hard); the benchmark needs {want}: raise it (ulimit -Hn)",
            lim.rlim_max
        );
        lim.rlim_cur = want;
        ensure!(
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0,
            "setrlimit failed"
        );
    }
    Ok(())
}

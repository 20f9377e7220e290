//! Processes under test: release binaries of the workspace (the server,
//! the agent) in their own processes, so their memory is their own.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, ensure};
use deskrec_client::ServerAddress;

/// The release binary `name` next to this one (`cargo xtask bench NAME`
/// builds it).
pub fn release_binary(name: &str) -> Result<PathBuf> {
    let exe =
        std::env::current_exe()?.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    ensure!(
        exe.is_file(),
        "{} is missing: build it first (`cargo xtask bench` does)",
        exe.display()
    );
    Ok(exe)
}

/// A child process, killed if dropped while running.
pub struct Process {
    child: Child,
}

impl Process {
    /// Starts `cmd`.
    pub fn spawn(cmd: &mut Command) -> Result<Self> {
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {:?}", cmd.get_program()))?;
        Ok(Self { child })
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

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops it (SIGTERM: graceful shutdown) and waits.
    pub fn stop(mut self) -> Result<()> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `deskrec-server`.
pub struct ServerProcess {
    /// The process.
    pub process: Process,
    /// Where it listens, with its certificate fingerprint.
    pub address: ServerAddress,
    /// The admin bearer token from its data directory.
    pub admin_token: String,
}

impl ServerProcess {
    /// Starts the server on a free loopback port with a fresh data dir and
    /// waits until it listens.
    pub fn start(data_dir: &Path) -> Result<Self> {
        let log = std::fs::File::create(data_dir.with_extension("log"))?;
        let mut process = Process::spawn(
            Command::new(release_binary("deskrec-server")?)
                .arg("--data-dir")
                .arg(data_dir)
                .args(["--listen", "127.0.0.1:0"])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped())
                .stderr(log),
        )?;
        let (mut listen, mut fingerprint) = (None, None);
        let stdout = process.child.stdout.take().context("server stdout")?;
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
            process,
            address,
            admin_token,
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Current resident memory, MB.
    pub fn rss_mb(&self) -> Result<f64> {
        self.process.rss_mb()
    }

    /// Peak resident memory so far (VmHWM), MB.
    pub fn peak_rss_mb(&self) -> Result<f64> {
        self.process.peak_rss_mb()
    }

    /// Stops it (SIGTERM: graceful shutdown) and waits.
    pub fn stop(self) -> Result<()> {
        self.process.stop()
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

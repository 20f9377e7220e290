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
    /// Where it listens, with its key's pin.
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
            } else if let Some(f) = line.strip_prefix("TLS key pin: ") {
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

/// Enrolls the agent data directory `data_dir` with the release
/// `deskrec-agent enroll TOKEN` (a compact token from
/// [`Admin::enrollment_token`](crate::server::Admin::enrollment_token)) as
/// host `host`; the identity it prints (`device_id`, ...).
pub fn enroll_agent(token: &str, data_dir: &Path, host: &str) -> Result<serde_json::Value> {
    let enrolled = Command::new(release_binary("deskrec-agent")?)
        .arg("enroll")
        .arg(token)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--host", host])
        .output()?;
    ensure!(
        enrolled.status.success(),
        "deskrec-agent enroll: {}",
        String::from_utf8_lossy(&enrolled.stderr)
    );
    Ok(serde_json::from_slice(&enrolled.stdout)?)
}

/// Resident memory of `pid` (VmRSS), MB.
pub fn rss_mb(pid: u32) -> Result<f64> {
    status_kb(pid, "VmRSS:").map(|kb| kb / 1024.0)
}

/// Proportional resident memory of `pid` (`Pss` of `smaps_rollup`: shared
/// pages divided among the processes sharing them), MB.
pub fn pss_mb(pid: u32) -> Result<f64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    let kb = rollup
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .with_context(|| format!("no Pss in /proc/{pid}/smaps_rollup"))?
        .trim()
        .trim_end_matches("kB")
        .trim();
    Ok(kb.parse::<f64>()? / 1024.0)
}

/// A process as `/proc/PID/stat` shows it.
#[derive(Debug, Clone)]
pub struct Stat {
    /// Its id.
    pub pid: u32,
    /// Its command name (`comm`: the program's name, cut at 15 bytes).
    pub comm: String,
    /// Its parent's id.
    pub ppid: u32,
    /// User plus system CPU time of all its threads, in clock ticks (live
    /// threads and exited ones; not its children).
    pub cpu_ticks: u64,
}

impl Stat {
    /// Reads `/proc/PID/stat`.
    pub fn read(pid: u32) -> Result<Self> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        Self::parse(pid, &text)
    }

    fn parse(pid: u32, text: &str) -> Result<Self> {
        // `pid (comm) state ppid ...`: comm may hold spaces and parentheses,
        // so it ends at the last ')'.
        let open = text.find('(').context("stat: no (")?;
        let close = text.rfind(')').context("stat: no )")?;
        let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
        // After comm: state(3) ppid(4) ... utime(14) stime(15), 1-based.
        ensure!(rest.len() > 12, "stat of {pid}: too few fields");
        Ok(Self {
            pid,
            comm: text[open + 1..close].to_owned(),
            ppid: rest[1].parse()?,
            cpu_ticks: rest[11].parse::<u64>()? + rest[12].parse::<u64>()?,
        })
    }
}

/// `pid` and all its descendants (children, their children, ...), found
/// through the parent ids in `/proc/*/stat`; `pid` first. Processes that
/// exit while this runs are left out.
pub fn tree(pid: u32) -> Result<Vec<Stat>> {
    let all: Vec<Stat> = std::fs::read_dir("/proc")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| Stat::read(p).ok())
        .collect();
    let root = all
        .iter()
        .find(|s| s.pid == pid)
        .with_context(|| format!("process {pid} is gone"))?
        .clone();
    let mut tree = vec![root];
    let mut next = 0;
    while next < tree.len() {
        let parent = tree[next].pid;
        tree.extend(all.iter().filter(|s| s.ppid == parent).cloned());
        next += 1;
    }
    Ok(tree)
}

/// Clock ticks per second (`/proc/PID/stat`'s unit of CPU time).
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf takes a constant and returns a number.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_names_with_spaces_and_parentheses() {
        let line = "4242 (Web Content (x)) S 17 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 31 0 0 20 0 12 0 100 1000 200";
        let s = Stat::parse(4242, line).unwrap();
        assert_eq!(s.comm, "Web Content (x)");
        assert_eq!(s.ppid, 17);
        assert_eq!(s.cpu_ticks, 281);
    }

    #[test]
    fn the_tree_starts_with_this_process_and_holds_its_child() {
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        let me = std::process::id();
        let t = tree(me).unwrap();
        assert_eq!(t[0].pid, me);
        assert!(t.iter().any(|s| s.pid == child.id() && s.ppid == me));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

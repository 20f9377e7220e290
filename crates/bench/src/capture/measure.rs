//! What a child process costs: its own CPU time and peak memory, read from
//! the kernel when it is reaped (`wait4`), and optionally, sampled from
//! `/proc` while it runs, the CPU time of each of its threads
//! (`/proc/PID/task/*/stat`) and what its resident memory is made of
//! (`/proc/PID/status`).
//!
//! Per-process figures stay honest when several recorders run at once on a
//! loaded machine: each is charged for the CPU it used, whatever else ran.

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// How often `/proc` is sampled. The last sample before the process exits
/// is what is reported, so threads lose at most this much CPU time.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// What a process used, from `wait4`.
#[derive(Debug, Clone)]
pub struct Usage {
    /// User plus system CPU time of all its threads.
    pub cpu: Duration,
    /// Peak resident memory, in KiB: when sampled, `VmHWM` of the last
    /// sample (the high-water mark of the process's own memory since it
    /// started its program); otherwise `ru_maxrss`. The latter also counts
    /// the parent's memory: Linux carries the high-water mark of the
    /// memory a child had before `exec` (the parent's, shared or copied
    /// when it was spawned) into it, so a child of a 300 MB process
    /// reports at least 300 MB.
    pub max_rss_kib: u64,
    /// CPU time by thread name, summed over threads of the same name, from
    /// the last sample (empty unless sampled).
    pub threads: BTreeMap<String, Duration>,
    /// The largest resident memory of each kind seen (zero unless
    /// sampled).
    pub memory: Memory,
}

/// Resident memory by kind, in KiB, as `/proc/PID/status` counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// `RssAnon`: heap, stacks, anonymous mappings.
    pub anon_kib: u64,
    /// `RssFile`: the program and libraries' pages in memory.
    pub file_kib: u64,
    /// `RssShmem`: shared memory (e.g. an MIT-SHM segment).
    pub shmem_kib: u64,
    /// `VmHWM`: peak resident memory so far (not a kind: the total's
    /// high-water mark).
    pub peak_kib: u64,
}

impl Memory {
    /// Reads `/proc/PID/status` now.
    pub fn of(pid: u32) -> Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        Ok(Self::parse(&status))
    }

    /// Reads `RssAnon`, `RssFile` and `RssShmem` from a `status` file.
    fn parse(status: &str) -> Self {
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        Self {
            anon_kib: kib("RssAnon:"),
            file_kib: kib("RssFile:"),
            shmem_kib: kib("RssShmem:"),
            peak_kib: kib("VmHWM:"),
        }
    }

    /// The larger of each kind.
    fn max(self, other: Self) -> Self {
        Self {
            anon_kib: self.anon_kib.max(other.anon_kib),
            file_kib: self.file_kib.max(other.file_kib),
            shmem_kib: self.shmem_kib.max(other.shmem_kib),
            // The newest: a sample taken before the child started its
            // program (between spawn and exec) shows the parent's.
            peak_kib: other.peak_kib,
        }
    }
}

/// A running child that is measured when it exits. Dropped without
/// [`wait`](Self::wait) (an error elsewhere), it is killed.
pub struct Measured {
    name: String,
    /// `None` once reaped.
    child: Option<Child>,
    sampler: Option<Sampler>,
}

/// The sampling thread and its stop flag.
type Sampler = (Arc<AtomicBool>, JoinHandle<Samples>);

impl Measured {
    /// Starts `cmd`; with `sample`, samples its threads' CPU times and its
    /// memory.
    pub fn spawn(name: &str, cmd: &mut Command, sample: bool) -> Result<Self> {
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        let sampler = sample.then(|| {
            let stop = Arc::new(AtomicBool::new(false));
            let pid = child.id();
            let flag = stop.clone();
            (stop, std::thread::spawn(move || sample_proc(pid, &flag)))
        });
        Ok(Self {
            name: name.into(),
            child: Some(child),
            sampler,
        })
    }

    /// Waits for the child to exit; fails if it did not exit successfully.
    pub fn wait(mut self) -> Result<Usage> {
        let pid = self.child.as_ref().expect("not reaped yet").id();
        let (status, rusage) =
            wait4(pid).with_context(|| format!("waiting for {} to finish", self.name))?;
        // Reaped: nothing is left to kill or wait for on drop.
        self.child = None;
        let samples = match self.sampler.take() {
            Some((stop, handle)) => {
                stop.store(true, Ordering::SeqCst);
                handle.join().expect("the sampler does not panic")
            }
            None => Samples::default(),
        };
        if !status.success() {
            bail!("{} failed ({status})", self.name);
        }
        let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        Ok(Usage {
            cpu: time(rusage.ru_utime) + time(rusage.ru_stime),
            max_rss_kib: match samples.memory.peak_kib {
                0 => rusage.ru_maxrss as u64,
                sampled => sampled,
            },
            threads: by_name(samples.threads.into_values()),
            memory: samples.memory,
        })
    }
}

impl Drop for Measured {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some((stop, handle)) = self.sampler.take() {
            stop.store(true, Ordering::SeqCst);
            let _ = handle.join();
        }
    }
}

/// Reaps `pid` and returns its exit status and resource usage. The
/// `Child` it came from must not be waited for afterwards.
fn wait4(pid: u32) -> Result<(ExitStatus, libc::rusage)> {
    use std::os::unix::process::ExitStatusExt;
    let pid = libc::pid_t::try_from(pid)?;
    let mut status = 0;
    // SAFETY: rusage is plain old data, valid when zeroed.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: plain system call on our own unreaped child, with valid
        // pointers to locals.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut rusage) };
        if reaped == pid {
            return Ok((ExitStatus::from_raw(status), rusage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err.into());
        }
    }
}

/// One thread's name and CPU time at the last sample.
#[derive(Debug, Clone)]
struct ThreadTime {
    name: String,
    cpu: Duration,
}

/// What sampling found.
#[derive(Debug, Default)]
struct Samples {
    /// The last time seen of every thread that ever ran, by thread id.
    threads: HashMap<u32, ThreadTime>,
    /// The largest memory of each kind seen.
    memory: Memory,
}

/// Samples `pid` until `stop` is set or the process is gone.
fn sample_proc(pid: u32, stop: &AtomicBool) -> Samples {
    let tick = clock_tick();
    let mut samples = Samples::default();
    while !stop.load(Ordering::SeqCst) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            break;
        };
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            samples.memory = samples.memory.max(Memory::parse(&status));
        }
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            if let Some((name, ticks)) = parse_stat(&stat) {
                let cpu = tick * u32::try_from(ticks).unwrap_or(u32::MAX);
                samples.threads.insert(tid, ThreadTime { name, cpu });
            }
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    samples
}

/// Sums thread times by name.
fn by_name(threads: impl Iterator<Item = ThreadTime>) -> BTreeMap<String, Duration> {
    let mut out = BTreeMap::new();
    for t in threads {
        *out.entry(t.name).or_default() += t.cpu;
    }
    out
}

/// `comm` and `utime + stime` (in clock ticks) from a `stat` line:
/// `TID (COMM) STATE ... UTIME STIME ...`, COMM possibly holding spaces or
/// parentheses, so fields are counted after its last `)`.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    // After COMM: state (field 3), ..., utime (14), stime (15).
    let mut fields = stat[close + 1..].split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((name, utime + stime))
}

/// The length of a `/proc` clock tick.
fn clock_tick() -> Duration {
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Duration::from_secs(1) / u32::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100)
}

/// The 1-minute load average, from `/proc/loadavg`.
pub fn load_average() -> Result<f64> {
    let text = std::fs::read_to_string("/proc/loadavg")?;
    text.split_whitespace()
        .next()
        .and_then(|l| l.parse().ok())
        .context("/proc/loadavg does not start with a number")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let stat = "4242 (deskrec (enc) x) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 5 0";
        assert_eq!(parse_stat(stat), Some(("deskrec (enc) x".into(), 175)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn memory_kinds_parse_and_keep_their_peaks() {
        let status = "VmHWM:\t  900 kB\nVmRSS:\t  300 kB\nRssAnon:\t  200 kB\nRssFile:\t   60 kB\nRssShmem:\t 40 kB\n";
        let m = Memory::parse(status);
        assert_eq!(
            (m.anon_kib, m.file_kib, m.shmem_kib, m.peak_kib),
            (200, 60, 40, 900)
        );
        let later = Memory {
            anon_kib: 100,
            file_kib: 70,
            shmem_kib: 40,
            peak_kib: 350,
        };
        assert_eq!(m.max(later).file_kib, 70);
        assert_eq!(m.max(later).anon_kib, 200);
        assert_eq!(m.max(later).peak_kib, 350, "the newest high-water mark");
    }

    #[test]
    fn a_child_is_charged_its_own_cpu_and_memory() {
        let mut cmd = Command::new("sh");
        // A busy loop of about a tenth of a second of CPU.
        cmd.args(["-c", "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done"]);
        let usage = Measured::spawn("sh", &mut cmd, true)
            .unwrap()
            .wait()
            .unwrap();
        assert!(usage.cpu > Duration::ZERO);
        assert!(usage.max_rss_kib > 0);
        // The /proc samples are best effort: a short child may be sampled
        // between fork and exec, or not at all, so they are not checked.
        let failing = Measured::spawn("false", &mut Command::new("false"), false).unwrap();
        assert!(failing.wait().is_err());
    }

    #[test]
    fn a_child_of_a_big_process_is_charged_its_own_memory() {
        // 256 MiB, touched, held by this (the parent) process while the
        // child runs; ru_maxrss alone would charge it to the child.
        let ballast = std::hint::black_box(vec![1u8; 256 << 20]);
        let ballast_kib = ballast.len() >> 10;
        let mut cmd = Command::new("sleep");
        cmd.arg("0.5");
        let usage = Measured::spawn("sleep", &mut cmd, true)
            .unwrap()
            .wait()
            .unwrap();
        assert!(
            usage.max_rss_kib > 0 && usage.max_rss_kib < 64 << 10,
            "sleep's peak: {} KiB (the parent holds {ballast_kib} KiB)",
            usage.max_rss_kib
        );
        drop(ballast);
    }
}

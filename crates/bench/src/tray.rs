//! The `tray` benchmark: what the tray app (`deskrec-tray`, the agent
//! engine in a Tauri process) costs over the headless agent
//! (`deskrec-agent run`), recording the same still screen at the same time.
//!
//! 1. A desktop: a private 1920x1080x24 Xvfb showing an xterm with text
//!    that does not change (`StillScreen`), and a private D-Bus session
//!    with a tray host and a notification server (`deskrec-e2e`): with a
//!    tray, the app lives in it and its window stays closed, as on an
//!    agent's desktop.
//! 2. The release server with 60 s segments (10 s GOPs), the user `ann`
//!    eligible, and two data directories, each enrolled with its own token:
//!    the agent's with `deskrec-agent enroll`, the tray app's by the app
//!    itself (`--enroll URL TOKEN`, as at a first start).
//! 3. Both run at once as `ann` on the same screen (each captures with X11
//!    SHM on its own). Once both say they record (`deskrec-agent status`
//!    on each data directory) and after a warm-up, their CPU time
//!    (user + system, `/proc/PID/stat`) is read at the start and end of a
//!    fixed window and their RSS sampled every second during it; each
//!    figure is the process and its descendants.
//! 4. The window opened: `deskrec-tray` started a second time with the same
//!    environment and arguments (one app per session: it makes the first
//!    one open its window, and exits 0). Once the WebView's processes
//!    (`WebKitWebProcess`, `WebKitNetworkProcess`, children of the app)
//!    are up and the page has loaded, the RSS of the app's whole process
//!    tree is sampled.
//!
//! Results are differences measured in the same run: the two recorders
//! share the machine, the screen and the server, so load from elsewhere
//! falls on both.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use deskrec_capture::testing::Xvfb;
use deskrec_client::Method;
use deskrec_e2e::{Notifications, PrivateBus, Watcher};
use serde_json::json;

use crate::capture::measure::Memory;
use crate::process::{self, Process, ServerProcess, Stat, enroll_agent, release_binary, tree};
use crate::report::{Goal, Report};
use crate::server::Admin;

/// The screen recorded.
pub const SCREEN: &str = "1920x1080x24";
/// The user both record, made eligible on the server.
pub const LOGIN: &str = "ann";
/// Time after both record before the window starts: the first segment's
/// start, the first uploads of state, the tray's notification.
pub const WARM_UP: Duration = Duration::from_secs(10);
/// The window the CPU time is measured over.
pub const WINDOW: Duration = Duration::from_secs(60);
/// RSS sampling period during the window.
const SAMPLE: Duration = Duration::from_secs(1);
/// Time for the opened window's page to load once its WebKit processes
/// are up.
const LOAD: Duration = Duration::from_secs(5);
/// How long the open window's RSS is sampled (every [`OPEN_SAMPLE`]);
/// the largest sum is reported.
const OPEN_SAMPLING: Duration = Duration::from_secs(5);
/// The open window's sampling period.
const OPEN_SAMPLE: Duration = Duration::from_millis(500);
/// Longest wait for a start: enrollment, the first policy, the WebView.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How the WebView's web content process is named in `/proc/PID/stat`
/// (`comm`, cut at 15 bytes).
const WEB_PROCESS: &str = "WebKitWebProces";

/// Runs the benchmark with scratch files under `work`.
pub fn run(work: &Path) -> Result<Report> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(work))
}

async fn run_async(work: &Path) -> Result<Report> {
    let screen = StillScreen::start()?;
    let bus =
        PrivateBus::start().context("a private D-Bus session (apt-get install dbus-daemon)")?;
    let tray_host = Watcher::start(&bus).await?;
    let _notifications = Notifications::start(&bus).await?;

    let server = ServerProcess::start(&work.join("server"))?;
    let mut admin = Admin::connect(&server.address, server.admin_token.clone()).await?;
    admin
        .call(
            Method::PATCH,
            "/api/v1/admin/settings",
            Some(json!({"segment_seconds": 60, "gop_seconds": 10})),
        )
        .await?;
    admin.eligible_user("Ann", LOGIN).await?;
    let agent_dir = work.join("agent");
    enroll_agent(
        &admin.enrollment_token().await?,
        &agent_dir,
        "BENCH-AGENT-PC",
    )?;
    let tray_dir = work.join("tray");
    let url = format!("https://{}", server.address.authority());
    let desktop = Desktop {
        display: screen.display().to_owned(),
        bus: bus.address().to_owned(),
        home: work.join("home"),
    };
    std::fs::create_dir_all(&desktop.home)?;

    let mut agent = Process::spawn(
        desktop
            .configure(&mut Command::new(release_binary("deskrec-agent")?))
            .arg("run")
            .arg("--data-dir")
            .arg(&agent_dir)
            .args(["--login", LOGIN])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(work.join("agent.log"))?),
    )?;
    let tray_logs = work.join("tray-logs");
    let tray_args: Vec<String> = vec![
        "--data-dir".into(),
        tray_dir.display().to_string(),
        "--log-dir".into(),
        tray_logs.display().to_string(),
        "--login".into(),
        LOGIN.into(),
        "--enroll".into(),
        url,
        admin.enrollment_token().await?,
    ];
    let tray_bin = release_binary("deskrec-tray")?;
    let mut tray = Process::spawn(
        desktop
            .configure(&mut Command::new(&tray_bin))
            .args(&tray_args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(work.join("tray.log"))?),
    )?;

    // The app's item in the tray: it lives there, its window closed.
    tray_host
        .wait_for_item(START_LIMIT)
        .await
        .context("the tray app's item did not register with the tray host")?;
    wait_recording(&agent_dir, &mut agent, "the agent", work).await?;
    wait_recording(&tray_dir, &mut tray, "the tray app", work).await?;
    println!(
        "both record {LOGIN}'s screen; warm-up {} s, then {} s measured",
        WARM_UP.as_secs(),
        WINDOW.as_secs()
    );
    tokio::time::sleep(WARM_UP).await;

    let (agent_pid, tray_pid) = (agent.pid(), tray.pid());
    let cpu_start = (tree_cpu_ticks(agent_pid)?, tree_cpu_ticks(tray_pid)?);
    let xvfb_start = screen.xvfb.cpu_time();
    let started = Instant::now();
    let (mut agent_rss, mut tray_rss) = (Vec::new(), Vec::new());
    while started.elapsed() < WINDOW {
        tokio::time::sleep(SAMPLE).await;
        agent_rss.push(tree_rss_mb(agent_pid)?);
        tray_rss.push(tree_rss_mb(tray_pid)?);
    }
    let cpu_end = (tree_cpu_ticks(agent_pid)?, tree_cpu_ticks(tray_pid)?);
    let (agent_memory, tray_memory) = (Memory::of(agent_pid)?, Memory::of(tray_pid)?);
    let elapsed = started.elapsed().as_secs_f64();
    let xvfb_cpu = (screen.xvfb.cpu_time() - xvfb_start).as_secs_f64();
    let pct = |ticks: u64| ticks as f64 / process::clock_ticks_per_second() / elapsed * 100.0;
    let agent_cpu = pct(cpu_end.0 - cpu_start.0);
    let tray_cpu = pct(cpu_end.1 - cpu_start.1);
    let closed_tree = names(&tree(tray_pid)?);
    ensure!(
        !closed_tree.iter().any(|n| n.starts_with("WebKit")),
        "the tray app's window was open during the window-closed phase: {closed_tree:?}"
    );
    ensure!(
        !read_logs(&tray_logs).contains("window opened"),
        "the tray app opened its window during the window-closed phase (see {})",
        tray_logs.display()
    );
    for (dir, name) in [(&agent_dir, "the agent"), (&tray_dir, "the tray app")] {
        let state = recording_state(dir)?;
        ensure!(
            state == "recording",
            "{name} stopped recording during the window ({state}); see {}",
            work.display()
        );
    }
    println!(
        "window closed: agent {agent_cpu:.2} %, tray {tray_cpu:.2} % of a core; opening the window"
    );

    // A second start opens the first one's window, and exits 0.
    let second = desktop
        .configure(&mut Command::new(&tray_bin))
        .args(&tray_args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.join("tray-second.log"))?)
        .status()?;
    ensure!(
        second.success(),
        "a second deskrec-tray exited with {second} (see {})",
        work.join("tray-second.log").display()
    );
    let deadline = Instant::now() + START_LIMIT;
    while !names(&tree(tray_pid)?).iter().any(|n| n == WEB_PROCESS) {
        ensure!(
            Instant::now() < deadline,
            "the window's web process did not start within {} s: {:?}",
            START_LIMIT.as_secs(),
            names(&tree(tray_pid)?)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(LOAD).await;
    let (mut open_rss, mut open_pss) = (0f64, 0f64);
    let sampling = Instant::now();
    while sampling.elapsed() < OPEN_SAMPLING {
        open_rss = open_rss.max(tree_rss_mb(tray_pid)?);
        open_pss = open_pss.max(tree_pss_mb(tray_pid)?);
        tokio::time::sleep(OPEN_SAMPLE).await;
    }
    let open_tree = names(&tree(tray_pid)?);
    ensure!(
        tray.running() && agent.running(),
        "a recorder exited during the run (see {})",
        work.display()
    );
    tray.stop()?;
    agent.stop()?;
    server.stop()?;

    let agent_rss = median(&agent_rss);
    let tray_rss = median(&tray_rss);
    let mut r = Report::default();
    r.add_goal_in(
        "tray_idle_cpu_pct_over_agent",
        tray_cpu - agent_cpu,
        "%",
        Goal::AtMost(0.5),
        "tray app's CPU (window closed) minus the agent's, % of one core, same still screen",
    );
    r.add_goal_in(
        "tray_rss_mb_over_agent",
        tray_rss - agent_rss,
        "MB",
        Goal::AtMost(40.0),
        "tray app's RSS (window closed) minus the agent's, medians of the samples",
    );
    r.add_goal_in(
        "tray_open_rss_mb",
        open_rss,
        "MB",
        Goal::AtMost(150.0),
        "tray app's RSS with its window open, its WebKit processes included",
    );
    r.add(
        "agent_cpu_pct",
        agent_cpu,
        "%",
        format!(
            "deskrec-agent run, user+system over {} s, % of one core",
            WINDOW.as_secs()
        ),
    );
    r.add(
        "tray_cpu_pct",
        tray_cpu,
        "%",
        "deskrec-tray, window closed, same window",
    );
    r.add(
        "agent_rss_mb",
        agent_rss,
        "MB",
        format!(
            "deskrec-agent RSS, median of samples every {} s",
            SAMPLE.as_secs()
        ),
    );
    r.add(
        "tray_rss_mb",
        tray_rss,
        "MB",
        "deskrec-tray RSS, window closed, same samples",
    );
    let mb = |kib: u64| kib as f64 / 1024.0;
    r.add(
        "agent_rss_anon_mb",
        mb(agent_memory.anon_kib),
        "MB",
        "of the agent's RSS at the window's end: heap, stacks (RssAnon)",
    );
    r.add(
        "agent_rss_file_mb",
        mb(agent_memory.file_kib),
        "MB",
        "of it: the program's and libraries' pages (RssFile)",
    );
    r.add(
        "tray_rss_anon_mb",
        mb(tray_memory.anon_kib),
        "MB",
        "of the tray app's RSS at the window's end: heap, stacks (RssAnon)",
    );
    r.add(
        "tray_rss_file_mb",
        mb(tray_memory.file_kib),
        "MB",
        "of it: the program's and libraries' pages (RssFile: GTK, WebKitGTK, ...)",
    );
    r.add(
        "tray_open_pss_mb",
        open_pss,
        "MB",
        "same as tray_open_rss_mb, proportional (shared pages split among the processes)",
    );
    r.add(
        "tray_open_processes",
        open_tree.len() as f64,
        "procs",
        "processes in the tray app's tree with the window open",
    );
    r.add(
        "xvfb_cpu_pct",
        xvfb_cpu / elapsed * 100.0,
        "%",
        "the X server's CPU during the window (serving both recorders' captures)",
    );
    r.note(format!(
        "{SCREEN} Xvfb showing still text; 60 s segments; both recorders run at once as {LOGIN}; \
         warm-up {} s; CPU and RSS are each process with its descendants.",
        WARM_UP.as_secs()
    ));
    r.note(format!(
        "window closed, the tray app's processes: {closed_tree:?}; open: {open_tree:?}"
    ));
    Ok(r)
}

/// What the two recorders are started with: the same display, session bus
/// and home directory (where WebKit keeps its caches), and nothing of the
/// caller's desktop.
struct Desktop {
    display: String,
    bus: String,
    home: PathBuf,
}

impl Desktop {
    fn configure<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        cmd.env("DISPLAY", &self.display)
            .env(deskrec_e2e::SESSION_BUS_VARIABLE, &self.bus)
            .env("HOME", &self.home)
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_STATE_HOME")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
    }
}

/// Waits until the engine on `dir` says it records, failing early if
/// `recorder` exits.
async fn wait_recording(dir: &Path, recorder: &mut Process, name: &str, work: &Path) -> Result<()> {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        ensure!(
            recorder.running(),
            "{name} exited at start (see its log in {})",
            work.display()
        );
        // Not before the engine made its directory: a status read would
        // create it (and a database) under the starting engine's feet.
        let state = if dir.join("agent.lock").exists() {
            recording_state(dir).unwrap_or_else(|e| format!("{e:#}"))
        } else {
            "not started".to_owned()
        };
        if state == "recording" {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{name} does not record after {} s: {state} (see its log in {})",
                START_LIMIT.as_secs(),
                work.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The recording state the engine on `dir` reports (`deskrec-agent
/// status`: what the tray shows), e.g. `recording`.
fn recording_state(dir: &Path) -> Result<String> {
    let out = Command::new(release_binary("deskrec-agent")?)
        .arg("status")
        .arg("--data-dir")
        .arg(dir)
        .output()?;
    ensure!(
        out.status.success(),
        "deskrec-agent status: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(status["state"]
        .as_str()
        .context("no state in deskrec-agent status")?
        .to_owned())
}

/// CPU time of `pid` and its descendants, clock ticks.
fn tree_cpu_ticks(pid: u32) -> Result<u64> {
    Ok(tree(pid)?.iter().map(|s| s.cpu_ticks).sum())
}

/// Resident memory of `pid` and its descendants, MB (pages shared between
/// them counted in each).
fn tree_rss_mb(pid: u32) -> Result<f64> {
    sum_over_tree(pid, process::rss_mb)
}

/// Proportional memory of `pid` and its descendants, MB.
fn tree_pss_mb(pid: u32) -> Result<f64> {
    sum_over_tree(pid, process::pss_mb)
}

/// `f` summed over the tree of `pid`; a descendant that exits meanwhile
/// counts nothing.
fn sum_over_tree(pid: u32, f: fn(u32) -> Result<f64>) -> Result<f64> {
    let t = tree(pid)?;
    let root = f(t[0].pid)?;
    Ok(root + t[1..].iter().filter_map(|s| f(s.pid).ok()).sum::<f64>())
}

/// Everything in the log files in `dir`.
fn read_logs(dir: &Path) -> String {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The processes' names.
fn names(tree: &[Stat]) -> Vec<String> {
    tree.iter().map(|s| s.comm.clone()).collect()
}

/// The median of `samples` (NaN when empty).
fn median(samples: &[f64]) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The screen both record: a private Xvfb with a black background and an
/// xterm showing a page of text that never changes (xterm's cursor does
/// not blink by default), without a window manager. Stopped when dropped.
struct StillScreen {
    // Dropped before `xvfb` (fields drop in order).
    xterm: Child,
    xvfb: Xvfb,
}

impl StillScreen {
    fn start() -> Result<Self> {
        let xvfb = Xvfb::start_with(SCREEN, &["-br"])
            .ok_or_else(|| anyhow!("Xvfb is not installed (Debian: apt-get install xvfb)"))?;
        let mut xterm = Command::new("xterm")
            .args(["-geometry", "160x50+40+40", "-e", "sh", "-c"])
            .arg("ls -l /usr/lib | head -48; exec sleep 100000")
            .env("DISPLAY", xvfb.display())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting xterm (Debian: apt-get install xterm)")?;
        std::thread::sleep(Duration::from_secs(2));
        if let Some(status) = xterm.try_wait()? {
            bail!("xterm exited at start ({status})");
        }
        Ok(Self { xterm, xvfb })
    }

    fn display(&self) -> &str {
        self.xvfb.display()
    }
}

impl Drop for StillScreen {
    fn drop(&mut self) {
        let _ = self.xterm.kill();
        let _ = self.xterm.wait();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(super::median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(super::median(&[]).is_nan());
    }
}

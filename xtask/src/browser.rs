//! The browser tests, in Debian's Chromium driven by playwright-core.
//!
//! 1. An exported recording plays: records 8 s of the numbered synthetic
//!    screen with the real `deskrec` binary, splices a contact from 3.3 s to
//!    7.1 s across three segments, exports it, and has
//!    `tests/browser/play.mjs` play it in a `<video>` element: the duration
//!    must match the contact within one frame, the first picture shown must
//!    be the one on screen at the contact's start (frame 16, on screen from
//!    3.2 s), the last the one at its end (frame 35), and playback must
//!    reach the end.
//! 2. A supervisor plays a contact: starts the real `deskrec-server` on a
//!    free port with a fresh data directory, and `tests/browser/supervisor.mjs`
//!    seeds it through its APIs (users, roles, password, enrollment, contact
//!    import, a tus upload of a real recording), signs in through the login
//!    form, opens the contact and plays it to the end, with the same checks.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::{setup, util};

/// `cargo xtask browser`.
pub fn run(_args: &[String]) -> Result<()> {
    setup::ensure(setup::BASE)?;
    setup::ensure(&["chromium"])?;
    // This machine kind ships Node.js with npm (not Debian's split packages,
    // which conflict with it); install Debian's only where there is none.
    if !util::have("npm") {
        setup::ensure(&["nodejs", "npm"])?;
    }
    let dir = util::root().join("tests/browser");
    util::run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir),
    )?;
    util::run(util::cargo().args(["build", "-p", "deskrec-cli", "-p", "deskrec-server"]))?;
    let deskrec = util::target_dir().join("debug/deskrec");
    let work = util::target_dir().join("browser-test");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    exported(&dir, &deskrec, &work)?;
    supervisor(&dir, &deskrec, &work.join("supervisor"))
}

/// Scenario 1: a recording exported by the CLI plays.
fn exported(dir: &Path, deskrec: &Path, work: &Path) -> Result<()> {
    let cli = |args: &[&str]| -> Result<Value> {
        let out = util::output(Command::new(deskrec).args(args).current_dir(work))?;
        serde_json::from_str(&out).context("deskrec printed no JSON")
    };
    cli(&["keygen", "server"])?;
    cli(&["keygen", "device"])?;
    let rec = cli(&[
        "record",
        "--source",
        "synthetic",
        "--out",
        "segments",
        "--server-pub",
        "server.pub",
        "--device-id",
        "browser-pc",
        "--seconds",
        "8",
        "--gop-seconds",
        "2",
        "--segment-seconds",
        "3",
        "--size",
        "640x360",
    ])?;
    let t0 = rec["start"].as_i64().context("no start time")?;
    let (from, to) = ((t0 + 3_300_000).to_string(), (t0 + 7_100_000).to_string());
    let mut splice = vec![
        "vault",
        "splice",
        "--device-key",
        "device.key",
        "--contact",
        "browser-1",
        "--start",
        &from,
        "--end",
        &to,
        "--out",
        "contact.dskr",
    ];
    let segments: Vec<String> = rec["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["path"].as_str().map(String::from))
        .collect();
    splice.extend(segments.iter().map(String::as_str));
    cli(&splice)?;
    cli(&[
        "vault",
        "export",
        "--server-key",
        "server.key",
        "--device-pub",
        "device.pub",
        "contact.dskr",
        "--out",
        "contact.mp4",
    ])?;
    play(dir, &work.join("contact.mp4"), "3.8", 16, 35)
}

/// Plays `mp4` in Chromium and checks duration and first and last pictures.
fn play(dir: &Path, mp4: &Path, duration: &str, first: u32, last: u32) -> Result<()> {
    let mut cmd = Command::new("node");
    cmd.arg("play.mjs")
        .arg(mp4)
        .args([duration, &first.to_string(), &last.to_string()])
        .current_dir(dir);
    util::run(&mut cmd).context("the exported recording does not play as it should in Chromium")
}

/// Scenario 2: a supervisor signs in and plays a contact served by a real
/// `deskrec-server`.
fn supervisor(dir: &Path, deskrec: &Path, work: &Path) -> Result<()> {
    let data = work.join("data");
    std::fs::create_dir_all(&data)?;
    for kind in ["server", "device"] {
        util::output(
            Command::new(deskrec)
                .args(["keygen", kind])
                .current_dir(work),
        )?;
    }
    // The server's recording key, as an operator restoring one would put it
    // in place: agents' segments (here `deskrec record`'s) are wrapped under
    // its public half.
    std::fs::copy(work.join("server.key"), data.join("recording-key.pem"))?;
    let server = Server::start(&util::target_dir().join("debug/deskrec-server"), &data)?;
    let mut cmd = Command::new("node");
    cmd.arg("supervisor.mjs")
        .arg(&server.url)
        .arg(&data)
        .arg(deskrec)
        .arg(work)
        .current_dir(dir);
    util::run(&mut cmd).context("a supervisor cannot play a contact's recording in Chromium")
}

/// A `deskrec-server` child process, killed when dropped.
pub(crate) struct Server {
    child: Child,
    /// `https://127.0.0.1:PORT`.
    pub(crate) url: String,
}

impl Server {
    /// Starts the server on a free loopback port and waits until it listens
    /// (it prints `deskrec-server listening on ADDR` once bound).
    pub(crate) fn start(binary: &Path, data: &Path) -> Result<Self> {
        let mut child = Command::new(binary)
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not start {}", binary.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut server = Server {
            child,
            url: String::new(),
        };
        // Its stdout is read to the end (echoed to stderr) so the server
        // never writes into a closed pipe; the address comes back first.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("deskrec-server: {line}");
                if let Some(addr) = line.strip_prefix("deskrec-server listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .context("deskrec-server did not start listening (its log is above)")?;
        server.url = format!("https://{addr}");
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

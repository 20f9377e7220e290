//! `cargo xtask demo`: the whole flow on one machine, on embedded defaults.
//!
//! A `deskrec-server` with generated keys and demo users; a `deskrec-agent`
//! enrolled with a one-time token, recording this machine's X display (or a
//! virtual one showing a clock and `top` when there is none) under the
//! server's policy; a demo contact imported as a contact centre would; the
//! agent splicing, signing and uploading its recording; the server
//! verifying it; the MP4 a supervisor plays, fetched through the signed-in
//! video endpoint and described with ffprobe; and the link where it plays.

use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::display::VirtualDisplay;
use crate::{setup, util};

/// Programs the virtual display shows, so the recording has something to
/// see; curl talks to the server's API.
const DEMO_PACKAGES: &[&str] = &["x11-apps", "xterm", "procps", "curl", "imagemagick"];
/// The demo agent's Windows-style login.
const AGENT: &str = "DEMO\\agent";
/// The demo supervisor and their password.
const SUPERVISOR: &str = "DEMO\\supervisor";
/// The team of the demo's agent and supervisor: a supervisor sees the
/// contacts of their teams' agents.
const DEMO_TEAM: &str = "Demo team";
const PASSWORD: &str = "deskrec-demo-password";
/// The port the demo server prefers (a free one if it is taken).
const PORT: u16 = 8443;
/// How long the agent records before the contact is imported.
const RECORD_SECONDS: u64 = 20;

/// `cargo xtask demo`.
pub fn run(_args: &[String]) -> Result<()> {
    setup::ensure(setup::BASE)?;
    setup::ensure(DEMO_PACKAGES)?;
    let virtual_display = match std::env::var("DISPLAY") {
        Ok(display) if !display.is_empty() => {
            println!("Recording this machine's display {display}.");
            None
        }
        _ => {
            let mut screen = VirtualDisplay::start(1280, 720)?;
            screen.spawn("xclock", &["-update", "1", "-geometry", "300x300+900+40"])?;
            screen.spawn("xterm", &["-geometry", "100x40+10+10", "-e", "top"])?;
            println!(
                "No display: recording a virtual one ({}) showing a clock and top.",
                screen.name()
            );
            Some(screen)
        }
    };
    util::run(util::cargo().args([
        "build",
        "--release",
        "-p",
        "deskrec-server",
        "-p",
        "deskrec-agent",
        "-p",
        "deskrec-tray",
    ]))?;
    let bin = |name: &str| util::target_dir().join("release").join(name);
    let data = util::root().join("demo-data");
    if data.exists() {
        std::fs::remove_dir_all(&data).with_context(|| format!("clearing {}", data.display()))?;
    }
    std::fs::create_dir_all(&data)?;

    step("1/6 the server: TLS certificate, recording key, database, admin token");
    let server = Server::start(&bin("deskrec-server"), &data.join("server"))?;
    let api = Api::new(&server)?;
    println!(
        "   {} (certificate SHA-256 {})",
        server.url, server.fingerprint
    );

    step("2/6 demo users, roles and a short segment length for the demo");
    api.recorded_agent("Demo Agent", AGENT)?;
    api.admin(
        "PUT",
        "/roles/supervisor",
        json!({"permissions": ["view_recordings"]}),
    )?;
    let sup = api.admin(
        "POST",
        "/users",
        json!({"name": "Demo Supervisor", "windows_login": SUPERVISOR, "roles": ["supervisor"],
               "teams": [DEMO_TEAM]}),
    )?;
    api.admin(
        "PUT",
        &format!("/users/{}/password", sup["id"]),
        json!({ "password": PASSWORD }),
    )?;
    api.admin(
        "PATCH",
        "/settings",
        json!({"segment_seconds": 10, "gop_seconds": 2}),
    )?;
    println!("   {AGENT} records (role agent); {SUPERVISOR} watches (role supervisor)");

    step(
        "3/6 the agent PC: the tray app starts, enrolls with a one-time token pinned to the server's certificate, and opens its window",
    );
    let token = api.admin("POST", "/enrollment-tokens", Value::Null)?;
    let agent_dir = data.join("agent");
    // On a desktop the app joins its session bus and tray; on the virtual
    // display it gets a session bus of its own.
    let mut agent = match &virtual_display {
        Some(screen) => {
            let mut c = Command::new("dbus-run-session");
            c.arg("--")
                .arg(bin("deskrec-tray"))
                .env("DISPLAY", screen.name());
            c
        }
        None => Command::new(bin("deskrec-tray")),
    };
    agent
        .arg("--data-dir")
        .arg(&agent_dir)
        .arg("--log-dir")
        .arg(data.join("tray-logs"))
        .args(["--login", AGENT, "--show", "--enroll", &server.url])
        .arg(token["enrollment_token"].as_str().context("no token")?)
        .env("RUST_LOG", "warn")
        .stderr(std::fs::File::create(data.join("agent.log"))?);
    let agent = Process::spawn(agent, "deskrec-tray")?;

    step(&format!(
        "4/6 the agent records the screen as {AGENT} under the server's policy ({RECORD_SECONDS} s)"
    ));
    std::thread::sleep(Duration::from_secs(RECORD_SECONDS));
    match &virtual_display {
        Some(screen) => {
            let shot = data.join("screen.png");
            util::run(
                Command::new("import")
                    .args(["-window", "root"])
                    .arg(&shot)
                    .env("DISPLAY", screen.name()),
            )?;
            println!(
                "   the tray app's window on the virtual display: {} (a screenshot)",
                shot.display()
            );
        }
        None => println!(
            "   look at your tray: the Deskrec icon (hover for the state, click for the menu); its window is open"
        ),
    }
    let status = util::output(
        Command::new(bin("deskrec-agent"))
            .arg("status")
            .arg("--data-dir")
            .arg(&agent_dir),
    )?;
    let status: Value = serde_json::from_str(&status).context("agent status is not JSON")?;
    println!("   agent status: {}", status);

    step("5/6 the contact centre reports a contact: the last 12 s, ending 3 s ago");
    let now = jiff::Timestamp::now();
    let (start, end) = (
        now - jiff::SignedDuration::from_secs(15),
        now - jiff::SignedDuration::from_secs(3),
    );
    api.admin(
        "POST",
        "/contacts",
        json!({"contacts": [{
            "contact_id": "demo-1", "windows_login": AGENT,
            "start": start.to_string(), "end": end.to_string(),
            "direction": "inbound", "queue": "demo"
        }]}),
    )?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let contact = loop {
        let c = api.admin("GET", "/contacts/demo-1", Value::Null)?;
        match c["status"].as_str() {
            Some("uploaded") => break c,
            Some("pending") if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(500))
            }
            _ => bail!(
                "the recording did not arrive: {c} (agent log: {})",
                data.join("agent.log").display()
            ),
        }
    };
    println!(
        "   the agent spliced, signed and uploaded it; the server verified it: {}",
        contact["status"]
    );

    step("6/6 a supervisor signs in and fetches the MP4 the player streams");
    let mp4 = data.join("demo-1.mp4");
    api.supervisor_video("demo-1", &mp4)?;
    describe(&mp4, end.duration_since(start).as_secs_f64())?;

    let link = format!("{}/contacts/demo-1", server.url);
    println!("\nWatch it: {link}");
    println!("   sign in as {SUPERVISOR} / {PASSWORD}");
    println!(
        "   the certificate is self-signed; its SHA-256 fingerprint is {}",
        server.fingerprint
    );
    println!("Demo data is in {}", data.display());
    if std::io::stdin().is_terminal() {
        println!("\nThe server and the agent keep running: press Enter to stop them.");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
    drop(agent);
    drop(server);
    Ok(())
}

fn step(what: &str) {
    println!("\n== {what}");
}

/// Prints codec, size, duration and frame count as ffprobe reads them.
fn describe(mp4: &Path, contact_seconds: f64) -> Result<()> {
    let out = util::output(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-select_streams",
                "v:0",
                "-show_entries",
            ])
            .arg("stream=codec_name,profile,width,height,nb_read_frames:format=duration,size")
            .args(["-of", "json"])
            .arg(mp4),
    )?;
    let v: Value = serde_json::from_str(&out)?;
    let s = &v["streams"][0];
    println!("   {}", mp4.display());
    println!(
        "   codec {} ({}), {}x{}, {} frames, duration {} s (the {contact_seconds:.1} s contact with the agent's 5 s padding each side), {} bytes",
        s["codec_name"],
        s["profile"],
        s["width"],
        s["height"],
        s["nb_read_frames"],
        v["format"]["duration"],
        v["format"]["size"]
    );
    Ok(())
}

/// A child process, stopped when dropped together with its own children:
/// some children are wrappers (`dbus-run-session -- deskrec-tray`,
/// `-- tauri-driver`) that exit on SIGTERM and leave their child running.
/// (Not a process group of its own: Ctrl-C must still reach them all.)
pub(crate) struct Process {
    child: Child,
}

impl Process {
    pub(crate) fn spawn(mut cmd: Command, what: &str) -> Result<Self> {
        let child = cmd
            .spawn()
            .with_context(|| format!("could not start {what}"))?;
        Ok(Self { child })
    }
}

/// Sends `signal` to `pid` and, first, to its children (from /proc).
fn signal_tree(pid: u32, signal: i32) {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
        signal_tree(child, signal);
    }
    // SAFETY: kill(2) on our own child or one of its descendants.
    unsafe { libc::kill(pid as i32, signal) };
}

impl Drop for Process {
    fn drop(&mut self) {
        // SIGTERM first: the programs shut down gracefully on it.
        signal_tree(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        signal_tree(self.child.id(), libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// The demo server.
pub(crate) struct Server {
    _process: Process,
    pub(crate) url: String,
    /// The certificate's SHA-256, as a browser shows it.
    pub(crate) fingerprint: String,
    /// The server's public-key pin, as agents and the MSI take it.
    pub(crate) pin: String,
    data: PathBuf,
}

impl Server {
    /// Starts `deskrec-server` on [`PORT`] (or a free port) and waits until
    /// it listens.
    pub(crate) fn start(binary: &Path, data: &Path) -> Result<Self> {
        let listen = if std::net::TcpListener::bind(("127.0.0.1", PORT)).is_ok() {
            format!("127.0.0.1:{PORT}")
        } else {
            "127.0.0.1:0".to_owned()
        };
        Self::start_on(binary, data, &listen)
    }

    /// Starts `deskrec-server` listening on `listen` (`host:port`), on the
    /// data in `data` (a restart keeps its certificate and its devices).
    pub(crate) fn start_on(binary: &Path, data: &Path, listen: &str) -> Result<Self> {
        let mut cmd = Command::new(binary);
        cmd.arg("--data-dir")
            .arg(data)
            .args(["--listen", listen])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped());
        let mut process = Process::spawn(cmd, "deskrec-server")?;
        let stdout = process.child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // The pin is printed last.
            let (mut addr, mut fp) = (None, None);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("deskrec-server listening on ") {
                    addr = Some(a.trim().to_owned());
                }
                if let Some(f) = line.strip_prefix("TLS certificate SHA-256: ") {
                    fp = Some(f.trim().to_owned());
                }
                if let Some(p) = line.strip_prefix("TLS key pin: ")
                    && let (Some(a), Some(f)) = (addr.take(), &fp)
                {
                    let _ = tx.send((a, f.clone(), p.trim().to_owned()));
                }
            }
        });
        let (addr, fingerprint, pin) = rx
            .recv_timeout(Duration::from_secs(60))
            .context("deskrec-server did not start listening")?;
        Ok(Self {
            _process: process,
            url: format!("https://{addr}"),
            fingerprint,
            pin,
            data: data.to_owned(),
        })
    }
}

/// The server's HTTP API through curl, trusting exactly the server's own
/// certificate (`--cacert`), never `--insecure`.
pub(crate) struct Api {
    url: String,
    token: String,
    cacert: PathBuf,
}

impl Api {
    pub(crate) fn new(server: &Server) -> Result<Self> {
        let token = std::fs::read_to_string(server.data.join("admin-token"))
            .context("the server wrote no admin token")?;
        Ok(Self {
            url: server.url.clone(),
            token: token.trim().to_owned(),
            cacert: server.data.join("tls/cert.pem"),
        })
    }

    fn curl(&self) -> Command {
        let mut cmd = Command::new("curl");
        cmd.args(["--silent", "--show-error", "--fail-with-body"])
            .arg("--cacert")
            .arg(&self.cacert);
        cmd
    }

    /// An admin API call that must succeed; its JSON answer.
    pub(crate) fn admin(&self, method: &str, path: &str, body: Value) -> Result<Value> {
        let mut cmd = self.curl();
        cmd.args(["-X", method])
            .arg("-H")
            .arg(format!("authorization: Bearer {}", self.token))
            .args(["-H", "content-type: application/json"]);
        if !body.is_null() {
            cmd.arg("--data").arg(body.to_string());
        }
        cmd.arg(format!("{}/api/v1/admin{path}", self.url));
        let out = util::output(&mut cmd).with_context(|| format!("{method} {path}"))?;
        Ok(if out.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&out).with_context(|| format!("{method} {path}: {out}"))?
        })
    }

    /// A user the server's policy records: the `agent` role (allowed to
    /// be recorded) and a user `name` with Windows login `login` in it.
    pub(crate) fn recorded_agent(&self, name: &str, login: &str) -> Result<()> {
        self.admin(
            "PUT",
            "/roles/agent",
            json!({"permissions": ["record_screen"]}),
        )?;
        self.admin(
            "POST",
            "/users",
            json!({"name": name, "windows_login": login, "roles": ["agent"], "teams": [DEMO_TEAM]}),
        )?;
        Ok(())
    }

    /// Signs in as the demo supervisor and downloads a contact's video.
    fn supervisor_video(&self, contact: &str, out: &Path) -> Result<()> {
        let jar = out.with_extension("cookies");
        util::output(
            self.curl()
                .arg("--cookie-jar")
                .arg(&jar)
                .args(["-H", &format!("origin: {}", self.url)])
                .args(["--data-urlencode", &format!("login={SUPERVISOR}")])
                .args(["--data-urlencode", &format!("password={PASSWORD}")])
                .arg(format!("{}/login", self.url)),
        )
        .context("the demo supervisor cannot sign in")?;
        util::output(
            self.curl()
                .arg("--cookie")
                .arg(&jar)
                .arg("--output")
                .arg(out)
                .arg(format!(
                    "{}/api/v1/recordings/{contact}/video.mp4",
                    self.url
                )),
        )
        .context("the contact's video cannot be fetched")?;
        let _ = std::fs::remove_file(&jar);
        Ok(())
    }
}

//! `cargo xtask window`: the tray app's real window, driven end to end.
//!
//! The real `deskrec-server` (on a free port) makes `ann` eligible with an
//! upload cap slow enough to watch (16 KiB/s); the real `deskrec-tray`
//! runs under `tauri-driver` with Debian's WebKitWebDriver on a virtual
//! display and a session bus of its own; `tests/window/window.py`
//! (selenium) checks that the window shows "recording", that a contact
//! imported on the server appears as uploading with its progress bar
//! advancing, and that it ends as uploaded.

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::demo::{Api, Process, Server};
use crate::display::VirtualDisplay;
use crate::{setup, util};

/// What the test needs on the machine.
const PACKAGES: &[&str] = &[
    "webkit2gtk-driver",
    "python3-selenium",
    "xvfb",
    "xauth",
    "dbus-daemon",
];

/// tauri-driver's port (WebDriver's usual one).
const PORT: u16 = 4444;

/// Runs the task.
pub fn run(_args: &[String]) -> Result<()> {
    setup::ensure(setup::BASE)?;
    setup::ensure(PACKAGES)?;
    let driver = tauri_driver()?;
    util::run(util::cargo().args(["build", "-p", "deskrec-server", "-p", "deskrec-tray"]))?;
    let bin = |name: &str| util::target_dir().join("debug").join(name);
    let work = util::target_dir().join("window-test");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;

    let server = Server::start(&bin("deskrec-server"), &work.join("server"))?;
    let api = Api::new(&server)?;
    api.admin(
        "PATCH",
        "/settings",
        json!({"segment_seconds": 10, "gop_seconds": 2,
               "upload": {"max_recording_bytes": 2u64 << 30, "max_parallel": 1,
                          "max_bytes_per_second": 16384}}),
    )?;
    api.recorded_agent("Ann", "ann")?;
    let token = api.admin("POST", "/enrollment-tokens", Value::Null)?;
    let token = token["enrollment_token"].as_str().context("no token")?;
    let args = json!([
        "--data-dir",
        work.join("data"),
        "--log-dir",
        work.join("logs"),
        "--login",
        "ann",
        "--source",
        "synthetic",
        "--show",
        "--enroll",
        server.url,
        token,
    ]);

    // A tauri-driver left over from an interrupted run would take the
    // session on its own (dead) display and hang the test.
    if TcpStream::connect(("127.0.0.1", PORT)).is_ok() {
        bail!("port {PORT} is taken (a tauri-driver left running? `pkill tauri-driver`)");
    }
    let display = VirtualDisplay::start(1280, 800)?;
    let mut cmd = Command::new("dbus-run-session");
    cmd.arg("--")
        .arg(&driver)
        .args([
            "--port",
            &PORT.to_string(),
            "--native-driver",
            "/usr/bin/WebKitWebDriver",
        ])
        .env("DISPLAY", display.name())
        .stdout(std::fs::File::create(work.join("tauri-driver.log"))?)
        .stderr(std::fs::File::create(work.join("tauri-driver.err"))?);
    let _driver = Process::spawn(cmd, "tauri-driver")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", PORT)).is_err() {
        if Instant::now() > deadline {
            bail!("tauri-driver did not listen on port {PORT}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let result = util::run(
        // Debian's python3, where python3-selenium is installed.
        Command::new("/usr/bin/python3")
            .arg(util::root().join("tests/window/window.py"))
            .env("DESKREC_TRAY", bin("deskrec-tray"))
            .env("DESKREC_ARGS", args.to_string())
            .env("DESKREC_URL", &server.url)
            .env("DESKREC_CACERT", work.join("server/tls/cert.pem"))
            .env("DESKREC_ADMIN", api_token(&work)?),
    );
    if result.is_err() {
        eprintln!("the app's log is in {}", work.join("logs").display());
    }
    result
}

/// The server's admin token, as it wrote it.
fn api_token(work: &std::path::Path) -> Result<String> {
    Ok(std::fs::read_to_string(work.join("server/admin-token"))
        .context("the server wrote no admin token")?
        .trim()
        .to_owned())
}

/// `tauri-driver`, installed with cargo the first time (about a minute).
fn tauri_driver() -> Result<std::path::PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo")))
        .context("no CARGO_HOME or HOME")?;
    let path = home.join("bin/tauri-driver");
    if !path.exists() {
        util::run(Command::new("cargo").args(["install", "tauri-driver", "--locked"]))?;
    }
    Ok(path)
}

//! The browser test: an exported recording plays in Debian's Chromium.
//!
//! Records 8 s of the numbered synthetic screen with the real `deskrec`
//! binary, splices a contact from 3.3 s to 7.1 s across three segments,
//! exports it, and has `tests/browser/play.mjs` play it in a `<video>`
//! element: the duration must match the contact within one frame, the first
//! picture shown must be the one on screen at the contact's start (frame
//! 16, on screen from 3.2 s), the last the one at its end (frame 35), and
//! playback must reach the end.

use std::path::Path;
use std::process::Command;

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
    util::run(util::cargo().args(["build", "-p", "deskrec-cli"]))?;
    let deskrec = util::target_dir().join("debug/deskrec");
    let work = util::target_dir().join("browser-test");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let cli = |args: &[&str]| -> Result<Value> {
        let out = util::output(Command::new(&deskrec).args(args).current_dir(&work))?;
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
    play(&dir, &work.join("contact.mp4"), "3.8", 16, 35)
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

//! `cargo xtask demo`: the main job on embedded defaults, on one machine.
//!
//! Today: server and device keys, 12 seconds of the screen recorded into
//! encrypted segments — this machine's X display, or a virtual one showing
//! a clock and `top` when there is none — a contact's range spliced without
//! decrypting, exported to MP4 and described with ffprobe. Grows with the
//! product.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::display::VirtualDisplay;
use crate::{setup, util};

/// Programs the virtual display shows, so the recording has something to see.
const DEMO_PACKAGES: &[&str] = &["x11-apps", "xterm", "procps"];

/// `cargo xtask demo`.
pub fn run(_args: &[String]) -> Result<()> {
    setup::ensure(setup::BASE)?;
    let virtual_display = match std::env::var("DISPLAY") {
        Ok(display) if !display.is_empty() => {
            println!("Recording this machine's display {display}.");
            None
        }
        _ => {
            setup::ensure(DEMO_PACKAGES)?;
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
    util::run(util::cargo().args(["build", "--release", "-p", "deskrec-cli"]))?;
    let deskrec = util::target_dir().join("release/deskrec");
    let data = util::root().join("demo-data");
    if data.exists() {
        std::fs::remove_dir_all(&data).with_context(|| format!("clearing {}", data.display()))?;
    }
    let cli = |args: &[&str]| -> Result<Value> {
        let mut cmd = Command::new(&deskrec);
        cmd.args(args).current_dir(&data);
        if let Some(screen) = &virtual_display {
            cmd.env("DISPLAY", screen.name());
        }
        Ok(serde_json::from_str(&util::output(&mut cmd)?)?)
    };
    std::fs::create_dir_all(&data)?;

    step("1/5 keys: the server's recording key pair and the agent PC's signing key pair");
    let server = cli(&["keygen", "keys/server"])?;
    let device = cli(&["keygen", "keys/device"])?;
    println!(
        "   server key {} (private key stays on the server)",
        server["key_id"]
    );
    println!("   device key {}", device["key_id"]);

    step("2/5 record 12 s of the screen at 5 fps into 5-second encrypted segments");
    let recorded = cli(&[
        "record",
        "--source",
        "screen",
        "--out",
        "segments",
        "--server-pub",
        "keys/server.pub",
        "--device-id",
        "demo-pc",
        "--seconds",
        "12",
        "--gop-seconds",
        "4",
        "--segment-seconds",
        "5",
    ])?;
    for s in recorded["segments"].as_array().into_iter().flatten() {
        println!(
            "   {}  ({} chunks)",
            s["path"].as_str().unwrap_or("?"),
            s["chunks"]
        );
    }

    step(
        "3/5 a contact from 3.3 s to 10.1 s: splice its chunks into one signed recording, no decryption",
    );
    let start = recorded["start"]
        .as_i64()
        .context("record printed no start")?;
    let (from, to) = (
        (start + 3_300_000).to_string(),
        (start + 10_100_000).to_string(),
    );
    let mut splice = vec![
        "vault",
        "splice",
        "--device-key",
        "keys/device.key",
        "--contact",
        "demo-contact-1",
        "--agent",
        "DEMO\\agent1",
        "--start",
        &from,
        "--end",
        &to,
        "--out",
        "recordings/demo-contact-1.dskr",
    ];
    let segs: Vec<String> = recorded["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["path"].as_str().map(String::from))
        .collect();
    splice.extend(segs.iter().map(String::as_str));
    let spliced = cli(&splice)?;
    println!(
        "   {} bytes, {} chunks from {} segments",
        spliced["bytes"],
        spliced["chunks"],
        spliced["manifest"]["segments"]
            .as_array()
            .map_or(0, Vec::len)
    );

    step(
        "4/5 the server verifies signature and every MAC, decrypts, exports MP4 trimmed to the contact",
    );
    let exported = cli(&[
        "vault",
        "export",
        "--server-key",
        "keys/server.key",
        "--device-pub",
        "keys/device.pub",
        "recordings/demo-contact-1.dskr",
        "--out",
        "exports/demo-contact-1.mp4",
    ])?;
    println!(
        "   {} frames verified, {} pre-roll frames hidden by the edit list",
        exported["export"]["verified"]["frames"], exported["export"]["preroll"]
    );

    step("5/5 what ffprobe says");
    let mp4 = data.join("exports/demo-contact-1.mp4");
    describe(&mp4)?;
    println!("\nDemo data is in {}", data.display());
    println!("Play it: {}", mp4.display());
    Ok(())
}

fn step(what: &str) {
    println!("\n== {what}");
}

/// Prints codec, size, duration and frame count as ffprobe reads them.
fn describe(mp4: &Path) -> Result<()> {
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
        "   codec {} ({}), {}x{}, {} frames shown, duration {} s (contact: 6.800 s), {} bytes",
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

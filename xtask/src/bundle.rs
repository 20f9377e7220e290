//! `cargo xtask bundle deb`: the tray app as a Debian package, built by the
//! Tauri bundler (the npm package of the Tauri CLI, pinned in
//! `src-tauri/package-lock.json`: a prebuilt binary, seconds to install,
//! where `cargo install tauri-cli` takes a quarter of an hour).
//!
//! The package installs `/usr/bin/deskrec-tray`, its desktop file and
//! icons, and the XDG autostart entry
//! (`/etc/xdg/autostart/deskrec-tray.desktop`) that starts it at every
//! logon. It is written to `target/release/bundle/deb/`.

use std::process::Command;

use anyhow::{Result, bail};

use crate::{setup, util};

/// Runs the task.
pub fn run(args: &[String]) -> Result<()> {
    if args.first().map(String::as_str) != Some("deb") {
        bail!("usage: cargo xtask bundle deb");
    }
    setup::ensure(setup::BASE)?;
    setup::ensure(&["dpkg-dev", "file"])?;
    if !util::have("npm") {
        setup::ensure(&["nodejs", "npm"])?;
    }
    let dir = util::root().join("src-tauri");
    util::run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir),
    )?;
    util::run(
        Command::new("npx")
            .args(["tauri", "build", "--bundles", "deb"])
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", util::target_dir()),
    )?;
    let out = util::target_dir().join("release/bundle/deb");
    println!("The .deb is in {}", out.display());
    Ok(())
}

//! The tray app's window (`ui/`) in Debian's Chromium, with Tauri's IPC
//! faked: fast tests of what the agent sees, without building the app.
//!
//! `tests/ui/ui.mjs` serves `ui/` on a free loopback port, opens it at the
//! window's size (420x640) with a fake `window.__TAURI__` that answers the
//! commands of `docs/tray.md` from fixtures and emits its events, and checks
//! what the page shows in every state (recording, each reason for not
//! recording, offline, each kind of needing attention, uploads advancing on
//! queue events, "Retry now", diagnostics behind the PIN, quit, no polling,
//! errors, escaping, dark mode). A screenshot of each state goes to
//! `target/ui-screenshots/`; `cargo xtask ui --docs` also copies the ones
//! the docs show to `docs/img/tray-*.png`.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{setup, util};

/// `cargo xtask ui [--docs]`.
pub fn run(args: &[String]) -> Result<()> {
    if let Some(other) = args.iter().find(|a| a.as_str() != "--docs") {
        bail!("cargo xtask ui: unknown argument {other} (only --docs)");
    }
    setup::ensure(&["chromium"])?;
    // As in browser.rs: this machine kind ships Node.js with npm; Debian's
    // split packages conflict with it, so they go only where there is none.
    if !util::have("npm") {
        setup::ensure(&["nodejs", "npm"])?;
    }
    let dir = util::root().join("tests/ui");
    util::run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir),
    )?;
    let shots = util::target_dir().join("ui-screenshots");
    let mut cmd = Command::new("node");
    cmd.arg("ui.mjs").arg(&shots).args(args).current_dir(&dir);
    util::run(&mut cmd).context("the tray window does not show what it should (tests/ui/ui.mjs)")
}

//! `cargo xtask`: the project's automation, one module per task.
//!
//! - `test`  installs what the tests need, then runs every test the project
//!   has: the workspace's tests, clippy and fmt, the fuzz targets for a bounded
//!   time, and the Windows cross-build with its tests under wine.
//! - `demo`  installs what the demo needs and runs the main job on embedded
//!   defaults.
//! - `browser` plays an exported recording in Chromium and checks it.
//! - `ui` checks the tray app's window in Chromium with its IPC faked.
//! - `msi` builds the Windows installer (wixl), optionally signed, and
//!   with `--wine` installs, upgrades and removes it under wine.
//! - `hostile` runs hostile clients at scale against the release server.
//! - `openapi` runs schemathesis, every check, against the live server's
//!   OpenAPI document.
//! - `bench NAME` runs a benchmark and writes `target/bench/NAME.json`.
//!
//! Every task works from a fresh Debian 12 machine: system packages come from
//! `setup`, and builds share a target directory outside the clone
//! (`$HOME/.cache/deskrec/target`) so CI reuses what earlier runs built.

mod bench;
mod browser;
mod bundle;
mod demo;
mod display;
mod fuzz;
mod hostile;
mod install;
mod msi;
mod openapi;
mod setup;
mod test;
mod ui;
mod util;
mod window;
mod windows;

use anyhow::{Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = &args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("test") => test::run(rest),
        Some("demo") => demo::run(rest),
        Some("bench") => bench::run(rest),
        Some("fuzz") => fuzz::run(rest),
        Some("hostile") => hostile::run(rest),
        Some("windows") => windows::run(rest),
        Some("msi") => msi::run(rest),
        Some("browser") => browser::run(rest),
        Some("ui") => ui::run(rest),
        Some("openapi") => openapi::run(rest),
        Some("window") => window::run(rest),
        Some("bundle") => bundle::run(rest),
        Some("setup") => setup::run(rest),
        _ => bail!(
            "usage: cargo xtask <test|demo|bench NAME|fuzz [SECONDS]|hostile|browser|openapi|ui [--docs]|window|windows|msi|bundle deb|setup>\n\
             \n  test     set up and run every test (what CI runs)\
             \n  demo     set up and run the demo on embedded defaults\
             \n  bench    run a benchmark, write target/bench/NAME.json (NAME: {benches})\
             \n  fuzz     run every fuzz target for SECONDS each (default 30)\
             \n  hostile  hostile clients at scale against the release server\
             \n  browser  play an exported recording in Chromium and check what it shows\
             \n  openapi  schemathesis (every check) against the live server's OpenAPI document\
             \n  ui       check the tray window in Chromium with faked IPC (--docs: copy its screenshots to docs/img)\
             \n  window   drive the tray app's real window (tauri-driver, WebKitWebDriver) against the real server\
             \n  windows  cross-build for x86_64-pc-windows-gnu, run its tests and the tray app under wine\
             \n  msi      build Deskrec-<version>-x64.msi with wixl ([--sign CERT.p12] [--timestamp URL] [--version V] [--wine])\
             \n  bundle   build the tray app's .deb with the Tauri bundler (bundle deb)\
             \n  setup    install the system packages the other tasks need",
            benches = bench::names().join(", ")
        ),
    }
}

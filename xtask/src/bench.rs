//! `cargo xtask bench NAME`: builds the benchmark binary (`crates/bench`,
//! package `deskrec-bench`) in release mode, with any other binaries the
//! benchmark runs, and runs benchmark NAME, which prints a table and writes
//! its figures to `target/bench/NAME.json` (a flat JSON object of numbers).
//! What each figure means: `docs/benchmarks.md`.

use std::process::Command;

use anyhow::{Result, bail};

use crate::util::{self, cargo, root, target_dir};

/// A benchmark `deskrec-bench` knows, and what it needs besides.
struct Bench {
    name: &'static str,
    /// System packages it runs.
    packages: &'static [&'static str],
    /// Packages of the workspace whose release binaries it runs, built on
    /// their own (not unified with the benchmark's features) so they are
    /// exactly the shipped build.
    binaries: &'static [&'static str],
}

/// The benchmarks' names, for the usage text.
pub fn names() -> Vec<&'static str> {
    BENCHES.iter().map(|b| b.name).collect()
}

const BENCHES: &[Bench] = &[
    Bench {
        name: "vault",
        // openssl is the AES reference.
        packages: &["openssl"],
        binaries: &[],
    },
    Bench {
        name: "capture",
        // A virtual screen, the scenes' clients (xclock is in x11-apps,
        // top in procps), ffmpeg as the reference recorder and to decode.
        packages: &["xvfb", "xterm", "x11-apps", "procps", "ffmpeg"],
        // `deskrec record`, `vault splice` and `vault export`.
        binaries: &["deskrec-cli"],
    },
    Bench {
        name: "encoder",
        // Synthetic pictures, OpenH264 linked in: nothing else.
        packages: &[],
        binaries: &[],
    },
    Bench {
        name: "server",
        packages: &[],
        // The server under test runs as its own process.
        binaries: &["deskrec-server"],
    },
    Bench {
        name: "agent",
        packages: &[],
        // The server and the agent under test, each in its own process.
        binaries: &["deskrec-server", "deskrec-agent"],
    },
    Bench {
        name: "tray",
        // A virtual screen with an xterm on it, a private session bus, and
        // what the tray app builds and runs on (WebKitGTK, appindicator).
        packages: &[
            "xvfb",
            "xterm",
            "dbus-daemon",
            "libwebkit2gtk-4.1-dev",
            "libxdo-dev",
            "libssl-dev",
            "libayatana-appindicator3-dev",
            "librsvg2-dev",
        ],
        // The server, the headless agent and the tray app, each in its own
        // process; the agent's binary also enrolls and reads both engines'
        // status.
        binaries: &["deskrec-server", "deskrec-agent", "deskrec-tray"],
    },
];

/// System packages every benchmark needs: a C/C++ toolchain and nasm for
/// OpenH264 (real H.264 for the export and the recorder).
const PACKAGES: &[&str] = &["build-essential", "pkg-config", "nasm"];

/// Runs the task.
pub fn run(args: &[String]) -> Result<()> {
    let bench = match args {
        [name] => BENCHES.iter().find(|b| b.name == name),
        _ => None,
    };
    let Some(bench) = bench else {
        let names: Vec<&str> = BENCHES.iter().map(|b| b.name).collect();
        bail!("usage: cargo xtask bench <{}>", names.join("|"));
    };
    crate::setup::ensure(PACKAGES)?;
    crate::setup::ensure(bench.packages)?;
    for package in bench.binaries {
        util::run(cargo().args(["build", "--release", "-p", package]))?;
    }
    util::run(cargo().args(["build", "--release", "-p", "deskrec-bench"]))?;
    let bin = target_dir()
        .join("release")
        .join(format!("deskrec-bench{}", std::env::consts::EXE_SUFFIX));
    let out = root()
        .join("target/bench")
        .join(format!("{}.json", bench.name));
    util::run(
        Command::new(bin)
            .current_dir(root())
            .arg(bench.name)
            .arg("--out")
            .arg(out),
    )
}

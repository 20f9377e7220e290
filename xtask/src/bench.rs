//! `cargo xtask bench NAME`: builds the benchmark binary (`crates/bench`,
//! package `deskrec-bench`) in release mode and runs benchmark NAME, which
//! prints a table and writes its figures to `target/bench/NAME.json` (a
//! flat JSON object of numbers). What each figure means:
//! `docs/benchmarks.md`.

use std::process::Command;

use anyhow::{Result, bail};

use crate::util::{self, cargo, root, target_dir};

/// The benchmarks `deskrec-bench` knows.
const NAMES: &[&str] = &["vault"];

/// System packages the benchmarks need: a C/C++ toolchain and nasm for
/// OpenH264 (real H.264 for the export), openssl as the AES reference.
const PACKAGES: &[&str] = &["build-essential", "pkg-config", "nasm", "openssl"];

/// Runs the task.
pub fn run(args: &[String]) -> Result<()> {
    let name = match args {
        [name] if NAMES.contains(&name.as_str()) => name,
        _ => bail!("usage: cargo xtask bench <{}>", NAMES.join("|")),
    };
    crate::setup::ensure(PACKAGES)?;
    util::run(cargo().args(["build", "--release", "-p", "deskrec-bench"]))?;
    let bin = target_dir()
        .join("release")
        .join(format!("deskrec-bench{}", std::env::consts::EXE_SUFFIX));
    let out = root().join("target/bench").join(format!("{name}.json"));
    util::run(
        Command::new(bin)
            .current_dir(root())
            .arg(name)
            .arg("--out")
            .arg(out),
    )
}

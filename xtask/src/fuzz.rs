//! `cargo xtask fuzz [SECONDS]`: fuzzes every parser of what a device (or
//! an administrator's file) hands the server or the agent, SECONDS per
//! target (default 30).
//!
//! The targets live in `crates/vault/fuzz`, a cargo-fuzz project with its
//! own workspace ([`TARGETS`]; see its `src/lib.rs` and README for what
//! each checks): the vault's file and record parsers; `verify_recording`,
//! `export_mp4` and `splice` on recordings the harness builds from the
//! input and seals and signs with real keys, as a hostile device can; the
//! RTE messages, tus headers, CSV user import and enrollment tokens. This
//! task:
//!
//! 1. replays `crates/vault/fuzz/regressions/<target>/*`, inputs that once
//!    crashed a parser (listed in `regressions/README.md`), so a known bug
//!    fails at once and every time rather than whenever the fuzzer happens
//!    to find it again;
//! 2. fuzzes each target for SECONDS, starting from the committed seeds
//!    (`corpus/<target>/seed-*`) plus the corpus earlier runs grew, kept in
//!    `~/.cache/deskrec/fuzz-corpus/<target>` so CI keeps its progress.
//!
//! CI (`cargo xtask test`) splits one total budget across the targets
//! ([`ci_seconds`]), so adding a target does not lengthen CI.
//!
//! A crash fails the task; libFuzzer leaves the input in
//! `crates/vault/fuzz/artifacts/<target>/`. Copy it to `regressions/<target>/`
//! under a name that says what it breaks.
//!
//! Toolchain: only stable is guaranteed. Some cargo-fuzz options pass
//! nightly-only flags (a sanitizer's `-Zsanitizer`, `-Zbuild-std`);
//! `RUSTC_BOOTSTRAP=1` lets them through on stable, and is set on every run
//! so the build is fingerprinted the same each time. The targets build with
//! `--sanitizer none`: cargo-fuzz's default AddressSanitizer does build and
//! run on stable this way, but runs about 6x slower (15,000 against 100,000
//! inputs a second on the segment target) and the parsers are safe Rust,
//! where a memory error would need a bug in a dependency's `unsafe`. Builds
//! keep cargo-fuzz's default: optimised, with debug assertions and overflow
//! checks on, so arithmetic overflow counts as a crash. The project depends
//! on `deskrec-server` (for the tus and CSV parsers), so a cold build
//! compiles the server's dependencies too: about 6 minutes on one core.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{self, cache_dir, cargo, have, root};

/// The fuzz targets, one per parser, each with the largest input libFuzzer
/// builds for it. Binary formats get 1 MiB: room for records, frames and
/// length fields far past the seeds (a few KB), up to several hundred
/// frames of H.264. Text gets 64 KiB: more than any header, message or
/// token a device sends.
const TARGETS: &[(&str, usize)] = &[
    ("segment", MIB),
    ("recording", MIB),
    ("manifest", MIB),
    ("verify", MIB),
    ("export", MIB),
    ("splice", MIB),
    ("rte", TEXT),
    ("tus", TEXT),
    ("csv", TEXT),
    ("token", TEXT),
];
const MIB: usize = 1 << 20;
const TEXT: usize = 64 << 10;
/// Seconds per target when none are given.
const DEFAULT_SECONDS: u64 = 30;

/// Seconds per target that spend `total` seconds on the whole set (at
/// least 1 each).
pub fn ci_seconds(total: u64) -> u64 {
    (total / TARGETS.len() as u64).max(1)
}

/// Runs the task.
pub fn run(args: &[String]) -> Result<()> {
    let seconds = parse_seconds(args)?;
    ensure_cargo_fuzz()?;
    util::run(&mut cargo_fuzz("build"))?;
    replay_regressions()?;
    for &(target, max_len) in TARGETS {
        fuzz(target, max_len, seconds)?;
    }
    eprintln!(
        "fuzz: {} targets, {seconds} s each, no crash",
        TARGETS.len()
    );
    Ok(())
}

fn parse_seconds(args: &[String]) -> Result<u64> {
    match args {
        [] => Ok(DEFAULT_SECONDS),
        [s] => s
            .parse()
            .with_context(|| format!("SECONDS must be a whole number, not {s:?}")),
        _ => bail!("usage: cargo xtask fuzz [SECONDS]"),
    }
}

/// Installs cargo-fuzz into ~/.cargo/bin, where later runs find it.
fn ensure_cargo_fuzz() -> Result<()> {
    if have("cargo-fuzz") {
        return Ok(());
    }
    util::run(cargo().args(["install", "cargo-fuzz", "--locked"]))
}

/// The fuzz project's directory.
fn fuzz_dir() -> PathBuf {
    root().join("crates/vault/fuzz")
}

/// `cargo fuzz SUBCOMMAND` with this project's settings, run from the
/// crate that holds `fuzz/`.
fn cargo_fuzz(subcommand: &str) -> Command {
    let target_dir = cache_dir().join("target-fuzz");
    let mut cmd = cargo();
    cmd.current_dir(root().join("crates/vault"))
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", subcommand, "--sanitizer", "none", "--target-dir"])
        .arg(&target_dir);
    cmd
}

/// Runs every saved crash input through its target, each on its own so
/// that every one still crashing is named; fails if any does.
fn replay_regressions() -> Result<()> {
    let mut crashing = Vec::new();
    for &(target, _) in TARGETS {
        for input in regression_inputs(target)? {
            let mut replay = cargo_fuzz("run");
            replay.arg(target).arg(&input);
            if util::run(&mut replay).is_err() {
                crashing.push(format!("{target}: {}", input.display()));
            }
        }
    }
    if !crashing.is_empty() {
        bail!(
            "saved crash inputs still crash the parsers (what each breaks: {}):\n  {}",
            fuzz_dir().join("regressions/README.md").display(),
            crashing.join("\n  ")
        );
    }
    Ok(())
}

/// The files in `regressions/<target>/`, sorted.
fn regression_inputs(target: &str) -> Result<Vec<PathBuf>> {
    let dir = fuzz_dir().join("regressions").join(target);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut inputs = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        inputs.push(entry?.path());
    }
    inputs.sort();
    Ok(inputs)
}

/// Fuzzes `target` for `seconds`, growing the cached corpus.
fn fuzz(target: &str, max_len: usize, seconds: u64) -> Result<()> {
    let grown = cache_dir().join("fuzz-corpus").join(target);
    std::fs::create_dir_all(&grown).with_context(|| format!("creating {}", grown.display()))?;
    let seeds = fuzz_dir().join("corpus").join(target);
    let mut session = cargo_fuzz("run");
    session
        .arg(target)
        .arg(&grown)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-max_len={max_len}"))
        .arg("-timeout=10");
    util::run(&mut session).with_context(|| {
        format!(
            "fuzz target {target} crashed: the input is in {}; save it under {}",
            fuzz_dir().join("artifacts").join(target).display(),
            fuzz_dir().join("regressions").join(target).display()
        )
    })
}

//! `deskrec-bench NAME [--out FILE]`: runs a benchmark, prints its table
//! and writes its figures to FILE (default `target/bench/NAME.json`) as a
//! flat JSON object of numbers. Scratch files go to a temporary directory
//! next to FILE and are removed afterwards. Normally run through
//! `cargo xtask bench NAME`, which builds this in release mode first.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use deskrec_bench::vault;

/// The benchmarks this binary knows.
const NAMES: &[&str] = &["vault", "capture", "encoder", "server", "agent", "tray"];

fn main() -> Result<()> {
    let (name, out) = parse_args(std::env::args().skip(1))?;
    let scratch_parent = out
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| ".".into());
    std::fs::create_dir_all(&scratch_parent)
        .with_context(|| format!("creating {}", scratch_parent.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix(&format!("{name}-scratch-"))
        .tempdir_in(&scratch_parent)?;
    let started = Instant::now();
    let report = match name.as_str() {
        "vault" => vault::run(scratch.path())?,
        "capture" => capture(scratch.path())?,
        "encoder" => encoder(scratch.path())?,
        "server" => server(scratch.path())?,
        "agent" => agent(scratch.path())?,
        "tray" => tray(scratch.path())?,
        _ => unreachable!("parse_args accepts known names only"),
    };
    println!(
        "\n{name} benchmark ({:.0} s)\n{}",
        started.elapsed().as_secs_f64(),
        report.table()
    );
    report.save(&out)?;
    println!("wrote {}", out.display());
    Ok(())
}

#[cfg(target_os = "linux")]
fn capture(work: &std::path::Path) -> Result<deskrec_bench::report::Report> {
    deskrec_bench::capture::run(work)
}

#[cfg(not(target_os = "linux"))]
fn capture(_work: &std::path::Path) -> Result<deskrec_bench::report::Report> {
    bail!("the capture benchmark records an X11 screen: it runs on Linux only")
}

#[cfg(target_os = "linux")]
fn encoder(work: &std::path::Path) -> Result<deskrec_bench::report::Report> {
    deskrec_bench::encoder::run(work)
}

#[cfg(not(target_os = "linux"))]
fn encoder(_work: &std::path::Path) -> Result<deskrec_bench::report::Report> {
    bail!(
        "the encoder benchmark times the encoding thread with CLOCK_THREAD_CPUTIME_ID: it runs on Linux only"
    )
}

#[cfg(target_os = "linux")]
fn server(work: &std::path::Path) -> Result<deskrec_bench::report::Report> {
    deskrec_bench::server::run(work)
}

#[cfg(not(target_os = "linux"))]
fn server(_work: &std::path::Path) -> Result<deskrec_bench::report::Report> {
    bail!("the server benchmark reads the server's memory from /proc: it runs on Linux only")
}

#[cfg(target_os = "linux")]
fn agent(work: &std::path::Path) -> Result<deskrec_bench::report::Report> {
    deskrec_bench::agent::run(work)
}

#[cfg(not(target_os = "linux"))]
fn agent(_work: &std::path::Path) -> Result<deskrec_bench::report::Report> {
    bail!("the agent benchmark reads the agent's memory from /proc: it runs on Linux only")
}

#[cfg(target_os = "linux")]
fn tray(work: &std::path::Path) -> Result<deskrec_bench::report::Report> {
    deskrec_bench::tray::run(work)
}

#[cfg(not(target_os = "linux"))]
fn tray(_work: &std::path::Path) -> Result<deskrec_bench::report::Report> {
    bail!("the tray benchmark runs the tray app under Xvfb and reads /proc: it runs on Linux only")
}

/// `NAME [--out FILE]`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(String, PathBuf)> {
    let usage = || format!("usage: deskrec-bench <{}> [--out FILE]", NAMES.join("|"));
    let Some(name) = args.next().filter(|n| NAMES.contains(&n.as_str())) else {
        bail!("{}", usage());
    };
    let mut out = PathBuf::from(format!("target/bench/{name}.json"));
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--out", Some(path)) => out = path.into(),
            _ => bail!("{}", usage()),
        }
    }
    Ok((name, out))
}

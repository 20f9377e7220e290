//! `cargo xtask test`: everything CI checks, in order of cost.

use anyhow::Result;

use crate::{browser, fuzz, hostile, openapi, setup, ui, util, window, windows};

/// Seconds of fuzzing in CI, split evenly across the fuzz targets (it was
/// 20 s for each of the first three).
const FUZZ_SECONDS: u64 = 60;

/// `cargo xtask test`.
pub fn run(_args: &[String]) -> Result<()> {
    setup::ensure(setup::BASE)?;
    util::run(util::cargo().args(["fmt", "--all", "--", "--check"]))?;
    util::run(util::cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    util::run(util::cargo().args(["test", "--workspace", "--all-targets"]))?;
    util::run(util::cargo().args(["test", "--workspace", "--doc"]))?;
    // The API docs build without a broken or private link: they are how
    // the next engineer finds their way.
    util::run(
        util::cargo()
            .args(["doc", "--workspace", "--no-deps"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    hostile::run(&[])?;
    browser::run(&[])?;
    openapi::run(&[])?;
    ui::run(&[])?;
    window::run(&[])?;
    fuzz::run(&[fuzz::ci_seconds(FUZZ_SECONDS).to_string()])?;
    windows::run(&[])?;
    println!("xtask test: every check passed");
    Ok(())
}

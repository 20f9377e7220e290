//! `cargo xtask test`: everything CI checks, in order of cost.

use anyhow::Result;

use crate::{browser, fuzz, setup, ui, util, window, windows};

/// Seconds each fuzz target runs in CI.
const FUZZ_SECONDS: &str = "20";

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
    browser::run(&[])?;
    ui::run(&[])?;
    window::run(&[])?;
    fuzz::run(&[FUZZ_SECONDS.to_string()])?;
    windows::run(&[])?;
    println!("xtask test: every check passed");
    Ok(())
}

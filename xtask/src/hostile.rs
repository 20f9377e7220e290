//! `cargo xtask hostile`: hostile clients at scale against the release
//! server on loopback (issue 13).
//!
//! The server is built with `--release`, as it ships, and the
//! `hostile_clients_at_scale_leave_the_server_serving` test of
//! `crates/server/tests/it/hostile.rs` drives it: 10,000 sign-ins with 1 MB
//! logins (the server's peak RSS under 200 MB), 5,000 slow connections
//! while a supervisor signs in and an agent uploads, abusive RTE sessions
//! and malformed tus requests, with a health check and a check of a stored
//! recording after each group. The test is `#[ignore]`d in the workspace
//! run, so it runs once per CI run, here. `DESKREC_SERVER_BIN` tells it
//! which binary to start.

use anyhow::Result;

use crate::util::{cargo, run as run_cmd, target_dir};

/// The test that runs the groups.
const TEST: &str = "hostile::hostile_clients_at_scale_leave_the_server_serving";

/// `cargo xtask hostile`.
pub fn run(_args: &[String]) -> Result<()> {
    run_cmd(cargo().args(["build", "--release", "-p", "deskrec-server"]))?;
    let server = target_dir()
        .join("release")
        .join(format!("deskrec-server{}", std::env::consts::EXE_SUFFIX));
    // `--workspace`: the same features as the workspace's test build, so
    // the test binary is the one `cargo xtask test` built already.
    run_cmd(
        cargo()
            .args(["test", "--workspace", "--test", "it", "--"])
            .args(["--ignored", "--exact", TEST, "--nocapture"])
            .env("DESKREC_SERVER_BIN", server),
    )
}

//! `cargo xtask openapi`: the OpenAPI document against the live server.
//!
//! An ACD integrator generates a client from `/api/v1/openapi.json`; the
//! document must not promise more, or less, than the server does. This
//! starts the real `deskrec-server` on a free port with a fresh data
//! directory and runs schemathesis at it with every check
//! (`--checks all`), signed in with the admin token, and fails on any
//! failure. `tests/api/schemathesis.toml` lists the few rules a JSON
//! Schema cannot state (a contact ends after it starts, a role named must
//! exist), for which the server's 422 is the documented answer.
//!
//! schemathesis comes from PyPI, pinned, into a virtual environment in
//! the cache directory, so a warm run installs nothing.

use std::process::Command;

use anyhow::{Context, Result};

use crate::browser::Server;
use crate::util;

/// The schemathesis release the run is pinned to: a newer one may add
/// checks, which is a change to review, not a surprise in CI.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// Test cases per operation and phase.
const EXAMPLES: &str = "100";

/// The generator's seed: fixed, so a CI run is reproducible and a failure
/// is the change's, not the draw's. Change it to explore further (every
/// seed must pass; `st run --seed N` replays one).
const SEED: &str = "20261204";

/// `cargo xtask openapi`.
pub fn run(_args: &[String]) -> Result<()> {
    let st = install()?;
    util::run(util::cargo().args(["build", "-p", "deskrec-server"]))?;
    let work = util::target_dir().join("openapi-test");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    let data = work.join("data");
    std::fs::create_dir_all(&data)?;
    let server = Server::start(&util::target_dir().join("debug/deskrec-server"), &data)?;
    let token = std::fs::read_to_string(data.join("admin-token"))
        .context("the server wrote no admin token")?;
    let dir = util::root().join("tests/api");
    let python = st.with_file_name("python");
    util::run(
        Command::new(&python)
            .arg(dir.join("seed.py"))
            .arg(&server.url)
            .env("DESKREC_ADMIN_TOKEN", token.trim()),
    )?;
    util::run(
        Command::new(&st)
            .arg("--config-file")
            .arg(dir.join("schemathesis.toml"))
            .arg("run")
            .arg(format!("{}/api/v1/openapi.json", server.url))
            .args(["--checks", "all", "--tls-verify", "false", "--workers", "1"])
            .args(["--max-examples", EXAMPLES, "--seed", SEED])
            // The token goes in through the environment (the config names
            // it), not the command line, which the log prints;
            // schemathesis masks it in its reports.
            .env("DESKREC_ADMIN_TOKEN", token.trim())
            .env("SCHEMATHESIS_HOOKS", "hooks")
            .env("PYTHONPATH", &dir)
            .current_dir(&work),
    )
    .context("the OpenAPI document and the server disagree (schemathesis's report is above)")
}

/// The `st` command of a virtual environment with schemathesis, made once.
fn install() -> Result<std::path::PathBuf> {
    let venv = util::cache_dir().join("schemathesis-venv");
    let st = venv.join("bin/st");
    let marker = venv.join(".installed");
    if std::fs::read_to_string(&marker).is_ok_and(|v| v == SCHEMATHESIS) && st.is_file() {
        return Ok(st);
    }
    if Command::new("python3")
        .args(["-m", "venv", "--help"])
        .output()
        .map_or(true, |o| !o.status.success())
    {
        crate::setup::ensure(&["python3-venv"])?;
    }
    util::run(
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
    )?;
    util::run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        SCHEMATHESIS,
    ]))?;
    std::fs::write(&marker, SCHEMATHESIS)?;
    Ok(st)
}

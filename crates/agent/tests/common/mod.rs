//! Fixtures for the agent's tests: the real server from the server's own
//! test fixtures (started in-process on a real TLS socket), and helpers to
//! enroll and run agents against it.

// Test plumbing; each test binary uses part of it.
#![allow(missing_docs, dead_code)]

#[path = "../../../server/tests/util/mod.rs"]
pub mod server;

use deskrec_agent::DataDir;
use deskrec_agent::enroll::{self, Identity};
use serde_json::Value;
pub use server::TestServer;

/// A fresh compact enrollment token for `s`.
pub async fn enrollment_token(s: &TestServer) -> String {
    let t = s.admin("POST", "/enrollment-tokens", Value::Null).await;
    t["enrollment_token"].as_str().unwrap().to_owned()
}

/// Enrolls an agent data directory with `s`.
pub async fn enroll_agent(s: &TestServer, dir: &DataDir) -> Identity {
    let token = enrollment_token(s).await;
    enroll::enroll(dir, &dir.secret_store(), &token, "PC-agent", 0)
        .await
        .unwrap()
}

//! The server's integration tests over real TLS sockets.
//!
//! One test binary for the crate (as ripgrep has): the modules share the
//! fixtures and link the crate once.

mod fixtures;
#[allow(unused_imports)] // the fixtures reach it as `crate::util`
use deskrec_server::testing as util;

mod compliance;
mod contacts;
mod db;
mod hostile;
mod keys;
mod metrics;
mod openapi;
mod rte;
mod supervisor;
mod uploads;

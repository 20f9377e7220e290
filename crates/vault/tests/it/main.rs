//! The vault's integration tests: round trips, damage, export, properties and the fuzzers' regressions.
//!
//! One test binary for the crate (as ripgrep has): the modules share the
//! fixtures and link the crate once.

mod common;

mod damage;
mod export;
mod fuzz_regressions;
mod plan_props;
mod roundtrip;

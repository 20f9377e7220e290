//! The agent engine's integration tests, against the real server in-process.
//!
//! One test binary for the crate (as ripgrep has): the modules share the
//! fixtures and link the crate once.

mod common;

mod enroll;
mod handle;
mod kill;
mod pause;
mod recording;
mod retention;
mod screen;
mod session;
mod upload;

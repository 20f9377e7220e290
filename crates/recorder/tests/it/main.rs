//! The recorder's integration tests: the pipeline and recording a real X11 screen.
//!
//! One test binary for the crate (as ripgrep has): the modules share the
//! fixtures and link the crate once.

mod common;

mod pipeline;
mod x11;

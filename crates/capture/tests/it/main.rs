//! The capture crate's integration tests: encoding, X11 and Windows capture.
//!
//! One test binary for the crate (as ripgrep has): the modules share the
//! fixtures and link the crate once.

mod encode;
mod unchanged;
mod windows;
mod x11;

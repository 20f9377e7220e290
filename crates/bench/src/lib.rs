//! Deskrec's benchmarks, run with `cargo xtask bench NAME`, and the
//! generator of the vault's fuzz seeds (`make-seeds`).
//!
//! Every benchmark measures its figures and its references in the same run
//! on the same machine and reports ratios, so results from machines of
//! different speed (a shared CI box, a laptop) stay comparable.
//!
//! - [`synth`]: recording material: fake or real H.264 frames in segments;
//! - [`timing`]: medians of interleaved runs;
//! - [`report`]: the figures, as a flat JSON object and a printed table;
//! - [`vault`]: the `vault` benchmark (splice, AES, verify and export);
//! - `capture` (Linux): the `capture` benchmark (Deskrec recording an X11
//!   screen against ffmpeg);
//! - `encoder` (Linux): the `encoder` benchmark (OpenH264 alone on small
//!   changes, with change maps and without, and its streams' hashes);
//! - `server` (Linux): the `server` benchmark (1,000 simulated agents, contact
//!   relay latency, upload ingest, server memory);
//! - `agent` (Linux): the `agent` benchmark (a working day's backlog uploaded
//!   by the real agent, agent memory);
//! - `tray` (Linux): the `tray` benchmark (the tray app against the
//!   headless agent on the same still screen: CPU and memory, window
//!   closed and open);
//! - `process` (Linux): the release server and agent binaries as processes,
//!   and process trees in `/proc`.

#[cfg(target_os = "linux")]
pub mod agent;
#[cfg(target_os = "linux")]
pub mod capture;
#[cfg(target_os = "linux")]
pub mod encoder;
#[cfg(target_os = "linux")]
pub mod process;
pub mod report;
#[cfg(target_os = "linux")]
pub mod server;
pub mod synth;
pub mod timing;
#[cfg(target_os = "linux")]
pub mod tray;
pub mod vault;

//! The `vault` benchmark: what the vault costs against plain references,
//! measured in one run on one machine.
//!
//! - [`splice`]: splicing an hour of segments against `std::fs::copy` of
//!   the same files (a splice copies ciphertext verbatim, checking digests);
//! - [`aes`]: our AES-256-CBC chunk encryption against `openssl speed`;
//! - [`export`]: verifying and exporting an hour of real H.264 to MP4.

pub mod aes;
pub mod export;
pub mod splice;

use std::path::Path;

use anyhow::Result;
use deskrec_vault::PrivateKey;

use crate::report::Report;

/// Runs every part, using `work` (an empty directory) for its files.
pub fn run(work: &Path) -> Result<Report> {
    let server = PrivateKey::generate()?;
    let device = PrivateKey::generate()?;
    let mut report = Report::default();
    splice::run(&work.join("splice"), server.public(), &device, &mut report)?;
    aes::run(&mut report)?;
    export::run(&work.join("export"), &server, &device, &mut report)?;
    Ok(report)
}

/// Removes `path` if it exists, so a timed step starts from the same state.
fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

//! Helpers shared by the recorder's tests: keys, reading back the segments
//! a recording wrote, checking that they tile the timeline.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use deskrec_vault::{PrivateKey, SegmentScan};

/// The server's key pair: segments are encrypted for it. Keys are slow to
/// generate: one per test process.
pub fn server() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate().unwrap())
}

/// The recording device's key pair: it signs spliced recordings.
pub fn device() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate().unwrap())
}

/// Every segment in `dir`, oldest first, scanned in full (every digest
/// checked).
pub fn segments(dir: &Path) -> Vec<(PathBuf, SegmentScan)> {
    deskrec_recorder::scan_segments(dir).unwrap()
}

/// The chunks of all segments tile the recorded time with no gap.
pub fn assert_continuous(segs: &[(PathBuf, SegmentScan)]) {
    let chunks: Vec<_> = segs.iter().flat_map(|(_, s)| s.chunks.iter()).collect();
    for pair in chunks.windows(2) {
        assert_eq!(
            pair[0].head.range.end, pair[1].head.range.start,
            "gap or overlap between chunks"
        );
    }
}

//! Inputs the fuzzers once crashed a parser with (`fuzz/regressions/`):
//! every parser must now return, never panic.

use std::io::Cursor;
use std::path::Path;

use deskrec_vault::internals::{ChunkRecord, SignedManifest, decode_frames};
use deskrec_vault::{ScanDepth, scan_recording_from, scan_segment_from};

fn inputs(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(kind);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no regression inputs in {}", dir.display());
    out
}

#[test]
fn segment_parsers_survive_every_regression_input() {
    for (name, bytes) in inputs("segment").into_iter().chain(inputs("recording")) {
        for depth in [ScanDepth::Full, ScanDepth::Structure] {
            if let Ok(scan) = scan_segment_from(Cursor::new(&bytes), depth) {
                for c in &scan.chunks {
                    let _ = (c.head.range.duration(), c.head.range.to_string());
                }
                let _ = scan.damage.map(|d| d.to_string());
            }
        }
        let _ = scan_recording_from(Cursor::new(&bytes)).map(|r| r.chunks().count());
        eprintln!("ok: {name}");
    }
}

#[test]
fn body_parsers_survive_every_regression_input() {
    for (name, bytes) in inputs("manifest") {
        let _ = SignedManifest::decode(&bytes);
        if let Ok(c) = ChunkRecord::decode(&bytes) {
            let _ = c.head.range.duration();
        }
        if let Ok(frames) = decode_frames(&bytes) {
            for f in frames {
                let _ = f.range().duration();
            }
        }
        eprintln!("ok: {name}");
    }
}

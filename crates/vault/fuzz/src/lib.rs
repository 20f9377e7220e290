//! What the fuzz targets check, in one place; each target in
//! `fuzz_targets/` is a one-line call into this library. This file holds
//! the vault's file and record parsers (`segment`, `recording`,
//! `manifest`); [`signed`] the recordings a hostile device seals and signs
//! itself (`verify`, `export`, `splice`); [`text`] the protocol and server
//! parsers of what a device or an administrator sends (`rte`, `tus`,
//! `csv`, `token`).
//!
//! The rule under test: a parser given any bytes returns an error, never
//! panics (the server parses files uploaded by agents, the agent parses
//! files a crash or a full disk left behind). On top of calling a parser,
//! the targets:
//!
//! - **repair digests**: every record ends in a SHA-256 of its tag, length
//!   and body, so nearly every mutation fails the digest check and the
//!   fuzzer would never get past it to the body parsers. File-level targets
//!   parse the input as given and again with every complete record's digest
//!   recomputed ([`redigest`]);
//! - **use the result** as callers do: print it, serialise it to JSON (the
//!   CLI does both), compute frame time ranges (verification does);
//! - **check round trips**: a body that decodes re-encodes to the very same
//!   bytes, and a scan never claims bytes past the end of its input.

pub mod signed;
pub mod text;

use std::hint::black_box;
use std::io::Cursor;

use deskrec_vault::internals::{ChunkRecord, SignedManifest, decode_frames, encode_frames};
use deskrec_vault::{PREAMBLE_LEN, ScanDepth, scan_recording_from, scan_segment_from};
use sha2::{Digest, Sha256};

/// Bytes of a record before its body: tag and length.
const RECORD_HEAD_LEN: usize = 8;
/// Bytes of the digest after a record's body.
const DIGEST_LEN: usize = 32;

/// The `segment` target: both scan depths, raw and with repaired digests.
pub fn segment(data: &[u8]) {
    for input in [data.to_vec(), redigest(data)] {
        for depth in [ScanDepth::Full, ScanDepth::Structure] {
            match scan_segment_from(Cursor::new(&input), depth) {
                Ok(scan) => {
                    assert!(
                        scan.intact_len <= input.len() as u64,
                        "intact_len {} past the end of a {}-byte input",
                        scan.intact_len,
                        input.len()
                    );
                    black_box(serde_json::to_string(&scan).expect("a segment scan serialises"));
                }
                Err(e) => {
                    black_box(e.to_string());
                }
            }
        }
    }
}

/// The `recording` target: raw and with repaired digests.
pub fn recording(data: &[u8]) {
    for input in [data.to_vec(), redigest(data)] {
        match scan_recording_from(Cursor::new(&input)) {
            Ok(scan) => {
                assert!(
                    scan.manifest_offset < input.len() as u64,
                    "manifest offset past the end"
                );
                black_box(serde_json::to_string(&scan.parts).expect("recording parts serialise"));
                let m = &scan.manifest.manifest;
                black_box(serde_json::to_string(m).expect("a manifest serialises"));
                black_box(format!("{} {}", m.requested, m.trim));
            }
            Err(e) => {
                black_box(e.to_string());
            }
        }
    }
}

/// The `manifest` target: the MANI body decoder, and the CHNK body and
/// chunk plaintext decoders, each on the whole input.
pub fn bodies(data: &[u8]) {
    if let Ok(signed) = SignedManifest::decode(data) {
        assert_eq!(
            signed.encode(),
            data,
            "a manifest body re-encodes to its bytes"
        );
        let m = &signed.manifest;
        black_box(serde_json::to_string(m).expect("a manifest serialises"));
        black_box(format!("{} {}", m.requested, m.trim));
    }
    if let Ok(chunk) = ChunkRecord::decode(data) {
        assert_eq!(chunk.encode(), data, "a chunk body re-encodes to its bytes");
        black_box(format!("{}", chunk.head.range));
    }
    if let Ok(frames) = decode_frames(data) {
        assert_eq!(
            encode_frames(&frames),
            data,
            "frames re-encode to their bytes"
        );
        for f in &frames {
            black_box(f.range());
        }
    }
}

/// `data` with the digest of every complete record after the preamble
/// recomputed, so mutated records still pass the digest check. Walks the
/// records by their length fields; stops at the first incomplete one.
pub fn redigest(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let mut at = PREAMBLE_LEN as usize;
    while let Some(head) = out.get(at..at + RECORD_HEAD_LEN) {
        let body_len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let body_end = at + RECORD_HEAD_LEN + body_len;
        if body_end + DIGEST_LEN > out.len() {
            break;
        }
        let digest = Sha256::digest(&out[at..body_end]);
        out[body_end..body_end + DIGEST_LEN].copy_from_slice(&digest);
        at = body_end + DIGEST_LEN;
    }
    out
}

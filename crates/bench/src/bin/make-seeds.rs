//! `make-seeds [DIR]`: writes the vault fuzzers' seed corpus, real files
//! made with the vault's own API, to `DIR/<target>/seed-*` (default
//! `crates/vault/fuzz/corpus`, run from the repository root).
//!
//! Seeds are small (a few KB; libFuzzer's default input limit follows the
//! largest seed) and hold tiny fake frames: the parsers never look inside
//! H.264. Keys and IVs are random, so each run writes different bytes; the
//! committed seeds are one such run:
//!
//! ```text
//! cargo run -p deskrec-bench --bin make-seeds
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use deskrec_vault::internals::{ChunkRecord, SegmentKeys, encode_frames};
use deskrec_vault::{
    ChunkHead, Frame, Micros, PrivateKey, SegmentParams, SegmentWriter, SpliceRequest, TimeRange,
    scan_recording, splice,
};

/// Frame interval of the seeds (5 fps).
const FRAME_US: Micros = 200_000;
/// Frames per seed chunk.
const CHUNK_FRAMES: usize = 2;
/// Start time of the first seed segment.
const T0: Micros = 1_700_000_000_000_000;
const DEVICE: &str = "seed-pc";

fn main() -> Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "crates/vault/fuzz/corpus".into()),
    );
    let scratch = tempfile::tempdir()?;
    let server = PrivateKey::generate()?;
    let device = PrivateKey::generate()?;
    let dir = scratch.path();

    // Segments: finished, cut by a crash (no end record), and empty.
    let a = segment(dir, "a", T0, 3, true, &server)?;
    let b = segment(dir, "b", T0 + 60_000_000, 3, true, &server)?;
    let cut = segment(dir, "cut", T0, 2, false, &server)?;
    let empty = segment(dir, "empty", T0, 0, true, &server)?;
    write(&out, "segment", "finished", &std::fs::read(&a)?)?;
    write(&out, "segment", "cut", &std::fs::read(&cut)?)?;
    write(&out, "segment", "empty", &std::fs::read(&empty)?)?;

    // Recordings: one part trimmed inside a segment, two parts across two.
    let one = dir.join("one.dskr");
    let within_a = TimeRange::new(T0 + 300_000, T0 + 900_000);
    splice(&request(within_a, vec![a.clone()]), &device, &one)?;
    let two = dir.join("two.dskr");
    let across = TimeRange::new(T0 + 500_000, T0 + 60_500_000);
    splice(&request(across, vec![b, a]), &device, &two)?;
    write(&out, "recording", "one-part", &std::fs::read(&one)?)?;
    write(&out, "recording", "two-parts", &std::fs::read(&two)?)?;

    // Bodies: a signed manifest, a chunk record, a chunk's plaintext.
    let manifest = scan_recording(&two)?.manifest;
    write(&out, "manifest", "manifest", &manifest.encode())?;
    let frames = chunk_frames(T0, 0);
    let head = ChunkHead {
        seq: 0,
        range: TimeRange::new(T0, T0 + CHUNK_FRAMES as Micros * FRAME_US),
        keyframe: true,
        frame_count: CHUNK_FRAMES as u32,
    };
    let chunk = ChunkRecord::seal(
        head,
        &encode_frames(&frames),
        &SegmentKeys::generate(),
        &[7; 32],
    );
    write(&out, "manifest", "chunk", &chunk.encode())?;
    write(&out, "manifest", "frames", &encode_frames(&frames))?;
    println!("wrote seeds under {}", out.display());
    Ok(())
}

/// Writes a segment of `chunks` chunks starting at `start`, finished or
/// left as a crash would leave it.
fn segment(
    dir: &Path,
    name: &str,
    start: Micros,
    chunks: usize,
    finish: bool,
    server: &PrivateKey,
) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.dsk"));
    let params = SegmentParams {
        device_id: DEVICE.into(),
        started_at: start,
        width: 640,
        height: 360,
        frame_rate: 5.0,
    };
    let mut w = SegmentWriter::create(&path, &params, server.public())?;
    for c in 0..chunks {
        let chunk_start = start + (c * CHUNK_FRAMES) as Micros * FRAME_US;
        w.append_chunk(&chunk_frames(chunk_start, c))?;
    }
    if finish {
        w.finish()?;
    }
    Ok(path)
}

/// Chunk `c`'s tiny frames: fake SPS, PPS and IDR NAL units for a keyframe
/// (every other chunk), a fake P slice otherwise.
fn chunk_frames(start: Micros, c: usize) -> Vec<Frame> {
    (0..CHUNK_FRAMES)
        .map(|i| {
            let keyframe = i == 0 && c.is_multiple_of(2);
            let data = if keyframe {
                vec![
                    0, 0, 0, 1, 0x67, 0x42, 0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65,
                    0x88, 0x84,
                ]
            } else {
                vec![0, 0, 0, 1, 0x41, 0x9a, i as u8]
            };
            Frame {
                pts: start + i as Micros * FRAME_US,
                duration: FRAME_US as u32,
                keyframe,
                data,
                pause: None,
            }
        })
        .collect()
}

fn request(requested: TimeRange, segments: Vec<PathBuf>) -> SpliceRequest {
    SpliceRequest {
        contact_id: "seed-contact".into(),
        agent: "SEED\\agent".into(),
        requested,
        segments,
        clock_offset: 0,
    }
}

/// Writes `DIR/<target>/seed-<name>`.
fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) -> Result<()> {
    let target_dir = dir.join(target);
    std::fs::create_dir_all(&target_dir)?;
    let path = target_dir.join(format!("seed-{name}"));
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
}

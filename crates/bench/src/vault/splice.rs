//! Splice against copy: the cost of turning an hour of segments into one
//! recording, relative to copying the same files.
//!
//! A splice scans each segment's structure (seeking over chunk bodies),
//! copies every chunk record verbatim while checking its SHA-256 digest,
//! signs the manifest and fsyncs the result; `std::fs::copy` moves the same
//! bytes with no checks (on Linux, in the kernel, without a pass through
//! user space). Two more references split the difference: the copy with an
//! fsync of each file, and reading and hashing the files without writing
//! anything (what checking every digest costs on its own).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Result, ensure};
use deskrec_vault::{PrivateKey, PublicKey, SpliceRequest, splice};
use sha2::{Digest, Sha256};

use super::remove_file;
use crate::report::{Goal, Report};
use crate::synth::{self, RandomPayload};
use crate::timing::{interleaved, timed};

/// Unrecorded rounds before the measured ones (page cache, allocator).
const WARMUP: usize = 1;
/// Measured rounds; figures are their medians.
const RUNS: usize = 5;

/// Writes an hour of segments with random payloads in `dir`, measures, adds
/// `splice_vs_copy`, `splice_ms`, `copy_ms`, `copy_fsync_ms`, `hash_ms`
/// and `splice_mb`, and removes `dir`.
pub fn run(dir: &Path, server: &PublicKey, device: &PrivateKey, report: &mut Report) -> Result<()> {
    eprintln!("vault bench: writing an hour of segments (random payloads)");
    let segments = synth::write_hour(&dir.join("segments"), server, &mut RandomPayload::new())?;
    let segments_mb = synth::total_len(&segments)? as f64 / 1e6;
    let request = SpliceRequest {
        contact_id: "bench-contact".into(),
        agent: "BENCH\\agent".into(),
        requested: synth::hour(),
        segments: segments.clone(),
        clock_offset: 0,
    };
    let out = dir.join("hour.dskr");
    let copies = dir.join("copies");
    let mut spliced = (0, 0);
    let mut splice_case = || {
        remove_file(&out)?;
        timed(|| {
            let outcome = splice(&request, device, &out)?;
            spliced = (outcome.bytes, outcome.chunks);
            Ok(())
        })
    };
    let mut copy_case = || {
        fresh_dir(&copies)?;
        timed(|| copy_all(&segments, &copies, false))
    };
    let mut copy_fsync_case = || {
        fresh_dir(&copies)?;
        timed(|| copy_all(&segments, &copies, true))
    };
    let mut hash_case = || timed(|| hash_all(&segments));
    eprintln!("vault bench: splice vs copy, {RUNS} rounds");
    let medians = interleaved(
        WARMUP,
        RUNS,
        &mut [
            &mut splice_case,
            &mut copy_case,
            &mut copy_fsync_case,
            &mut hash_case,
        ],
    )?;
    let [splice_s, copy_s, copy_fsync_s, hash_s] = medians[..] else {
        unreachable!("four cases give four medians")
    };
    let expected_chunks = synth::HOUR_SEGMENTS * synth::SEGMENT_FRAMES / synth::CHUNK_FRAMES;
    ensure!(
        spliced.1 == expected_chunks,
        "the splice took {} chunks, not the hour's {expected_chunks}",
        spliced.1
    );
    std::fs::remove_dir_all(dir)?;

    report.add_goal(
        "splice_vs_copy",
        splice_s / copy_s,
        Goal::AtMost(1.5),
        "splice of 1 h (6 segments) / std::fs::copy of the same files",
    );
    report.add("splice_ms", splice_s * 1e3, "ms", "splice of 1 h, median");
    report.add(
        "copy_ms",
        copy_s * 1e3,
        "ms",
        "std::fs::copy of the 6 segments",
    );
    report.add(
        "copy_fsync_ms",
        copy_fsync_s * 1e3,
        "ms",
        "the same copy, each file fsynced",
    );
    report.add(
        "hash_ms",
        hash_s * 1e3,
        "ms",
        "read + SHA-256 of the 6 segments, no writes",
    );
    report.add(
        "splice_mb",
        spliced.0 as f64 / 1e6,
        "MB",
        "size of the spliced hour",
    );
    report.note(format!(
        "splice: 6 segments, {segments_mb:.0} MB, 1800 chunks of 2 s; random payloads of a busy \
         1080p screen (200 KB keyframe every 10 s, 12-20 KB P-frames, 5 fps); medians of {RUNS} \
         rounds after {WARMUP} warm-up, the four cases interleaved"
    ));
    Ok(())
}

/// Copies every file of `files` into `dir`, fsyncing each if asked.
fn copy_all(files: &[PathBuf], dir: &Path, fsync: bool) -> Result<()> {
    for f in files {
        let to = dir.join(f.file_name().expect("segment paths have file names"));
        std::fs::copy(f, &to)?;
        if fsync {
            File::open(&to)?.sync_all()?;
        }
    }
    Ok(())
}

/// Reads every file of `files` and SHA-256s its bytes.
fn hash_all(files: &[PathBuf]) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    for f in files {
        let mut file = File::open(f)?;
        let mut hasher = Sha256::new();
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        std::hint::black_box(hasher.finalize());
    }
    Ok(())
}

/// Empties `dir`, creating it if needed.
fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    Ok(())
}

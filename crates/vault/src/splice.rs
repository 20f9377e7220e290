//! Splicing: one recording for one contact, cut from segments without
//! decrypting anything.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::durable::AtomicFile;
use crate::error::{Result, VaultError};
use crate::keys::PrivateKey;
use crate::manifest::{MANIFEST_VERSION, Manifest, ManifestSegment, SignedManifest};
use crate::reader::{ScanDepth, SegmentScan, scan_segment};
use crate::record::{self, FileKind, Tag};
use crate::time::{Micros, TimeRange, now_micros};

/// What to splice.
#[derive(Debug, Clone)]
pub struct SpliceRequest {
    /// The contact's id.
    pub contact_id: String,
    /// The agent's login.
    pub agent: String,
    /// The range to cover, on this device's clock (contact plus padding).
    pub requested: TimeRange,
    /// Candidate segment files, in any order; those that do not overlap
    /// the range are ignored.
    pub segments: Vec<PathBuf>,
    /// The device's clock offset when it spliced: server clock minus device
    /// clock, µs (0 when unknown). Signed into the manifest so the server
    /// can place the device-clock times on its own clock.
    pub clock_offset: Micros,
}

/// Which chunks a recording takes: the plan of a splice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplicePlan {
    /// Per source segment (index into the scans given to [`plan`]), the
    /// range of chunk indexes taken, in time order.
    pub parts: Vec<(usize, std::ops::Range<usize>)>,
    /// The exact range the recording shows.
    pub trim: TimeRange,
}

/// Chooses the chunks that cover `requested`: from the last keyframe chunk
/// at or before the range's start (so decoding can begin there) to the last
/// chunk that overlaps it. Segments must come from one device and must not
/// overlap in time.
pub fn plan(scans: &[SegmentScan], requested: TimeRange) -> Result<SplicePlan> {
    if requested.start >= requested.end {
        return Err(VaultError::Invalid(format!(
            "empty requested range {requested}"
        )));
    }
    let mut order: Vec<usize> = (0..scans.len()).collect();
    order.sort_by_key(|&i| scans[i].header.started_at);
    // Every chunk in time order, as (scan index, chunk index).
    let flat: Vec<(usize, usize)> = order
        .iter()
        .flat_map(|&s| (0..scans[s].chunks.len()).map(move |c| (s, c)))
        .collect();
    let head = |k: usize| &scans[flat[k].0].chunks[flat[k].1].head;
    for k in 1..flat.len() {
        if head(k).range.start < head(k - 1).range.end {
            return Err(VaultError::Invalid(format!(
                "segments {} and {} overlap in time",
                scans[flat[k - 1].0].header.segment_id,
                scans[flat[k].0].header.segment_id
            )));
        }
    }
    let overlapping: Vec<usize> = (0..flat.len())
        .filter(|&k| head(k).range.overlaps(&requested))
        .collect();
    let (Some(&lo), Some(&hi)) = (overlapping.first(), overlapping.last()) else {
        return Err(VaultError::NotCovered(requested));
    };
    // Decoding must start at a keyframe: walk back to one, or, when the
    // recording has none before (damaged start), forward to the first one.
    let first = (0..=lo)
        .rev()
        .find(|&k| head(k).keyframe)
        .or_else(|| (lo..=hi).find(|&k| head(k).keyframe))
        .ok_or(VaultError::NotCovered(requested))?;
    let shown_from = head(first.max(lo)).range.start;
    let trim = TimeRange::new(
        requested.start.max(shown_from),
        requested.end.min(head(hi).range.end),
    );
    let mut parts: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
    for &(s, c) in &flat[first..=hi] {
        match parts.last_mut() {
            Some((last, r)) if *last == s => r.end = c + 1,
            _ => parts.push((s, c..c + 1)),
        }
    }
    Ok(SplicePlan { parts, trim })
}

/// What a splice produced.
#[derive(Debug, Clone)]
pub struct SpliceOutcome {
    /// The signed manifest written at the recording's end.
    pub manifest: Manifest,
    /// Size of the recording file.
    pub bytes: u64,
    /// Number of chunks copied.
    pub chunks: usize,
}

/// Writes one recording to `out` for `req`: the chosen chunk records are
/// copied verbatim, each behind its segment's header, and checked against
/// their digests on the way; the manifest, signed with the device key, ends
/// the file. The file appears at `out` only when complete.
pub fn splice(req: &SpliceRequest, device_key: &PrivateKey, out: &Path) -> Result<SpliceOutcome> {
    let scans = req
        .segments
        .iter()
        .map(|p| scan_segment(p, ScanDepth::Structure))
        .collect::<Result<Vec<_>>>()?;
    let plan = plan(&scans, req.requested)?;
    let device_id = scans[plan.parts[0].0].header.device_id.clone();
    if let Some((s, _)) = plan
        .parts
        .iter()
        .find(|(s, _)| scans[*s].header.device_id != device_id)
    {
        return Err(VaultError::Invalid(format!(
            "segment {} comes from device {:?}, not {device_id:?}",
            req.segments[*s].display(),
            scans[*s].header.device_id
        )));
    }

    let mut file = AtomicFile::create(out, 0o640).map_err(VaultError::io(out))?;
    let mut w = BufWriter::with_capacity(1 << 20, file.file());
    w.write_all(&record::preamble(FileKind::Recording))
        .map_err(VaultError::io(out))?;
    let mut bytes = record::PREAMBLE_LEN;
    let mut segments = Vec::new();
    let mut buf = Vec::new();
    for (s, range) in &plan.parts {
        let (path, scan) = (&req.segments[*s], &scans[*s]);
        let mut src = BufReader::new(File::open(path).map_err(VaultError::io(path))?);
        let mut copy = |offset: u64, len: u64, record: String| {
            record::copy_record(&mut src, offset, len, &mut w, &mut buf).map_err(|f| {
                let e = f.into_error(offset, record);
                tracing::warn!(segment = %path.display(), error = %e, "splice source damaged");
                e
            })
        };
        copy(
            record::PREAMBLE_LEN,
            scan.header_len,
            "segment header".into(),
        )?;
        let mut chunks = Vec::new();
        for c in range.clone() {
            let info = &scan.chunks[c];
            chunks.push(copy(info.offset, info.len, format!("chunk {c}"))?);
        }
        bytes += scan.header_len
            + scan.chunks[range.clone()]
                .iter()
                .map(|c| c.len)
                .sum::<u64>();
        segments.push(ManifestSegment {
            segment_id: scan.header.segment_id.to_string(),
            header_digest: scan.header_digest,
            first_seq: scan.chunks[range.start].head.seq,
            chunks,
        });
    }
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        contact_id: req.contact_id.clone(),
        agent: req.agent.clone(),
        device_id,
        requested: req.requested,
        trim: plan.trim,
        clock_offset: req.clock_offset,
        segments,
        created_at: now_micros(),
        signing_key_id: device_key.id(),
    };
    let signed = SignedManifest::sign(manifest, device_key)?;
    let mani = record::encode_record(Tag::Manifest, &signed.encode());
    w.write_all(&mani).map_err(VaultError::io(out))?;
    w.flush().map_err(VaultError::io(out))?;
    drop(w);
    file.commit().map_err(VaultError::io(out))?;
    Ok(SpliceOutcome {
        chunks: signed
            .manifest
            .segments
            .iter()
            .map(|s| s.chunks.len())
            .sum(),
        manifest: signed.manifest,
        bytes: bytes + mani.len() as u64,
    })
}

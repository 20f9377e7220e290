//! Reading recordings without keys: structure, digests and the manifest.
//!
//! ```text
//! recording: preamble("RECD") | part+ | MANI
//! part:      HEAD (verbatim from the segment) | CHNK+ (verbatim, consecutive)
//! ```

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use serde::Serialize;

use crate::error::{Location, Result, VaultError};
use crate::manifest::SignedManifest;
use crate::reader::{ChunkInfo, parse_header};
use crate::record::{self, Digest, FileKind, RawRecord, RecordReader, Tag};
use crate::segment::{ChunkHead, SegmentHeader};

/// One source segment's part of a recording.
#[derive(Debug, Clone, Serialize)]
pub struct RecordingPart {
    /// The segment's header, as copied.
    pub header: SegmentHeader,
    /// Digest of the header record.
    #[serde(serialize_with = "crate::manifest::hex32")]
    pub header_digest: Digest,
    /// The chunks taken from the segment.
    pub chunks: Vec<ChunkInfo>,
}

/// A recording whose every record is intact and whose layout matches its
/// manifest. The manifest's signature and the chunks' MACs are not checked
/// here: that needs keys (see [`crate::RecordingReader`]).
#[derive(Debug, Clone)]
pub struct RecordingScan {
    /// The parts, in order.
    pub parts: Vec<RecordingPart>,
    /// The manifest with its signature.
    pub manifest: SignedManifest,
    /// Offset of the manifest record.
    pub manifest_offset: u64,
}

/// Scans a recording file. Unlike a segment, a recording is all or nothing:
/// any damage is an error.
pub fn scan_recording(path: &Path) -> Result<RecordingScan> {
    let file = File::open(path).map_err(VaultError::io(path))?;
    scan_recording_from(BufReader::with_capacity(1 << 16, file))
}

/// Scans a recording from any reader.
pub fn scan_recording_from(mut r: impl Read + Seek) -> Result<RecordingScan> {
    record::read_preamble(&mut r, FileKind::Recording)?;
    let mut reader = RecordReader::after_preamble(r);
    let mut parts: Vec<RecordingPart> = Vec::new();
    let mut chunk_index = 0usize;
    loop {
        let name = match parts.last() {
            None => "segment header 0".to_string(),
            Some(_) => format!("chunk {chunk_index}"),
        };
        let rec = match reader.next_record() {
            Ok(Some(rec)) => rec,
            Ok(None) => {
                return Err(VaultError::Truncated(Location {
                    offset: reader.offset(),
                    record: "manifest (missing)".into(),
                }));
            }
            Err((off, fault)) => return Err(fault.into_error(off, name)),
        };
        match rec.tag {
            Tag::Header => parts.push(RecordingPart {
                header: parse_header(&rec)?,
                header_digest: rec.digest,
                chunks: Vec::new(),
            }),
            Tag::Chunk => {
                let part = parts
                    .last_mut()
                    .ok_or_else(|| malformed(&rec, &name, "chunk before any segment header"))?;
                let head = ChunkHead::decode(&rec.body).map_err(|e| malformed(&rec, &name, &e))?;
                check_chunk_in_part(part, &head).map_err(|reason| VaultError::Discontinuity {
                    at: Location {
                        offset: rec.offset,
                        record: name.clone(),
                    },
                    reason,
                })?;
                part.chunks.push(ChunkInfo {
                    head,
                    digest: rec.digest,
                    offset: rec.offset,
                    len: rec.len(),
                });
                chunk_index += 1;
            }
            Tag::Manifest => {
                let manifest = SignedManifest::decode(&rec.body)
                    .map_err(|e| malformed(&rec, "manifest", &e))?;
                let manifest_offset = rec.offset;
                if let Ok(Some(_)) | Err(_) = reader.next_record() {
                    return Err(malformed(&rec, "manifest", "data after the manifest"));
                }
                let scan = RecordingScan {
                    parts,
                    manifest,
                    manifest_offset,
                };
                scan.check_against_manifest()?;
                return Ok(scan);
            }
            Tag::End => {
                return Err(malformed(
                    &rec,
                    &name,
                    "segment end record inside a recording",
                ));
            }
        }
    }
}

impl RecordingScan {
    /// Every chunk, in order, with the part it belongs to.
    pub fn chunks(&self) -> impl Iterator<Item = (&RecordingPart, &ChunkInfo)> {
        self.parts
            .iter()
            .flat_map(|p| p.chunks.iter().map(move |c| (p, c)))
    }

    /// The recording must hold exactly what its manifest lists, in order:
    /// this is what makes dropped, duplicated, reordered or transplanted
    /// records detectable once the manifest's signature is checked.
    fn check_against_manifest(&self) -> Result<()> {
        let m = &self.manifest.manifest;
        let mismatch = |what: String| Err(VaultError::ManifestMismatch(what));
        if m.segments.len() != self.parts.len() {
            return mismatch(format!(
                "manifest lists {} segments, the file holds {}",
                m.segments.len(),
                self.parts.len()
            ));
        }
        let mut index = 0;
        for (i, (part, listed)) in self.parts.iter().zip(&m.segments).enumerate() {
            if part.header_digest != listed.header_digest
                || part.header.segment_id.to_string() != listed.segment_id
            {
                return mismatch(format!(
                    "segment header {i} is not the one the manifest lists"
                ));
            }
            if part.header.device_id != m.device_id {
                return mismatch(format!(
                    "segment {i} was recorded by {:?}, the manifest names {:?}",
                    part.header.device_id, m.device_id
                ));
            }
            if part.chunks.first().map(|c| c.head.seq) != Some(listed.first_seq) {
                return mismatch(format!(
                    "segment {i} does not start at chunk {}",
                    listed.first_seq
                ));
            }
            if part.chunks.len() != listed.chunks.len() {
                return mismatch(format!(
                    "segment {i} holds {} chunks, the manifest lists {}",
                    part.chunks.len(),
                    listed.chunks.len()
                ));
            }
            for (c, digest) in part.chunks.iter().zip(&listed.chunks) {
                if &c.digest != digest {
                    return mismatch(format!("chunk {index} is not the one the manifest lists"));
                }
                index += 1;
            }
        }
        let chunks: Vec<_> = self.chunks().map(|(_, c)| c).collect();
        for pair in chunks.windows(2) {
            if pair[1].head.range.start < pair[0].head.range.end {
                return mismatch("chunks overlap in time across segments".into());
            }
        }
        let covered = chunks
            .first()
            .zip(chunks.last())
            .map(|(a, b)| crate::TimeRange::new(a.head.range.start, b.head.range.end));
        let inside_request = m.requested.start <= m.trim.start && m.trim.end <= m.requested.end;
        match covered {
            Some(c)
                if inside_request
                    && c.start <= m.trim.start
                    && m.trim.end <= c.end
                    && m.trim.start < m.trim.end =>
            {
                Ok(())
            }
            _ => mismatch(format!(
                "trim range {} is not inside both the requested range and the recorded chunks",
                m.trim
            )),
        }
    }
}

/// Within a part: consecutive sequence numbers, increasing time, and a
/// keyframe at the part's start so decoding can begin there.
fn check_chunk_in_part(part: &RecordingPart, head: &ChunkHead) -> Result<(), String> {
    match part.chunks.last() {
        None if !head.keyframe => Err("a segment's part does not start with a keyframe".into()),
        None if head.range.start < part.header.started_at => {
            Err("chunk starts before its segment".into())
        }
        None => Ok(()),
        Some(prev) => crate::reader::check_next_chunk(Some(prev), head, part.header.started_at),
    }
}

fn malformed(rec: &RawRecord, name: &str, reason: &str) -> VaultError {
    VaultError::Malformed {
        at: Location {
            offset: rec.offset,
            record: name.to_string(),
        },
        reason: reason.to_string(),
    }
}

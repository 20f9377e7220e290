//! Reading segments without keys: what an agent can check on its own disk.

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use serde::Serialize;

use crate::error::{Location, Result, VaultError};
use crate::record::{self, Digest, FileKind, RawRecord, RecordReader, Tag};
use crate::segment::{CHUNK_HEAD_LEN, ChunkHead, SegmentEnd, SegmentHeader};

/// What a reader without keys knows about one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ChunkInfo {
    /// Sequence, time range, keyframe flag, frame count.
    #[serde(flatten)]
    pub head: ChunkHead,
    /// The record's plain SHA-256 digest (as stored in the file).
    #[serde(serialize_with = "crate::manifest::hex32")]
    pub digest: Digest,
    /// Offset of the record in its file.
    pub offset: u64,
    /// Length of the record in bytes.
    pub len: u64,
}

/// How thoroughly to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanDepth {
    /// Read every byte and check every record's digest.
    Full,
    /// Read only record heads and stored digests, seeking over chunk bodies:
    /// enough to plan a splice, which checks the digests as it copies.
    Structure,
}

/// A segment as read from disk: header, intact chunks, how it ends.
#[derive(Debug, Serialize)]
pub struct SegmentScan {
    /// The header.
    pub header: SegmentHeader,
    /// Digest of the header record, bound into every chunk's MAC.
    #[serde(serialize_with = "crate::manifest::hex32")]
    pub header_digest: Digest,
    /// Every chunk before the first damage, in order.
    pub chunks: Vec<ChunkInfo>,
    /// The end record, if the segment was finished cleanly.
    pub end: Option<SegmentEnd>,
    /// The first problem found, if any; chunks after it are not listed.
    #[serde(serialize_with = "display_opt")]
    pub damage: Option<VaultError>,
    /// Length of the header record (it starts right after the preamble).
    pub header_len: u64,
    /// Bytes from the start of the file to the end of the last intact record.
    pub intact_len: u64,
}

impl SegmentScan {
    /// Whether the segment was finished cleanly and nothing is damaged.
    pub fn is_complete(&self) -> bool {
        self.end.is_some() && self.damage.is_none()
    }
}

/// Scans a segment file. Fails only when the file is not a readable segment
/// at all (wrong magic, damaged header); damage after the header is reported
/// in [`SegmentScan::damage`] with every chunk before it kept.
pub fn scan_segment(path: &Path, depth: ScanDepth) -> Result<SegmentScan> {
    let file = File::open(path).map_err(VaultError::io(path))?;
    scan_segment_from(BufReader::with_capacity(1 << 16, file), depth)
}

/// Scans a segment from any seekable reader.
pub fn scan_segment_from(mut r: impl Read + Seek, depth: ScanDepth) -> Result<SegmentScan> {
    record::read_preamble(&mut r, FileKind::Segment)?;
    let mut reader = RecordReader::after_preamble(r);
    let head = reader
        .next_record()
        .map_err(|(off, f)| f.into_error(off, "segment header".into()))?
        .ok_or_else(|| {
            VaultError::Truncated(Location {
                offset: record::PREAMBLE_LEN,
                record: "segment header".into(),
            })
        })?;
    let header = parse_header(&head)?;
    let mut scan = SegmentScan {
        header,
        header_digest: head.digest,
        chunks: Vec::new(),
        end: None,
        damage: None,
        header_len: head.len(),
        intact_len: reader.offset(),
    };
    loop {
        let name = || match scan.end {
            Some(_) => "record after the segment end".to_string(),
            None => format!("chunk {}", scan.chunks.len()),
        };
        let next = match depth {
            ScanDepth::Full => reader.next_record(),
            ScanDepth::Structure => reader.next_prefix(CHUNK_HEAD_LEN.max(64)),
        };
        let rec = match next {
            Ok(Some(rec)) => rec,
            Ok(None) => break,
            Err((off, fault)) => {
                scan.damage = Some(fault.into_error(off, name()));
                break;
            }
        };
        if let Err(e) = scan.accept(&rec, name()) {
            scan.damage = Some(e);
            break;
        }
        scan.intact_len = reader.offset();
    }
    Ok(scan)
}

pub(crate) fn parse_header(rec: &RawRecord) -> Result<SegmentHeader> {
    let at = || Location {
        offset: rec.offset,
        record: "segment header".into(),
    };
    if rec.tag != Tag::Header {
        return Err(VaultError::Malformed {
            at: at(),
            reason: format!("expected a header record, found {:?}", rec.tag),
        });
    }
    SegmentHeader::decode(&rec.body).map_err(|reason| VaultError::Malformed { at: at(), reason })
}

impl SegmentScan {
    /// Adds one record after the header, checking what can be checked
    /// without keys: order, sequence, time continuity.
    fn accept(&mut self, rec: &RawRecord, name: String) -> Result<()> {
        let at = Location {
            offset: rec.offset,
            record: name,
        };
        let malformed = |reason: String| VaultError::Malformed {
            at: at.clone(),
            reason,
        };
        if self.end.is_some() {
            return Err(malformed("data after the segment's end record".into()));
        }
        match rec.tag {
            Tag::Chunk => {
                let head = ChunkHead::decode(&rec.body).map_err(malformed)?;
                check_next_chunk(self.chunks.last(), &head, self.header.started_at).map_err(
                    |reason| VaultError::Discontinuity {
                        at: at.clone(),
                        reason,
                    },
                )?;
                self.chunks.push(ChunkInfo {
                    head,
                    digest: rec.digest,
                    offset: rec.offset,
                    len: rec.len(),
                });
            }
            Tag::End => {
                // A structure scan reads 64 body bytes: a longer end record
                // is cut short here and fails to parse, as it should.
                let end = SegmentEnd::decode(&rec.body).map_err(malformed)?;
                if end.chunk_count != self.chunks.len() as u64 {
                    return Err(malformed(format!(
                        "end record counts {} chunks, the segment has {}",
                        end.chunk_count,
                        self.chunks.len()
                    )));
                }
                self.end = Some(end);
            }
            other => {
                return Err(malformed(format!(
                    "unexpected {other:?} record in a segment"
                )));
            }
        }
        Ok(())
    }
}

/// Checks that `head` may follow `prev` in one segment: the next sequence
/// number, a time range starting no earlier than the previous one ended, and
/// a keyframe at the segment's start.
pub(crate) fn check_next_chunk(
    prev: Option<&ChunkInfo>,
    head: &ChunkHead,
    segment_start: i64,
) -> Result<(), String> {
    let (want_seq, min_start) = match prev {
        Some(p) => (
            p.head
                .seq
                .checked_add(1)
                .ok_or("sequence number overflows")?,
            p.head.range.end,
        ),
        None => (0, segment_start),
    };
    if head.seq != want_seq {
        return Err(format!(
            "sequence number {} where {want_seq} was expected",
            head.seq
        ));
    }
    if head.range.start < min_start {
        return Err(format!(
            "starts at {} before the previous chunk (or segment start) at {min_start}",
            head.range.start
        ));
    }
    if prev.is_none() && !head.keyframe {
        return Err("the segment's first chunk does not start with a keyframe".into());
    }
    Ok(())
}

fn display_opt<S: serde::Serializer>(e: &Option<VaultError>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.serialize_some(&e.to_string()),
        None => s.serialize_none(),
    }
}

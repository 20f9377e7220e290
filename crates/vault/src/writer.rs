//! Writing segments: append-only, one fsync per chunk.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::crypto::SegmentKeys;
use crate::error::{Result, VaultError};
use crate::frame::{Frame, encode_frames};
use crate::keys::PublicKey;
use crate::record::{Digest, FileKind, Tag, encode_record, preamble};
use crate::segment::{ChunkHead, ChunkRecord, SegmentEnd, SegmentHeader, SegmentId};
use crate::time::{Micros, TimeRange};
use crate::{ChunkInfo, durable};

/// What a new segment records.
#[derive(Debug, Clone)]
pub struct SegmentParams {
    /// The recording device's id.
    pub device_id: String,
    /// When the segment starts (UTC µs).
    pub started_at: Micros,
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Nominal frame rate in frames per second.
    pub frame_rate: f32,
}

/// Appends encrypted chunks to one segment file.
///
/// Every [`append_chunk`](Self::append_chunk) writes one self-delimiting
/// record and fsyncs it, so a crash loses at most the frames the caller has
/// not handed over yet. The segment key lives only in this struct's memory
/// (zeroed on drop); the file holds it wrapped for the server.
pub struct SegmentWriter {
    file: File,
    path: PathBuf,
    header: SegmentHeader,
    header_digest: Digest,
    keys: SegmentKeys,
    next_seq: u64,
    last_end: Option<Micros>,
    len: u64,
}

impl SegmentWriter {
    /// Creates `path` (which must not exist) and writes its header durably.
    pub fn create(path: &Path, params: &SegmentParams, server_key: &PublicKey) -> Result<Self> {
        if params.width == 0 || params.height == 0 {
            return Err(VaultError::Invalid("picture size must not be zero".into()));
        }
        let keys = SegmentKeys::generate();
        let header = SegmentHeader {
            segment_id: SegmentId::generate(),
            key_id: server_key.id(),
            wrapped_key: keys.wrap(server_key),
            device_id: params.device_id.clone(),
            started_at: params.started_at,
            width: params.width,
            height: params.height,
            frame_rate_mhz: (params.frame_rate * 1000.0).round() as u32,
        };
        let head = encode_record(Tag::Header, &header.encode());
        let header_digest: Digest = head[head.len() - 32..].try_into().expect("32 bytes");
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(VaultError::io(path))?;
        let mut start = preamble(FileKind::Segment).to_vec();
        start.extend_from_slice(&head);
        let written = file
            .write_all(&start)
            .and_then(|_| file.sync_all())
            .and_then(|_| durable::sync_parent(path))
            .map_err(VaultError::io(path));
        if let Err(e) = written {
            // No half-written header left behind (a full disk, typically).
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
            header,
            header_digest,
            keys,
            next_seq: 0,
            last_end: None,
            len: start.len() as u64,
        })
    }

    /// The segment's header.
    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no chunk has been written yet.
    pub fn is_empty(&self) -> bool {
        self.next_seq == 0
    }

    /// Encrypts `frames` as one chunk, appends it and fsyncs.
    ///
    /// Rules that keep the file spliceable: frames are in time order and do
    /// not overlap earlier chunks; only a chunk's first frame may be a
    /// keyframe; the segment's first chunk starts with one.
    pub fn append_chunk(&mut self, frames: &[Frame]) -> Result<ChunkInfo> {
        let head = self.check(frames)?;
        let plaintext = zeroize::Zeroizing::new(encode_frames(frames));
        let record = ChunkRecord::seal(head, &plaintext, &self.keys, &self.header_digest);
        let bytes = encode_record(Tag::Chunk, &record.encode());
        self.write_durably(&bytes)?;
        let info = ChunkInfo {
            head,
            digest: bytes[bytes.len() - 32..].try_into().expect("32 bytes"),
            offset: self.len,
            len: bytes.len() as u64,
        };
        self.len += bytes.len() as u64;
        self.next_seq += 1;
        self.last_end = Some(head.range.end);
        Ok(info)
    }

    /// Writes the end record and closes the file. A segment that is never
    /// finished (crash, power cut) stays readable up to its last chunk;
    /// only the end record, which tells a clean finish from a cut, is absent.
    pub fn finish(mut self) -> Result<SegmentEnd> {
        let end = SegmentEnd::seal(
            self.next_seq,
            self.last_end.unwrap_or(self.header.started_at),
            &self.keys,
            &self.header_digest,
        );
        self.write_durably(&encode_record(Tag::End, &end.encode()))?;
        Ok(end)
    }

    fn check(&self, frames: &[Frame]) -> Result<ChunkHead> {
        let invalid = |m: String| Err(VaultError::Invalid(m));
        let (Some(first), Some(last)) = (frames.first(), frames.last()) else {
            return invalid("a chunk needs at least one frame".into());
        };
        if self.next_seq == 0 && !first.keyframe {
            return invalid("a segment's first chunk must start with a keyframe".into());
        }
        if let Some(i) = frames.iter().skip(1).position(|f| f.keyframe) {
            return invalid(format!(
                "frame {} is a keyframe but not the chunk's first frame",
                i + 1
            ));
        }
        let mut prev_end = self.last_end.unwrap_or(self.header.started_at);
        for (i, f) in frames.iter().enumerate() {
            if f.pts < prev_end || f.duration == 0 || f.data.is_empty() {
                return invalid(format!(
                    "frame {i} at {} (duration {} µs, {} bytes) overlaps the previous one ending at {prev_end} or is empty",
                    f.pts,
                    f.duration,
                    f.data.len()
                ));
            }
            prev_end = f.range().end;
        }
        Ok(ChunkHead {
            seq: self.next_seq,
            range: TimeRange::new(first.pts, last.pts + last.duration as Micros),
            keyframe: first.keyframe,
            frame_count: u32::try_from(frames.len()).expect("chunk of over 4 billion frames"),
        })
    }

    fn write_durably(&mut self, bytes: &[u8]) -> Result<()> {
        // A failed write (disk full) may leave a partial record behind.
        // Readers would stop before it anyway; cutting the file back to the
        // last whole record lets the caller retry the append later.
        let result = self
            .file
            .write_all(bytes)
            .and_then(|_| self.file.sync_data());
        if let Err(e) = result {
            let _ = self.file.set_len(self.len);
            let _ = self.file.seek(SeekFrom::Start(self.len));
            return Err(VaultError::io(&self.path)(e));
        }
        Ok(())
    }
}

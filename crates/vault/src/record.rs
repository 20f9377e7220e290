//! The container layer shared by segments and recordings: a 12-byte
//! preamble, then self-delimiting records.
//!
//! ```text
//! preamble: "DSKR" | kind[4] ("SEGM" or "RECD") | version u16 | reserved u16
//! record:   tag[4] | body_len u32 | body | digest[32]
//!           digest = SHA-256(tag | body_len | body)
//! ```
//!
//! The digest lets anyone, without keys, tell an intact record from a cut or
//! damaged one; a reader stops at the first record that is incomplete or
//! fails its digest and keeps everything before it.

use std::io::{self, Read, Seek, SeekFrom, Write};

use sha2::{Digest as _, Sha256};

use crate::error::{Location, Result, VaultError};

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// The first four bytes of every Deskrec file.
pub const MAGIC: &[u8; 4] = b"DSKR";
/// The format version this crate writes. Version 2 added paused frames
/// (a flag and a reason in the frame layout, `frame.rs`).
pub const VERSION: u16 = 2;
/// The oldest version this crate still reads: version 1 files are
/// version 2 files in which no frame is paused.
pub const OLDEST_VERSION: u16 = 1;
/// Length of the preamble.
pub const PREAMBLE_LEN: u64 = 12;
/// Bytes a record adds around its body.
pub const RECORD_OVERHEAD: u64 = 4 + 4 + 32;
/// Largest body a reader accepts: bounds memory on hostile input. A chunk
/// holds about 2 s of video, far below this.
pub const MAX_BODY: u32 = 64 << 20;

/// What a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A segment an agent records.
    Segment,
    /// A recording spliced for one contact.
    Recording,
    /// Other bytes sealed at rest under the server's key (`sealed`).
    Sealed,
}

impl FileKind {
    fn tag(self) -> &'static [u8; 4] {
        match self {
            FileKind::Segment => b"SEGM",
            FileKind::Recording => b"RECD",
            FileKind::Sealed => b"SEAL",
        }
    }
    /// "segment", "recording" or "sealed".
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Segment => "segment",
            FileKind::Recording => "recording",
            FileKind::Sealed => "sealed",
        }
    }

    /// The file name extension files of this kind carry, without the dot:
    /// every crate names files through this, so a listing by extension
    /// finds what a writer wrote.
    pub fn extension(self) -> &'static str {
        match self {
            FileKind::Segment => "dseg",
            FileKind::Recording => "dskr",
            FileKind::Sealed => "seal",
        }
    }

    /// `stem.EXTENSION`.
    pub fn file_name(self, stem: &str) -> String {
        format!("{stem}.{}", self.extension())
    }
}

/// The kinds of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// A segment header.
    Header,
    /// An encrypted chunk of frames.
    Chunk,
    /// The end of a segment that was finished cleanly.
    End,
    /// A recording's signed manifest.
    Manifest,
}

impl Tag {
    /// The four bytes on disk.
    pub fn bytes(self) -> &'static [u8; 4] {
        match self {
            Tag::Header => b"HEAD",
            Tag::Chunk => b"CHNK",
            Tag::End => b"SEND",
            Tag::Manifest => b"MANI",
        }
    }
    fn parse(b: &[u8; 4]) -> Option<Tag> {
        [Tag::Header, Tag::Chunk, Tag::End, Tag::Manifest]
            .into_iter()
            .find(|t| t.bytes() == b)
    }
}

/// The preamble's bytes for a file of `kind`.
pub fn preamble(kind: FileKind) -> [u8; PREAMBLE_LEN as usize] {
    let mut p = [0u8; PREAMBLE_LEN as usize];
    p[..4].copy_from_slice(MAGIC);
    p[4..8].copy_from_slice(kind.tag());
    p[8..10].copy_from_slice(&VERSION.to_be_bytes());
    p
}

/// Reads and checks a preamble.
pub fn read_preamble(r: &mut impl Read, kind: FileKind) -> Result<()> {
    let mut p = [0u8; PREAMBLE_LEN as usize];
    read_full(r, &mut p).map_err(|_| VaultError::NotOurs {
        expected: kind.name(),
    })?;
    if &p[..4] != MAGIC || &p[4..8] != kind.tag() {
        return Err(VaultError::NotOurs {
            expected: kind.name(),
        });
    }
    let version = u16::from_be_bytes([p[8], p[9]]);
    if !(OLDEST_VERSION..=VERSION).contains(&version) || p[10..] != [0, 0] {
        return Err(VaultError::UnsupportedVersion {
            kind: kind.name(),
            version,
        });
    }
    Ok(())
}

/// A record's bytes, ready to append: tag, length, body, digest.
pub fn encode_record(tag: Tag, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("record body over 4 GiB");
    let mut out = Vec::with_capacity(body.len() + RECORD_OVERHEAD as usize);
    out.extend_from_slice(tag.bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// A record read from a file.
#[derive(Debug, Clone)]
pub struct RawRecord {
    /// Its kind.
    pub tag: Tag,
    /// Offset of its first byte in the file.
    pub offset: u64,
    /// The body, whole, or only its first bytes when read with
    /// [`RecordReader::next_prefix`].
    pub body: Vec<u8>,
    /// Length of the whole body.
    pub body_len: u32,
    /// The digest stored after the body.
    pub digest: Digest,
}

impl RawRecord {
    /// Length of the whole record on disk.
    pub fn len(&self) -> u64 {
        self.body_len as u64 + RECORD_OVERHEAD
    }
}

/// Why a record could not be read. The caller names the record (it knows
/// whether the next one is "chunk 7" or "the manifest") to make the error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The file ends inside the record.
    Truncated,
    /// The record's digest does not match.
    Digest,
    /// The tag or length is impossible.
    Malformed(String),
    /// The underlying read failed (not a property of the file).
    Io(String),
}

impl Fault {
    /// The error for this fault at `offset`, naming the record.
    pub fn into_error(self, offset: u64, record: String) -> VaultError {
        let at = Location { offset, record };
        match self {
            Fault::Truncated => VaultError::Truncated(at),
            Fault::Digest => VaultError::DigestMismatch(at),
            Fault::Malformed(reason) => VaultError::Malformed { at, reason },
            Fault::Io(reason) => VaultError::Malformed {
                at,
                reason: format!("read failed: {reason}"),
            },
        }
    }
}

/// Reads records one by one, tracking offsets.
pub struct RecordReader<R> {
    inner: R,
    offset: u64,
}

impl<R: Read> RecordReader<R> {
    /// A reader positioned just after the preamble (call after
    /// [`read_preamble`]).
    pub fn after_preamble(inner: R) -> Self {
        Self {
            inner,
            offset: PREAMBLE_LEN,
        }
    }

    /// Offset of the next record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads the next whole record and checks its digest. `Ok(None)` at a
    /// clean end of file.
    pub fn next_record(&mut self) -> Result<Option<RawRecord>, (u64, Fault)> {
        let start = self.offset;
        let Some((tag, len, head)) = self.read_head().map_err(|f| (start, f))? else {
            return Ok(None);
        };
        let mut hasher = Sha256::new();
        hasher.update(head);
        let mut body = Vec::new();
        (&mut self.inner)
            .take(len as u64)
            .read_to_end(&mut body)
            .map_err(|e| (start, Fault::Io(e.to_string())))?;
        if body.len() != len as usize {
            return Err((start, Fault::Truncated));
        }
        hasher.update(&body);
        let digest = self.read_digest().map_err(|f| (start, f))?;
        if <[u8; 32]>::from(hasher.finalize()) != digest {
            return Err((start, Fault::Digest));
        }
        self.offset = start + len as u64 + RECORD_OVERHEAD;
        Ok(Some(RawRecord {
            tag,
            offset: start,
            body,
            body_len: len,
            digest,
        }))
    }

    /// Reads tag and length; `None` at a clean end of file.
    fn read_head(&mut self) -> Result<Option<(Tag, u32, [u8; 8])>, Fault> {
        let mut head = [0u8; 8];
        let n = read_up_to(&mut self.inner, &mut head).map_err(|e| Fault::Io(e.to_string()))?;
        if n == 0 {
            return Ok(None);
        }
        if n < head.len() {
            return Err(Fault::Truncated);
        }
        let tag_bytes: [u8; 4] = head[..4].try_into().expect("4 bytes");
        let tag = Tag::parse(&tag_bytes)
            .ok_or_else(|| Fault::Malformed(format!("unknown record tag {:02x?}", tag_bytes)))?;
        let len = u32::from_be_bytes(head[4..].try_into().expect("4 bytes"));
        if len > MAX_BODY {
            return Err(Fault::Malformed(format!(
                "record length {len} exceeds the {MAX_BODY}-byte limit"
            )));
        }
        Ok(Some((tag, len, head)))
    }

    fn read_digest(&mut self) -> Result<Digest, Fault> {
        let mut digest = [0u8; 32];
        read_full(&mut self.inner, &mut digest).map_err(|_| Fault::Truncated)?;
        Ok(digest)
    }
}

impl<R: Read + Seek> RecordReader<R> {
    /// Reads the next record's first `prefix` body bytes and its stored
    /// digest, seeking over the rest without checking the digest: a cheap
    /// walk over a file whose bodies are checked later (while splicing).
    pub fn next_prefix(&mut self, prefix: usize) -> Result<Option<RawRecord>, (u64, Fault)> {
        let start = self.offset;
        let Some((tag, len, _)) = self.read_head().map_err(|f| (start, f))? else {
            return Ok(None);
        };
        let want = prefix.min(len as usize);
        let mut body = vec![0u8; want];
        read_full(&mut self.inner, &mut body).map_err(|_| (start, Fault::Truncated))?;
        let skip = (len as usize - want) as i64;
        if skip > 0 {
            self.inner
                .seek(SeekFrom::Current(skip))
                .map_err(|e| (start, Fault::Io(e.to_string())))?;
        }
        let digest = self.read_digest().map_err(|f| (start, f))?;
        self.offset = start + len as u64 + RECORD_OVERHEAD;
        Ok(Some(RawRecord {
            tag,
            offset: start,
            body,
            body_len: len,
            digest,
        }))
    }
}

/// Copies the record at `offset` (of `len` bytes) from `src` to `dst`,
/// checking it against its stored digest on the way. Returns the digest.
pub fn copy_record(
    src: &mut (impl Read + Seek),
    offset: u64,
    len: u64,
    dst: &mut impl Write,
    buf: &mut Vec<u8>,
) -> Result<Digest, Fault> {
    src.seek(SeekFrom::Start(offset))
        .map_err(|e| Fault::Io(e.to_string()))?;
    buf.resize(len as usize, 0);
    read_full(src, buf).map_err(|_| Fault::Truncated)?;
    let body_end = buf.len() - 32;
    let stored: Digest = buf[body_end..].try_into().expect("32 bytes");
    if <[u8; 32]>::from(Sha256::digest(&buf[..body_end])) != stored {
        return Err(Fault::Digest);
    }
    dst.write_all(buf).map_err(|e| Fault::Io(e.to_string()))?;
    Ok(stored)
}

/// Like `read_exact`, but tells a short read from an I/O error.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<()> {
    let n = read_up_to(r, buf)?;
    if n < buf.len() {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

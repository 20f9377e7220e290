//! The records of a segment: header, chunks, end.
//!
//! ```text
//! HEAD body: segment_id[16] | key_id[32] | wrapped_key (u16 len + bytes)
//!            | device_id (u16 len + UTF-8) | started_at i64 | width u32
//!            | height u32 | codec[4] ("avc1") | frame_rate_mhz u32
//! CHNK body: seq u64 | start i64 | end i64 | flags u8 (bit 0: starts with
//!            a keyframe) | frame_count u32 | iv[16] | ct_len u32 | ct | mac[32]
//! SEND body: chunk_count u64 | end i64 | mac[32]
//! ```

use serde::Serialize;

use crate::crypto::SegmentKeys;
use crate::keys::KeyId;
use crate::record::{Digest, Tag};
use crate::time::{Micros, TimeRange};
use crate::wire::{Get, Put};

/// A segment's random identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentId(pub [u8; 16]);

impl SegmentId {
    /// A fresh random id.
    pub fn generate() -> Self {
        let mut id = [0u8; 16];
        crate::crypto::fill_random(&mut id);
        SegmentId(id)
    }
}

impl std::fmt::Display for SegmentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serialize for SegmentId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// The header at the start of every segment (and copied into recordings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentHeader {
    /// Random id of the segment.
    pub segment_id: SegmentId,
    /// Id of the server public key the segment key is wrapped with.
    pub key_id: KeyId,
    /// AES and HMAC keys, RSA-OAEP-wrapped.
    #[serde(skip)]
    pub wrapped_key: Vec<u8>,
    /// The device that recorded the segment.
    pub device_id: String,
    /// When the segment started (UTC µs).
    pub started_at: Micros,
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// Nominal frame rate in millihertz (5 fps = 5000).
    pub frame_rate_mhz: u32,
}

/// The only codec this version writes.
const CODEC: &[u8; 4] = b"avc1";

impl SegmentHeader {
    /// The HEAD record body.
    pub fn encode(&self) -> Vec<u8> {
        let mut p = Put::default();
        p.bytes(&self.segment_id.0)
            .bytes(&self.key_id.0)
            .short_bytes(&self.wrapped_key)
            .short_bytes(self.device_id.as_bytes())
            .i64(self.started_at)
            .u32(self.width)
            .u32(self.height)
            .bytes(CODEC)
            .u32(self.frame_rate_mhz);
        p.0
    }

    /// Parses a HEAD record body.
    pub fn decode(body: &[u8]) -> Result<Self, String> {
        let mut g = Get::new(body);
        let h = SegmentHeader {
            segment_id: SegmentId(g.array()?),
            key_id: KeyId(g.array()?),
            wrapped_key: g.short_bytes()?.to_vec(),
            device_id: g.string()?,
            started_at: g.i64()?,
            width: g.u32()?,
            height: g.u32()?,
            frame_rate_mhz: {
                let codec = g.array::<4>()?;
                if &codec != CODEC {
                    return Err(format!(
                        "unsupported codec {:?}",
                        String::from_utf8_lossy(&codec)
                    ));
                }
                g.u32()?
            },
        };
        g.end()?;
        if h.width == 0 || h.height == 0 || h.width > 16384 || h.height > 16384 {
            return Err(format!("implausible picture size {}x{}", h.width, h.height));
        }
        Ok(h)
    }
}

/// Bytes of a CHNK body before the IV: what a reader without keys needs.
pub const CHUNK_HEAD_LEN: usize = 8 + 8 + 8 + 1 + 4;

/// What anyone can read about a chunk without keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ChunkHead {
    /// Position in the segment, from 0.
    pub seq: u64,
    /// The time the chunk's frames cover.
    pub range: TimeRange,
    /// Whether the first frame is a keyframe (decoding can start here).
    pub keyframe: bool,
    /// Number of frames.
    pub frame_count: u32,
}

impl ChunkHead {
    /// Parses the start of a CHNK body.
    pub fn decode(body: &[u8]) -> Result<Self, String> {
        let mut g = Get::new(body);
        let seq = g.u64()?;
        let range = TimeRange::new(g.i64()?, g.i64()?);
        let flags = g.u8()?;
        let frame_count = g.u32()?;
        if flags & !1 != 0 {
            return Err(format!("unknown chunk flags {flags:#x}"));
        }
        if range.start >= range.end {
            return Err(format!("empty or inverted time range {range}"));
        }
        if frame_count == 0 {
            return Err("chunk without frames".into());
        }
        Ok(ChunkHead {
            seq,
            range,
            keyframe: flags & 1 == 1,
            frame_count,
        })
    }

    fn put(&self, p: &mut Put) {
        p.u64(self.seq)
            .i64(self.range.start)
            .i64(self.range.end)
            .u8(self.keyframe as u8)
            .u32(self.frame_count);
    }
}

/// A whole chunk record: head, IV, ciphertext, MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRecord {
    /// Sequence, time range, keyframe flag, frame count.
    pub head: ChunkHead,
    /// The random CBC IV.
    pub iv: [u8; 16],
    /// The encrypted frames.
    pub ciphertext: Vec<u8>,
    /// HMAC-SHA256, see [`SegmentKeys::mac`].
    pub mac: [u8; 32],
}

impl ChunkRecord {
    /// Encrypts and MACs `plaintext` into a chunk record.
    pub fn seal(
        head: ChunkHead,
        plaintext: &[u8],
        keys: &SegmentKeys,
        header_digest: &Digest,
    ) -> Self {
        let (iv, ciphertext) = keys.encrypt(plaintext);
        let mut rec = ChunkRecord {
            head,
            iv,
            ciphertext,
            mac: [0; 32],
        };
        rec.mac = keys.mac(Tag::Chunk, header_digest, &rec.authenticated());
        rec
    }

    /// The CHNK record body.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = self.authenticated();
        body.extend_from_slice(&self.mac);
        body
    }

    /// The body without the MAC: what the MAC covers.
    fn authenticated(&self) -> Vec<u8> {
        let mut p = Put(Vec::with_capacity(
            CHUNK_HEAD_LEN + 20 + self.ciphertext.len() + 32,
        ));
        self.head.put(&mut p);
        let len = u32::try_from(self.ciphertext.len()).expect("chunk over 4 GiB");
        p.bytes(&self.iv).u32(len).bytes(&self.ciphertext);
        p.0
    }

    /// Parses a CHNK record body.
    pub fn decode(body: &[u8]) -> Result<Self, String> {
        let head = ChunkHead::decode(body)?;
        let mut g = Get::new(&body[CHUNK_HEAD_LEN..]);
        let iv = g.array()?;
        let len = g.u32()? as usize;
        let ciphertext = g.take(len)?.to_vec();
        let mac = g.array()?;
        g.end()?;
        if len == 0 || !len.is_multiple_of(16) {
            return Err(format!(
                "ciphertext length {len} is not a positive multiple of 16"
            ));
        }
        Ok(ChunkRecord {
            head,
            iv,
            ciphertext,
            mac,
        })
    }

    /// Checks the MAC, then decrypts. `None` if the MAC does not verify.
    pub fn open(&self, keys: &SegmentKeys, header_digest: &Digest) -> Option<Vec<u8>> {
        if !keys.verify_mac(Tag::Chunk, header_digest, &self.authenticated(), &self.mac) {
            return None;
        }
        keys.decrypt(&self.iv, &self.ciphertext)
    }
}

/// The record that closes a cleanly finished segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SegmentEnd {
    /// Number of chunks in the segment.
    pub chunk_count: u64,
    /// End of the last chunk (UTC µs).
    pub end: Micros,
    /// HMAC over the above, bound to the header.
    #[serde(skip)]
    pub mac: [u8; 32],
}

impl SegmentEnd {
    /// A MACed end record.
    pub fn seal(chunk_count: u64, end: Micros, keys: &SegmentKeys, header_digest: &Digest) -> Self {
        let mut e = SegmentEnd {
            chunk_count,
            end,
            mac: [0; 32],
        };
        e.mac = keys.mac(Tag::End, header_digest, &e.authenticated());
        e
    }

    fn authenticated(&self) -> Vec<u8> {
        let mut p = Put::default();
        p.u64(self.chunk_count).i64(self.end);
        p.0
    }

    /// The SEND record body.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = self.authenticated();
        b.extend_from_slice(&self.mac);
        b
    }

    /// Parses a SEND record body.
    pub fn decode(body: &[u8]) -> Result<Self, String> {
        let mut g = Get::new(body);
        let e = SegmentEnd {
            chunk_count: g.u64()?,
            end: g.i64()?,
            mac: g.array()?,
        };
        g.end()?;
        Ok(e)
    }
}

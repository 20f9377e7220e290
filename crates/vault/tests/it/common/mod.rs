//! Fixtures shared by the vault's tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use deskrec_vault::internals::{Tag, encode_record, preamble};
use deskrec_vault::*;

/// 5 fps.
pub const FRAME_US: i64 = 200_000;
/// A fixed, realistic start time: 2026-11-24T09:00:00Z.
pub const T0: Micros = 1_795_510_800_000_000;
pub const DEVICE: &str = "pc-0017";

/// Keys are slow to generate: one set per test process.
pub struct Keys {
    pub server: PrivateKey,
    pub device: PrivateKey,
    pub other_device: PrivateKey,
    pub other_server: PrivateKey,
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        server: PrivateKey::generate().unwrap(),
        device: PrivateKey::generate().unwrap(),
        other_device: PrivateKey::generate().unwrap(),
        other_server: PrivateKey::generate().unwrap(),
    })
}

pub fn keyring() -> Keyring {
    Keyring::from(keys().server.clone())
}

pub fn device() -> DeviceIdentity<'static> {
    DeviceIdentity {
        id: DEVICE,
        key: keys().device.public(),
    }
}

/// `n` fake frames from `start`, a keyframe every `gop` frames counting
/// from `first_index`. Payloads are distinct so any mix-up shows.
pub fn fake_frames(start: Micros, first_index: usize, n: usize, gop: usize) -> Vec<Frame> {
    (first_index..first_index + n)
        .map(|i| Frame {
            pts: start + (i - first_index) as i64 * FRAME_US,
            duration: FRAME_US as u32,
            keyframe: i % gop == 0,
            data: format!("frame {i} of a test").into_bytes(),
            pause: None,
        })
        .collect()
}

/// Groups frames into chunks the way the recorder does: a new chunk at
/// every keyframe and after `per_chunk` frames.
pub fn chunked(frames: Vec<Frame>, per_chunk: usize) -> Vec<Vec<Frame>> {
    let mut chunks: Vec<Vec<Frame>> = Vec::new();
    for f in frames {
        match chunks.last_mut() {
            Some(c) if !f.keyframe && c.len() < per_chunk => c.push(f),
            _ => chunks.push(vec![f]),
        }
    }
    chunks
}

/// The test device's segment settings: 640x360 at 5 fps from `start`.
pub fn params(start: Micros) -> SegmentParams {
    SegmentParams {
        device_id: DEVICE.into(),
        started_at: start,
        width: 640,
        height: 360,
        frame_rate: 5.0,
    }
}

/// Writes a finished segment holding `chunks`, starting at the first
/// frame's time.
pub fn write_segment(path: &Path, chunks: &[Vec<Frame>], server: &PublicKey) -> PathBuf {
    let mut w = SegmentWriter::create(path, &params(chunks[0][0].pts), server).unwrap();
    for c in chunks {
        w.append_chunk(c).unwrap();
    }
    w.finish().unwrap();
    path.to_path_buf()
}

/// A small segment: `seconds` of 5 fps, 2 s chunks, 4 s GOP.
pub fn small_segment(
    dir: &Path,
    name: &str,
    start: Micros,
    seconds: usize,
) -> (PathBuf, Vec<Frame>) {
    let frames = fake_frames(start, 0, seconds * 5, 20);
    let path = write_segment(
        &dir.join(name),
        &chunked(frames.clone(), 10),
        keys().server.public(),
    );
    (path, frames)
}

/// A record as (tag, body).
pub type Rec = ([u8; 4], Vec<u8>);

/// A file's records as (tag, body), for tests that rebuild files the way an
/// attacker would (with valid plain digests).
pub fn records(bytes: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut at = PREAMBLE_LEN as usize;
    while at < bytes.len() {
        let tag: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
        let len = u32::from_be_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        out.push((tag, bytes[at + 8..at + 8 + len].to_vec()));
        at += len + RECORD_OVERHEAD as usize;
    }
    out
}

/// Reassembles a file from records, computing fresh digests.
pub fn assemble(kind: FileKind, recs: &[Rec]) -> Vec<u8> {
    let mut out = preamble(kind).to_vec();
    for (tag, body) in recs {
        let tag = [Tag::Header, Tag::Chunk, Tag::End, Tag::Manifest]
            .into_iter()
            .find(|t| t.bytes() == tag)
            .unwrap();
        out.extend(encode_record(tag, body));
    }
    out
}

pub fn request(segments: Vec<PathBuf>, start: Micros, end: Micros) -> SpliceRequest {
    SpliceRequest {
        contact_id: "contact-42".into(),
        agent: "CORP\\ann".into(),
        requested: TimeRange::new(start, end),
        segments,
        clock_offset: 0,
    }
}

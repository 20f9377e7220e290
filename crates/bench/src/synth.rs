//! Recording material for benchmarks: an hour of segments laid out as the
//! agent writes them (5 fps, a chunk every 2 s, a keyframe every 10 s,
//! 10-minute segments), with frame payloads from a caller's source.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use deskrec_vault::{Frame, Micros, PublicKey, SegmentParams, SegmentWriter, TimeRange};

/// Frame rate of the policy default.
pub const FPS: f32 = 5.0;
/// One frame interval at [`FPS`], in µs.
pub const FRAME_US: Micros = 200_000;
/// Frames per chunk: 2 s.
pub const CHUNK_FRAMES: usize = 10;
/// Frames per keyframe interval: 10 s.
pub const GOP_FRAMES: usize = 50;
/// Frames per segment: 10 minutes.
pub const SEGMENT_FRAMES: usize = 3000;
/// One segment's length, µs.
pub const SEGMENT_US: Micros = SEGMENT_FRAMES as Micros * FRAME_US;
/// Segments per hour.
pub const HOUR_SEGMENTS: usize = 6;
/// Picture size (it only goes into headers; payloads are the source's).
pub const WIDTH: u32 = 1920;
/// Picture size.
pub const HEIGHT: u32 = 1080;
/// Start of the benchmark hour (UTC µs, 2030-11-25 09:00): in the future,
/// so the server relays a contact then to the devices the benchmarks
/// enroll now (their login sessions are open).
pub const T0: Micros = 1_921_827_600_000_000;
/// Device id in every header and manifest.
pub const DEVICE_ID: &str = "bench-pc";

/// The hour the segments cover, `[T0, T0 + 1 h)`.
pub fn hour() -> TimeRange {
    TimeRange::new(T0, T0 + 3_600_000_000)
}

/// Where frame payloads come from: `payload(n)` is frame `n` of a segment
/// (0-based), as `(keyframe, Annex B bytes)`.
pub trait Payload {
    /// Frame `n`'s keyframe flag and bytes.
    fn frame(&mut self, n: usize) -> (bool, Vec<u8>);
}

/// Random bytes of realistic sizes for a busy screen at 1080p: a 200 KB
/// keyframe every [`GOP_FRAMES`] and P-frames of 12-20 KB (16 KB average),
/// about 5.9 MB a minute (`notes/capture-encode.md` measured 5.9 MB for a
/// scrolling terminal). Bytes are sliced from a random pool: the vault
/// encrypts them anyway, so only their sizes matter.
pub struct RandomPayload {
    pool: Vec<u8>,
    rng: Rng,
}

/// Keyframe size of [`RandomPayload`].
pub const KEYFRAME_BYTES: usize = 200_000;
/// P-frame size range of [`RandomPayload`].
pub const PFRAME_BYTES: std::ops::Range<usize> = 12_000..20_000;

impl RandomPayload {
    /// A source with a 4 MiB pool from a fixed seed.
    pub fn new() -> Self {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut pool = vec![0u8; 4 << 20];
        rng.fill(&mut pool);
        Self { pool, rng }
    }
}

impl Default for RandomPayload {
    fn default() -> Self {
        Self::new()
    }
}

impl Payload for RandomPayload {
    fn frame(&mut self, n: usize) -> (bool, Vec<u8>) {
        let len = busy_frame_len(n, &mut self.rng);
        let at = self.rng.below(self.pool.len() - len);
        (is_keyframe(n), self.pool[at..at + len].to_vec())
    }
}

/// Whether frame `n` of a segment is a keyframe: every [`GOP_FRAMES`].
pub fn is_keyframe(n: usize) -> bool {
    n.is_multiple_of(GOP_FRAMES)
}

/// The size of frame `n` of a busy 1080p screen: [`KEYFRAME_BYTES`] for a
/// keyframe, a random size in [`PFRAME_BYTES`] otherwise.
pub fn busy_frame_len(n: usize, rng: &mut Rng) -> usize {
    if is_keyframe(n) {
        KEYFRAME_BYTES
    } else {
        PFRAME_BYTES.start + rng.below(PFRAME_BYTES.len())
    }
}

/// Writes one hour as [`HOUR_SEGMENTS`] finished segments `seg-K.dsk` in
/// `dir`, encrypted for `server`. Returns their paths in time order.
pub fn write_hour(
    dir: &Path,
    server: &PublicKey,
    payload: &mut impl Payload,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    (0..HOUR_SEGMENTS)
        .map(|k| {
            let path = dir.join(format!("seg-{k}.dsk"));
            write_segment(&path, k, DEVICE_ID, server, payload)?;
            Ok(path)
        })
        .collect()
}

/// Writes segment `k` of the hour, recorded by `device_id`:
/// [`SEGMENT_FRAMES`] frames starting at `T0 + k * 10 min`, a new chunk at
/// every keyframe and at least every [`CHUNK_FRAMES`] frames (the writer
/// wants keyframes only first in a chunk).
pub fn write_segment(
    path: &Path,
    k: usize,
    device_id: &str,
    server: &PublicKey,
    payload: &mut impl Payload,
) -> Result<()> {
    let start = T0 + (k * SEGMENT_FRAMES) as Micros * FRAME_US;
    write_segment_at(path, start, device_id, server, payload)
}

/// Writes a segment of [`SEGMENT_FRAMES`] frames starting at `start` (µs),
/// recorded by `device_id`, laid out as [`write_segment`] says.
pub fn write_segment_at(
    path: &Path,
    start: Micros,
    device_id: &str,
    server: &PublicKey,
    payload: &mut impl Payload,
) -> Result<()> {
    let params = SegmentParams {
        device_id: device_id.into(),
        started_at: start,
        width: WIDTH,
        height: HEIGHT,
        frame_rate: FPS,
    };
    let mut seg = SegmentWriter::create(path, &params, server)
        .with_context(|| format!("creating {}", path.display()))?;
    let mut chunk: Vec<Frame> = Vec::with_capacity(CHUNK_FRAMES);
    for n in 0..SEGMENT_FRAMES {
        let (keyframe, data) = payload.frame(n);
        if !chunk.is_empty() && (keyframe || chunk.len() == CHUNK_FRAMES) {
            seg.append_chunk(&chunk)?;
            chunk.clear();
        }
        chunk.push(Frame {
            pts: start + n as Micros * FRAME_US,
            duration: FRAME_US as u32,
            keyframe,
            data,
            pause: None,
        });
    }
    seg.append_chunk(&chunk)?;
    seg.finish()?;
    Ok(())
}

/// Total size of `paths` in bytes.
pub fn total_len(paths: &[PathBuf]) -> Result<u64> {
    paths
        .iter()
        .map(|p| {
            Ok(std::fs::metadata(p)
                .with_context(|| format!("{}", p.display()))?
                .len())
        })
        .sum()
}

/// xorshift64*: fast and deterministic; payload bytes need no better.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`; the tiny modulo bias does not matter).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for word in buf.chunks_mut(8) {
            let r = self.next_u64().to_le_bytes();
            word.copy_from_slice(&r[..word.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_payload_has_the_documented_shape() {
        let mut p = RandomPayload::new();
        let frames: Vec<_> = (0..GOP_FRAMES * 2).map(|n| p.frame(n)).collect();
        let keyframes: Vec<usize> = (0..frames.len()).filter(|&n| frames[n].0).collect();
        assert_eq!(keyframes, [0, GOP_FRAMES]);
        assert_eq!(frames[0].1.len(), KEYFRAME_BYTES);
        assert!(
            frames[1..GOP_FRAMES]
                .iter()
                .all(|(_, d)| PFRAME_BYTES.contains(&d.len()))
        );
    }

    #[test]
    fn a_segment_is_ten_minutes_of_two_second_chunks() {
        struct Tiny;
        impl Payload for Tiny {
            fn frame(&mut self, n: usize) -> (bool, Vec<u8>) {
                (n.is_multiple_of(GOP_FRAMES), vec![1, 2, 3])
            }
        }
        let server = deskrec_vault::PrivateKey::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.dsk");
        write_segment(&path, 1, DEVICE_ID, server.public(), &mut Tiny).unwrap();
        let scan = deskrec_vault::scan_segment(&path, deskrec_vault::ScanDepth::Full).unwrap();
        assert!(scan.is_complete());
        assert_eq!(scan.chunks.len(), SEGMENT_FRAMES / CHUNK_FRAMES);
        let first = scan.chunks[0].head.range;
        assert_eq!(first, TimeRange::new(T0 + 600_000_000, T0 + 602_000_000));
        let keyframes = scan.chunks.iter().filter(|c| c.head.keyframe).count();
        assert_eq!(keyframes, SEGMENT_FRAMES / GOP_FRAMES);
    }
}

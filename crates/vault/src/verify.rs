//! Verifying and decrypting recordings: the server's side, with the
//! private key.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::crypto::SegmentKeys;
use crate::error::{Location, Result, VaultError};
use crate::frame::{Frame, decode_frames};
use crate::keys::{Keyring, PublicKey};
use crate::manifest::Manifest;
use crate::reader::ChunkInfo;
use crate::recording::{RecordingScan, scan_recording};
use crate::segment::{ChunkRecord, SegmentHeader};
use crate::time::TimeRange;

/// The device a recording must come from: the server knows it from the
/// authenticated upload, not from the file.
#[derive(Debug, Clone, Copy)]
pub struct DeviceIdentity<'a> {
    /// The device's id.
    pub id: &'a str,
    /// The signing key registered for it at enrollment.
    pub key: &'a PublicKey,
}

/// What a full verification found.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    /// The signed manifest.
    pub manifest: Manifest,
    /// Number of chunks checked.
    pub chunks: u64,
    /// Number of frames decrypted and checked.
    pub frames: u64,
    /// Stretches between chunks with no video (recording paused or stopped).
    pub gaps: Vec<TimeRange>,
    /// Stretches recorded as paused pictures, with why (format version 2).
    pub pauses: Vec<PauseSpan>,
}

/// A stretch of a recording in which recording was paused: its frames are
/// blank "paused" pictures, not the screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PauseSpan {
    /// When (UTC µs).
    pub range: TimeRange,
    /// Why, as the pause's reason code.
    pub reason: String,
}

/// Adds `frame`'s time to the pause spans when it is a paused frame:
/// consecutive paused frames with the same reason make one span.
fn note_pause(spans: &mut Vec<PauseSpan>, frame: &Frame) {
    let Some(reason) = &frame.pause else { return };
    let range = frame.range();
    match spans.last_mut() {
        Some(last) if last.reason == *reason && last.range.end == range.start => {
            last.range = TimeRange::new(last.range.start, range.end);
        }
        _ => spans.push(PauseSpan {
            range,
            reason: reason.clone(),
        }),
    }
}

/// A recording whose signature is verified, ready to stream its frames.
pub struct RecordingReader<'k> {
    path: PathBuf,
    scan: RecordingScan,
    keyring: &'k Keyring,
}

impl<'k> RecordingReader<'k> {
    /// Opens a recording: every record's digest, the layout against the
    /// manifest, and the manifest's signature by `device`.
    pub fn open(path: &Path, keyring: &'k Keyring, device: DeviceIdentity<'_>) -> Result<Self> {
        let scan = scan_recording(path)?;
        scan.manifest.verify(device.id, device.key)?;
        Ok(Self {
            path: path.to_path_buf(),
            scan,
            keyring,
        })
    }

    /// The verified manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.scan.manifest.manifest
    }

    /// The recording's layout.
    pub fn scan(&self) -> &RecordingScan {
        &self.scan
    }

    /// Checks every chunk's MAC, decrypts it and hands its frames, in order,
    /// to `sink`. Stops at the first chunk that fails.
    pub fn for_each_frame(
        &self,
        mut sink: impl FnMut(&SegmentHeader, Frame) -> Result<()>,
    ) -> Result<Verified> {
        let mut src = BufReader::with_capacity(
            1 << 16,
            File::open(&self.path).map_err(VaultError::io(&self.path))?,
        );
        let mut out = Verified {
            manifest: self.manifest().clone(),
            chunks: 0,
            frames: 0,
            gaps: Vec::new(),
            pauses: Vec::new(),
        };
        let mut prev_end = None;
        let mut buf = Vec::new();
        for part in &self.scan.parts {
            let private = self.keyring.get(&part.header.key_id)?;
            let keys = SegmentKeys::unwrap(&part.header.wrapped_key, private)
                .ok_or(VaultError::WrongKey(part.header.key_id))?;
            for info in &part.chunks {
                let at = Location {
                    offset: info.offset,
                    record: format!("chunk {}", out.chunks),
                };
                let frames = read_chunk(&mut src, info, &mut buf, &keys, &part.header_digest, &at)?;
                if let Some(end) = prev_end.filter(|&e| e < info.head.range.start) {
                    out.gaps.push(TimeRange::new(end, info.head.range.start));
                }
                prev_end = Some(info.head.range.end);
                for frame in frames {
                    note_pause(&mut out.pauses, &frame);
                    sink(&part.header, frame)?;
                    out.frames += 1;
                }
                out.chunks += 1;
            }
        }
        Ok(out)
    }
}

/// Verifies a recording completely without keeping its frames.
pub fn verify_recording(
    path: &Path,
    keyring: &Keyring,
    device: DeviceIdentity<'_>,
) -> Result<Verified> {
    RecordingReader::open(path, keyring, device)?.for_each_frame(|_, _| Ok(()))
}

/// Reads one chunk record, checks its MAC, decrypts it and checks that its
/// frames agree with its clear-text head.
fn read_chunk(
    src: &mut (impl Read + Seek),
    info: &ChunkInfo,
    buf: &mut Vec<u8>,
    keys: &SegmentKeys,
    header_digest: &crate::record::Digest,
    at: &Location,
) -> Result<Vec<Frame>> {
    src.seek(SeekFrom::Start(info.offset))?;
    buf.resize(info.len as usize, 0);
    src.read_exact(buf)?;
    let body = &buf[8..buf.len() - 32];
    let malformed = |reason: String| VaultError::Malformed {
        at: at.clone(),
        reason,
    };
    let record = ChunkRecord::decode(body).map_err(malformed)?;
    let plain = zeroize::Zeroizing::new(
        record
            .open(keys, header_digest)
            .ok_or_else(|| VaultError::MacMismatch(at.clone()))?,
    );
    let frames = decode_frames(&plain).map_err(malformed)?;
    check_frames(&frames, &record).map_err(malformed)?;
    Ok(frames)
}

fn check_frames(frames: &[Frame], record: &ChunkRecord) -> Result<(), String> {
    let head = &record.head;
    if frames.len() != head.frame_count as usize {
        return Err(format!(
            "holds {} frames, its head says {}",
            frames.len(),
            head.frame_count
        ));
    }
    let mut t = head.range.start;
    for (i, f) in frames.iter().enumerate() {
        if f.keyframe != (i == 0 && head.keyframe) {
            return Err(format!(
                "frame {i}'s keyframe flag disagrees with the chunk's"
            ));
        }
        if (i == 0 && f.pts != t) || f.pts < t {
            return Err(format!("frame {i} at {} is out of order", f.pts));
        }
        t = f.range().end;
    }
    if t != head.range.end {
        return Err(format!(
            "frames end at {t}, the chunk's head says {}",
            head.range.end
        ));
    }
    Ok(())
}

//! The Deskrec vault: the encrypted segment and recording format.
//!
//! An agent's PC records its screen into **segments**: append-only files of
//! encrypted **chunks** (about 2 s of H.264 each), under a fresh AES-256 key
//! per segment that only the server's private key can unwrap. For a customer
//! contact, the agent **splices** the chunks covering the contact into one
//! **recording** — copying ciphertext verbatim, never decrypting — and signs
//! a manifest with its device key. The server **verifies** the recording
//! (signature, every MAC, continuity) and **exports** it to MP4.
//!
//! ```no_run
//! # fn main() -> Result<(), deskrec_vault::VaultError> {
//! use deskrec_vault::*;
//! # let (server, device) = (PrivateKey::generate()?, PrivateKey::generate()?);
//! # let frames: Vec<Frame> = vec![];
//! let params = SegmentParams { device_id: "pc-17".into(), started_at: 0, width: 1920, height: 1080, frame_rate: 5.0 };
//! let mut seg = SegmentWriter::create("seg-0.dsk".as_ref(), &params, server.public())?;
//! seg.append_chunk(&frames)?;            // durable when it returns
//! seg.finish()?;
//! let req = SpliceRequest {
//!     contact_id: "c-1".into(), agent: "CORP\\ann".into(),
//!     requested: TimeRange::new(1_000_000, 9_000_000),
//!     segments: vec!["seg-0.dsk".into()],
//!     clock_offset: 0,
//! };
//! splice(&req, &device, "c-1.dskr".as_ref())?;
//! let who = DeviceIdentity { id: "pc-17", key: device.public() };
//! export_mp4("c-1.dskr".as_ref(), &Keyring::from(server), who, "c-1.mp4".as_ref())?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - `record`: the preamble and self-delimiting, digested records;
//! - `segment`, `frame`: what the records of a segment hold;
//! - `crypto`, `keys`: segment keys, AES-CBC, HMAC, RSA wrapping and keys;
//! - `writer`, `reader`: writing segments, reading them without keys;
//! - `splice`, `manifest`: cutting recordings and signing them;
//! - `recording`, `verify`, `export`: reading, verifying, exporting them;
//! - `sealed`: other bytes the server keeps at rest (call audio), sealed
//!   under its recording key.
//! - [`durable`]: temporary file, fsync, rename, directory fsync: the one
//!   durable write every Deskrec crate uses.
//!
//! The byte layout and threat model are in `docs/format.md`.

#![deny(missing_docs)]

mod crypto;
pub mod durable;
mod error;
mod export;
mod frame;
mod h264;
mod keys;
mod manifest;
mod reader;
mod record;
mod recording;
mod sealed;
mod segment;
mod splice;
mod time;
mod verify;
mod wire;
mod writer;

pub use error::{Location, Result, VaultError};
pub use export::{Exported, export_mp4};
pub use frame::{Frame, MAX_PAUSE_REASON, pause_reason, valid_pause_reason};
pub use keys::{KEY_BITS, KeyId, Keyring, PrivateKey, PublicKey, is_encrypted_pem};
pub use manifest::{MANIFEST_VERSION, Manifest, ManifestSegment, SignedManifest};
pub use reader::{ChunkInfo, ScanDepth, SegmentScan, scan_segment, scan_segment_from};
pub use record::{Digest, FileKind, PREAMBLE_LEN, RECORD_OVERHEAD, VERSION};
pub use recording::{RecordingPart, RecordingScan, scan_recording, scan_recording_from};
pub use sealed::{SealInfo, seal, unseal};
pub use segment::{ChunkHead, SegmentEnd, SegmentHeader, SegmentId};
pub use splice::{SpliceOutcome, SplicePlan, SpliceRequest, plan, splice};
pub use time::{Micros, TimeRange, now_micros, utc};
pub use verify::{DeviceIdentity, PauseSpan, RecordingReader, Verified, verify_recording};
pub use writer::{SegmentParams, SegmentWriter};

/// Low-level pieces for benchmarks and fuzzing; not a stable API.
#[doc(hidden)]
pub mod internals {
    pub use crate::crypto::SegmentKeys;
    pub use crate::frame::{decode_frames, encode_frames};
    pub use crate::manifest::SignedManifest;
    pub use crate::record::{Tag, encode_record, preamble};
    pub use crate::segment::ChunkRecord;
}

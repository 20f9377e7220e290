//! The signed manifest that makes a recording authentic.
//!
//! ```text
//! MANI body: json_len u32 | json (UTF-8) | sig_len u16 | signature
//! signature = RSA-PSS-SHA256(device key, "deskrec-manifest-v1\0" | json)
//! ```
//!
//! The manifest lists, in order, every segment header and chunk digest the
//! recording holds, so the server can tell a dropped, duplicated, reordered
//! or transplanted record from the original, and the exact trim points the
//! export applies.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Sha256;

use crate::error::{Result, VaultError};
use crate::keys::{KeyId, PrivateKey, PublicKey};
use crate::record::Digest;
use crate::time::{Micros, TimeRange};
use crate::wire::{Get, Put};

/// Version of the manifest's JSON schema.
pub const MANIFEST_VERSION: u32 = 1;

/// Signature domain separation: a manifest signature can never be confused
/// with a signature the device key makes for anything else.
const SIGNING_CONTEXT: &[u8] = b"deskrec-manifest-v1\0";

/// What a recording is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Schema version, [`MANIFEST_VERSION`].
    pub version: u32,
    /// The contact this recording covers (the ACD's id).
    pub contact_id: String,
    /// The agent's login (Windows login) that handled the contact.
    pub agent: String,
    /// The device that recorded and signed it.
    pub device_id: String,
    /// The range the agent was asked for (contact times plus padding, on
    /// the agent's clock).
    pub requested: TimeRange,
    /// The exact range the export shows: `requested` clipped to what was
    /// recorded.
    pub trim: TimeRange,
    /// Server clock minus device clock when the device spliced, µs: the
    /// device-clock times above plus this are server-clock times. Absent
    /// (0) in manifests of devices that did not know their offset.
    #[serde(default)]
    pub clock_offset: Micros,
    /// The source segments, in order, with the chunks taken from each.
    pub segments: Vec<ManifestSegment>,
    /// When the recording was spliced (UTC µs).
    pub created_at: Micros,
    /// Id of the device key that signs the manifest.
    pub signing_key_id: KeyId,
}

/// One source segment's part of a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSegment {
    /// The segment's id (hex).
    pub segment_id: String,
    /// Digest of the segment's header record.
    #[serde(serialize_with = "hex32", deserialize_with = "unhex32")]
    pub header_digest: Digest,
    /// Sequence number of the first chunk taken.
    pub first_seq: u64,
    /// Digests of the chunk records taken, in order.
    #[serde(serialize_with = "hex32_vec", deserialize_with = "unhex32_vec")]
    pub chunks: Vec<Digest>,
}

/// A manifest with its signature, as stored in a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedManifest {
    /// The manifest.
    pub manifest: Manifest,
    /// The exact JSON bytes that were signed.
    pub json: Vec<u8>,
    /// RSA-PSS-SHA256 signature.
    pub signature: Vec<u8>,
}

impl SignedManifest {
    /// Signs a manifest with the device's key.
    pub fn sign(manifest: Manifest, device_key: &PrivateKey) -> Result<Self> {
        let json = serde_json::to_vec(&manifest).expect("a manifest always serialises");
        let signature = device_key
            .inner
            .pss_sign::<Sha256>(&signed_message(&json))
            .map_err(|e| VaultError::Invalid(format!("signing failed: {e}")))?;
        Ok(Self {
            manifest,
            json,
            signature,
        })
    }

    /// Checks the signature with the device's public key and that the
    /// manifest names that key and device.
    pub fn verify(&self, device_id: &str, device_key: &PublicKey) -> Result<()> {
        let bad = || VaultError::BadSignature {
            device: device_id.to_string(),
        };
        if self.manifest.device_id != device_id || self.manifest.signing_key_id != device_key.id() {
            return Err(bad());
        }
        device_key
            .inner
            .pss_verify::<Sha256>(&signed_message(&self.json), &self.signature)
            .map_err(|_| bad())
    }

    /// The MANI record body.
    pub fn encode(&self) -> Vec<u8> {
        let mut p = Put::default();
        p.u32(self.json.len() as u32)
            .bytes(&self.json)
            .short_bytes(&self.signature);
        p.0
    }

    /// Parses a MANI record body (does not check the signature).
    pub fn decode(body: &[u8]) -> Result<Self, String> {
        let mut g = Get::new(body);
        let len = g.u32()? as usize;
        let json = g.take(len)?.to_vec();
        let signature = g.short_bytes()?.to_vec();
        g.end()?;
        let manifest: Manifest =
            serde_json::from_slice(&json).map_err(|e| format!("manifest JSON: {e}"))?;
        if manifest.version != MANIFEST_VERSION {
            return Err(format!("unsupported manifest version {}", manifest.version));
        }
        Ok(Self {
            manifest,
            json,
            signature,
        })
    }
}

fn signed_message(json: &[u8]) -> Vec<u8> {
    [SIGNING_CONTEXT, json].concat()
}

pub(crate) fn hex32<S: Serializer>(d: &Digest, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(d))
}

fn unhex32<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Digest, D::Error> {
    parse_hex32(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn hex32_vec<S: Serializer>(v: &[Digest], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(hex::encode))
}

fn unhex32_vec<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<Digest>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| parse_hex32(s).map_err(serde::de::Error::custom))
        .collect()
}

fn parse_hex32(s: &str) -> std::result::Result<Digest, String> {
    let mut d = [0u8; 32];
    hex::decode_to_slice(s, &mut d).map_err(|e| format!("bad digest {s:?}: {e}"))?;
    Ok(d)
}

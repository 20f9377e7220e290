//! Segment keys and chunk encryption: AES-256-CBC with a random IV per chunk,
//! encrypt-then-MAC with HMAC-SHA256, keys wrapped with RSA-OAEP-SHA256.

use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::keys::{PrivateKey, PublicKey};
use crate::record::{Digest, Tag};

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;
type HmacSha256 = Hmac<Sha256>;

/// A segment's secret keys, fresh for every segment. Zeroed when dropped.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SegmentKeys {
    aes: [u8; 32],
    mac: [u8; 32],
}

impl SegmentKeys {
    /// New random keys.
    pub fn generate() -> Self {
        let mut keys = SegmentKeys {
            aes: [0; 32],
            mac: [0; 32],
        };
        fill_random(&mut keys.aes);
        fill_random(&mut keys.mac);
        keys
    }

    /// Both keys encrypted with RSA-OAEP-SHA256 under `server`.
    pub fn wrap(&self, server: &PublicKey) -> Vec<u8> {
        let mut both = zeroize::Zeroizing::new([0u8; 64]);
        both[..32].copy_from_slice(&self.aes);
        both[32..].copy_from_slice(&self.mac);
        server
            .inner
            .oaep_encrypt::<Sha256>(&both[..])
            .expect("64 bytes always fit RSA-2048 OAEP-SHA256")
    }

    /// Recovers the keys from a wrapped blob; `None` if it does not unwrap.
    pub fn unwrap(wrapped: &[u8], server: &PrivateKey) -> Option<Self> {
        let both = zeroize::Zeroizing::new(server.inner.oaep_decrypt::<Sha256>(wrapped).ok()?);
        if both.len() != 64 {
            return None;
        }
        Some(SegmentKeys {
            aes: both[..32].try_into().ok()?,
            mac: both[32..].try_into().ok()?,
        })
    }

    /// Encrypts a chunk's plaintext; returns the random IV and ciphertext.
    pub fn encrypt(&self, plaintext: &[u8]) -> ([u8; 16], Vec<u8>) {
        let mut iv = [0u8; 16];
        fill_random(&mut iv);
        let ct =
            Aes256CbcEnc::new(&self.aes.into(), &iv.into()).encrypt_padded_vec::<Pkcs7>(plaintext);
        (iv, ct)
    }

    /// Decrypts a chunk; `None` if the padding is wrong (which a verified MAC
    /// rules out).
    pub fn decrypt(&self, iv: &[u8; 16], ciphertext: &[u8]) -> Option<Vec<u8>> {
        Aes256CbcDec::new(&self.aes.into(), &(*iv).into())
            .decrypt_padded_vec::<Pkcs7>(ciphertext)
            .ok()
    }

    /// The MAC of a record: HMAC-SHA256 over its tag, the segment header's
    /// digest and the record body without the MAC. Binding the header digest
    /// stops a chunk from being moved into another segment; the body holds
    /// the sequence number, time range, IV and ciphertext.
    pub fn mac(&self, tag: Tag, header_digest: &Digest, body: &[u8]) -> [u8; 32] {
        self.mac_state(tag, header_digest, body)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Checks a MAC in constant time.
    pub fn verify_mac(&self, tag: Tag, header_digest: &Digest, body: &[u8], mac: &[u8]) -> bool {
        self.mac_state(tag, header_digest, body)
            .verify_slice(mac)
            .is_ok()
    }

    fn mac_state(&self, tag: Tag, header_digest: &Digest, body: &[u8]) -> HmacSha256 {
        let mut m =
            <HmacSha256 as KeyInit>::new_from_slice(&self.mac).expect("HMAC takes any key length");
        m.update(tag.bytes());
        m.update(header_digest);
        m.update(body);
        m
    }
}

/// Fills `buf` from the operating system's RNG.
pub fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random source failed");
}

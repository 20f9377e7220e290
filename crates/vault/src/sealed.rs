//! Sealed files: any bytes the server keeps at rest (a contact's call
//! audio), encrypted under the server's recording key as segments are, in
//! the same container.
//!
//! ```text
//! preamble: "DSKR" | "SEAL" | version
//! HEAD:  key_id[32] | wrapped_len u16 | wrapped keys | media_type_len u16 | media type
//! CHNK:  seq u64 | iv[16] | ciphertext | mac[32]      (one per 1 MiB of plaintext)
//! SEND:  chunks u64 | plain_len u64 | mac[32]
//! ```
//!
//! Each MAC is HMAC-SHA256 under the file's own key, over the record's tag,
//! the digest of the `HEAD` record and the body before the MAC, so chunks
//! cannot be reordered, dropped or moved between files; the `SEND` record
//! makes a file cut after a whole chunk fail as well. Only a holder of the
//! server's private key opens one.

use std::io::{Read, Write};

use sha2::{Digest as _, Sha256};

use crate::crypto::SegmentKeys;
use crate::error::{Location, Result, VaultError};
use crate::keys::{KeyId, Keyring, PublicKey};
use crate::record::{FileKind, RecordReader, Tag, encode_record, preamble, read_preamble};

/// Plaintext bytes per chunk.
const CHUNK: usize = 1 << 20;

/// What [`seal`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealInfo {
    /// Plaintext bytes sealed.
    pub plain_len: u64,
    /// SHA-256 of the plaintext, hex.
    pub sha256: String,
}

/// Seals everything `src` yields into `dst` under `server`, with its
/// `media_type` (e.g. `audio/mpeg`) in the header.
pub fn seal(
    src: &mut impl Read,
    dst: &mut impl Write,
    server: &PublicKey,
    media_type: &str,
) -> Result<SealInfo> {
    let keys = SegmentKeys::generate();
    let wrapped = keys.wrap(server);
    let mut head = Vec::new();
    head.extend_from_slice(&server.id().0);
    head.extend_from_slice(&(wrapped.len() as u16).to_be_bytes());
    head.extend_from_slice(&wrapped);
    let media = media_type.as_bytes();
    let media_len = u16::try_from(media.len())
        .map_err(|_| VaultError::Invalid("the media type is over 64 KiB".into()))?;
    head.extend_from_slice(&media_len.to_be_bytes());
    head.extend_from_slice(media);
    let head_record = encode_record(Tag::Header, &head);
    // The record's own digest: SHA-256 of its tag, length and body.
    let head_digest: [u8; 32] = head_record[head_record.len() - 32..]
        .try_into()
        .expect("a record ends in its 32-byte digest");
    dst.write_all(&preamble(FileKind::Sealed))?;
    dst.write_all(&head_record)?;

    let (mut seq, mut plain_len, mut hash) = (0u64, 0u64, Sha256::new());
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = read_fill(src, &mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        let (iv, ct) = keys.encrypt(&buf[..n]);
        let mut body = Vec::with_capacity(8 + 16 + ct.len() + 32);
        body.extend_from_slice(&seq.to_be_bytes());
        body.extend_from_slice(&iv);
        body.extend_from_slice(&ct);
        let mac = keys.mac(Tag::Chunk, &head_digest, &body);
        body.extend_from_slice(&mac);
        dst.write_all(&encode_record(Tag::Chunk, &body))?;
        seq += 1;
        plain_len += n as u64;
        if n < CHUNK {
            break;
        }
    }
    let mut end = Vec::with_capacity(48);
    end.extend_from_slice(&seq.to_be_bytes());
    end.extend_from_slice(&plain_len.to_be_bytes());
    let mac = keys.mac(Tag::End, &head_digest, &end);
    end.extend_from_slice(&mac);
    dst.write_all(&encode_record(Tag::End, &end))?;
    dst.flush()?;
    Ok(SealInfo {
        plain_len,
        sha256: hex::encode(hash.finalize()),
    })
}

/// Opens a sealed file: checks every record, writes the plaintext to
/// `dst`, and returns the media type. A damaged, cut or altered file is an
/// error, and `dst` then holds only bytes of chunks that verified.
pub fn unseal(src: impl Read, keyring: &Keyring, dst: &mut impl Write) -> Result<String> {
    let mut src = src;
    read_preamble(&mut src, FileKind::Sealed)?;
    let mut records = RecordReader::after_preamble(src);
    let next = |records: &mut RecordReader<_>, what: &str| -> Result<crate::record::RawRecord> {
        let at = records.offset();
        match records.next_record() {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(VaultError::Truncated(Location {
                offset: at,
                record: what.to_owned(),
            })),
            Err((offset, fault)) => Err(fault.into_error(offset, what.to_owned())),
        }
    };
    let head = next(&mut records, "header")?;
    let bad = |r: &crate::record::RawRecord, what: &str, reason: &str| VaultError::Malformed {
        at: Location {
            offset: r.offset,
            record: what.to_owned(),
        },
        reason: reason.to_owned(),
    };
    if head.tag != Tag::Header {
        return Err(bad(&head, "header", "the first record is not a header"));
    }
    let (key_id, wrapped, media_type) =
        parse_head(&head.body).ok_or_else(|| bad(&head, "header", "the header is cut short"))?;
    let private = keyring.get(&key_id)?;
    let keys = SegmentKeys::unwrap(wrapped, private).ok_or(VaultError::WrongKey(key_id))?;
    let head_digest = head.digest;
    let mut seq = 0u64;
    let mut plain_len = 0u64;
    loop {
        let what = format!("chunk {seq}");
        let r = next(&mut records, &what)?;
        let at = || Location {
            offset: r.offset,
            record: what.clone(),
        };
        if r.body.len() < 32 {
            return Err(bad(&r, &what, "shorter than its MAC"));
        }
        let (body, mac) = r.body.split_at(r.body.len() - 32);
        if !keys.verify_mac(r.tag, &head_digest, body, mac) {
            return Err(VaultError::MacMismatch(at()));
        }
        match r.tag {
            Tag::Chunk => {
                if body.len() < 24 || body[..8] != seq.to_be_bytes() {
                    return Err(VaultError::Discontinuity {
                        at: at(),
                        reason: format!("expected chunk {seq}"),
                    });
                }
                let iv: [u8; 16] = body[8..24].try_into().expect("16 bytes");
                let plain = keys
                    .decrypt(&iv, &body[24..])
                    .ok_or_else(|| bad(&r, &what, "bad padding"))?;
                dst.write_all(&plain)?;
                plain_len += plain.len() as u64;
                seq += 1;
            }
            Tag::End => {
                let chunks = body
                    .get(..8)
                    .map(|b| u64::from_be_bytes(b.try_into().unwrap()));
                let len = body
                    .get(8..16)
                    .map(|b| u64::from_be_bytes(b.try_into().unwrap()));
                if chunks != Some(seq) || len != Some(plain_len) {
                    return Err(VaultError::Discontinuity {
                        at: at(),
                        reason: format!(
                            "the end says {chunks:?} chunks and {len:?} bytes, the file holds {seq} and {plain_len}"
                        ),
                    });
                }
                dst.flush()?;
                return Ok(media_type);
            }
            _ => return Err(bad(&r, &what, "neither a chunk nor the end")),
        }
    }
}

/// Key id, wrapped keys and media type from a header body.
fn parse_head(b: &[u8]) -> Option<(KeyId, &[u8], String)> {
    let key_id = KeyId(b.get(..32)?.try_into().ok()?);
    let wrapped_len = u16::from_be_bytes(b.get(32..34)?.try_into().ok()?) as usize;
    let wrapped = b.get(34..34 + wrapped_len)?;
    let rest = &b[34 + wrapped_len..];
    let media_len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
    let media = String::from_utf8(rest.get(2..2 + media_len)?.to_vec()).ok()?;
    Some((key_id, wrapped, media))
}

/// Reads until `buf` is full or the source ends; the bytes read.
fn read_fill(src: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PrivateKey;

    fn key() -> &'static PrivateKey {
        static KEY: std::sync::OnceLock<PrivateKey> = std::sync::OnceLock::new();
        KEY.get_or_init(|| PrivateKey::generate().unwrap())
    }

    fn sealed(plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let info = seal(&mut &plain[..], &mut out, key().public(), "audio/wav").unwrap();
        assert_eq!(info.plain_len, plain.len() as u64);
        out
    }

    fn open(file: &[u8]) -> Result<(String, Vec<u8>)> {
        let mut plain = Vec::new();
        let media = unseal(file, &Keyring::from(key().clone()), &mut plain)?;
        Ok((media, plain))
    }

    #[test]
    fn what_is_sealed_opens_whole_and_the_bytes_are_not_there() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 5] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let file = sealed(&plain);
            assert_eq!(open(&file).unwrap(), ("audio/wav".into(), plain.clone()));
            if len >= 64 {
                assert!(
                    !file.windows(64).any(|w| w == &plain[..64]),
                    "plaintext in the file"
                );
            }
        }
    }

    #[test]
    fn a_cut_altered_or_reordered_file_does_not_open() {
        let plain: Vec<u8> = (0..2 * CHUNK + 100).map(|i| (i % 7) as u8).collect();
        let file = sealed(&plain);
        // Cut anywhere, even right after a whole chunk.
        for cut in [20, 400, file.len() / 2, file.len() - 81, file.len() - 1] {
            assert!(open(&file[..cut]).is_err(), "cut at {cut}");
        }
        // One flipped bit in a chunk's ciphertext (its digest fixed up):
        // the MAC catches it.
        let chunk_at = 12 + {
            let mut r = RecordReader::after_preamble(&file[12..]);
            r.next_record().unwrap().unwrap().len() as usize
        };
        let mut altered = file.clone();
        let body_at = chunk_at + 8;
        altered[body_at + 30] ^= 1;
        let len = u32::from_be_bytes(altered[chunk_at + 4..chunk_at + 8].try_into().unwrap());
        let end = body_at + len as usize;
        let digest = Sha256::digest(&altered[chunk_at..end]);
        altered[end..end + 32].copy_from_slice(&digest);
        assert!(matches!(open(&altered), Err(VaultError::MacMismatch(_))));
        // Another server key cannot open it.
        let other = PrivateKey::generate().unwrap();
        let err = unseal(&file[..], &Keyring::from(other), &mut Vec::new()).unwrap_err();
        assert!(matches!(err, VaultError::UnknownKey(_)), "{err}");
    }
}

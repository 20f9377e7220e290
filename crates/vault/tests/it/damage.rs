//! Damage and tampering are detected, located, and lose nothing before them.

use crate::common;

use common::*;
use deskrec_vault::*;

/// The index of the chunk record that holds byte `at`, if any.
fn chunk_at(scan: &SegmentScan, at: u64) -> Option<usize> {
    scan.chunks
        .iter()
        .position(|c| c.offset <= at && at < c.offset + c.len)
}

#[test]
fn every_flipped_bit_in_a_segment_is_detected_and_located() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = small_segment(dir.path(), "a.seg", T0, 8);
    let clean = std::fs::read(&path).unwrap();
    let intact = scan_segment_from(std::io::Cursor::new(&clean), ScanDepth::Full).unwrap();
    let header_end = PREAMBLE_LEN + intact.header_len;
    for byte in 0..clean.len() {
        for bit in 0..8 {
            let mut bad = clean.clone();
            bad[byte] ^= 1 << bit;
            let result = scan_segment_from(std::io::Cursor::new(&bad), ScanDepth::Full);
            let at = byte as u64;
            if at < header_end {
                // Preamble or header: the file is refused as a whole.
                assert!(
                    result.is_err(),
                    "flip at {byte}.{bit} in the header went unnoticed"
                );
                continue;
            }
            let scan = result.unwrap();
            let damage = scan
                .damage
                .as_ref()
                .unwrap_or_else(|| panic!("flip at {byte}.{bit} went unnoticed"));
            let loc = damage.location().expect("damage names a place");
            match chunk_at(&intact, at) {
                Some(i) => {
                    assert_eq!(
                        loc.record,
                        format!("chunk {i}"),
                        "flip at {byte}.{bit}: {damage}"
                    );
                    assert_eq!(
                        scan.chunks,
                        intact.chunks[..i],
                        "chunks before the damage are kept"
                    );
                }
                None => assert!(
                    scan.end.is_none(),
                    "flip in the end record at {byte}.{bit}: {damage}"
                ),
            }
        }
    }
}

#[test]
fn a_segment_cut_anywhere_in_its_last_chunk_keeps_every_earlier_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let params = params(T0);
    // Unfinished, as after a crash: the last record is a chunk.
    let path = dir.path().join("cut.seg");
    let mut w = SegmentWriter::create(&path, &params, keys().server.public()).unwrap();
    let chunks = chunked(fake_frames(T0, 0, 40, 20), 10);
    let infos: Vec<ChunkInfo> = chunks.iter().map(|c| w.append_chunk(c).unwrap()).collect();
    drop(w);
    let bytes = std::fs::read(&path).unwrap();
    let last = infos.last().unwrap();
    for cut in last.offset..last.offset + last.len {
        let scan = scan_segment_from(
            std::io::Cursor::new(&bytes[..cut as usize]),
            ScanDepth::Full,
        )
        .unwrap();
        assert_eq!(scan.chunks, infos[..infos.len() - 1], "cut at {cut}");
        assert_eq!(scan.intact_len, last.offset);
        if cut > last.offset {
            assert!(
                matches!(scan.damage, Some(VaultError::Truncated(_))),
                "cut at {cut}: {:?}",
                scan.damage
            );
        } else {
            assert!(
                scan.damage.is_none(),
                "a cut on a record boundary is a clean end"
            );
        }
        assert!(scan.end.is_none());
        // The structure-only scan used for splicing agrees.
        let quick = scan_segment_from(
            std::io::Cursor::new(&bytes[..cut as usize]),
            ScanDepth::Structure,
        )
        .unwrap();
        assert_eq!(quick.chunks, scan.chunks, "cut at {cut}");
    }
}

/// A recording of two segments, with its bytes.
fn recording(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
    let (a, _) = small_segment(dir, "a.seg", T0, 12);
    let (b, _) = small_segment(dir, "b.seg", T0 + 12_000_000, 12);
    let out = dir.join("rec.dskr");
    splice(
        &request(vec![a, b], T0 + 1_000_000, T0 + 20_000_000),
        &keys().device,
        &out,
    )
    .unwrap();
    let bytes = std::fs::read(&out).unwrap();
    (out, bytes)
}

fn verify_bytes(dir: &std::path::Path, bytes: &[u8]) -> Result<Verified> {
    let p = dir.join("tampered.dskr");
    std::fs::write(&p, bytes).unwrap();
    verify_recording(&p, &keyring(), device())
}

#[test]
fn every_flipped_byte_in_a_recording_is_rejected_and_located() {
    let dir = tempfile::tempdir().unwrap();
    let (path, clean) = recording(dir.path());
    verify_recording(&path, &keyring(), device()).expect("the clean recording verifies");
    let scan = scan_recording(&path).unwrap();
    let chunks: Vec<&ChunkInfo> = scan.chunks().map(|(_, c)| c).collect();
    for byte in 0..clean.len() {
        let mut bad = clean.clone();
        bad[byte] ^= 1 << (byte % 8);
        let err =
            verify_bytes(dir.path(), &bad).expect_err(&format!("flip at {byte} went unnoticed"));
        if let Some(i) = chunks
            .iter()
            .position(|c| c.offset <= byte as u64 && (byte as u64) < c.offset + c.len)
        {
            let loc = err
                .location()
                .unwrap_or_else(|| panic!("flip at {byte}: {err} names no place"));
            assert_eq!(loc.record, format!("chunk {i}"), "flip at {byte}: {err}");
        }
    }
}

#[test]
fn tampering_with_recomputed_digests_is_caught_by_the_mac() {
    // Malware on the PC rewrites a segment with valid plain digests before
    // it is spliced: the device signs what it finds, the server's MAC check
    // catches it and names the chunk.
    let dir = tempfile::tempdir().unwrap();
    let (seg, _) = small_segment(dir.path(), "a.seg", T0, 12);
    let recs = records(&std::fs::read(&seg).unwrap());
    let out = dir.path().join("rec.dskr");
    let tamper = |edit: &dyn Fn(&mut Vec<Rec>)| {
        let mut r = recs.clone();
        edit(&mut r);
        std::fs::write(&seg, assemble(FileKind::Segment, &r)).unwrap();
        splice(
            &request(vec![seg.clone()], T0, T0 + 12_000_000),
            &keys().device,
            &out,
        )
        .unwrap();
        verify_recording(&out, &keyring(), device()).unwrap_err()
    };
    // A ciphertext bit in chunk 2 (records: header, chunk 0, chunk 1, chunk 2).
    let err = tamper(&|r| {
        let n = r[3].1.len();
        r[3].1[n - 40] ^= 1;
    });
    assert!(
        matches!(&err, VaultError::MacMismatch(l) if l.record == "chunk 2"),
        "{err}"
    );
    // A chunk's clear time range, shifted to hide a gap.
    let err = tamper(&|r| r[3].1[8 + 7] ^= 1);
    assert!(
        matches!(&err, VaultError::MacMismatch(l) if l.record == "chunk 2"),
        "{err}"
    );
    // The header's start time, moved a second earlier: it binds every
    // chunk, so chunk 0 fails first.
    let err = tamper(&|r| {
        let at = 16 + 32 + 2 + 256 + 2 + DEVICE.len();
        let field = &mut r[0].1[at..at + 8];
        let started = i64::from_be_bytes(field.try_into().unwrap()) - 1_000_000;
        field.copy_from_slice(&started.to_be_bytes());
    });
    assert!(
        matches!(&err, VaultError::MacMismatch(l) if l.record == "chunk 0"),
        "{err}"
    );
}

#[test]
fn reordered_dropped_duplicated_or_moved_chunks_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (_, clean) = recording(dir.path());
    let recs = records(&clean);
    let chunk_idx: Vec<usize> = (0..recs.len()).filter(|&i| &recs[i].0 == b"CHNK").collect();
    let head_idx: Vec<usize> = (0..recs.len()).filter(|&i| &recs[i].0 == b"HEAD").collect();
    assert_eq!(head_idx.len(), 2);
    let cases: Vec<(&str, Vec<Rec>)> = vec![
        ("swap two chunks", {
            let mut r = recs.clone();
            r.swap(chunk_idx[1], chunk_idx[2]);
            r
        }),
        ("drop a chunk", {
            let mut r = recs.clone();
            r.remove(chunk_idx[2]);
            r
        }),
        ("drop the last chunk", {
            let mut r = recs.clone();
            r.remove(*chunk_idx.last().unwrap());
            r
        }),
        ("duplicate a chunk", {
            let mut r = recs.clone();
            r.insert(chunk_idx[2], recs[chunk_idx[2]].clone());
            r
        }),
        ("move a chunk into the other segment", {
            let mut r = recs.clone();
            let moved = r.remove(head_idx[1] - 1);
            r.insert(head_idx[1], moved);
            r
        }),
        ("drop the manifest", recs[..recs.len() - 1].to_vec()),
    ];
    for (what, r) in cases {
        let err = verify_bytes(dir.path(), &assemble(FileKind::Recording, &r));
        assert!(err.is_err(), "{what} went unnoticed");
    }
}

#[test]
fn a_chunk_from_another_recording_of_the_same_time_is_rejected() {
    // Two recordings of the same segment cover different ranges; a chunk of
    // one put into the other, with digests and even a manifest rebuilt by an
    // attacker who lacks the device key, must fail.
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = small_segment(dir.path(), "a.seg", T0, 12);
    // A second segment with the same timeline but other keys and content.
    let sub = dir.path().join("other");
    std::fs::create_dir(&sub).unwrap();
    let (b, _) = small_segment(&sub, "a.seg", T0, 12);
    let (r1, r2) = (dir.path().join("1.dskr"), dir.path().join("2.dskr"));
    splice(&request(vec![a], T0, T0 + 8_000_000), &keys().device, &r1).unwrap();
    splice(&request(vec![b], T0, T0 + 8_000_000), &keys().device, &r2).unwrap();
    let mut recs1 = records(&std::fs::read(&r1).unwrap());
    let recs2 = records(&std::fs::read(&r2).unwrap());
    recs1[2] = recs2[2].clone(); // same sequence number and time, other segment
    let err = verify_bytes(dir.path(), &assemble(FileKind::Recording, &recs1)).unwrap_err();
    assert!(matches!(err, VaultError::ManifestMismatch(_)), "{err}");
    // Even with the manifest's digest list patched (the signature then fails).
    let mut mani = SignedManifest::decode_record(&recs1.last().unwrap().1);
    mani.manifest.segments[0].chunks[1] = digest_of(&recs2[2]);
    let n = recs1.len();
    recs1[n - 1].1 = mani.reencode_unsigned();
    let err = verify_bytes(dir.path(), &assemble(FileKind::Recording, &recs1)).unwrap_err();
    assert!(matches!(err, VaultError::BadSignature { .. }), "{err}");
}

#[test]
fn a_recording_signed_by_another_device_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = small_segment(dir.path(), "a.seg", T0, 8);
    let out = dir.path().join("rec.dskr");
    splice(
        &request(vec![a], T0, T0 + 4_000_000),
        &keys().other_device,
        &out,
    )
    .unwrap();
    let err = verify_recording(&out, &keyring(), device()).unwrap_err();
    assert!(matches!(err, VaultError::BadSignature { .. }), "{err}");
    // And a genuine recording presented as another device's.
    let out2 = dir.path().join("rec2.dskr");
    let (b, _) = small_segment(dir.path(), "b.seg", T0 + 60_000_000, 8);
    splice(
        &request(vec![b], T0 + 60_000_000, T0 + 64_000_000),
        &keys().device,
        &out2,
    )
    .unwrap();
    let impostor = DeviceIdentity {
        id: "pc-0099",
        key: keys().other_device.public(),
    };
    let err = verify_recording(&out2, &keyring(), impostor).unwrap_err();
    assert!(matches!(err, VaultError::BadSignature { .. }), "{err}");
}

/// Test-side helpers to rebuild a manifest record as an attacker would.
trait ManifestSurgery {
    fn decode_record(body: &[u8]) -> Self;
    fn reencode_unsigned(&self) -> Vec<u8>;
}

impl ManifestSurgery for SignedManifest {
    fn decode_record(body: &[u8]) -> Self {
        SignedManifest::decode(body).unwrap()
    }
    fn reencode_unsigned(&self) -> Vec<u8> {
        let mut m = self.clone();
        m.json = serde_json::to_vec(&m.manifest).unwrap();
        m.encode()
    }
}

fn digest_of(rec: &Rec) -> Digest {
    let full =
        deskrec_vault::internals::encode_record(deskrec_vault::internals::Tag::Chunk, &rec.1);
    full[full.len() - 32..].try_into().unwrap()
}

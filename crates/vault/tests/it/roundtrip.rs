//! Writing, reading, splicing and verifying recover exactly what was written.

use crate::common;

use common::*;
use deskrec_vault::*;

#[test]
fn segment_round_trip_without_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (path, frames) = small_segment(dir.path(), "a.seg", T0, 20);
    let full = scan_segment(&path, ScanDepth::Full).unwrap();
    let quick = scan_segment(&path, ScanDepth::Structure).unwrap();
    assert!(full.is_complete(), "{:?}", full.damage);
    assert_eq!(full.chunks, quick.chunks);
    assert_eq!(full.header.device_id, DEVICE);
    assert_eq!(full.header.key_id, keys().server.id());
    let expected = chunked(frames, 10);
    assert_eq!(full.chunks.len(), expected.len());
    for (info, chunk) in full.chunks.iter().zip(&expected) {
        assert_eq!(info.head.frame_count as usize, chunk.len());
        assert_eq!(info.head.keyframe, chunk[0].keyframe);
        assert_eq!(info.head.range.start, chunk[0].pts);
        assert_eq!(info.head.range.end, chunk.last().unwrap().range().end);
    }
    assert_eq!(full.end.unwrap().chunk_count, expected.len() as u64);
    assert_eq!(full.intact_len, std::fs::metadata(&path).unwrap().len());
}

#[test]
fn splice_and_verify_recover_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (a, fa) = small_segment(dir.path(), "a.seg", T0, 20);
    let (b, fb) = small_segment(dir.path(), "b.seg", T0 + 20_000_000, 20);
    let out = dir.path().join("rec.dskr");
    // 5.1 s .. 31.3 s: starts mid-GOP in a, ends in b.
    let req = request(vec![b.clone(), a.clone()], T0 + 5_100_000, T0 + 31_300_000);
    let spliced = splice(&req, &keys().device, &out).unwrap();
    assert_eq!(spliced.manifest.trim, req.requested);
    assert_eq!(spliced.manifest.segments.len(), 2);
    assert_eq!(spliced.bytes, std::fs::metadata(&out).unwrap().len());

    let (got, verified) = read_recording(&out);
    // From the keyframe at 4 s (frame 20) to the chunk holding 31.3 s in b.
    let all: Vec<Frame> = fa.into_iter().chain(fb).collect();
    let first = all.iter().position(|f| f.pts == T0 + 4_000_000).unwrap();
    assert_eq!(got[0], all[first]);
    assert!(got.iter().all(|f| all.contains(f)));
    assert_eq!(got.len() as u64, verified.frames);
    let last = got.last().unwrap().range();
    assert!(last.end >= T0 + 31_300_000 && last.start < T0 + 33_300_000);
    assert!(verified.gaps.is_empty());
}

#[test]
fn a_partly_covered_range_is_trimmed_to_what_was_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = small_segment(dir.path(), "a.seg", T0, 10);
    let out = dir.path().join("rec.dskr");
    let req = request(vec![a], T0 - 60_000_000, T0 + 5_000_000);
    let spliced = splice(&req, &keys().device, &out).unwrap();
    assert_eq!(spliced.manifest.trim, TimeRange::new(T0, T0 + 5_000_000));
    assert_eq!(spliced.manifest.requested, req.requested);
}

#[test]
fn a_range_outside_every_segment_is_not_covered() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = small_segment(dir.path(), "a.seg", T0, 10);
    let req = request(vec![a], T0 + 60_000_000, T0 + 70_000_000);
    let err = splice(&req, &keys().device, &dir.path().join("r")).unwrap_err();
    assert!(matches!(err, VaultError::NotCovered(_)), "{err}");
    assert!(!dir.path().join("r").exists());
}

#[test]
fn keys_survive_pem_and_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.key");
    keys().server.save(&path).unwrap();
    let loaded = PrivateKey::load(&path).unwrap();
    assert_eq!(loaded.id(), keys().server.id());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let public = PublicKey::from_pem(&keys().server.public().to_pem()).unwrap();
    assert_eq!(public.id(), keys().server.id());
    assert!(
        format!("{:?}", keys().server).len() < 60,
        "Debug must not print the key"
    );
    let garbage = dir.path().join("bad.key");
    std::fs::write(&garbage, "not a key").unwrap();
    let err = PrivateKey::load(&garbage).unwrap_err();
    assert!(err.to_string().contains("bad.key"), "{err}");
}

#[test]
fn a_recording_for_another_server_key_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = small_segment(dir.path(), "a.seg", T0, 10);
    let out = dir.path().join("rec.dskr");
    splice(&request(vec![a], T0, T0 + 4_000_000), &keys().device, &out).unwrap();
    let wrong = Keyring::from(keys().other_server.clone());
    let err = verify_recording(&out, &wrong, device()).unwrap_err();
    assert!(
        matches!(err, VaultError::UnknownKey(id) if id == keys().server.id()),
        "{err}"
    );
}

#[test]
fn files_that_are_not_ours_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x");
    std::fs::write(&p, b"GIF89a this is a picture, not a segment").unwrap();
    let err = scan_segment(&p, ScanDepth::Full).unwrap_err();
    assert!(
        matches!(
            err,
            VaultError::NotOurs {
                expected: "segment"
            }
        ),
        "{err}"
    );
    let err = scan_recording(&p).unwrap_err();
    assert!(
        matches!(
            err,
            VaultError::NotOurs {
                expected: "recording"
            }
        ),
        "{err}"
    );
    // A segment is not a recording.
    let (a, _) = small_segment(dir.path(), "a.seg", T0, 4);
    assert!(matches!(
        scan_recording(&a).unwrap_err(),
        VaultError::NotOurs { .. }
    ));
}

#[test]
fn the_writer_refuses_frames_that_would_break_splicing() {
    let dir = tempfile::tempdir().unwrap();
    let params = params(T0);
    let mut w =
        SegmentWriter::create(&dir.path().join("s"), &params, keys().server.public()).unwrap();
    let frames = fake_frames(T0, 1, 3, 20);
    assert!(
        w.append_chunk(&frames).is_err(),
        "first chunk must start with a keyframe"
    );
    let frames = fake_frames(T0, 19, 3, 20); // keyframe in the middle
    assert!(w.append_chunk(&frames).is_err());
    let frames = fake_frames(T0, 0, 3, 20);
    w.append_chunk(&frames).unwrap();
    assert!(w.append_chunk(&frames).is_err(), "overlapping times");
    assert!(
        SegmentWriter::create(&dir.path().join("s"), &params, keys().server.public()).is_err(),
        "an existing segment is never overwritten"
    );
}

#[test]
fn paused_frames_keep_their_reason_and_verification_lists_the_spans() {
    let dir = tempfile::tempdir().unwrap();
    let mut frames = fake_frames(T0, 0, 30, 10);
    for f in &mut frames[12..18] {
        f.pause = Some("card_payment".into());
    }
    frames[18].pause = Some("x".repeat(64));
    let path = write_segment(
        &dir.path().join("p.seg"),
        &chunked(frames.clone(), 5),
        keys().server.public(),
    );
    let out = dir.path().join("rec.dskr");
    let req = request(vec![path], T0, T0 + 6_000_000);
    splice(&req, &keys().device, &out).unwrap();
    let (got, verified) = read_recording(&out);
    assert_eq!(got, frames);
    let spans: Vec<(i64, i64, &str)> = verified
        .pauses
        .iter()
        .map(|p| (p.range.start - T0, p.range.end - T0, p.reason.as_str()))
        .collect();
    let x64 = "x".repeat(64);
    assert_eq!(
        spans,
        [
            (12 * FRAME_US, 18 * FRAME_US, "card_payment"),
            (18 * FRAME_US, 19 * FRAME_US, x64.as_str())
        ]
    );
}

#[test]
fn version_1_files_are_still_read_and_unknown_versions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = small_segment(dir.path(), "a.seg", T0, 4);
    let mut bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[8..10], &VERSION.to_be_bytes());
    for (version, readable) in [(1u16, true), (VERSION + 1, false), (0, false)] {
        bytes[8..10].copy_from_slice(&version.to_be_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let scan = scan_segment(&path, ScanDepth::Full);
        assert_eq!(scan.is_ok(), readable, "version {version}: {scan:?}");
    }
}

/// Every frame of the recording at `path`, in order, and its verification.
fn read_recording(path: &std::path::Path) -> (Vec<Frame>, Verified) {
    let ring = keyring();
    let reader = RecordingReader::open(path, &ring, device()).unwrap();
    let mut got = Vec::new();
    let verified = reader
        .for_each_frame(|_, f| {
            got.push(f);
            Ok(())
        })
        .unwrap();
    (got, verified)
}

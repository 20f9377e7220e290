//! Property tests: over random chunk layouts and ranges, splicing picks the
//! smallest decodable run of chunks that covers the range, and the files it
//! writes verify.

use crate::common;

use common::*;
use deskrec_vault::*;
use proptest::prelude::*;

/// A random recording layout: per segment, chunk lengths in frames and
/// whether each chunk starts with a keyframe, plus gaps between segments.
fn layout() -> impl Strategy<Value = Vec<(i64, Vec<(usize, bool)>)>> {
    prop::collection::vec(
        (
            0i64..30,
            prop::collection::vec((1usize..12, prop::bool::weighted(0.3)), 1..12),
        ),
        1..4,
    )
}

/// Builds segments from a layout: (gap before in frames, chunks).
fn build(dir: &std::path::Path, layout: &[(i64, Vec<(usize, bool)>)]) -> Vec<std::path::PathBuf> {
    let mut t = T0;
    let mut n = 0;
    let mut paths = Vec::new();
    for (s, (gap, chunks)) in layout.iter().enumerate() {
        t += gap * FRAME_US;
        let mut frames_by_chunk = Vec::new();
        for (c, &(len, key)) in chunks.iter().enumerate() {
            let mut frames = fake_frames(t, n, len, usize::MAX);
            frames[0].keyframe = key || c == 0; // segments start with a keyframe
            t += len as i64 * FRAME_US;
            n += len;
            frames_by_chunk.push(frames);
        }
        paths.push(write_segment(
            &dir.join(format!("{s}.seg")),
            &frames_by_chunk,
            keys().server.public(),
        ));
    }
    paths
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn splice_covers_the_range_from_a_keyframe_and_verifies(
        layout in layout(),
        a in 0i64..400,
        len in 1i64..200,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let paths = build(dir.path(), &layout);
        let scans: Vec<SegmentScan> = paths.iter().map(|p| scan_segment(p, ScanDepth::Full).unwrap()).collect();
        let requested = TimeRange::new(T0 + a * FRAME_US / 2, T0 + (a + len) * FRAME_US / 2);
        let all: Vec<(usize, &ChunkInfo)> = scans.iter().enumerate()
            .flat_map(|(s, scan)| scan.chunks.iter().map(move |c| (s, c))).collect();
        let overlapping: Vec<usize> = (0..all.len()).filter(|&i| all[i].1.head.range.overlaps(&requested)).collect();

        match plan(&scans, requested) {
            Err(VaultError::NotCovered(_)) => prop_assert!(overlapping.is_empty()),
            Err(e) => prop_assert!(false, "unexpected error {}", e),
            Ok(p) => {
                let taken: Vec<(usize, &ChunkInfo)> = p.parts.iter()
                    .flat_map(|(s, r)| scans[*s].chunks[r.clone()].iter().map(move |c| (*s, c))).collect();
                let first = all.iter().position(|x| x.1 == taken[0].1).unwrap();
                let last = all.iter().position(|x| x.1 == taken.last().unwrap().1).unwrap();
                // Contiguous, in order.
                prop_assert_eq!(taken.len(), last - first + 1);
                // Decodable: starts at a keyframe, the latest one not after the range's first chunk.
                prop_assert!(taken[0].1.head.keyframe);
                let lo = overlapping[0];
                prop_assert!(first <= lo);
                prop_assert!(all[first + 1..=lo].iter().all(|x| !x.1.head.keyframe));
                // Ends with the last overlapping chunk.
                prop_assert_eq!(last, *overlapping.last().unwrap());
                // The trim range is the requested range clipped to the chunks.
                prop_assert!(requested.start <= p.trim.start && p.trim.end <= requested.end);
                prop_assert_eq!(p.trim.start, requested.start.max(all[lo].1.head.range.start));
                prop_assert_eq!(p.trim.end, requested.end.min(taken.last().unwrap().1.head.range.end));

                // And the recording built from the plan verifies.
                let out = dir.path().join("rec.dskr");
                let req = request(paths.clone(), requested.start, requested.end);
                let spliced = splice(&req, &keys().device, &out).unwrap();
                prop_assert_eq!(spliced.chunks, taken.len());
                let v = verify_recording(&out, &keyring(), device()).unwrap();
                let frames: u64 = taken.iter().map(|x| x.1.head.frame_count as u64).sum();
                prop_assert_eq!(v.frames, frames);
            }
        }
    }
}

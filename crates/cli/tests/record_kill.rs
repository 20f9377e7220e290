//! `deskrec record` killed with SIGKILL in the middle of a recording, as a
//! power cut or a crash would stop it: every segment stays readable and
//! only the chunk being filled is lost.
//!
//! Needs `Xvfb`, `ffmpeg` and `ffprobe` (`cargo xtask setup`). Without them
//! the test passes with a message, except when `CI` is set: then it fails.

#![cfg(target_os = "linux")]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use deskrec_capture::testing::{DecodedVideo, Painter, Xvfb, require_program};
use deskrec_vault::{
    DeviceIdentity, Keyring, Micros, PrivateKey, SegmentScan, SpliceRequest, TimeRange, VaultError,
    export_mp4, now_micros, splice,
};

const DEVICE: &str = "kill-test-pc";
/// `deskrec record`'s defaults: 5 fps, chunks of 2 s.
const FRAME_US: Micros = 200_000;
const CHUNK_US: Micros = 2_000_000;
/// What a kill may lose: the chunk being filled (a frame longer when the
/// frame that completes it arrives late), plus scheduling slack for a
/// loaded machine.
const MAX_LOSS_US: Micros = CHUNK_US + FRAME_US + 300_000;

/// A child process that is killed (SIGKILL) if the test ends before it did.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every segment in `dir`, oldest first, scanned in full (every digest
/// checked).
fn segments(dir: &Path) -> Vec<(PathBuf, SegmentScan)> {
    deskrec_recorder::scan_segments(dir).unwrap()
}

#[test]
fn a_killed_recording_loses_at_most_the_last_chunk_and_stays_readable() {
    if !require_program("ffmpeg", "ffmpeg") || !require_program("ffprobe", "ffmpeg") {
        return;
    }
    let Some(xvfb) = Xvfb::start(800, 600) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (segment_dir, log_path) = (dir.path().join("segments"), dir.path().join("deskrec.log"));
    let (server, device) = (
        PrivateKey::generate().unwrap(),
        PrivateKey::generate().unwrap(),
    );
    let server_pub = dir.path().join("server.pub");
    server.public().save(&server_pub).unwrap();
    let painter = Painter::new(&xvfb);
    painter.show(0);

    let spawned_at = now_micros();
    let mut deskrec = Running(
        Command::new(env!("CARGO_BIN_EXE_deskrec"))
            .args(["record", "--source", "screen", "--seconds", "60"])
            .args(["--device-id", DEVICE])
            .arg("--out")
            .arg(&segment_dir)
            .arg("--server-pub")
            .arg(&server_pub)
            .env("DISPLAY", xvfb.display())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    // A new picture every 250 ms for 6 s, then SIGKILL.
    let start = Instant::now();
    for n in 1..=24 {
        sleep((start + Duration::from_millis(250) * n).saturating_duration_since(Instant::now()));
        painter.show(n);
    }
    assert!(
        deskrec.0.try_wait().unwrap().is_none(),
        "deskrec record stopped early:\n{}",
        log()
    );
    let killed_at = now_micros();
    deskrec.0.kill().unwrap();
    deskrec.0.wait().unwrap();

    // Every segment reads back; only the last may end in a torn record.
    let segs = segments(&segment_dir);
    assert!(!segs.is_empty(), "no segment written:\n{}", log());
    for (i, (path, scan)) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        match &scan.damage {
            None => {}
            Some(VaultError::Truncated(_)) if last => {}
            Some(damage) => panic!("{} is damaged: {damage}", path.display()),
        }
        assert!(
            last || scan.end.is_some(),
            "{} was not finished",
            path.display()
        );
        assert!(
            last || !scan.chunks.is_empty(),
            "{} has no chunk",
            path.display()
        );
    }
    // A kill between a new segment's header and its first chunk leaves
    // that segment empty (a CI run saw it): nothing in it was recorded, so
    // nothing is lost there and nothing is spliced from it.
    let segs: Vec<_> = segs
        .into_iter()
        .filter(|(_, scan)| !scan.chunks.is_empty())
        .collect();
    assert!(!segs.is_empty(), "no segment has a chunk:\n{}", log());
    let recorded = TimeRange::new(
        segs[0].1.chunks[0].head.range.start,
        segs.last().unwrap().1.chunks.last().unwrap().head.range.end,
    );
    assert!(
        recorded.start - spawned_at < 2_000_000,
        "recording started {} ms after the spawn",
        (recorded.start - spawned_at) / 1000
    );
    let lost = killed_at - recorded.end;
    let chunks_ms: Vec<(Micros, Micros)> = segs
        .iter()
        .flat_map(|(_, scan)| &scan.chunks)
        .map(|c| c.head.range)
        .map(|r| ((r.start - spawned_at) / 1000, (r.end - spawned_at) / 1000))
        .collect();
    assert!(
        lost <= MAX_LOSS_US,
        "killed {} ms after the spawn, the kill lost {} ms; chunks (ms after the spawn): {chunks_ms:?}",
        (killed_at - spawned_at) / 1000,
        lost / 1000
    );

    // And what was kept splices, verifies, exports and decodes.
    let request = SpliceRequest {
        contact_id: "killed".into(),
        agent: "tester".into(),
        requested: recorded,
        segments: segs.iter().map(|(p, _)| p.clone()).collect(),
        clock_offset: 0,
    };
    let recording = dir.path().join("killed.dskr");
    splice(&request, &device, &recording).unwrap();
    let mp4 = dir.path().join("killed.mp4");
    let who = DeviceIdentity {
        id: DEVICE,
        key: device.public(),
    };
    let exported = export_mp4(&recording, &Keyring::from(server), who, &mp4).unwrap();
    assert_eq!(exported.trim, recorded);
    let numbers: Vec<u32> = DecodedVideo::decode(&mp4)
        .frames
        .iter()
        .map(|f| f.number().expect("a numbered picture"))
        .collect();
    assert!(
        numbers.is_sorted() && numbers.len() >= 10,
        "pictures 0..=24 were shown, the video shows {numbers:?}"
    );
    eprintln!(
        "killed {} ms after the spawn: {} ms lost, {} frames kept",
        (killed_at - spawned_at) / 1000,
        lost / 1000,
        numbers.len()
    );
}

//! The recording pipeline end to end with the synthetic source: segments
//! rotate, a still screen costs no encoding, sizes change, a full disk
//! pauses recording without damaging anything.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::{assert_continuous, segments, server};
use deskrec_capture::{CaptureError, Frame, FrameSize, FrameSource, Motion, SyntheticSource};
use deskrec_recorder::{
    PauseControl, PauseSwitch, Recorder, RecorderConfig, RecorderState, RecorderStatus,
};

fn config(dir: &Path) -> RecorderConfig {
    RecorderConfig {
        segment_dir: dir.to_path_buf(),
        device_id: "test-pc".into(),
        fps: 10.0,
        gop_seconds: 1.0,
        segment_seconds: 2.0,
        chunk_seconds: 0.5,
        ..RecorderConfig::default()
    }
}

fn record(
    source: impl FrameSource + Send + 'static,
    cfg: RecorderConfig,
    seconds: f64,
) -> RecorderStatus {
    let rec = Recorder::start(
        Box::new(source),
        cfg,
        server().public().clone(),
        Default::default(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    rec.stop().unwrap()
}

#[test]
fn segments_rotate_on_the_utc_grid_and_tile_the_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let status = record(
        SyntheticSource::new(640, 360).unwrap(),
        config(dir.path()),
        5.0,
    );
    assert_eq!(status.state, RecorderState::Stopped);
    let segs = segments(dir.path());
    assert!(
        segs.len() >= 3,
        "5 s in 2 s segments: {} segments",
        segs.len()
    );
    for (i, (path, scan)) in segs.iter().enumerate() {
        assert!(scan.is_complete(), "{}: {:?}", path.display(), scan.damage);
        assert!(scan.chunks[0].head.keyframe);
        // Every segment but the first starts on a 2 s boundary of UTC
        // (to within the frame that crossed it).
        if i > 0 {
            let offset = scan.header.started_at.rem_euclid(2_000_000);
            assert!(
                offset < 100_000 + 20_000,
                "segment {i} starts {offset} µs after the boundary"
            );
        }
        // Chunks are flushed once they hold chunk_seconds: never more than
        // that plus the frame that crossed it (with scheduling jitter on a
        // loaded machine: two frame intervals).
        for c in &scan.chunks {
            assert!(
                c.head.range.end - c.head.range.start <= 700_000,
                "{:?}",
                c.head
            );
        }
    }
    assert_continuous(&segs);
    assert_eq!(status.segments as usize, segs.len());
    assert!(status.encoded >= 40, "10 fps for 5 s: {status:?}");
}

#[test]
fn a_still_screen_is_not_encoded_but_keeps_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let source = SyntheticSource::new(640, 360)
        .unwrap()
        .with_motion(Motion::Still);
    let mut cfg = config(dir.path());
    cfg.segment_seconds = 60.0;
    cfg.gop_seconds = 10.0;
    cfg.chunk_seconds = 1.0;
    let status = record(source, cfg, 4.0);
    // 40 ticks, but only a heartbeat picture per second is encoded.
    assert!(status.ticks >= 35, "{status:?}");
    assert!(
        status.encoded <= 7,
        "a still screen was encoded {} times: {status:?}",
        status.encoded
    );
    assert!(status.unchanged >= status.ticks - 7);
    let segs = segments(dir.path());
    assert_continuous(&segs);
    // Segments are aligned to UTC multiples of their length, so a run may
    // straddle a boundary: look at all of them.
    let first = segs.first().unwrap().1.chunks.first().unwrap();
    let last = segs.last().unwrap().1.chunks.last().unwrap();
    let covered = last.head.range.end - first.head.range.start;
    assert!(
        covered >= 3_000_000,
        "the timeline covers the still time: {covered} µs"
    );
}

/// A source whose picture size changes after `switch_after` frames.
struct Resizing {
    small: SyntheticSource,
    large: SyntheticSource,
    frames: u32,
    switch_after: u32,
}

impl FrameSource for Resizing {
    fn size(&self) -> FrameSize {
        if self.frames < self.switch_after {
            self.small.size()
        } else {
            self.large.size()
        }
    }
    fn next_frame(&mut self) -> Result<Frame, CaptureError> {
        self.frames += 1;
        if self.frames <= self.switch_after {
            self.small.next_frame()
        } else {
            self.large.next_frame()
        }
    }
}

#[test]
fn a_size_change_starts_a_new_segment() {
    let dir = tempfile::tempdir().unwrap();
    let source = Resizing {
        small: SyntheticSource::new(640, 360).unwrap(),
        large: SyntheticSource::new(800, 600).unwrap(),
        frames: 0,
        switch_after: 12,
    };
    let mut cfg = config(dir.path());
    cfg.segment_seconds = 60.0;
    let status = record(source, cfg, 2.5);
    assert_eq!(status.state, RecorderState::Stopped);
    let segs = segments(dir.path());
    // One segment per size (a run straddling a UTC minute boundary may add
    // a rotation within one size).
    let mut sizes: Vec<(u32, u32)> = segs
        .iter()
        .map(|(_, s)| (s.header.width, s.header.height))
        .collect();
    sizes.dedup();
    assert_eq!(sizes, [(640, 360), (800, 600)]);
    assert!(segs.iter().all(|(_, s)| s.is_complete()));
    assert_continuous(&segs);
}

#[test]
#[cfg(target_os = "linux")] // mounts a tmpfs
fn a_full_disk_pauses_recording_and_space_coming_back_resumes_it() {
    use deskrec_capture::testing::Tmpfs;
    let Some(disk) = Tmpfs::mount(1 << 20) else {
        return;
    };
    let segdir = disk.path().join("segments");
    // Leave little room: fill most of the 1 MiB with a file we delete later.
    std::fs::create_dir_all(&segdir).unwrap();
    let filler = disk.path().join("filler");
    std::fs::write(&filler, vec![0u8; 900 << 10]).unwrap();
    let mut cfg = config(&segdir);
    cfg.segment_seconds = 60.0;
    let rec = Recorder::start(
        Box::new(SyntheticSource::new(640, 360).unwrap()),
        cfg,
        server().public().clone(),
        Default::default(),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !matches!(rec.status().state, RecorderState::DiskFull(_)) {
        assert!(
            std::time::Instant::now() < deadline,
            "never reported a full disk: {:?}",
            rec.status()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let full = rec.status();
    assert!(full.current_segment.is_none());
    // Every segment written so far is intact up to its last chunk.
    for (path, scan) in segments(&segdir) {
        assert!(
            scan.damage.is_none(),
            "{}: {:?}",
            path.display(),
            scan.damage
        );
    }
    std::fs::remove_file(&filler).unwrap();
    while rec.status().state != RecorderState::Recording {
        assert!(
            std::time::Instant::now() < deadline + Duration::from_secs(10),
            "did not resume: {:?}",
            rec.status()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let status = rec.stop().unwrap();
    assert!(status.dropped_disk_full > 0, "{status:?}");
    let segs = segments(&segdir);
    assert!(segs.len() >= 2, "recording resumed in a new segment");
    let last = &segs.last().unwrap().1;
    assert!(
        last.is_complete() && !last.chunks.is_empty(),
        "{:?}",
        last.damage
    );
    for (path, scan) in &segs {
        assert!(
            scan.damage.is_none(),
            "{}: {:?}",
            path.display(),
            scan.damage
        );
    }
}

/// Pictures drawn once and then shown in turn: capturing one costs a copy
/// and the conversion to I420 (a few ms at 4K), far less than drawing a
/// synthetic picture, so capture outpaces the encoder.
struct Replay {
    pictures: Vec<Frame>,
    next: usize,
}

impl Replay {
    fn new(width: u32, height: u32) -> Self {
        let mut source = SyntheticSource::new(width, height).unwrap();
        let pictures = (0..4).map(|_| source.next_frame().unwrap()).collect();
        Self { pictures, next: 0 }
    }
}

impl FrameSource for Replay {
    fn size(&self) -> FrameSize {
        self.pictures[0].size()
    }
    fn next_frame(&mut self) -> Result<Frame, CaptureError> {
        let p = &self.pictures[self.next % self.pictures.len()];
        self.next += 1;
        let pixels = p.pixels().to_vec();
        Frame::new(
            p.width(),
            p.height(),
            p.stride(),
            pixels,
            std::time::Instant::now(),
        )
    }
}

#[test]
fn an_encoder_that_falls_behind_drops_counted_frames_without_gaps() {
    // 4K at 60 fps: no encoder here keeps up (OpenH264 needs far more than
    // 17 ms a 4K frame), so pictures must be dropped at the capture queue
    // and counted, never queued without bound, and the timeline must stay
    // whole (a dropped picture just leaves the previous one on screen).
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.fps = 60.0;
    cfg.segment_seconds = 3600.0;
    let status = record(Replay::new(3840, 2160), cfg, 2.0);
    assert_eq!(status.state, RecorderState::Stopped);
    assert!(status.dropped_behind > 0, "nothing dropped: {status:?}");
    assert_eq!(
        status.ticks,
        status.encoded + status.dropped_behind + status.unchanged,
        "every tick is encoded, dropped or unchanged: {status:?}"
    );
    let segs = segments(dir.path());
    assert!(segs.iter().all(|(_, s)| s.is_complete()));
    assert_continuous(&segs);
}

#[test]
fn a_still_screen_gets_keyframes_by_encoded_frames_not_by_time() {
    // 10 fps, GOP 1 s (10 frames), a heartbeat picture every 0.5 s: over 6 s
    // a time-based GOP would force 6 IDRs; counted in encoded frames (12
    // heartbeats), there are 2. The splice still finds a keyframe before
    // any moment: the frames in between are copies.
    let dir = tempfile::tempdir().unwrap();
    let source = SyntheticSource::new(640, 360)
        .unwrap()
        .with_motion(Motion::Still);
    let mut cfg = config(dir.path());
    cfg.segment_seconds = 3600.0;
    let status = record(source, cfg, 6.0);
    let segs = segments(dir.path());
    let keyframes = segs
        .iter()
        .flat_map(|(_, s)| s.chunks.iter())
        .filter(|c| c.head.keyframe)
        .count();
    // One more per segment when the run straddles a UTC hour boundary.
    assert!(
        keyframes <= 2 + (segs.len() - 1),
        "{keyframes} keyframes for {} encoded frames of a still screen: {status:?}",
        status.encoded
    );
    assert!(status.encoded >= 8, "{status:?}");
}

/// Polls `f` every 10 ms for up to `within`.
fn poll<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = std::time::Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// At 0.2 fps a tick is 5 s away, yet a pause is recorded at once, the
/// switch says when, and a resume records the screen again at once.
#[test]
fn a_pause_takes_effect_at_once_not_at_the_next_tick() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.fps = 0.2;
    cfg.gop_seconds = 10.0;
    cfg.segment_seconds = 60.0;
    cfg.chunk_seconds = 10.0;
    let switch = PauseSwitch::default();
    let rec = Recorder::start(
        Box::new(SyntheticSource::new(640, 360).unwrap()),
        cfg,
        server().public().clone(),
        PauseControl::new(switch.clone(), None),
    )
    .unwrap();
    let within = Duration::from_secs(2);
    // The first picture is encoded: the next tick is 5 s away.
    assert!(poll(within, || (rec.status().encoded >= 1).then_some(())).is_some());
    std::thread::sleep(Duration::from_millis(300));

    let asked = std::time::Instant::now();
    switch.set(Some("card_payment"));
    let since = poll(within, || switch.in_effect_since())
        .unwrap_or_else(|| panic!("no paused picture within 2 s: {:?}", rec.status()));
    assert!(since >= asked);
    let status = rec.status();
    assert_eq!(status.paused.as_deref(), Some("card_payment"));
    assert_eq!(status.paused_frames, 1, "{status:?}");

    switch.set(None);
    assert_eq!(switch.in_effect_since(), None);
    assert!(
        poll(within, || rec.status().paused.is_none().then_some(())).is_some(),
        "the screen recorded again within 2 s of a 5 s tick"
    );
    let status = rec.stop().unwrap();
    assert_eq!(status.paused_frames, 1, "{status:?}");
}

/// A window rule that matches from its second question on: the window
/// came to the front while the first picture was being taken.
struct FrontDuringCapture(u32);

impl deskrec_recorder::PauseProbe for FrontDuringCapture {
    fn pause_reason(&mut self) -> Option<std::sync::Arc<str>> {
        self.0 += 1;
        (self.0 > 1).then(|| "card_payment".into())
    }
}

/// The probe is asked again after the picture is taken: a screen picture
/// taken while the protected window came to the front is thrown away and
/// never encoded; only paused pictures are.
#[test]
fn a_window_that_comes_to_the_front_during_the_capture_is_never_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::start(
        Box::new(SyntheticSource::new(640, 360).unwrap()),
        config(dir.path()),
        server().public().clone(),
        PauseControl::new(
            PauseSwitch::default(),
            Some(Box::new(FrontDuringCapture(0))),
        ),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let status = rec.stop().unwrap();
    assert!(status.paused_frames >= 1, "{status:?}");
    assert_eq!(status.encoded, status.paused_frames, "{status:?}");
    assert_eq!(status.rule_pause.as_deref(), Some("card_payment"));
}

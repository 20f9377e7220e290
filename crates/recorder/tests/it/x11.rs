//! The recorder against a real X server, end to end: each test starts its
//! own Xvfb, shows numbered pictures on it (`testing::Painter`), records
//! the screen with `X11Source`, splices and exports what was recorded, and
//! reads the pictures back from the MP4 with ffmpeg.
//!
//! Needs `Xvfb`, `ffmpeg` and `ffprobe` (`cargo xtask setup`). Without them
//! the tests pass with a message, except when `CI` is set: then they fail.

#![cfg(target_os = "linux")]

use crate::common;

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{assert_continuous, device, segments, server};
use deskrec_capture::testing::{DecodedVideo, Painter, Xvfb, require_program};
use deskrec_capture::{FrameSource, Monitor, X11Source};
use deskrec_recorder::{Recorder, RecorderConfig, RecorderState, RecorderStatus};
use deskrec_vault::{
    DeviceIdentity, Keyring, Micros, SpliceRequest, TimeRange, export_mp4, now_micros, splice,
};

/// The device id in the segments.
const DEVICE: &str = "xvfb-pc";
/// One frame at the default 5 fps.
const FRAME_US: Micros = 200_000;

/// An Xvfb of `width` x `height`, if it and the decoding tools are
/// installed (else the test is skipped, or fails on CI).
fn xvfb(width: u16, height: u16) -> Option<Xvfb> {
    let tools = require_program("ffmpeg", "ffmpeg") && require_program("ffprobe", "ffmpeg");
    tools.then(|| Xvfb::start(width, height)).flatten()
}

/// The recorder defaults (5 fps) with 1 s chunks and a 2 s GOP, so a few
/// seconds hold several chunks and keyframes.
fn config(dir: &Path) -> RecorderConfig {
    RecorderConfig {
        segment_dir: dir.to_path_buf(),
        device_id: DEVICE.into(),
        gop_seconds: 2.0,
        chunk_seconds: 1.0,
        ..RecorderConfig::default()
    }
}

/// Starts recording `source` with `config`.
fn record(source: X11Source, config: RecorderConfig) -> Recorder {
    Recorder::start(
        Box::new(source),
        config,
        server().public().clone(),
        Default::default(),
    )
    .unwrap()
}

/// Stops a recording that must have run without trouble.
fn stop(recorder: Recorder) -> RecorderStatus {
    let status = recorder.stop().unwrap();
    assert_eq!(status.state, RecorderState::Stopped, "{status:?}");
    status
}

/// Splices `range` out of the segments in `segment_dir`, exports it to MP4
/// in `out_dir` and decodes it. Returns the range the MP4 shows (the
/// manifest's trim) and its pictures.
fn export(segment_dir: &Path, range: TimeRange, out_dir: &Path) -> (TimeRange, DecodedVideo) {
    let request = SpliceRequest {
        contact_id: format!("contact-{}", range.start),
        agent: "tester".into(),
        requested: range,
        segments: segments(segment_dir).into_iter().map(|(p, _)| p).collect(),
        clock_offset: 0,
    };
    let recording = out_dir.join(format!("{}.dskr", range.start));
    let spliced = splice(&request, device(), &recording).unwrap();
    let mp4 = recording.with_extension("mp4");
    let who = DeviceIdentity {
        id: DEVICE,
        key: device().public(),
    };
    let exported = export_mp4(&recording, &Keyring::from(server().clone()), who, &mp4).unwrap();
    assert_eq!(exported.trim, spliced.manifest.trim);
    (exported.trim, DecodedVideo::decode(&mp4))
}

/// The time range all chunks of the segments in `dir` cover.
fn recorded_range(dir: &Path) -> TimeRange {
    let segs = segments(dir);
    let first = segs.first().expect("a segment").1.chunks.first();
    let last = segs.last().expect("a segment").1.chunks.last();
    TimeRange::new(
        first.expect("a chunk").head.range.start,
        last.expect("a chunk").head.range.end,
    )
}

/// Which picture the painter showed when: (picture, UTC µs once the X
/// server had drawn it).
#[derive(Default)]
struct PictureLog(Vec<(u32, Micros)>);

impl PictureLog {
    /// Shows `picture` over the whole screen and notes the time.
    fn show(&mut self, painter: &Painter, picture: u32) {
        painter.show(picture);
        self.0.push((picture, now_micros()));
    }

    /// Shows `pictures`, one every `interval` from `interval` after now (on
    /// a fixed schedule, so a late picture does not delay the next ones).
    fn show_every(
        &mut self,
        painter: &Painter,
        pictures: impl IntoIterator<Item = u32>,
        interval: Duration,
    ) {
        let start = Instant::now();
        for (i, picture) in (1..).zip(pictures) {
            sleep((start + interval * i).saturating_duration_since(Instant::now()));
            self.show(painter, picture);
        }
    }

    /// When `picture` was shown.
    fn time_of(&self, picture: u32) -> Micros {
        self.0.iter().find(|(p, _)| *p == picture).unwrap().1
    }

    /// Picture and time in ms after `origin` of each picture shown, for
    /// messages.
    fn relative_to(&self, origin: Micros) -> Vec<(u32, Micros)> {
        self.0
            .iter()
            .map(|&(p, t)| (p, (t - origin) / 1000))
            .collect()
    }

    /// The picture on screen at `t` (the first one before anything was
    /// shown).
    fn on_screen_at(&self, t: Micros) -> u32 {
        let shown = self.0.iter().take_while(|(_, at)| *at <= t).last();
        shown.unwrap_or(&self.0[0]).0
    }
}

#[test]
fn exported_frames_show_the_picture_on_screen_at_their_time() {
    let Some(xvfb) = xvfb(640, 480) else {
        return;
    };
    let (segment_dir, out_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let painter = Painter::new(&xvfb);
    let mut log = PictureLog::default();
    log.show(&painter, 0);
    let recorder = record(xvfb.source(), config(segment_dir.path()));
    // Pictures change half-way between two captures, not as one happens.
    sleep(Duration::from_micros(FRAME_US as u64 / 2));
    // A new picture every two frames for 6.4 s.
    log.show_every(&painter, 1..=16, Duration::from_millis(400));
    sleep(Duration::from_millis(400));
    let status = stop(recorder);

    // From just after picture 2 appeared (mid-GOP: decoding starts at an
    // earlier keyframe) to just after picture 14 did.
    let range = TimeRange::new(log.time_of(2) + 100_000, log.time_of(14) + 100_000);
    let (trim, video) = export(segment_dir.path(), range, out_dir.path());
    assert_eq!(trim, range, "the whole range was recorded");
    let mut shown = Vec::new();
    for frame in &video.frames {
        let t = trim.start + frame.time_us;
        let number = frame.number().expect("a numbered picture");
        // What the screen showed from one frame before to one frame after.
        let (earliest, latest) = (
            log.on_screen_at(t - FRAME_US),
            log.on_screen_at(t + FRAME_US),
        );
        assert!(
            (earliest..=latest).contains(&number),
            "the frame at +{} ms shows picture {number}; the screen showed {earliest}..={latest} \
             then (pictures shown at +ms {:?}, status {status:?})",
            frame.time_us / 1000,
            log.relative_to(trim.start)
        );
        shown.push(number);
    }
    assert!(shown.is_sorted(), "pictures out of order: {shown:?}");
    shown.dedup();
    // Pictures 2..=14 were each on screen for two frames: a loaded machine
    // may miss one now and then, not more.
    assert!(
        shown.len() >= 11,
        "pictures 2..=14 were on screen, the video shows {shown:?} ({status:?})"
    );
}

#[test]
fn two_monitors_are_recorded_as_one_desktop() {
    let Some(xvfb) = xvfb(2560, 720) else {
        return;
    };
    let (segment_dir, out_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let painter = Painter::new(&xvfb);
    let monitor = |name: &str, x: i32, primary: bool| Monitor {
        name: name.into(),
        x,
        y: 0,
        width: 1280,
        height: 720,
        primary,
    };
    let (left, right) = (monitor("LEFT", 0, true), monitor("RIGHT", 1280, false));
    painter.set_monitors(&[left.clone(), right.clone()]);
    // Picture 100 + k on the left monitor, 200 + k on the right one.
    let show = |k: u32| {
        painter.show_on(&left, 100 + k);
        painter.show_on(&right, 200 + k);
    };
    show(0);
    let source = xvfb.source();
    assert_eq!(source.layout(), [left.clone(), right.clone()]);
    let recorder = record(source, config(segment_dir.path()));
    let start = Instant::now();
    for k in 1..=5 {
        sleep((start + Duration::from_millis(400) * k).saturating_duration_since(Instant::now()));
        show(k);
    }
    sleep(Duration::from_millis(400));
    let status = stop(recorder);

    let segs = segments(segment_dir.path());
    for (path, scan) in &segs {
        assert_eq!(
            (scan.header.width, scan.header.height),
            (2560, 720),
            "{}",
            path.display()
        );
        assert!(scan.is_complete(), "{}: {:?}", path.display(), scan.damage);
    }
    let (_, video) = export(
        segment_dir.path(),
        recorded_range(segment_dir.path()),
        out_dir.path(),
    );
    let mut right_pictures = Vec::new();
    for frame in &video.frames {
        let on_left = frame.number_in(&left).expect("a picture on the left");
        let on_right = frame.number_in(&right).expect("a picture on the right");
        // The right one is painted just after the left one: a capture in
        // between sees the previous one there.
        assert!(
            on_right == on_left + 100 || on_right + 1 == on_left + 100,
            "left shows {on_left}, right {on_right}"
        );
        right_pictures.push(on_right);
    }
    right_pictures.dedup();
    assert!(
        right_pictures.len() >= 5,
        "the right monitor showed 200..=205, the video {right_pictures:?} ({status:?})"
    );
}

#[test]
fn a_resolution_change_starts_a_new_segment_without_a_gap() {
    let Some(xvfb) = xvfb(1280, 720) else {
        return;
    };
    let (segment_dir, out_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let painter = Painter::new(&xvfb);
    let mut log = PictureLog::default();
    log.show(&painter, 1);
    let recorder = record(xvfb.source(), config(segment_dir.path()));
    // The screen changes half-way between two captures.
    sleep(Duration::from_micros(FRAME_US as u64 / 2));
    let every = Duration::from_millis(400);
    log.show_every(&painter, 2..=5, every);
    sleep(every);
    // The window's pictures are gone with the resize: show the next one at
    // once, drawn at the screen's new size.
    painter.resize_screen(1024, 600);
    log.show(&painter, 101);
    log.show_every(&painter, 102..=105, every);
    sleep(every);
    let status = stop(recorder);
    assert!(status.layout_changes >= 1, "{status:?}");

    let segs = segments(segment_dir.path());
    let mut sizes: Vec<(u32, u32)> = segs
        .iter()
        .map(|(_, s)| (s.header.width, s.header.height))
        .collect();
    sizes.dedup();
    assert_eq!(sizes, [(1280, 720), (1024, 600)], "{segs:#?}");
    for (path, scan) in &segs {
        assert!(scan.is_complete(), "{}: {:?}", path.display(), scan.damage);
    }
    // The last frame before the change lasts until the first one after it.
    assert_continuous(&segs);

    // Each segment exports at its own size and shows what was painted.
    for (path, scan) in &segs {
        let size = (scan.header.width, scan.header.height);
        let range = TimeRange::new(
            scan.chunks[0].head.range.start,
            scan.chunks.last().unwrap().head.range.end,
        );
        let (_, video) = export(segment_dir.path(), range, out_dir.path());
        assert_eq!((video.size.width, video.size.height), size);
        let numbers: Vec<Option<u32>> = video.frames.iter().map(|f| f.number()).collect();
        let painted = if size == (1280, 720) {
            1..=5
        } else {
            101..=105
        };
        assert!(
            numbers
                .iter()
                .all(|n| n.is_some_and(|n| painted.contains(&n))),
            "{} ({size:?}) shows {numbers:?}, not only {painted:?}",
            path.display()
        );
    }
}

/// Records a 640x480 screen showing the number 7 while `marks` (white
/// rectangles: x, y, width, height) are painted one by one, 700 ms apart:
/// the recorder's status and its segment directory.
fn record_marks(marks: &[(i16, i16, u16, u16)]) -> Option<(RecorderStatus, tempfile::TempDir)> {
    let xvfb = xvfb(640, 480)?;
    let segment_dir = tempfile::tempdir().unwrap();
    let painter = Painter::new(&xvfb);
    painter.show(7);
    let recorder = record(xvfb.source(), config(segment_dir.path()));
    for &mark in marks {
        sleep(Duration::from_millis(700));
        painter.fill(0xffffff, &[mark]);
    }
    sleep(Duration::from_millis(700));
    Some((stop(recorder), segment_dir))
}

#[test]
fn a_small_change_is_recorded_and_the_encoder_skips_the_rest_unseen() {
    // A caret-sized mark near a corner, then another: a few blocks change.
    let Some((status, segment_dir)) = record_marks(&[(628, 466, 6, 8), (4, 466, 6, 8)]) else {
        return;
    };
    // 640x480 is 1200 blocks; each picture after the first changed in 1-2.
    assert!(
        status.unchanged_macroblocks >= 1100,
        "the change maps were not used: {status:?}"
    );
    let out_dir = tempfile::tempdir().unwrap();
    let (_, video) = export(
        segment_dir.path(),
        recorded_range(segment_dir.path()),
        out_dir.path(),
    );
    let last = video.frames.last().expect("frames");
    let grey = |x: usize, y: usize| last.gray[y * last.size.width as usize + x];
    assert!(
        grey(630, 470) > 200 && grey(6, 470) > 200,
        "the marks are in the last frame"
    );
    assert_eq!(last.number(), Some(7), "the rest of the picture is intact");
}

/// A redraw that leaves the same pixels raises DAMAGE, and the picture is
/// dropped as unchanged; the next change is still encoded with its map,
/// now relative to the picture the encoder has.
#[test]
fn a_change_after_a_redraw_of_the_same_pixels_keeps_its_map() {
    let corner = (628, 466, 6, 8);
    let Some((status, _)) = record_marks(&[corner, corner, (4, 466, 6, 8)]) else {
        return;
    };
    assert!(
        status.unchanged >= 1,
        "the redraw was not dropped: {status:?}"
    );
    // 640x480 is 1200 blocks: both marks' pictures skipped all but 1-2.
    assert!(
        status.unchanged_macroblocks >= 2 * 1100,
        "a picture after the dropped one was encoded without its map: {status:?}"
    );
}

#[test]
fn a_still_screen_is_not_encoded_but_keeps_its_time() {
    let Some(xvfb) = xvfb(640, 480) else {
        return;
    };
    let (segment_dir, out_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let painter = Painter::new(&xvfb);
    painter.show(7);
    // 10 fps: 50 ticks in 5 s, but only the first picture and a heartbeat
    // every chunk (1 s) need encoding.
    let config = RecorderConfig {
        fps: 10.0,
        ..config(segment_dir.path())
    };
    let recorder = record(xvfb.source(), config);
    let started = now_micros();
    sleep(Duration::from_secs(5));
    let stopped = now_micros();
    let status = stop(recorder);
    assert!(status.ticks >= 40, "{status:?}");
    assert!(
        status.encoded <= 5 + 3,
        "a still screen was encoded {} times in 5 s: {status:?}",
        status.encoded
    );
    assert!(
        status.unchanged + status.encoded + 2 >= status.ticks,
        "{status:?}"
    );

    let segs = segments(segment_dir.path());
    assert_continuous(&segs);
    let recorded = recorded_range(segment_dir.path());
    // The first frame is captured at once. The last one is the last
    // heartbeat, which the recording keeps for one frame when it stops: up
    // to a chunk (1 s) of still screen before the stop is not recorded.
    assert!(
        recorded.start - started < 200_000 && stopped - recorded.end < 1_000_000 + 300_000,
        "recorded {recorded} of [{started} .. {stopped})"
    );
    let (_, video) = export(segment_dir.path(), recorded, out_dir.path());
    let numbers: Vec<Option<u32>> = video.frames.iter().map(|f| f.number()).collect();
    assert_eq!(numbers.len() as u64, status.encoded, "every encoded frame");
    assert!(numbers.iter().all(|n| *n == Some(7)), "{numbers:?}");
}

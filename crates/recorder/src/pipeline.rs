//! The three threads and the handle that owns them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use deskrec_capture::{
    CaptureError, EncoderConfig, FrameSize, FrameSource, H264Encoder, YuvFrame as Picture,
};
use deskrec_vault::{
    FileKind, Frame, Micros, PublicKey, ScanDepth, SegmentParams, SegmentScan, SegmentWriter,
    VaultError, scan_segment,
};

use crate::pause::{PauseControl, paused_picture};
use crate::{RecorderConfig, RecorderError, RecorderState, RecorderStatus, Timeline};

/// Pictures waiting for the encoder: a small bound, so a slow encoder means
/// dropped pictures, not growing memory. They are converted to I420 as they
/// are captured (3 MiB at 1080p, not 8 in BGRA).
const CAPTURE_QUEUE: usize = 2;
/// Encoded frames waiting for the writer (an fsync can take a while).
const WRITE_QUEUE: usize = 8;

type Shared = Arc<Mutex<RecorderStatus>>;

/// A running recording. Dropping it without [`stop`](Self::stop) stops it
/// too, but loses the final status.
pub struct Recorder {
    stop: Arc<AtomicBool>,
    status: Shared,
    threads: Vec<(&'static str, JoinHandle<Result<(), RecorderError>>)>,
}

impl Recorder {
    /// Starts recording `source` into segments encrypted for `server_key`,
    /// pausing as `pause` says.
    pub fn start(
        source: Box<dyn FrameSource + Send>,
        config: RecorderConfig,
        server_key: PublicKey,
        pause: PauseControl,
    ) -> Result<Self, RecorderError> {
        config.validate()?;
        std::fs::create_dir_all(&config.segment_dir).map_err(|e| {
            RecorderError::Config(format!(
                "cannot create {}: {e}",
                config.segment_dir.display()
            ))
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let status: Shared = Arc::default();
        let new_segment = Arc::new(AtomicBool::new(false));
        let timeline = Timeline::start();
        let (shots_tx, shots_rx) = mpsc::sync_channel(CAPTURE_QUEUE);
        let (frames_tx, frames_rx) = mpsc::sync_channel(WRITE_QUEUE);
        let mut threads = Vec::new();
        let spawn = |name: &'static str,
                     f: Box<dyn FnOnce() -> Result<(), RecorderError> + Send>| {
            std::thread::Builder::new()
                .name(format!("deskrec-{name}"))
                .spawn(f)
                .map(|h| (name, h))
                .map_err(|e| RecorderError::Config(format!("cannot start the {name} thread: {e}")))
        };
        let capture = Capture {
            source,
            pause,
            paused: None,
            dropped: None,
            new_segment: new_segment.clone(),
            interval: config.frame_interval(),
            heartbeat: Duration::from_secs_f64(config.chunk_seconds),
            timeline,
            stop: stop.clone(),
            status: status.clone(),
        };
        threads.push(spawn("capture", Box::new(move || capture.run(shots_tx)))?);
        let encode = Encode {
            config: config.clone(),
            new_segment: new_segment.clone(),
            status: status.clone(),
        };
        threads.push(spawn(
            "encode",
            Box::new(move || encode.run(shots_rx, frames_tx)),
        )?);
        let write = Write {
            sink: ChunkSink::new(config, server_key, status.clone()),
            new_segment,
        };
        threads.push(spawn("write", Box::new(move || write.run(frames_rx)))?);
        Ok(Self {
            stop,
            status,
            threads,
        })
    }

    /// A snapshot of the counters and state.
    pub fn status(&self) -> RecorderStatus {
        self.status.lock().expect("status lock").clone()
    }

    /// Whether the pipeline is still running (false after a source closed
    /// or a fatal error).
    pub fn is_running(&self) -> bool {
        self.threads.iter().any(|(_, h)| !h.is_finished())
    }

    /// Stops capturing, writes what is queued, finishes the segment and
    /// returns the final status, or the first error that stopped a thread.
    pub fn stop(mut self) -> Result<RecorderStatus, RecorderError> {
        self.stop.store(true, Ordering::SeqCst);
        let mut first_error = None;
        for (name, handle) in self.threads.drain(..) {
            let result = handle.join().unwrap_or(Err(RecorderError::Panicked(name)));
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        let mut status = self.status();
        match first_error {
            Some(e) => {
                status.state = RecorderState::Failed(e.to_string());
                *self.status.lock().expect("status lock") = status;
                Err(e)
            }
            None => {
                status.state = RecorderState::Stopped;
                Ok(status)
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for (_, h) in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

/// A captured picture on its way to the encoder.
struct Shot {
    pts: Micros,
    picture: Arc<Picture>,
    /// Why recording is paused, when the picture is the paused mark.
    pause: Option<Arc<str>>,
}

/// An encoded frame on its way to the writer.
struct Encoded {
    pts: Micros,
    keyframe: bool,
    data: Vec<u8>,
    /// Set on the first frame of a new segment: its picture size.
    starts_segment: Option<FrameSize>,
    pause: Option<Arc<str>>,
}

fn update(status: &Shared, f: impl FnOnce(&mut RecorderStatus)) {
    f(&mut status.lock().expect("status lock"));
}

/// The capture thread.
struct Capture {
    source: Box<dyn FrameSource + Send>,
    pause: PauseControl,
    /// The paused picture being recorded, and its reason, while paused.
    paused: Option<(Arc<str>, Arc<Picture>)>,
    /// The last picture taken, when it was dropped as the same as the
    /// last one sent: (its id, the sent one's id). The source says where
    /// the next picture changed since the dropped one, and that is where
    /// it changed since the sent one, which the encoder has: with it, the
    /// encoder skips the unchanged blocks unseen and the comparison looks
    /// at the changed ones only. (A redraw that leaves the same pixels
    /// still raises X11 DAMAGE.)
    dropped: Option<(u64, u64)>,
    /// Set to start a new segment when monitors change, even if the
    /// desktop's size stays the same.
    new_segment: Arc<AtomicBool>,
    interval: Duration,
    heartbeat: Duration,
    timeline: Timeline,
    stop: Arc<AtomicBool>,
    status: Shared,
}

impl Capture {
    fn run(mut self, tx: SyncSender<Shot>) -> Result<(), RecorderError> {
        let mut next = Instant::now();
        // The last picture sent, when, and its time on the timeline.
        let mut last: Option<(Arc<Picture>, Instant, Micros)> = None;
        let mut switch_seen = self.pause.switch.version();
        while !self.stop.load(Ordering::SeqCst) {
            // A change of the pause switch cuts the wait short: a pause
            // (or a resume) is recorded at once, and the rhythm goes on.
            if self.pause.switch.wait_until(next, switch_seen) {
                switch_seen = self.pause.switch.version();
            } else {
                // After a stall (suspend, overload) resume the rhythm from
                // now instead of capturing a burst to catch up.
                next = (next + self.interval).max(Instant::now());
                self.count_tick();
            }
            let shot = self.take_shot(last.as_ref())?;
            let rule = self.pause.rule_reason().map(str::to_owned);
            update(&self.status, |s| s.rule_pause = rule);
            let Some(shot) = shot else {
                update(&self.status, |s| s.unchanged += 1);
                continue;
            };
            let (picture, pts) = (shot.picture.clone(), shot.pts);
            let paused = shot.pause.as_ref().map(|r| r.to_string());
            match tx.try_send(shot) {
                Ok(()) => {
                    let sent = Instant::now();
                    if paused.is_some() {
                        self.pause.switch.paused_picture_sent(sent);
                    }
                    last = Some((picture, sent, pts));
                    update(&self.status, |s| {
                        s.paused_frames += paused.is_some() as u64;
                        s.paused = paused;
                    });
                }
                Err(TrySendError::Full(_)) => update(&self.status, |s| s.dropped_behind += 1),
                Err(TrySendError::Disconnected(_)) => break,
            }
        }
        Ok(())
    }

    /// The picture to send this tick: the screen's, or the paused mark's
    /// while recording is paused; `None` when nothing changed and no
    /// heartbeat is due.
    fn take_shot(
        &mut self,
        last: Option<&(Arc<Picture>, Instant, Micros)>,
    ) -> Result<Option<Shot>, RecorderError> {
        let heartbeat_due = last.is_none_or(|(_, sent, _)| sent.elapsed() >= self.heartbeat);
        let last_pts = last.map(|(_, _, pts)| *pts);
        let shot = match self.pause.reason() {
            Some(reason) => self.paused_shot(reason, last, heartbeat_due)?,
            None => {
                let shot = self.screen_shot(last, heartbeat_due)?;
                // The probe is asked again after the picture was taken: a
                // window that came to the front meanwhile may be on it.
                match shot.is_some().then(|| self.pause.reason()).flatten() {
                    Some(reason) => self.paused_shot(reason, last, heartbeat_due)?,
                    None => shot,
                }
            }
        };
        // Frame times must increase: a source clock that disagrees with the
        // timeline (or a tick within the same microsecond) skips the tick.
        Ok(shot.filter(|s| last_pts.is_none_or(|t| s.pts > t)))
    }

    /// The paused picture for this tick: sent when the pause starts or its
    /// reason changes, and again as the heartbeat. The screen is not read.
    fn paused_shot(
        &mut self,
        reason: Arc<str>,
        last: Option<&(Arc<Picture>, Instant, Micros)>,
        heartbeat_due: bool,
    ) -> Result<Option<Shot>, RecorderError> {
        let size = self.source.size();
        let current = self
            .paused
            .as_ref()
            .filter(|(r, p)| *r == reason && p.size() == size)
            .map(|(_, p)| p.clone());
        let picture = match current {
            Some(p) => p,
            None => {
                if self.paused.is_none() {
                    tracing::info!(%reason, "recording paused");
                }
                let p = Arc::new(paused_picture(size, &reason, Instant::now())?);
                self.paused = Some((reason.clone(), p.clone()));
                p
            }
        };
        let same = last.is_some_and(|(prev, _, _)| Arc::ptr_eq(prev, &picture));
        if same && !heartbeat_due {
            return Ok(None);
        }
        Ok(Some(Shot {
            pts: self.timeline.at(Instant::now()),
            picture,
            pause: Some(reason),
        }))
    }

    /// The screen's picture for this tick, or `None` when it has not changed
    /// and no heartbeat is due. Unchanged screens cost a DAMAGE query (X11)
    /// or a comparison, not an encode.
    fn screen_shot(
        &mut self,
        last: Option<&(Arc<Picture>, Instant, Micros)>,
        heartbeat_due: bool,
    ) -> Result<Option<Shot>, RecorderError> {
        // Right after a pause the last picture sent is the paused mark: the
        // screen must be taken again whatever the damage says.
        let resumed = self.paused.take().is_some();
        if resumed {
            tracing::info!("recording resumed");
        }
        let changed = match self.source.changed_since_last() {
            Ok(changed) => changed,
            Err(CaptureError::LayoutChanged { .. }) => return self.layout_changed(),
            Err(e) => return Err(e.into()),
        };
        let shot = match (changed || resumed, last) {
            (false, Some((picture, _, _))) if heartbeat_due => Shot {
                // The screen still shows the last picture: send it again so
                // the chunk reaches the disk, stamped now.
                pts: self.timeline.at(Instant::now()),
                picture: picture.clone(),
                pause: None,
            },
            (false, Some(_)) => return Ok(None),
            _ => {
                let mut picture = match self.source.next_yuv_frame() {
                    Ok(p) => p,
                    Err(CaptureError::LayoutChanged { .. }) => return self.layout_changed(),
                    Err(e) => return Err(e.into()),
                };
                if let Some((dropped, sent)) = self.dropped.take() {
                    picture = picture.rebased(dropped, sent);
                }
                if let Some((prev, _, _)) = last
                    && !heartbeat_due
                    && prev.same_picture(&picture)
                {
                    self.dropped = Some((picture.id(), prev.id()));
                    return Ok(None);
                }
                Shot {
                    pts: self.timeline.at(picture.captured_at()),
                    picture: Arc::new(picture),
                    pause: None,
                }
            }
        };
        Ok(Some(shot))
    }

    /// The screen's size or monitors changed: the source has adapted, the
    /// next picture has the new size and the encoder starts a new segment.
    fn layout_changed(&mut self) -> Result<Option<Shot>, RecorderError> {
        tracing::info!(monitors = ?self.source.layout(), "screen layout changed");
        update(&self.status, |s| s.layout_changes += 1);
        self.new_segment.store(true, Ordering::SeqCst);
        Ok(None)
    }

    fn count_tick(&self) {
        let drift = self.timeline.wall_clock_drift();
        update(&self.status, |s| {
            s.ticks += 1;
            if drift.abs() > s.max_clock_drift_us.abs() {
                s.max_clock_drift_us = drift;
            }
        });
    }
}

/// The encoder thread.
struct Encode {
    config: RecorderConfig,
    /// Set by the writer (after a full disk) or the capture thread (after a
    /// layout change) to ask for a new segment.
    new_segment: Arc<AtomicBool>,
    status: Shared,
}

impl Encode {
    fn run(self, rx: Receiver<Shot>, tx: SyncSender<Encoded>) -> Result<(), RecorderError> {
        let mut encoder: Option<H264Encoder> = None;
        let mut segment_end = Micros::MIN;
        for shot in rx {
            let size = shot.picture.size();
            let resized = encoder.as_ref().is_none_or(|e| {
                let c = e.config();
                (c.width, c.height) != (size.width, size.height)
            });
            if resized {
                encoder = Some(H264Encoder::new(self.encoder_config(size))?);
            }
            let asked = self.new_segment.swap(false, Ordering::SeqCst);
            let starts_segment = resized || asked || shot.pts >= segment_end;
            if starts_segment {
                segment_end = aligned_end(shot.pts, self.config.segment_seconds);
            }
            let encoder = encoder.as_mut().expect("created above");
            let skipped_before = encoder.unchanged_macroblocks();
            let out = encoder.encode_yuv_frame(&shot.picture, starts_segment)?;
            let skipped = encoder.unchanged_macroblocks() - skipped_before;
            update(&self.status, |s| {
                s.encoded += 1;
                s.unchanged_macroblocks += skipped;
            });
            let frame = Encoded {
                pts: shot.pts,
                keyframe: out.keyframe,
                data: out.data,
                starts_segment: starts_segment.then_some(size),
                pause: shot.pause,
            };
            if tx.send(frame).is_err() {
                break;
            }
        }
        Ok(())
    }

    fn encoder_config(&self, size: FrameSize) -> EncoderConfig {
        EncoderConfig {
            fps: self.config.fps,
            gop: Duration::from_secs_f64(self.config.gop_seconds),
            max_bitrate_bps: self.config.max_bitrate_bps,
            // Keyframes every `gop_seconds` worth of *encoded* frames: on a
            // still screen only heartbeat copies are encoded, and a splice
            // starting anywhere in it walks back to the last keyframe over
            // a few tiny frames instead of paying an IDR every GOP.
            gop_by_time: false,
            ..EncoderConfig::new(size.width, size.height)
        }
    }
}

/// The end of the segment that `pts` falls in, segments being aligned to
/// multiples of their length on the UTC clock.
fn aligned_end(pts: Micros, segment_seconds: f64) -> Micros {
    let len = (segment_seconds * 1e6) as Micros;
    (pts.div_euclid(len) + 1) * len
}

/// The writer thread.
struct Write {
    sink: ChunkSink,
    new_segment: Arc<AtomicBool>,
}

impl Write {
    fn run(mut self, rx: Receiver<Encoded>) -> Result<(), RecorderError> {
        let interval = self.sink.config.frame_interval().as_micros() as Micros;
        let mut pending: Option<Frame> = None;
        for e in rx {
            // A frame lasts until the next one: now its duration is known.
            if let Some(mut p) = pending.take() {
                p.duration = duration_between(p.pts, e.pts);
                self.sink.add(p)?;
            }
            if let Some(size) = e.starts_segment {
                self.sink.start_segment(e.pts, size)?;
            }
            if self.sink.wants_new_segment() {
                self.new_segment.store(true, Ordering::SeqCst);
            }
            pending = Some(Frame {
                pts: e.pts,
                duration: 0,
                keyframe: e.keyframe,
                data: e.data,
                pause: e.pause.map(|r| r.to_string()),
            });
        }
        if let Some(mut p) = pending.take() {
            // The last picture stayed on screen until the recording stopped
            // (a still screen sends one only every chunk_seconds); bounded,
            // since a source's clock may disagree with the wall clock.
            let until_now = deskrec_vault::now_micros() - p.pts;
            let longest = (self.sink.config.chunk_seconds * 1e6) as Micros + interval;
            p.duration = until_now.clamp(interval, longest) as u32;
            self.sink.add(p)?;
        }
        self.sink.finish()
    }
}

fn duration_between(from: Micros, to: Micros) -> u32 {
    u32::try_from((to - from).max(1)).unwrap_or(u32::MAX)
}

/// Groups frames into chunks and chunks into segments; handles a full disk.
struct ChunkSink {
    config: RecorderConfig,
    server_key: PublicKey,
    status: Shared,
    segment: Option<SegmentWriter>,
    chunk: Vec<Frame>,
    /// While the disk is full: when to try again (pts).
    disk_full_retry: Option<Micros>,
}

/// How long to wait before trying to write again after a full disk.
const DISK_RETRY_US: Micros = 5_000_000;

impl ChunkSink {
    fn new(config: RecorderConfig, server_key: PublicKey, status: Shared) -> Self {
        Self {
            config,
            server_key,
            status,
            segment: None,
            chunk: Vec::new(),
            disk_full_retry: None,
        }
    }

    fn start_segment(&mut self, pts: Micros, size: FrameSize) -> Result<(), RecorderError> {
        self.finish()?;
        let params = SegmentParams {
            device_id: self.config.device_id.clone(),
            started_at: pts,
            width: size.width,
            height: size.height,
            frame_rate: self.config.fps,
        };
        let path = segment_path(&self.config.segment_dir, pts);
        match SegmentWriter::create(&path, &params, &self.server_key) {
            Ok(w) => {
                tracing::info!(segment = %path.display(), "segment started");
                self.recovered();
                update(&self.status, |s| s.current_segment = Some(path));
                self.segment = Some(w);
                Ok(())
            }
            Err(e) if is_disk_full(&e) => {
                self.disk_full(&e);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Adds a frame whose duration is known.
    fn add(&mut self, frame: Frame) -> Result<(), RecorderError> {
        if self.segment.is_none() {
            update(&self.status, |s| s.dropped_disk_full += 1);
            return Ok(());
        }
        // A pause starting or ending ends the chunk, so that the first
        // paused picture reaches the disk at once (the pause is on record
        // before what it hides can be on screen long) and a chunk is all
        // screen or all paused.
        let pause_changed = self.chunk.last().is_some_and(|l| l.pause != frame.pause);
        if frame.keyframe || pause_changed {
            self.flush()?;
        }
        self.chunk.push(frame);
        let span = self.chunk.last().expect("just pushed").range().end - self.chunk[0].pts;
        if span as f64 >= self.config.chunk_seconds * 1e6 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), RecorderError> {
        let Some(w) = self.segment.as_mut().filter(|_| !self.chunk.is_empty()) else {
            return Ok(());
        };
        match w.append_chunk(&self.chunk) {
            Ok(info) => {
                update(&self.status, |s| s.bytes += info.len);
                self.chunk.clear();
                Ok(())
            }
            Err(e) if is_disk_full(&e) => {
                // The writer cut the file back to its last whole chunk; the
                // segment stays valid but unfinished. Recording resumes in
                // a new segment once there is room.
                let lost = self.chunk.len() as u64;
                self.chunk.clear();
                self.segment = None;
                update(&self.status, |s| s.dropped_disk_full += lost);
                self.disk_full(&e);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether it is time to try writing again after a full disk.
    fn wants_new_segment(&mut self) -> bool {
        let now = deskrec_vault::now_micros();
        match self.disk_full_retry {
            Some(at) if now >= at => {
                self.disk_full_retry = Some(now + DISK_RETRY_US);
                true
            }
            _ => false,
        }
    }

    fn disk_full(&mut self, e: &VaultError) {
        if self.disk_full_retry.is_none() {
            tracing::warn!(error = %e, "disk full: recording paused until space returns");
        }
        self.disk_full_retry = Some(deskrec_vault::now_micros() + DISK_RETRY_US);
        let reason = format!(
            "no space left to write segments in {}",
            self.config.segment_dir.display()
        );
        update(&self.status, |s| {
            s.state = RecorderState::DiskFull(reason);
            s.current_segment = None;
        });
    }

    fn recovered(&mut self) {
        if self.disk_full_retry.take().is_some() {
            tracing::info!("disk space is back: recording resumed");
        }
        update(&self.status, |s| s.state = RecorderState::Recording);
    }

    fn finish(&mut self) -> Result<(), RecorderError> {
        self.flush()?;
        if let Some(w) = self.segment.take() {
            match w.finish() {
                Ok(_) => update(&self.status, |s| {
                    s.segments += 1;
                    s.current_segment = None;
                }),
                // The segment is complete up to its last chunk; only the end
                // record is missing, which readers report as unfinished.
                Err(e) if is_disk_full(&e) => self.disk_full(&e),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

fn is_disk_full(e: &VaultError) -> bool {
    let io = match e {
        VaultError::Io { source, .. } => source,
        VaultError::Stream(source) => source,
        _ => return false,
    };
    matches!(
        io.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// The segment starting at `start` in `dir`: segment files are named by
/// their start time, so a listing is in order.
pub fn segment_path(dir: &Path, start: Micros) -> PathBuf {
    dir.join(FileKind::Segment.file_name(&start.to_string()))
}

/// Every segment the recorder wrote in `dir`, oldest first, scanned in
/// full (every digest checked): what a test or a check of a segment
/// directory reads.
pub fn scan_segments(dir: &Path) -> Result<Vec<(PathBuf, SegmentScan)>, VaultError> {
    let paths = segment_files(dir).map_err(|source| VaultError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    paths
        .into_iter()
        .map(|p| scan_segment(&p, ScanDepth::Full).map(|scan| (p, scan)))
        .collect()
}

/// The segment files the recorder wrote in `dir`, oldest first.
pub fn segment_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path
            .extension()
            .is_some_and(|e| e == FileKind::Segment.extension())
        {
            paths.push(path);
        }
    }
    // Names are start times of equal length: text order is time order.
    paths.sort();
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_end_on_multiples_of_their_length_on_the_utc_clock() {
        let ten_minutes = 600.0;
        let len = 600_000_000;
        assert_eq!(aligned_end(0, ten_minutes), len);
        assert_eq!(aligned_end(len - 1, ten_minutes), len);
        assert_eq!(
            aligned_end(len, ten_minutes),
            2 * len,
            "a boundary starts the next"
        );
        assert_eq!(aligned_end(-1, ten_minutes), 0, "before 1970 too");
    }

    #[test]
    fn a_frame_lasts_at_least_a_microsecond_and_at_most_u32() {
        assert_eq!(duration_between(10, 20), 10);
        assert_eq!(duration_between(20, 20), 1, "same time: still a duration");
        assert_eq!(duration_between(20, 10), 1, "a clock that went back");
        assert_eq!(duration_between(0, i64::MAX), u32::MAX);
    }

    #[test]
    fn only_a_full_disk_or_quota_is_a_full_disk() {
        let io = |kind| VaultError::Io {
            path: "/x".into(),
            source: std::io::Error::from(kind),
        };
        assert!(is_disk_full(&io(std::io::ErrorKind::StorageFull)));
        assert!(is_disk_full(&io(std::io::ErrorKind::QuotaExceeded)));
        assert!(!is_disk_full(&io(std::io::ErrorKind::PermissionDenied)));
        assert!(!is_disk_full(&VaultError::Invalid("x".into())));
    }

    #[test]
    fn segment_files_are_listed_in_time_order_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        for start in [2_000_000_000_000_000_i64, 1_000_000_000_000_000] {
            std::fs::write(segment_path(dir.path(), start), b"").unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), b"").unwrap();
        let names: Vec<_> = segment_files(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["1000000000000000.dseg", "2000000000000000.dseg"]);
    }
}

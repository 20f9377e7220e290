//! `deskrec record`: a headless recording into segments, paced by the real
//! clock. For now from the synthetic source; screen sources arrive with the
//! capture work (issue 3) behind the same `FrameSource` trait.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use deskrec_capture::{EncoderConfig, FrameSource, H264Encoder, SyntheticSource};
use deskrec_vault::{Frame, Micros, PublicKey, SegmentParams, SegmentWriter, now_micros};
use serde_json::{Value, json};

/// Chunks are flushed (encrypted and fsynced) at least this often, so a
/// crash loses at most this much video.
const CHUNK_SECONDS: f64 = 2.0;

/// What to record.
pub struct RecordSettings {
    pub out: PathBuf,
    pub server_pub: PathBuf,
    pub device_id: String,
    pub seconds: f64,
    pub fps: f32,
    pub segment_seconds: f64,
    pub width: u32,
    pub height: u32,
}

/// Records `seconds` of the synthetic source into segments under `out`.
pub fn record(s: &RecordSettings) -> Result<Value> {
    let server = PublicKey::load(&s.server_pub)?;
    std::fs::create_dir_all(&s.out).with_context(|| format!("creating {}", s.out.display()))?;
    let mut source = SyntheticSource::new(s.width, s.height)?;
    let mut encoder = H264Encoder::new(EncoderConfig {
        fps: s.fps,
        ..EncoderConfig::new(s.width, s.height)
    })?;
    let interval = (1e6 / s.fps as f64).round() as Micros;
    let frames = (s.seconds * s.fps as f64).round() as i64;
    let (t0, clock0) = (now_micros(), Instant::now());
    let mut rec = Recorder::new(s, &server, interval);
    for n in 0..frames {
        // Pace by the monotonic clock; stamp with UTC anchored at the start.
        let due = clock0 + Duration::from_micros((n * interval) as u64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let pts = t0 + n * interval;
        let rotate = rec.needs_segment(pts);
        let picture = source.next_frame()?;
        let encoded = encoder.encode(&picture, rotate)?;
        rec.push(
            Frame {
                pts,
                duration: interval as u32,
                keyframe: encoded.keyframe,
                data: encoded.data,
            },
            rotate,
        )?;
    }
    rec.close()?;
    Ok(json!({ "segments": rec.done, "start": t0, "end": t0 + frames * interval }))
}

/// Groups frames into chunks and chunks into segments.
struct Recorder<'a> {
    settings: &'a RecordSettings,
    server: &'a PublicKey,
    interval: Micros,
    segment: Option<SegmentWriter>,
    chunk: Vec<Frame>,
    done: Vec<Value>,
}

impl<'a> Recorder<'a> {
    fn new(settings: &'a RecordSettings, server: &'a PublicKey, interval: Micros) -> Self {
        Self {
            settings,
            server,
            interval,
            segment: None,
            chunk: Vec::new(),
            done: Vec::new(),
        }
    }

    /// Whether the frame at `pts` must open a new segment.
    fn needs_segment(&self, pts: Micros) -> bool {
        let len = (self.settings.segment_seconds * 1e6) as Micros;
        self.segment
            .as_ref()
            .is_none_or(|w| pts >= w.header().started_at + len)
    }

    fn push(&mut self, frame: Frame, new_segment: bool) -> Result<()> {
        if new_segment {
            self.close()?;
            let params = SegmentParams {
                device_id: self.settings.device_id.clone(),
                started_at: frame.pts,
                width: self.settings.width,
                height: self.settings.height,
                frame_rate: self.settings.fps,
            };
            let path = segment_path(&self.settings.out, frame.pts);
            self.segment = Some(SegmentWriter::create(&path, &params, self.server)?);
        }
        if frame.keyframe {
            self.flush()?;
        }
        self.chunk.push(frame);
        if self.chunk.len() as f64 * self.interval as f64 >= CHUNK_SECONDS * 1e6 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if let (Some(w), false) = (self.segment.as_mut(), self.chunk.is_empty()) {
            w.append_chunk(&self.chunk)?;
            self.chunk.clear();
        }
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        self.flush()?;
        if let Some(w) = self.segment.take() {
            let path = w.path().to_path_buf();
            let start = w.header().started_at;
            let end = w.finish()?;
            self.done.push(
                json!({ "path": path, "start": start, "end": end.end, "chunks": end.chunk_count }),
            );
        }
        Ok(())
    }
}

/// Segment files are named by their start time so a directory listing is
/// in time order.
fn segment_path(dir: &Path, start: Micros) -> PathBuf {
    dir.join(format!("{start}.dseg"))
}

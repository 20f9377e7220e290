//! `deskrec record`: a headless recording of the screen into encrypted
//! segments, with the same pipeline the agent runs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use deskrec_capture::{FrameSource, SyntheticSource};
use deskrec_recorder::{Recorder, RecorderConfig};
use deskrec_vault::{PublicKey, ScanDepth, scan_segment};
use serde::Deserialize;
use serde_json::{Value, json};

/// Where pictures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// The platform's screen: X11 on Linux, Windows Graphics Capture on
    /// Windows.
    Screen,
    /// Numbered test pictures (no display needed).
    Synthetic,
}

/// The configuration file (TOML); command-line flags override it.
///
/// ```toml
/// server_public_key = "/etc/deskrec/server.pub"
/// source = "screen"
/// [recorder]
/// segment_dir = "/var/lib/deskrec/segments"
/// device_id = "pc-0017"
/// fps = 5.0
/// gop_seconds = 10.0
/// segment_seconds = 600.0
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordFile {
    /// The server's public key.
    pub server_public_key: Option<PathBuf>,
    /// The picture source.
    pub source: Option<SourceKind>,
    /// Pipeline settings.
    #[serde(default)]
    pub recorder: RecorderConfig,
}

/// Settings after flags and file are merged.
pub struct RecordSettings {
    /// Pipeline settings.
    pub recorder: RecorderConfig,
    /// The server's public key.
    pub server_pub: PathBuf,
    /// The picture source.
    pub source: SourceKind,
    /// How long to record.
    pub seconds: f64,
    /// Synthetic picture size.
    pub size: (u32, u32),
}

/// Reads a configuration file.
pub fn read_config(path: &Path) -> Result<RecordFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("{} is not a valid Deskrec configuration", path.display()))
}

/// How often `record` looks whether the recorder stopped by itself (an
/// error). Rarely: on a still screen, waking 20 times a second was ~5 % of
/// the recording's CPU.
const POLL: Duration = Duration::from_secs(1);

/// Records for `seconds`, then prints the segments written.
pub fn record(s: RecordSettings) -> Result<Value> {
    let server = PublicKey::load(&s.server_pub)?;
    let source = open_source(s.source, s.size, s.recorder.frame_interval())?;
    let dir = s.recorder.segment_dir.clone();
    let recorder = Recorder::start(source, s.recorder, server, Default::default())?;
    let deadline = Instant::now() + Duration::from_secs_f64(s.seconds);
    while Instant::now() < deadline && recorder.is_running() {
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
    let status = recorder.stop()?;
    let segments = list_segments(&dir)?;
    let start = segments.first().map(|s| s["start"].clone());
    let end = segments.last().map(|s| s["end"].clone());
    Ok(json!({ "status": status, "segments": segments, "start": start, "end": end }))
}

fn open_source(
    kind: SourceKind,
    (w, h): (u32, u32),
    interval: Duration,
) -> Result<Box<dyn FrameSource + Send>> {
    Ok(match kind {
        // Stamped on a fixed grid from now: picture n is at start + n
        // intervals exactly, so tests can tell which picture to expect when.
        SourceKind::Synthetic => {
            Box::new(SyntheticSource::new(w, h)?.with_fixed_clock(Instant::now(), interval))
        }
        SourceKind::Screen => screen_source()?,
    })
}

#[cfg(target_os = "linux")]
fn screen_source() -> Result<Box<dyn FrameSource + Send>> {
    let source = deskrec_capture::X11Source::open(&deskrec_capture::X11Options::new())
        .context("cannot capture the X11 screen (is DISPLAY set?)")?;
    Ok(Box::new(source))
}

#[cfg(windows)]
fn screen_source() -> Result<Box<dyn FrameSource + Send>> {
    let source = deskrec_capture::WindowsSource::new()
        .context("cannot capture the Windows desktop (Graphics Capture and DXGI both failed)")?;
    Ok(Box::new(source))
}

#[cfg(not(any(target_os = "linux", windows)))]
fn screen_source() -> Result<Box<dyn FrameSource + Send>> {
    bail!("screen capture is not available on this platform; use --source synthetic")
}

/// The segments in `dir`, oldest first, with their time ranges.
fn list_segments(dir: &Path) -> Result<Vec<Value>> {
    let paths = deskrec_recorder::segment_files(dir)
        .with_context(|| format!("listing {}", dir.display()))?;
    let mut out = Vec::new();
    for path in paths {
        let scan = scan_segment(&path, ScanDepth::Structure)?;
        let (Some(first), Some(last)) = (scan.chunks.first(), scan.chunks.last()) else {
            continue;
        };
        if let Some(damage) = &scan.damage {
            bail!("{} is damaged: {damage}", path.display());
        }
        out.push(json!({
            "path": path,
            "start": first.head.range.start,
            "end": last.head.range.end,
            "chunks": scan.chunks.len(),
            "finished": scan.end.is_some(),
        }));
    }
    Ok(out)
}

//! `deskrec record`: a headless recording of the screen into encrypted
//! segments, with the same pipeline the agent runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use deskrec_capture::{FrameSource, SyntheticSource};
use deskrec_recorder::{PauseControl, PauseProbe, PauseSwitch, Recorder, RecorderConfig};
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
    /// Pauses to make while recording.
    pub pauses: Vec<TimedPause>,
}

/// A pause `deskrec record` makes by itself, as an agent's would be made:
/// from `from` to `until` after the recording starts, for `reason`. The
/// paused stretch is recorded as the agent records one (blank "paused"
/// pictures carrying the reason), so tests and demos get recordings with
/// paused spans without an agent. Written `FROM..UNTIL=REASON`, in
/// seconds: `4.5..5.7=card_payment`.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedPause {
    /// When it starts, after the recording's start.
    pub from: Duration,
    /// When it ends.
    pub until: Duration,
    /// Why (1 to [`deskrec_vault::MAX_PAUSE_REASON`] bytes).
    pub reason: Arc<str>,
}

impl std::str::FromStr for TimedPause {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{s:?} is not FROM..UNTIL=REASON (seconds after the start: 4.5..5.7=card_payment)"
            )
        };
        let (span, reason) = s.split_once('=').ok_or_else(bad)?;
        let (from, until) = span.split_once("..").ok_or_else(bad)?;
        let seconds = |t: &str| {
            t.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(Duration::from_secs_f64)
        };
        let (Some(from), Some(until)) = (seconds(from), seconds(until)) else {
            return Err(bad());
        };
        if from >= until {
            return Err(format!("{s:?}: the pause must end after it starts"));
        }
        if !deskrec_vault::valid_pause_reason(reason) {
            return Err(format!(
                "{s:?}: a pause reason has 1 to {} bytes",
                deskrec_vault::MAX_PAUSE_REASON
            ));
        }
        Ok(Self {
            from,
            until,
            reason: reason.into(),
        })
    }
}

/// Pauses at the [`TimedPause`]s' times, measured from `start`: the
/// instant the synthetic source's clock starts too, so its picture n and
/// the pauses are on one timeline.
struct Timed {
    start: Instant,
    pauses: Vec<TimedPause>,
}

impl PauseProbe for Timed {
    fn pause_reason(&mut self) -> Option<Arc<str>> {
        let t = self.start.elapsed();
        self.pauses
            .iter()
            .find(|p| p.from <= t && t < p.until)
            .map(|p| p.reason.clone())
    }
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
    let start = Instant::now();
    let source = open_source(
        s.source,
        s.size,
        s.recorder.frame_interval(),
        start,
        !s.pauses.is_empty(),
    )?;
    let dir = s.recorder.segment_dir.clone();
    let probe = (!s.pauses.is_empty()).then(|| {
        Box::new(Timed {
            start,
            pauses: s.pauses,
        }) as Box<dyn PauseProbe>
    });
    let pause = PauseControl::new(PauseSwitch::default(), probe);
    let recorder = Recorder::start(source, s.recorder, server, pause)?;
    let deadline = start + Duration::from_secs_f64(s.seconds);
    while Instant::now() < deadline && recorder.is_running() {
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
    let status = recorder.stop()?;
    let segments = list_segments(&dir)?;
    let start = segments.first().map(|s| s["start"].clone());
    let end = segments.last().map(|s| s["end"].clone());
    Ok(json!({ "status": status, "segments": segments, "start": start, "end": end }))
}

/// The source of `kind`; with `pausing`, synthetic pictures keep to real
/// time (the recorder takes none while paused).
fn open_source(
    kind: SourceKind,
    (w, h): (u32, u32),
    interval: Duration,
    start: Instant,
    pausing: bool,
) -> Result<Box<dyn FrameSource + Send>> {
    Ok(match kind {
        // Stamped on a fixed grid from `start`: picture n is at start + n
        // intervals exactly, so tests can tell which picture to expect when.
        // Counted, the pictures after a pause would come later than their
        // time; on the grid clock the paused moments' pictures are missing.
        SourceKind::Synthetic => {
            let source = SyntheticSource::new(w, h)?;
            Box::new(match pausing {
                true => source.with_grid_clock(start, interval),
                false => source.with_fixed_clock(start, interval),
            })
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

#[cfg(test)]
mod tests {
    use super::TimedPause;
    use std::time::Duration;

    #[test]
    fn a_timed_pause_reads_from_until_and_reason_and_refuses_what_is_not_one() {
        let p: TimedPause = "4.5..5.7=card_payment".parse().unwrap();
        assert_eq!(p.from, Duration::from_millis(4500));
        assert_eq!(p.until, Duration::from_millis(5700));
        assert_eq!(&*p.reason, "card_payment");
        for bad in [
            "4.5..5.7",
            "4.5=card",
            "5..4=card",
            "a..5=card",
            "1..2=",
            "-1..2=x",
        ] {
            assert!(bad.parse::<TimedPause>().is_err(), "{bad}");
        }
    }
}

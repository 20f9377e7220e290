//! The three recorders of a scene, run at the same time on its display:
//!
//! - Deskrec: the release `deskrec record --source screen` binary at its
//!   defaults (5 fps, 10 s GOP, 2 Mbit/s), then `deskrec vault splice` and
//!   `vault export` turn its segments into an MP4 to compare;
//! - ffmpeg: `ffmpeg -f x11grab -framerate 5 -video_size 1920x1080 -i :N
//!   -c:v libx264 -preset ultrafast -tune zerolatency`;
//! - the reference: the same x11grab at 10 fps, losslessly (`libx264rgb
//!   -qp 0`), from a second before the others until seconds after.
//!
//! Both ffmpegs run with `-draw_mouse 0`: Deskrec does not draw the
//! pointer, and a pointer in one picture and not the other would count as
//! picture error.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use deskrec_vault::PrivateKey;
use serde_json::Value;

use super::measure::{Measured, Usage};
use super::probe::{self, Packet};
use super::psnr::{Colour, Matrix, Video};
use super::scene::{SCREEN, Scene, VIDEO_SIZE};

/// Recorded seconds per scene.
pub const SECONDS: u64 = 60;
/// The recorders' frame rate.
pub const FPS: u32 = 5;
/// The reference's frame rate: two pictures per recorder frame interval.
pub const REFERENCE_FPS: u32 = 10;
/// The reference starts this long before the recorders...
const REFERENCE_LEAD: Duration = Duration::from_secs(1);
/// ...and records this many seconds more than they do.
const REFERENCE_EXTRA_SECONDS: u64 = 4;
/// Device id in the segments.
const DEVICE_ID: &str = "bench-pc";
/// ffmpeg's codec settings: the comparison the goals are set against.
const FFMPEG_CODEC: &[&str] = &[
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-tune",
    "zerolatency",
];
/// The reference's: lossless RGB, fast.
const REFERENCE_CODEC: &[&str] = &["-c:v", "libx264rgb", "-qp", "0", "-preset", "ultrafast"];

/// The programs run, found next to this one in the target directory.
pub struct Programs {
    /// `deskrec` (package `deskrec-cli`).
    pub deskrec: PathBuf,
    /// `scroll-lines` (this package): the busy scene's terminal.
    pub scroller: PathBuf,
    /// `type-text` (this package): the typing scene's typist.
    pub typist: PathBuf,
    /// `scroll-page` (this package): the scroll scene's page and reader.
    pub page: PathBuf,
}

impl Programs {
    /// Finds them; `cargo xtask bench capture` builds them.
    pub fn find() -> Result<Self> {
        let exe = std::env::current_exe()?;
        let sibling = |name: &str| -> Result<PathBuf> {
            let path = exe.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
            ensure!(
                path.is_file(),
                "{} is missing: build it first (`cargo xtask bench capture` does)",
                path.display()
            );
            Ok(path)
        };
        Ok(Self {
            deskrec: sibling("deskrec")?,
            scroller: sibling("scroll-lines")?,
            typist: sibling("type-text")?,
            page: sibling("scroll-page")?,
        })
    }
}

/// The server's and the device's key pairs, as files for `deskrec`.
pub struct Keys {
    server_pub: PathBuf,
    server_key: PathBuf,
    device_pub: PathBuf,
    device_key: PathBuf,
}

impl Keys {
    /// Generates both pairs in `dir`.
    pub fn generate(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let pair = |name: &str| -> Result<(PathBuf, PathBuf)> {
            let key = PrivateKey::generate()?;
            let (private, public) = (
                dir.join(format!("{name}.key")),
                dir.join(format!("{name}.pub")),
            );
            key.save(&private)?;
            key.public().save(&public)?;
            Ok((private, public))
        };
        let (server_key, server_pub) = pair("server")?;
        let (device_key, device_pub) = pair("device")?;
        Ok(Self {
            server_pub,
            server_key,
            device_pub,
            device_key,
        })
    }
}

/// What the recorders produced and used on one scene.
pub struct Recordings {
    /// Deskrec's run.
    pub deskrec: Run,
    /// ffmpeg's run.
    pub ffmpeg: Run,
    /// The lossless reference (its usage is context only).
    pub reference: Run,
    /// Deskrec's final status counters (`deskrec record`'s output).
    pub deskrec_status: Value,
    /// CPU time of the X server while they ran.
    pub server_cpu: Duration,
    /// 1-minute load average before and after.
    pub load: (f64, f64),
}

/// One recorder's output and usage.
pub struct Run {
    /// The video to compare (for Deskrec, the exported MP4).
    pub video: Video,
    /// What the recorder stores: Deskrec's encrypted segments, ffmpeg's
    /// MP4.
    pub bytes: u64,
    /// Seconds of screen it recorded.
    pub seconds: f64,
    /// Its process's usage.
    pub usage: Usage,
    /// The video's coded frames.
    pub packets: Vec<Packet>,
}

impl Run {
    /// CPU seconds per recorded minute.
    pub fn cpu_s_per_min(&self) -> f64 {
        self.usage.cpu.as_secs_f64() * 60.0 / self.seconds
    }

    /// MB (10^6 bytes) per recorded minute.
    pub fn mb_per_min(&self) -> f64 {
        self.bytes as f64 / 1e6 * 60.0 / self.seconds
    }

    /// Keyframes in the video.
    pub fn keyframes(&self) -> usize {
        self.packets.iter().filter(|p| p.keyframe).count()
    }

    /// The share of the video's coded bytes that are keyframes.
    pub fn keyframe_share(&self) -> f64 {
        let total: u64 = self.packets.iter().map(|p| p.bytes).sum();
        let key: u64 = self
            .packets
            .iter()
            .filter(|p| p.keyframe)
            .map(|p| p.bytes)
            .sum();
        key as f64 / total.max(1) as f64
    }
}

/// Records `scene` with all three into `dir`.
pub fn record(scene: &Scene, programs: &Programs, keys: &Keys, dir: &Path) -> Result<Recordings> {
    std::fs::create_dir_all(dir)?;
    let display = scene.display();
    let load_before = super::measure::load_average()?;
    let server_before = scene.server_cpu();

    let reference_mkv = dir.join("reference.mkv");
    let mut reference_cmd = x11grab(
        display,
        REFERENCE_FPS,
        SECONDS + REFERENCE_EXTRA_SECONDS,
        &dir.join("reference.log"),
    )?;
    reference_cmd.args(REFERENCE_CODEC).arg(&reference_mkv);
    let reference = Measured::spawn("the reference ffmpeg", &mut reference_cmd, false)?;
    std::thread::sleep(REFERENCE_LEAD);

    let segments = dir.join("segments");
    let deskrec = Measured::spawn(
        "deskrec record",
        Command::new(&programs.deskrec)
            .args(["record", "--source", "screen", "--device-id", DEVICE_ID])
            .args(["--seconds", &SECONDS.to_string(), "--fps", &FPS.to_string()])
            .arg("--out")
            .arg(&segments)
            .arg("--server-pub")
            .arg(&keys.server_pub)
            .env("DISPLAY", display)
            .stdin(Stdio::null())
            .stdout(File::create(dir.join("record.json"))?)
            .stderr(File::create(dir.join("record.log"))?),
        true,
    )?;
    let ffmpeg_mp4 = dir.join("ffmpeg.mp4");
    let mut ffmpeg_cmd = x11grab(display, FPS, SECONDS, &dir.join("ffmpeg.log"))?;
    ffmpeg_cmd.args(FFMPEG_CODEC).arg(&ffmpeg_mp4);
    let ffmpeg = Measured::spawn("ffmpeg", &mut ffmpeg_cmd, false)?;

    let deskrec_usage = deskrec.wait()?;
    let ffmpeg_usage = ffmpeg.wait()?;
    let reference_usage = reference.wait()?;
    let server_cpu = scene.server_cpu().saturating_sub(server_before);
    let load_after = super::measure::load_average()?;

    let recorded: Value = read_json(&dir.join("record.json"))?;
    let deskrec = export_deskrec(programs, keys, &recorded, dir, deskrec_usage)?;
    Ok(Recordings {
        deskrec,
        ffmpeg: ffmpeg_run(
            &ffmpeg_mp4,
            &dir.join("ffmpeg.log"),
            Colour::Yuv(Matrix::Bt601),
            FPS,
            ffmpeg_usage,
        )?,
        reference: ffmpeg_run(
            &reference_mkv,
            &dir.join("reference.log"),
            Colour::Rgb,
            REFERENCE_FPS,
            reference_usage,
        )?,
        deskrec_status: recorded["status"].clone(),
        server_cpu,
        load: (load_before, load_after),
    })
}

/// `ffmpeg -f x11grab` of `display` at `fps` for `seconds`, its log (with
/// the first picture's wall-clock time) to `log`; the caller adds the codec
/// and the output file.
fn x11grab(display: &str, fps: u32, seconds: u64, log: &Path) -> Result<Command> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-y", "-f", "x11grab"])
        .args(["-framerate", &fps.to_string(), "-video_size", VIDEO_SIZE])
        .args(["-draw_mouse", "0", "-i", display])
        .args(["-t", &seconds.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(log)?);
    Ok(cmd)
}

/// An ffmpeg recording: its first picture's wall-clock time (x11grab
/// stamps pictures with the wall clock; ffmpeg's log prints the first as
/// the input's `start:` and the output starts at 0) and its length.
fn ffmpeg_run(path: &Path, log: &Path, colour: Colour, fps: u32, usage: Usage) -> Result<Run> {
    let text = std::fs::read_to_string(log)?;
    let start: f64 = text
        .split("start: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .with_context(|| format!("no input start time in {}", log.display()))?;
    let packets = probe::packets(path)?;
    let (Some(first), Some(last)) = (packets.first(), packets.last()) else {
        anyhow::bail!("{} has no frames", path.display());
    };
    Ok(Run {
        video: video(path, (start * 1e6).round() as i64, colour),
        bytes: std::fs::metadata(path)?.len(),
        seconds: (last.time_us - first.time_us) as f64 / 1e6 + 1.0 / f64::from(fps),
        usage,
        packets,
    })
}

/// Splices Deskrec's segments into a recording and exports it to MP4,
/// with the real `deskrec` commands.
fn export_deskrec(
    programs: &Programs,
    keys: &Keys,
    recorded: &Value,
    dir: &Path,
    usage: Usage,
) -> Result<Run> {
    let (Some(start), Some(end)) = (recorded["start"].as_i64(), recorded["end"].as_i64()) else {
        anyhow::bail!("deskrec record wrote no segments: {recorded}");
    };
    let segments: Vec<PathBuf> = recorded["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["path"].as_str().map(PathBuf::from))
        .collect();
    let bytes = segments
        .iter()
        .map(|s| Ok(std::fs::metadata(s)?.len()))
        .sum::<Result<u64>>()?;
    let recording = dir.join("deskrec.dskr");
    deskrec_json(
        Command::new(&programs.deskrec)
            .args(["vault", "splice", "--contact", "bench"])
            .arg("--device-key")
            .arg(&keys.device_key)
            .args(["--start", &start.to_string(), "--end", &end.to_string()])
            .arg("--out")
            .arg(&recording)
            .args(&segments),
    )?;
    let mp4 = dir.join("deskrec.mp4");
    let exported = deskrec_json(
        Command::new(&programs.deskrec)
            .args(["vault", "export", "--server-key"])
            .arg(&keys.server_key)
            .arg("--device-pub")
            .arg(&keys.device_pub)
            .arg(&recording)
            .arg("--out")
            .arg(&mp4),
    )?;
    let export = &exported["export"];
    ensure!(
        export["preroll"].as_u64() == Some(0),
        "the export has pre-roll frames: {export}"
    );
    let trim_start = export["trim"]["start"]
        .as_i64()
        .context("no trim start in the export's output")?;
    Ok(Run {
        video: video(&mp4, trim_start, Colour::Yuv(Matrix::Bt709)),
        bytes,
        seconds: (end - start) as f64 / 1e6,
        usage,
        packets: probe::packets(&mp4)?,
    })
}

fn video(path: &Path, start_us: i64, colour: Colour) -> Video {
    let (width, height) = screen_size();
    Video {
        path: path.into(),
        start_us,
        colour,
        width,
        height,
    }
}

/// The width and height of [`SCREEN`].
fn screen_size() -> (usize, usize) {
    let mut sides = SCREEN
        .split('x')
        .map(|s| s.parse().expect("SCREEN is WxHxD"));
    (sides.next().unwrap_or(0), sides.next().unwrap_or(0))
}

/// Runs a `deskrec` command and parses the JSON it prints.
fn deskrec_json(cmd: &mut Command) -> Result<Value> {
    let out = cmd.output().context("starting deskrec")?;
    ensure!(
        out.status.success(),
        "{:?} failed: {}",
        cmd.get_args().take(2).collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Deskrec's CPU time by pipeline thread: `capture`, `encode`, `write` and
/// `other` (the main thread, start-up, shutdown and what the last thread
/// sample missed: the total minus the three).
pub fn deskrec_threads(usage: &Usage) -> BTreeMap<&'static str, Duration> {
    let mut out = BTreeMap::new();
    let mut named = Duration::ZERO;
    for stage in ["capture", "encode", "write"] {
        let cpu = usage
            .threads
            .get(&format!("deskrec-{stage}"))
            .copied()
            .unwrap_or_default();
        named += cpu;
        out.insert(stage, cpu);
    }
    out.insert("other", usage.cpu.saturating_sub(named));
    out
}

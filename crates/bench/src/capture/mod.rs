//! The `capture` benchmark: Deskrec recording a real X11 screen against
//! ffmpeg (x11grab + libx264 ultrafast), in the same run on the same
//! screen.
//!
//! Two scenes ([`scene`]) on a private 1920x1080x24 Xvfb, 60 s each at
//! 5 fps. On each, three recorders run at once ([`record`]): Deskrec's
//! release binary, ffmpeg, and a lossless 10 fps reference that PSNR is
//! measured against ([`psnr`]). Each recorder is charged the CPU time and
//! memory of its own process ([`measure`]), so running them together on a
//! shared machine keeps the CPU figures honest; Deskrec's time is also
//! split by pipeline thread (capture, encode, write).

pub mod measure;
pub mod probe;
pub mod psnr;
pub mod record;
pub mod scene;

use std::path::Path;

use anyhow::Result;

use self::record::{Keys, Programs, Recordings, Run};
use self::scene::{Scene, SceneKind};
use crate::report::{Goal, Report};

/// Deskrec's CPU per recorded minute over ffmpeg's: the static scene's goal.
const STATIC_CPU_GOAL: f64 = 0.2;
/// The busy scene's.
const BUSY_CPU_GOAL: f64 = 0.8;
/// Deskrec's bytes over ffmpeg's.
const BYTES_GOAL: f64 = 0.2;
/// ...at this PSNR or better (dB).
const PSNR_GOAL_DB: f64 = 38.0;
/// Deskrec's peak resident memory (MiB).
const RSS_GOAL_MIB: f64 = 60.0;

/// One scene's recordings and their picture quality.
struct SceneResult {
    kind: SceneKind,
    rec: Recordings,
    deskrec_psnr: psnr::Psnr,
    ffmpeg_psnr: psnr::Psnr,
}

/// Runs both scenes, using `work` (an empty directory) for their files.
pub fn run(work: &Path) -> Result<Report> {
    let programs = Programs::find()?;
    let keys = Keys::generate(&work.join("keys"))?;
    let mut results = Vec::new();
    for kind in SceneKind::ALL {
        let dir = work.join(kind.name());
        eprintln!(
            "capture bench: {} scene, recording {} s",
            kind.name(),
            record::SECONDS
        );
        let rec = {
            let scene = Scene::start(kind, &programs.scroller)?;
            record::record(&scene, &programs, &keys, &dir)?
        };
        eprintln!("capture bench: {} scene, comparing pictures", kind.name());
        let deskrec_psnr = psnr::compare(&rec.reference.video, &rec.deskrec.video)?;
        let ffmpeg_psnr = psnr::compare(&rec.reference.video, &rec.ffmpeg.video)?;
        // The reference is large (up to ~300 MB a scene).
        std::fs::remove_dir_all(&dir)?;
        results.push(SceneResult {
            kind,
            rec,
            deskrec_psnr,
            ffmpeg_psnr,
        });
    }
    let mut report = Report::default();
    for r in &results {
        add_scene(&mut report, r);
    }
    let peak_rss_mib = results
        .iter()
        .map(|r| rss_mib(&r.rec.deskrec))
        .fold(0.0, f64::max);
    report.add_goal_in(
        "peak_rss_mb",
        peak_rss_mib,
        "MiB",
        Goal::AtMost(RSS_GOAL_MIB),
        "Deskrec's peak resident memory (VmHWM), both scenes",
    );
    add_notes(&mut report, &results);
    Ok(report)
}

fn rss_mib(run: &Run) -> f64 {
    run.usage.max_rss_kib as f64 / 1024.0
}

/// The scene's figures, keys prefixed with its name: the goals, both
/// recorders' figures, then Deskrec's insides.
fn add_scene(report: &mut Report, r: &SceneResult) {
    add_goals(report, r);
    add_recorders(report, r);
    add_deskrec_insides(report, r);
}

fn add_goals(report: &mut Report, r: &SceneResult) {
    let s = r.kind.name();
    let (deskrec, ffmpeg) = (&r.rec.deskrec, &r.rec.ffmpeg);
    let cpu_goal = match r.kind {
        SceneKind::Static => STATIC_CPU_GOAL,
        SceneKind::Busy => BUSY_CPU_GOAL,
    };
    report.add_goal(
        format!("{s}_cpu_ratio"),
        deskrec.cpu_s_per_min() / ffmpeg.cpu_s_per_min(),
        Goal::AtMost(cpu_goal),
        format!("{s}: Deskrec's CPU time per recorded minute over ffmpeg's"),
    );
    report.add_goal(
        format!("{s}_bytes_ratio"),
        deskrec.mb_per_min() / ffmpeg.mb_per_min(),
        Goal::AtMost(BYTES_GOAL),
        format!("{s}: Deskrec's bytes (encrypted segments) over ffmpeg's (MP4)"),
    );
    report.add_goal_in(
        format!("{s}_psnr_db"),
        r.deskrec_psnr.luma_db,
        "dB",
        Goal::AtLeast(PSNR_GOAL_DB),
        format!("{s}: Deskrec's luma PSNR against the lossless reference (frame mean)"),
    );
}

fn add_recorders(report: &mut Report, r: &SceneResult) {
    let s = r.kind.name();
    let recorders = [
        ("deskrec", &r.rec.deskrec, &r.deskrec_psnr),
        ("ffmpeg", &r.rec.ffmpeg, &r.ffmpeg_psnr),
    ];
    for (tool, run, psnr) in recorders {
        report.add(
            format!("{s}_{tool}_cpu_s_per_min"),
            run.cpu_s_per_min(),
            "s",
            format!("{s}: {tool}'s CPU seconds (user + system) per recorded minute"),
        );
        report.add(
            format!("{s}_{tool}_mb_per_min"),
            run.mb_per_min(),
            "MB",
            format!("{s}: {tool}'s MB per recorded minute"),
        );
        if tool != "deskrec" {
            // Deskrec's is the goal figure above.
            report.add(
                format!("{s}_{tool}_psnr_db"),
                psnr.luma_db,
                "dB",
                format!("{s}: {tool}'s luma PSNR (frame mean)"),
            );
        }
        report.add(
            format!("{s}_{tool}_psnr_global_db"),
            psnr.luma_global_db,
            "dB",
            format!("{s}: {tool}'s luma PSNR of the mean squared error"),
        );
        report.add(
            format!("{s}_{tool}_psnr_rgb_db"),
            psnr.rgb_db,
            "dB",
            format!("{s}: {tool}'s RGB PSNR, chroma subsampling included (frame mean)"),
        );
        report.add(
            format!("{s}_{tool}_low_psnr_frames"),
            psnr.low_frames as f64,
            "frames",
            format!(
                "{s}: {tool}'s frames below {} dB (captured mid-drawing)",
                psnr::LOW_FRAME_DB
            ),
        );
        report.add(
            format!("{s}_{tool}_keyframes"),
            run.keyframes() as f64,
            "frames",
            format!("{s}: {tool}'s keyframes"),
        );
        report.add(
            format!("{s}_{tool}_keyframe_share"),
            run.keyframe_share(),
            "ratio",
            format!("{s}: share of {tool}'s H.264 bytes in keyframes"),
        );
    }
}

fn add_deskrec_insides(report: &mut Report, r: &SceneResult) {
    let s = r.kind.name();
    let deskrec = &r.rec.deskrec;
    let status = &r.rec.deskrec_status;
    let count = |field: &str| status[field].as_f64().unwrap_or(f64::NAN);
    let threads = record::deskrec_threads(&deskrec.usage);
    for (stage, cpu) in &threads {
        report.add(
            format!("{s}_deskrec_{stage}_cpu_s_per_min"),
            cpu.as_secs_f64() * 60.0 / deskrec.seconds,
            "s",
            format!("{s}: Deskrec's {stage} thread(s), CPU s per recorded minute"),
        );
    }
    report.add(
        format!("{s}_deskrec_encode_ms_per_frame"),
        threads["encode"].as_secs_f64() * 1e3 / count("encoded"),
        "ms",
        format!("{s}: encode thread CPU per encoded frame (OpenH264; capture converts to I420)"),
    );
    for (key, field, about) in [
        ("encoded", "encoded", "frames Deskrec encoded"),
        (
            "unchanged",
            "unchanged",
            "ticks Deskrec skipped as unchanged",
        ),
        (
            "dropped",
            "dropped_behind",
            "frames Deskrec dropped (behind)",
        ),
    ] {
        report.add(
            format!("{s}_deskrec_{key}"),
            count(field),
            "frames",
            format!("{s}: {about}"),
        );
    }
    report.add(
        format!("{s}_deskrec_rss_mb"),
        rss_mib(deskrec),
        "MiB",
        format!("{s}: Deskrec's peak resident memory"),
    );
    let memory = deskrec.usage.memory;
    for (kind, kib, about) in [
        ("anon", memory.anon_kib, "heap and stacks"),
        (
            "shmem",
            memory.shmem_kib,
            "shared memory: the MIT-SHM segment",
        ),
        ("file", memory.file_kib, "program and library pages"),
    ] {
        report.add(
            format!("{s}_deskrec_rss_{kind}_mb"),
            kib as f64 / 1024.0,
            "MiB",
            format!("{s}: of which {about} (largest sample)"),
        );
    }
    report.add(
        format!("{s}_load_avg"),
        r.rec.load.1,
        "",
        format!("{s}: 1-minute load average at the end of the recording"),
    );
}

/// How the figures were made, and context for reading them.
fn add_notes(report: &mut Report, results: &[SceneResult]) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    for r in results {
        let minutes = r.rec.deskrec.seconds / 60.0;
        report.note(format!(
            "{}: load average {:.1} -> {:.1} on {cores} cores; while recording, the reference \
             ffmpeg used {:.2} CPU-s/min and Xvfb {:.2}; Deskrec {} ticks, {} encoded; PSNR over \
             {} Deskrec and {} ffmpeg frames, worst frame {:.1} / {:.1} dB",
            r.kind.name(),
            r.rec.load.0,
            r.rec.load.1,
            r.rec.reference.cpu_s_per_min(),
            r.rec.server_cpu.as_secs_f64() / minutes,
            r.rec.deskrec_status["ticks"],
            r.rec.deskrec_status["encoded"],
            r.deskrec_psnr.frames,
            r.ffmpeg_psnr.frames,
            r.deskrec_psnr.worst_luma_db,
            r.ffmpeg_psnr.worst_luma_db,
        ));
    }
    report.note(format!(
        "Deskrec (deskrec record, release), ffmpeg (x11grab {fps} fps, libx264 ultrafast \
         zerolatency) and a lossless {ref_fps} fps reference (libx264rgb -qp 0) record each scene \
         at the same time; CPU and peak RSS are each process's own (wait4); PSNR compares every \
         frame with the best-matching reference frame within {window} ms, as decoded RGB with \
         each recorder's own matrix (luma in limited range), averaged over frames; see \
         docs/benchmarks.md",
        fps = record::FPS,
        ref_fps = record::REFERENCE_FPS,
        window = psnr::WINDOW_US / 1000,
    ));
}

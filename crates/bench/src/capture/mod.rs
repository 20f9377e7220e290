//! The `capture` benchmark: Deskrec recording a real X11 screen against
//! ffmpeg (x11grab + libx264 ultrafast), in the same run on the same
//! screen.
//!
//! Four scenes ([`scene`]: static, typing, scroll, busy) on a private
//! 1920x1080x24 Xvfb, 60 s each at 5 fps, each run [`RUNS`] times (the
//! scenes in turn, so a noisy spell of a shared machine falls on different
//! scenes). On each, three recorders run at once ([`record`]): Deskrec's
//! release binary, ffmpeg, and a lossless 10 fps reference that PSNR is
//! measured against ([`psnr`]). Each recorder is charged the CPU time and
//! memory of its own process ([`measure`]), so running them together on a
//! shared machine keeps the CPU figures honest; Deskrec's time is also
//! split by pipeline thread (capture, encode, write). ffmpeg's decoder
//! tells how many macroblocks each encoder skipped ([`mbtypes`]).
//!
//! Each figure is the mean of the runs; goal figures also carry
//! `KEY_min` and `KEY_max`.

pub mod mbtypes;
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

/// Each scene is recorded this many times.
pub const RUNS: usize = 2;
/// Deskrec's peak resident memory (MiB), over every scene.
const RSS_GOAL_MIB: f64 = 40.0;

/// A scene's goals: Deskrec's CPU and bytes per recorded minute over
/// ffmpeg's, and its luma PSNR.
struct Goals {
    cpu_ratio: f64,
    bytes_ratio: f64,
    psnr_db: f64,
}

impl Goals {
    fn of(kind: SceneKind) -> Self {
        let (cpu_ratio, bytes_ratio, psnr_db) = match kind {
            SceneKind::Static => (0.1, 0.2, 40.0),
            SceneKind::Typing => (0.1, 0.5, 40.0),
            SceneKind::Scroll => (0.4, 0.2, 38.0),
            SceneKind::Busy => (0.5, 0.15, 38.0),
        };
        Self {
            cpu_ratio,
            bytes_ratio,
            psnr_db,
        }
    }
}

/// One recording of a scene, its picture quality and macroblock types.
struct SceneResult {
    kind: SceneKind,
    rec: Recordings,
    deskrec_psnr: psnr::Psnr,
    ffmpeg_psnr: psnr::Psnr,
    deskrec_mbs: mbtypes::MbTypes,
    ffmpeg_mbs: mbtypes::MbTypes,
}

/// Runs every scene [`RUNS`] times, using `work` (an empty directory) for
/// their files.
pub fn run(work: &Path) -> Result<Report> {
    let programs = Programs::find()?;
    let keys = Keys::generate(&work.join("keys"))?;
    let mut runs = Vec::new();
    let mut peak_rss_mib: f64 = 0.0;
    for run in 1..=RUNS {
        let mut results = Vec::new();
        for kind in SceneKind::ALL {
            let result = record_scene(kind, run, &programs, &keys, work)?;
            peak_rss_mib = peak_rss_mib.max(rss_mib(&result.rec.deskrec));
            results.push(result);
        }
        let mut report = Report::default();
        for r in &results {
            add_scene(&mut report, r);
        }
        add_notes(&mut report, run, &results);
        runs.push(report);
    }
    let mut report = Report::mean_of(runs)?;
    report.add_goal_in(
        "peak_rss_mb",
        peak_rss_mib,
        "MiB",
        Goal::AtMost(RSS_GOAL_MIB),
        "Deskrec's peak resident memory (VmHWM), over every scene and run",
    );
    add_method_note(&mut report);
    Ok(report)
}

/// Records one scene and compares what the recorders made.
fn record_scene(
    kind: SceneKind,
    run: usize,
    programs: &Programs,
    keys: &Keys,
    work: &Path,
) -> Result<SceneResult> {
    let name = kind.name();
    let dir = work.join(format!("{name}-{run}"));
    eprintln!(
        "capture bench: {name} scene, run {run} of {RUNS}, recording {} s",
        record::SECONDS
    );
    let rec = {
        let scene = Scene::start(kind, programs)?;
        record::record(&scene, programs, keys, &dir)?
    };
    eprintln!("capture bench: {name} scene, run {run}, comparing pictures");
    let deskrec_psnr = psnr::compare(&rec.reference.video, &rec.deskrec.video)?;
    let ffmpeg_psnr = psnr::compare(&rec.reference.video, &rec.ffmpeg.video)?;
    let deskrec_mbs = mbtypes::count(&rec.deskrec.video.path)?;
    let ffmpeg_mbs = mbtypes::count(&rec.ffmpeg.video.path)?;
    // The reference is large (up to ~300 MB a scene).
    std::fs::remove_dir_all(&dir)?;
    Ok(SceneResult {
        kind,
        rec,
        deskrec_psnr,
        ffmpeg_psnr,
        deskrec_mbs,
        ffmpeg_mbs,
    })
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
    let goals = Goals::of(r.kind);
    report.add_goal(
        format!("{s}_cpu_ratio"),
        deskrec.cpu_s_per_min() / ffmpeg.cpu_s_per_min(),
        Goal::AtMost(goals.cpu_ratio),
        format!("{s}: Deskrec's CPU time per recorded minute over ffmpeg's"),
    );
    report.add_goal(
        format!("{s}_bytes_ratio"),
        deskrec.mb_per_min() / ffmpeg.mb_per_min(),
        Goal::AtMost(goals.bytes_ratio),
        format!("{s}: Deskrec's bytes (encrypted segments) over ffmpeg's (MP4)"),
    );
    report.add_goal_in(
        format!("{s}_psnr_db"),
        r.deskrec_psnr.luma_db,
        "dB",
        Goal::AtLeast(goals.psnr_db),
        format!("{s}: Deskrec's luma PSNR against the lossless reference (frame mean)"),
    );
}

fn add_recorders(report: &mut Report, r: &SceneResult) {
    let s = r.kind.name();
    let recorders = [
        ("deskrec", &r.rec.deskrec, &r.deskrec_psnr, &r.deskrec_mbs),
        ("ffmpeg", &r.rec.ffmpeg, &r.ffmpeg_psnr, &r.ffmpeg_mbs),
    ];
    for (tool, run, psnr, mbs) in recorders {
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
            format!("{s}_{tool}_mb_skip_share"),
            mbs.skip_share(),
            "ratio",
            format!("{s}: share of the macroblocks of {tool}'s P-pictures that are skipped"),
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
    // 1920x1080 in 16x16 macroblocks: 120 x 68.
    let blocks_per_frame = 120.0 * 68.0;
    report.add(
        format!("{s}_deskrec_mb_unchanged_share"),
        count("unchanged_macroblocks") / (count("encoded") * blocks_per_frame),
        "ratio",
        format!(
            "{s}: share of the encoded frames' macroblocks the change maps said were unchanged \
             (skipped without comparing)"
        ),
    );
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

/// Context for reading one run's figures.
fn add_notes(report: &mut Report, run: usize, results: &[SceneResult]) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    for r in results {
        let minutes = r.rec.deskrec.seconds / 60.0;
        report.note(format!(
            "run {run}, {}: load average {:.1} -> {:.1} on {cores} cores; while recording, the reference \
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
}

/// How the figures were made.
fn add_method_note(report: &mut Report) {
    report.note(format!(
        "Deskrec (deskrec record, release), ffmpeg (x11grab {fps} fps, libx264 ultrafast \
         zerolatency) and a lossless {ref_fps} fps reference (libx264rgb -qp 0) record each scene \
         at the same time; CPU and peak RSS are each process's own (wait4); PSNR compares every \
         frame with the best-matching reference frame within {window} ms, as decoded RGB with \
         each recorder's own matrix (luma in limited range), averaged over frames; each figure \
         is the mean of {RUNS} runs, a goal's range is in KEY_min and KEY_max; see \
         docs/benchmarks.md",
        fps = record::FPS,
        ref_fps = record::REFERENCE_FPS,
        window = psnr::WINDOW_US / 1000,
    ));
}

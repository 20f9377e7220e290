//! End-to-end tests of the encoder: synthetic frames in, H.264 out, decoded
//! again by ffmpeg and recognised by their frame numbers.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use deskrec_capture::annexb::{NAL_IDR_SLICE, NAL_PPS, NAL_SPS, nal_type};
use deskrec_capture::{
    ChangeMap, EncodeError, EncodedFrame, EncoderConfig, Frame, FrameSource, GOP_STRETCH,
    H264Encoder, Motion, SyntheticSource, YuvFrame, read_frame_number,
};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;
const FPS: f32 = 5.0;
const INTERVAL: Duration = Duration::from_millis(200);

/// 640x360 at 5 fps with a 2-second GOP (10 frames).
fn config() -> EncoderConfig {
    EncoderConfig {
        fps: FPS,
        gop: Duration::from_secs(2),
        ..EncoderConfig::new(WIDTH, HEIGHT)
    }
}

/// A moving synthetic source whose frames are exactly 200 ms apart.
fn source() -> SyntheticSource {
    SyntheticSource::new(WIDTH, HEIGHT)
        .unwrap()
        .with_fixed_clock(Instant::now(), INTERVAL)
}

/// Encodes `count` frames, forcing a keyframe at the indices in `force`.
fn encode_frames(count: usize, force: &[usize]) -> Vec<EncodedFrame> {
    let mut source = source();
    let mut encoder = H264Encoder::new(config()).unwrap();
    (0..count)
        .map(|i| {
            encoder
                .encode(&source.next_frame().unwrap(), force.contains(&i))
                .unwrap()
        })
        .collect()
}

fn keyframe_indices(frames: &[EncodedFrame]) -> Vec<usize> {
    frames
        .iter()
        .enumerate()
        .filter(|(_, f)| f.keyframe)
        .map(|(i, _)| i)
        .collect()
}

fn nal_types(frame: &EncodedFrame) -> Vec<u8> {
    frame.nal_units().filter_map(nal_type).collect()
}

fn annexb_stream(frames: &[EncodedFrame]) -> Vec<u8> {
    frames.iter().flat_map(|f| f.data.iter().copied()).collect()
}

#[test]
fn keyframe_every_gop() {
    assert_eq!(config().gop_frames(), 10);
    let frames = encode_frames(30, &[]);
    assert_eq!(keyframe_indices(&frames), [0, 10, 20]);
}

/// The keyframes of `count` pictures of a still grey screen with the
/// rectangle `change(i)` (x, y, width, height) filled in picture `i`, each
/// encoded with its true change map and keyframes counted in encoded
/// pictures only, as the recorder does.
fn keyframes_with_changes(
    count: usize,
    change: impl Fn(usize) -> (u32, u32, u32, u32),
) -> Vec<usize> {
    let config = EncoderConfig {
        gop_by_time: false,
        ..config()
    };
    let mut encoder = H264Encoder::new(config).unwrap();
    let start = Instant::now();
    let mut last: Option<(Frame, u64)> = None;
    let mut keyframes = Vec::new();
    for i in 0..count {
        let mut pixels = vec![200u8; (WIDTH * HEIGHT * 4) as usize];
        let (x, y, w, h) = change(i);
        for row in y..y + h {
            let at = ((row * WIDTH + x) * 4) as usize;
            let colour = [(i * 37 % 256) as u8, 40, 90, 255];
            pixels[at..at + (w * 4) as usize].copy_from_slice(&colour.repeat(w as usize));
        }
        let at = start + INTERVAL * i as u32;
        let frame = Frame::new(WIDTH, HEIGHT, WIDTH as usize * 4, pixels, at).unwrap();
        let mut picture = YuvFrame::from_frame(&frame).unwrap();
        let id = picture.id();
        if let Some((before, before_id)) = &last {
            picture = picture.with_changes(*before_id, ChangeMap::between(before, &frame));
        }
        if encoder.encode_yuv_frame(&picture, false).unwrap().keyframe {
            keyframes.push(i);
        }
        last = Some((frame, id));
    }
    keyframes
}

#[test]
fn a_gop_in_which_little_was_coded_again_runs_on_to_its_cap() {
    // A glyph-sized change moving along a line: a few percent of the
    // picture coded again since the keyframe.
    let stretched = config().gop_frames() as usize * GOP_STRETCH as usize;
    assert_eq!(stretched, 30);
    let keyframes = keyframes_with_changes(65, |i| (16 * (i as u32 % 30), 100, 8, 14));
    assert_eq!(keyframes, [0, 30, 60]);
}

#[test]
fn a_gop_in_which_half_the_picture_was_coded_again_ends_on_time() {
    // A band an eighth of the picture high, a new place each picture: no
    // picture changes half of it, but together they do within the GOP.
    let band = HEIGHT / 8;
    let keyframes = keyframes_with_changes(35, |i| (0, band * (i as u32 % 8), WIDTH, band));
    assert_eq!(keyframes, [0, 10, 20, 30]);
}

#[test]
fn forced_keyframe_restarts_the_gop() {
    let frames = encode_frames(30, &[5, 6]);
    assert_eq!(keyframe_indices(&frames), [0, 5, 6, 16, 26]);
}

#[test]
fn keyframe_due_by_time_when_frames_were_skipped() {
    // Frames 200 ms apart, then a 2.2 s gap (unchanged frames not encoded).
    let start = Instant::now();
    let times = [0, 200, 2400, 2600].map(|ms| start + Duration::from_millis(ms));
    let mut source = source();
    let mut encoder = H264Encoder::new(config()).unwrap();
    let keyframes: Vec<bool> = times
        .iter()
        .map(|&t| {
            let frame = source.next_frame().unwrap();
            let frame = Frame::new(WIDTH, HEIGHT, frame.stride(), frame.into_pixels(), t).unwrap();
            encoder.encode(&frame, false).unwrap().keyframe
        })
        .collect();
    assert_eq!(keyframes, [true, false, true, false]);
}

#[test]
fn scene_change_keyframes_restart_the_gop() {
    // Frame 5 shows an inverted picture: a "scene change" for OpenH264,
    // which makes it an IDR on its own (screen-content mode), and so is the
    // return to the normal picture at frame 6.
    let mut source = source();
    let mut encoder = H264Encoder::new(config()).unwrap();
    let frames: Vec<EncodedFrame> = (0..30)
        .map(|i| {
            let mut frame = source.next_frame().unwrap();
            if i == 5 {
                let inverted = frame.pixels().iter().map(|b| 255 - b).collect();
                frame = Frame::new(WIDTH, HEIGHT, frame.stride(), inverted, frame.captured_at())
                    .unwrap();
            }
            encoder.encode(&frame, false).unwrap()
        })
        .collect();
    for (i, frame) in frames.iter().enumerate() {
        assert_eq!(
            frame.keyframe,
            nal_types(frame).contains(&NAL_IDR_SLICE),
            "frame {i}"
        );
    }
    let keys = keyframe_indices(&frames);
    let scene_key = keys.iter().copied().rfind(|k| (5..=6).contains(k));
    let scene_key = scene_key.expect("no scene-change keyframe: did OpenH264's behaviour change?");
    // The GOP counts from the latest keyframe, whatever made it.
    assert!(keys.contains(&(scene_key + 10)), "keyframes {keys:?}");
    assert!(!keys.contains(&10), "keyframes {keys:?}");
    for pair in keys.windows(2) {
        assert!(pair[1] - pair[0] <= 10, "keyframes {keys:?}");
    }
}

#[test]
fn keyframes_carry_sps_and_pps() {
    let frames = encode_frames(12, &[3]);
    for (i, frame) in frames.iter().enumerate() {
        let types = nal_types(frame);
        if frame.keyframe {
            let pos = |t| types.iter().position(|&x| x == t);
            let (sps, pps, idr) = (pos(NAL_SPS), pos(NAL_PPS), pos(NAL_IDR_SLICE));
            assert!(
                sps < pps && pps < idr && sps.is_some(),
                "keyframe {i} has NAL types {types:?}, want SPS, PPS, then IDR"
            );
        } else {
            assert!(
                !types
                    .iter()
                    .any(|t| [NAL_SPS, NAL_PPS, NAL_IDR_SLICE].contains(t)),
                "delta frame {i} has NAL types {types:?}"
            );
            assert!(!types.is_empty(), "delta frame {i} is empty");
        }
    }
}

#[test]
#[cfg_attr(windows, ignore = "needs ffmpeg; the native run covers it")]
fn decoded_stream_shows_every_frame_in_order() {
    let Some(ffmpeg) = tool("ffmpeg") else { return };
    let frames = encode_frames(30, &[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream.h264");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&annexb_stream(&frames))
        .unwrap();

    let gray = decode_to_gray(&ffmpeg, &path);
    let frame_len = (WIDTH * HEIGHT) as usize;
    assert_eq!(
        gray.len() % frame_len,
        0,
        "ffmpeg output is not whole frames"
    );
    let numbers: Vec<Option<u32>> = gray
        .chunks_exact(frame_len)
        .map(|f| read_frame_number(f, WIDTH as usize, HEIGHT as usize))
        .collect();
    let expected: Vec<Option<u32>> = (0..30).map(Some).collect();
    assert_eq!(numbers, expected);
}

#[test]
#[cfg_attr(windows, ignore = "needs ffprobe; the native run covers it")]
fn stream_signals_bt709_limited_range() {
    let Some(ffprobe) = tool("ffprobe") else {
        return;
    };
    let frames = encode_frames(2, &[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream.h264");
    std::fs::write(&path, annexb_stream(&frames)).unwrap();
    let out = Command::new(ffprobe)
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .arg(
            "stream=codec_name,width,height,color_space,color_primaries,color_transfer,color_range",
        )
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "codec_name=h264",
        "width=640",
        "height=360",
        "color_space=bt709",
        "color_primaries=bt709",
        "color_transfer=bt709",
        "color_range=tv",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line} in:\n{text}"
        );
    }
}

#[test]
#[cfg_attr(windows, ignore = "needs ffmpeg; the native run covers it")]
fn colours_survive_with_the_signalled_matrix() {
    let Some(ffmpeg) = tool("ffmpeg") else { return };
    // Four 160 px wide bars of saturated colours (BGRA) and a grey.
    let bars: [[u8; 4]; 4] = [
        [0, 0, 255, 255],
        [0, 255, 0, 255],
        [255, 0, 0, 255],
        [128, 128, 128, 255],
    ];
    let row: Vec<u8> = (0..WIDTH).flat_map(|x| bars[(x / 160) as usize]).collect();
    let pixels = row.repeat(HEIGHT as usize);
    let frame = Frame::new(WIDTH, HEIGHT, WIDTH as usize * 4, pixels, Instant::now()).unwrap();
    let mut encoder = H264Encoder::new(config()).unwrap();
    let encoded = encoder.encode(&frame, false).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream.h264");
    std::fs::write(&path, &encoded.data).unwrap();

    let rgb = decode_raw(&ffmpeg, &path, "rgb24");
    assert_eq!(rgb.len(), (WIDTH * HEIGHT * 3) as usize);
    for (i, bar) in bars.iter().enumerate() {
        let (x, y) = (i * 160 + 80, HEIGHT as usize / 2);
        let got = &rgb[(y * WIDTH as usize + x) * 3..][..3];
        let want = [bar[2], bar[1], bar[0]];
        let close = got.iter().zip(want).all(|(&g, w)| g.abs_diff(w) <= 8);
        assert!(close, "bar {i}: decoded {got:?}, want {want:?}");
    }
}

#[test]
fn still_frames_cost_little() {
    let mut source = source().with_motion(Motion::Still);
    let mut encoder = H264Encoder::new(config()).unwrap();
    let frames: Vec<EncodedFrame> = (0..5)
        .map(|_| {
            encoder
                .encode(&source.next_frame().unwrap(), false)
                .unwrap()
        })
        .collect();
    let key = frames[0].data.len();
    for frame in &frames[1..] {
        assert!(!frame.keyframe);
        assert!(
            frame.data.len() * 20 < key,
            "still frame of {} bytes vs keyframe {key}",
            frame.data.len()
        );
    }
}

/// Pictures of a terminal scrolling text: glyphs (6x13 cells drawn from a
/// small alphabet, like a font) on black in a window, the rest of the
/// screen still. Each picture scrolls the window by `lines` lines.
struct ScrollingText {
    rows: Vec<Vec<u8>>,
    next: u32,
}

impl ScrollingText {
    const CELL: (usize, usize) = (6, 13);
    /// The window: x, y, columns, rows.
    const WINDOW: (usize, usize, usize, usize) = (40, 40, 90, 22);

    fn new() -> Self {
        let mut text = Self {
            rows: Vec::new(),
            next: 1,
        };
        for _ in 0..Self::WINDOW.3 {
            text.push_line();
        }
        text
    }

    /// A line of text: the glyph index of each column (0 is a space).
    fn push_line(&mut self) {
        let mut seed = self.next.wrapping_mul(2_654_435_761);
        let len = 20 + (seed % 60) as usize;
        let line = (0..Self::WINDOW.2)
            .map(|col| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                if col < len {
                    (seed >> 16) as u8 % 40
                } else {
                    0
                }
            })
            .collect();
        self.rows.push(line);
        self.next += 1;
    }

    /// Whether pixel (x, y) of glyph `g` is lit: a fixed pattern per glyph.
    fn lit(g: u8, x: usize, y: usize) -> bool {
        if g == 0 || !(2..11).contains(&y) || x == 5 {
            return false;
        }
        let h = u32::from(g).wrapping_mul(0x9E37_79B9) ^ (x as u32 * 7 + y as u32 * 13);
        h.wrapping_mul(0x85EB_CA6B) >> 29 < 3
    }

    /// Scrolls by `lines` and draws the picture.
    fn frame(&mut self, lines: usize, at: Instant) -> Frame {
        for _ in 0..lines {
            self.push_line();
        }
        let visible = &self.rows[self.rows.len() - Self::WINDOW.3..];
        let (cw, ch) = Self::CELL;
        let (wx, wy, cols, rows) = Self::WINDOW;
        let mut pixels = vec![0u8; (WIDTH * HEIGHT * 4) as usize];
        for (i, px) in pixels.chunks_exact_mut(4).enumerate() {
            let (x, y) = (i % WIDTH as usize, i / WIDTH as usize);
            let inside = (wx..wx + cols * cw).contains(&x) && (wy..wy + rows * ch).contains(&y);
            let v = if inside {
                let g = visible[(y - wy) / ch][(x - wx) / cw];
                if Self::lit(g, (x - wx) % cw, (y - wy) % ch) {
                    230
                } else {
                    0
                }
            } else {
                // A still desktop around the window.
                60 + ((x / 32 + y / 32) % 2) as u8 * 40
            };
            px.copy_from_slice(&[v, v, v, 255]);
        }
        Frame::new(WIDTH, HEIGHT, WIDTH as usize * 4, pixels, at).unwrap()
    }
}

/// OpenH264 is patched (third_party/openh264-sys2/DESKREC.md): its
/// screen-content motion search runs without the feature search and with
/// shorter line searches. Scrolled text must still be predicted from the
/// last picture (small P frames) and stay sharp.
#[test]
#[cfg_attr(windows, ignore = "needs ffmpeg; the native run covers it")]
fn scrolled_text_stays_sharp_and_cheap() {
    let Some(ffmpeg) = tool("ffmpeg") else { return };
    let mut text = ScrollingText::new();
    let mut encoder = H264Encoder::new(config()).unwrap();
    let start = Instant::now();
    let mut luma = Vec::new();
    let mut frames = Vec::new();
    for i in 0..8u32 {
        let frame = text.frame(if i == 0 { 0 } else { 3 }, start + INTERVAL * i);
        luma.push(
            deskrec_capture::YuvFrame::from_frame(&frame)
                .unwrap()
                .planes()
                .0
                .to_vec(),
        );
        frames.push(encoder.encode(&frame, false).unwrap());
    }
    assert!(frames[0].keyframe && frames[1..].iter().all(|f| !f.keyframe));
    let key = frames[0].data.len();
    let scrolled = frames[1..].iter().map(|f| f.data.len()).max().unwrap();
    assert!(
        scrolled * 3 < key,
        "a scroll of 3 lines cost {scrolled} bytes, the keyframe {key}: not predicted"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scroll.h264");
    std::fs::write(&path, annexb_stream(&frames)).unwrap();
    let decoded = decode_raw(&ffmpeg, &path, "yuv420p");
    let plane = (WIDTH * HEIGHT) as usize;
    assert_eq!(decoded.len(), plane * 3 / 2 * frames.len());
    for (i, (got, want)) in decoded.chunks_exact(plane * 3 / 2).zip(&luma).enumerate() {
        // 38-39 dB here (deterministic: one thread); an encoder that lost
        // track of the scroll or blurred the text would be far below.
        let psnr = psnr(&got[..plane], want);
        assert!(psnr >= 37.0, "frame {i}: luma PSNR {psnr:.1} dB");
    }
}

/// PSNR of two 8-bit planes, peak 255.
fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x.abs_diff(y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (255.0f64.powi(2) / mse.max(1e-9)).log10()
}

#[test]
fn invalid_configs_fail_at_construction() {
    let cases = [
        EncoderConfig::new(641, 360),
        EncoderConfig::new(640, 361),
        EncoderConfig::new(8, 360),
        EncoderConfig::new(4096, 2160),
        EncoderConfig::new(2160, 4096),
        EncoderConfig {
            fps: 0.0,
            ..config()
        },
        EncoderConfig {
            fps: 61.0,
            ..config()
        },
        EncoderConfig {
            fps: f32::NAN,
            ..config()
        },
        EncoderConfig {
            gop: Duration::ZERO,
            ..config()
        },
        EncoderConfig {
            max_bitrate_bps: 0,
            ..config()
        },
        EncoderConfig {
            max_bitrate_bps: u32::MAX,
            ..config()
        },
    ];
    for case in cases {
        let result = H264Encoder::new(case.clone());
        assert!(
            matches!(result, Err(EncodeError::InvalidConfig(_))),
            "{case:?} gave {result:?}"
        );
    }
    assert!(H264Encoder::new(EncoderConfig::new(2160, 3840)).is_ok());
}

#[test]
fn frame_of_another_size_is_rejected() {
    let mut encoder = H264Encoder::new(config()).unwrap();
    let mut other = SyntheticSource::new(642, 360).unwrap();
    let result = encoder.encode(&other.next_frame().unwrap(), false);
    assert!(
        matches!(
            result,
            Err(EncodeError::SizeMismatch {
                frame_width: 642,
                ..
            })
        ),
        "{result:?}"
    );
    // Still usable, and the first good frame is the keyframe.
    assert!(
        encoder
            .encode(&source().next_frame().unwrap(), false)
            .unwrap()
            .keyframe
    );
}

/// Encode speed at 1080p; run with
/// `cargo test --release -p deskrec-capture --test encode -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn encode_speed_1080p() {
    for motion in [Motion::Moving, Motion::Still] {
        let mut source = SyntheticSource::new(1920, 1080)
            .unwrap()
            .with_fixed_clock(Instant::now(), INTERVAL)
            .with_motion(motion);
        let mut encoder = H264Encoder::new(EncoderConfig::new(1920, 1080)).unwrap();
        let frames: Vec<Frame> = (0..50).map(|_| source.next_frame().unwrap()).collect();
        let mut key_ms = Vec::new();
        let mut delta_ms = Vec::new();
        let mut bytes = 0;
        for frame in &frames {
            let started = cpu_time();
            let encoded = encoder.encode(frame, false).unwrap();
            let ms = (cpu_time() - started).as_secs_f64() * 1000.0;
            bytes += encoded.data.len();
            if encoded.keyframe {
                &mut key_ms
            } else {
                &mut delta_ms
            }
            .push(ms);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        println!(
            "1920x1080 {motion:?} (convert + encode, {CPU_CLOCK}): keyframes {:.1} ms, \
             other frames {:.1} ms (means); {} KB for {} frames",
            mean(&key_ms),
            mean(&delta_ms),
            bytes / 1024,
            frames.len()
        );
    }
}

/// What [`cpu_time`] measures.
const CPU_CLOCK: &str = if cfg!(target_os = "linux") {
    "thread CPU time"
} else {
    "wall time"
};

/// This thread's CPU time on Linux (the machine is shared, so wall time
/// says little), wall time elsewhere.
fn cpu_time() -> Duration {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let wall = || START.get_or_init(Instant::now).elapsed();
    if !cfg!(target_os = "linux") {
        return wall();
    }
    // First field of schedstat: nanoseconds this thread has run on a CPU.
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or_else(wall, Duration::from_nanos)
}

/// Decodes an Annex-B file to concatenated 8-bit grey frames.
fn decode_to_gray(ffmpeg: &Path, input: &Path) -> Vec<u8> {
    decode_raw(ffmpeg, input, "gray")
}

/// Decodes an Annex-B file to concatenated raw frames of `pix_fmt`.
fn decode_raw(ffmpeg: &Path, input: &Path, pix_fmt: &str) -> Vec<u8> {
    let out = Command::new(ffmpeg)
        .args(["-v", "error", "-f", "h264", "-i"])
        .arg(input)
        .args(["-f", "rawvideo", "-pix_fmt", pix_fmt, "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Finds a tool on PATH. When it is missing the test is skipped with a
/// message, except on CI (`CI` set), which installs ffmpeg and must run it.
fn tool(name: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is not installed but CI must run this test"
        );
        eprintln!("SKIPPED: {name} is not on PATH; install ffmpeg to run this test");
    }
    found
}

/// The recorder moves sources and encoders to their own threads.
#[test]
fn sources_and_encoders_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<SyntheticSource>();
    assert_send::<H264Encoder>();
    assert_send::<Frame>();
    assert_send::<EncodedFrame>();
}

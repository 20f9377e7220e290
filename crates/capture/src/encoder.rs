//! Captured pictures (BGRA [`Frame`]s or I420 [`YuvFrame`]s) to H.264
//! (Annex-B) with OpenH264, tuned for screen recording.
//!
//! # What is set, and why
//!
//! | setting | value | why |
//! | --- | --- | --- |
//! | usage | screen content, real time | ~40 dB on desktops where camera mode gives unreadable text (~28 dB) |
//! | rate control | quality mode, target = [`EncoderConfig::max_bitrate_bps`] | text stays readable; idle screens cost almost nothing |
//! | frame skipping | off | every captured frame must come out: one call, one picture |
//! | keyframes | every GOP and on demand (OpenH264's own intra period off); a GOP in which less than half the picture was coded again runs on, up to [`GOP_STRETCH`] times as long | segments and splices need a keyframe at least every GOP; a keyframe is coded better than P pictures, and where P pictures re-coded little of the screen it refreshes little and costs most of the bytes |
//! | motion search | OpenH264's screen-content search without its block-feature (hash) search, line searches within +-256 px: a patched OpenH264, `third_party/openh264-sys2/DESKREC.md` | half the CPU on busy screens and ~20 MiB less; text costs ~2x the bytes, still ~0.13x of x264 ultrafast |
//! | unchanged macroblocks | taken from the picture's [`ChangeMap`] when its source knows them: a macroblock the map says is unchanged since the picture encoded last is judged static without OpenH264 comparing it (a patch, `third_party/openh264-sys2/DESKREC.md`); the stream is the same as without the map | a typing screen changes a few blocks in 8160 |
//! | deblocking filter | off (a patch's option) | a skipped macroblock must show exactly what the decoder already shows; the filter would change the edges of unchanged blocks next to a changed one. Text has sharp edges the filter only blurs (docs/benchmarks.md#capture has its cost in dB) |
//! | scene-change detection | on (OpenH264 forces it on for screen content) | a large change (another window, a new page) may become an IDR of its own; it is reported as a keyframe and restarts the GOP |
//! | adaptive quantisation, background detection | off | not supported for screen content (OpenH264 turns them off and warns) |
//! | threads | 1 | capture, encode and the agent share a small PC; a single slice gains nothing from more |
//! | colour | BT.709 matrix, limited range, converted by `yuvutils-rs` ([`YuvFrame`]), signalled in the SPS VUI | players show the colours we converted with |
//! | log | OpenH264's messages go to `tracing` (target `openh264`), errors as `warn`, warnings as `info` | no stray stderr lines; the reason for an OpenH264 error code is in the log |
//!
//! OpenH264 0.9.9 (the Rust crate) exposes no separate peak bit rate: its
//! target bit rate is also used as the layer's maximum, so
//! `max_bitrate_bps` is passed as that target. In quality mode OpenH264 may
//! overshoot it on IDRs and busy scenes (it says so in an `info` message:
//! without frame skipping the bit rate cannot be held). The output is
//! Constrained Baseline (the crate's default profile); every IDR carries SPS
//! and PPS. Profile, level, QP range, complexity and slices keep the crate's
//! defaults (single slice, QP 0-51, medium complexity).
//!
//! # Errors up front
//!
//! OpenH264 only checks its parameters when it sees the first picture, so
//! [`H264Encoder::new`] validates the config and then encodes one black probe
//! frame (discarded) to surface OpenH264's own errors there, not in the
//! middle of a recording.

use std::time::{Duration, Instant};

use openh264::encoder::{
    BitRate, Encoder, EncoderConfig as OpenH264Config, FrameRate, FrameType, IntraFramePeriod,
    RateControlMode, SpsPpsStrategy, UsageType, VuiConfig,
};
use openh264::formats::YUVSlices;
use openh264::{OpenH264API, Timestamp};
use openh264_sys2::{
    ENCODER_OPTION, ENCODER_OPTION_DESKREC_NO_DEBLOCKING, ENCODER_OPTION_DESKREC_UNCHANGED_MBS,
    SDeskrecUnchangedMbs,
};

use crate::annexb;
use crate::{ChangeMap, EncodeError, Frame, FrameSize, YuvFrame};

mod openh264_log;

/// Frame rates the encoder takes. OpenH264's own floor is 1 fps (it
/// clamps silently); below it OpenH264 is told 1 fps, which only makes its
/// bit budget per frame smaller (quality mode, under a bit-rate cap), and
/// keyframe spacing is counted here at the real rate.
pub const FPS_RANGE: std::ops::RangeInclusive<f32> = 0.2..=60.0;
/// How many times longer than [`EncoderConfig::gop_frames`] a GOP runs on
/// while less than [half](REFRESH_SHARE) of the picture was coded again
/// since its keyframe.
///
/// A keyframe does two jobs: a splice or a seek can start there, and it
/// codes the whole picture better than P pictures code what changes (on
/// scrolled text, ~1 dB; `docs/benchmarks.md#capture`). On a still or
/// typing screen P pictures re-code a few blocks, so the second job is
/// done by the keyframe before, and the first costs a whole-picture intra
/// encode (~60 % of such a screen's bytes at a 10 s GOP) for a place to
/// start that the export's edit list makes exact anyway. Such a GOP runs
/// on, to this cap; where most of the picture was coded again (scrolling,
/// video), keyframes come on time and PSNR does not change.
pub const GOP_STRETCH: u32 = 3;
/// The share of the picture's macroblocks coded again since the last
/// keyframe from which the GOP ends on time.
pub const REFRESH_SHARE: f64 = 0.5;
/// OpenH264's lowest frame rate (`MIN_FRAME_RATE` in its `wels_const.h`).
const OPENH264_MIN_FPS: f32 = 1.0;
/// Smallest width and height accepted.
const MIN_SIDE: u32 = 16;
/// OpenH264 supports up to level 5.2: 3840x2160 landscape or portrait.
const MAX_LONG_SIDE: u32 = 3840;
const MAX_SHORT_SIDE: u32 = 2160;

/// Settings of an [`H264Encoder`]. Build with [`EncoderConfig::new`] and
/// change the public fields; [`H264Encoder::new`] validates them.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderConfig {
    /// Picture width in pixels; even, 16 to 3840.
    pub width: u32,
    /// Picture height in pixels; even, 16 to 2160 (3840 if portrait).
    pub height: u32,
    /// Capture frame rate in frames per second, within [`FPS_RANGE`]
    /// (default 5).
    pub fps: f32,
    /// Longest time between keyframes (default 10 s); the frame count
    /// stretches up to [`GOP_STRETCH`] times where less than
    /// [`REFRESH_SHARE`] of the picture was coded again.
    pub gop: Duration,
    /// Bit rate OpenH264 aims for, in bits per second (default 2 Mbit/s).
    pub max_bitrate_bps: u32,
    /// Whether a GOP also ends after [`gop`](Self::gop) of capture time
    /// when fewer frames were encoded (default true). A recorder that skips
    /// unchanged pictures turns it off: the frames between two keyframes
    /// are then copies of a still screen, and an IDR every `gop` of a still
    /// screen would cost most of its bytes for nothing a splice needs.
    pub gop_by_time: bool,
}

impl EncoderConfig {
    /// Default frame rate (policy default).
    pub const DEFAULT_FPS: f32 = 5.0;
    /// Default keyframe interval (policy default).
    pub const DEFAULT_GOP: Duration = Duration::from_secs(10);
    /// Default bit rate. Quality-mode rate control on a busy 1080p desktop
    /// stays under 2 Mbit/s (~9 MB a minute) by itself; a lower target
    /// makes it raise the QP on text, whose blurred references then cost
    /// more bits, not fewer (1 Mbit/s: 3 dB worse and 3 % bigger; see
    /// docs/benchmarks.md#capture).
    pub const DEFAULT_MAX_BITRATE_BPS: u32 = 2_000_000;

    /// A config for `width` x `height` pictures with the defaults above.
    #[must_use]
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            fps: Self::DEFAULT_FPS,
            gop: Self::DEFAULT_GOP,
            max_bitrate_bps: Self::DEFAULT_MAX_BITRATE_BPS,
            gop_by_time: true,
        }
    }

    /// Checks every field against what OpenH264 and the converter support.
    ///
    /// # Errors
    ///
    /// [`EncodeError::InvalidConfig`] naming the first bad field.
    pub fn validate(&self) -> Result<(), EncodeError> {
        self.validate_size()?;
        let invalid = |msg: String| Err(EncodeError::InvalidConfig(msg));
        if !FPS_RANGE.contains(&self.fps) {
            return invalid(format!("fps {} is outside {FPS_RANGE:?}", self.fps));
        }
        if self.gop.is_zero() {
            return invalid("gop must be longer than zero".to_owned());
        }
        if self.max_bitrate_bps == 0 || i32::try_from(self.max_bitrate_bps).is_err() {
            return invalid(format!(
                "max_bitrate_bps {} is outside 1..=2^31-1",
                self.max_bitrate_bps
            ));
        }
        Ok(())
    }

    fn validate_size(&self) -> Result<(), EncodeError> {
        let (w, h) = (self.width, self.height);
        let invalid = |why: &str| Err(EncodeError::InvalidConfig(format!("size {w}x{h}: {why}")));
        if w % 2 != 0 || h % 2 != 0 {
            return invalid("width and height must be even (4:2:0 chroma)");
        }
        if w.min(h) < MIN_SIDE {
            return invalid("sides must be at least 16 px");
        }
        if w.max(h) > MAX_LONG_SIDE || w.min(h) > MAX_SHORT_SIDE {
            return invalid("OpenH264 supports at most 3840x2160 or 2160x3840");
        }
        Ok(())
    }

    /// The GOP in frames at the configured frame rate, at least 1.
    #[must_use]
    pub fn gop_frames(&self) -> u32 {
        // `as` saturates: a GOP of years simply never triggers by count.
        (self.gop.as_secs_f64() * f64::from(self.fps))
            .round()
            .max(1.0) as u32
    }

    /// Half a frame interval: how early a time-based keyframe may come, so
    /// capture jitter does not push it a whole frame late.
    fn gop_time_slack(&self) -> Duration {
        Duration::from_secs_f64(0.5 / f64::from(self.fps))
    }

    /// The OpenH264 parameters for this config (see the module docs).
    fn to_openh264(&self) -> OpenH264Config {
        OpenH264Config::new()
            .usage_type(UsageType::ScreenContentRealTime)
            .rate_control_mode(RateControlMode::Quality)
            .bitrate(BitRate::from_bps(self.max_bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(self.fps.max(OPENH264_MIN_FPS)))
            .skip_frames(false)
            .scene_change_detect(true)
            .adaptive_quantization(false)
            .background_detection(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            .num_threads(1)
            .vui(VuiConfig::bt709())
    }
}

/// One encoded picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// Annex-B bytes: NAL units behind start codes. A keyframe starts with
    /// SPS and PPS, so decoding can begin at it.
    pub data: Vec<u8>,
    /// Whether this is an IDR picture (a place a stream can start).
    pub keyframe: bool,
}

impl EncodedFrame {
    /// The NAL units of [`data`](Self::data), without start codes.
    pub fn nal_units(&self) -> impl Iterator<Item = &[u8]> {
        annexb::nal_units(&self.data)
    }
}

/// The last keyframe, to decide when the next one is due.
#[derive(Debug, Clone, Copy)]
struct LastKeyframe {
    /// Index (count of frames encoded before it) of the keyframe.
    index: u64,
    /// Its capture time.
    captured_at: Instant,
}

/// An H.264 encoder for one stream of same-sized pictures.
///
/// Keyframes come on the first frame, when asked for, and when a GOP has
/// passed since the last one: [`EncoderConfig::gop_frames`] frames, or
/// [`EncoderConfig::gop`] of capture time (less half a frame interval),
/// whichever comes first; the time rule (on unless
/// [`EncoderConfig::gop_by_time`] is off) keeps keyframes on schedule when
/// unchanged frames are not encoded. The frame rule waits, up to
/// [`GOP_STRETCH`] times as many frames, while the pictures' change maps
/// say less than [`REFRESH_SHARE`] of the picture changed since the
/// keyframe (a picture without a map counts as changed everywhere).
pub struct H264Encoder {
    /// The validated settings.
    config: EncoderConfig,
    /// [`EncoderConfig::gop_frames`], computed once.
    gop_frames: u32,
    /// OpenH264, already initialised for the configured size.
    inner: Encoder,
    /// Frames encoded so far.
    frames_encoded: u64,
    /// Capture time of the first frame: stream time zero.
    stream_start: Option<Instant>,
    /// The most recent IDR; `None` before the first frame.
    last_keyframe: Option<LastKeyframe>,
    /// The [`YuvFrame::id`] of the picture encoded last, which the next
    /// picture's [`ChangeMap`] must be relative to; `None` after an error.
    last_picture: Option<u64>,
    /// Macroblocks the encoder was told were unchanged, over all frames.
    unchanged_mbs: u64,
    /// The macroblocks coded again since the last keyframe (as far as the
    /// change maps say).
    recoded: ChangeMap,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Encoder")
            .field("config", &self.config)
            .field("frames_encoded", &self.frames_encoded)
            .finish_non_exhaustive()
    }
}

impl H264Encoder {
    /// Creates and initialises an encoder for `config`.
    ///
    /// # Errors
    ///
    /// [`EncodeError::InvalidConfig`] for an invalid config,
    /// [`EncodeError::OpenH264`] when OpenH264 rejects it.
    pub fn new(config: EncoderConfig) -> Result<Self, EncodeError> {
        config.validate()?;
        let mut inner = Encoder::with_api_config(OpenH264API::from_source(), config.to_openh264())
            .map_err(|e| EncodeError::openh264("create", e))?;
        openh264_log::route_to_tracing(&mut inner);
        let size = FrameSize::new(config.width, config.height);
        let mut encoder = Self {
            gop_frames: config.gop_frames(),
            config,
            inner,
            frames_encoded: 0,
            stream_start: None,
            last_keyframe: None,
            last_picture: None,
            unchanged_mbs: 0,
            recoded: ChangeMap::everything(size),
        };
        encoder.probe()?;
        // After the probe (OpenH264 takes options once it has initialised
        // on a first picture), before the first real one, an IDR.
        encoder.set_option(
            ENCODER_OPTION_DESKREC_NO_DEBLOCKING,
            &mut 1i32,
            "deblocking off",
        )?;
        // The crate silences OpenH264 when it initialises; turn warnings back on.
        openh264_log::route_to_tracing(&mut encoder.inner);
        tracing::debug!(config = ?encoder.config, gop_frames = encoder.gop_frames, "H.264 encoder ready");
        Ok(encoder)
    }

    /// The settings this encoder was created with.
    #[must_use]
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Frames encoded so far (the probe frame not included).
    #[must_use]
    pub fn frames_encoded(&self) -> u64 {
        self.frames_encoded
    }

    /// Macroblocks encoded so far that their pictures' [`ChangeMap`]s said
    /// were unchanged, so OpenH264 did not compare them.
    #[must_use]
    pub fn unchanged_macroblocks(&self) -> u64 {
        self.unchanged_mbs
    }

    /// Converts one BGRA frame to I420 ([`YuvFrame`]) and encodes it;
    /// `force_keyframe` makes it an IDR whether or not one is due.
    ///
    /// # Errors
    ///
    /// [`EncodeError::SizeMismatch`] when the frame's size is not the
    /// configured one; [`EncodeError::OpenH264`], [`EncodeError::NoOutput`]
    /// or [`EncodeError::KeyframeNotProduced`] when OpenH264 misbehaves. The
    /// encoder stays usable after an error; a failed keyframe is retried on
    /// the next frame.
    pub fn encode(
        &mut self,
        frame: &Frame,
        force_keyframe: bool,
    ) -> Result<EncodedFrame, EncodeError> {
        let picture =
            YuvFrame::from_frame(frame).map_err(|e| EncodeError::Convert(e.to_string()))?;
        self.encode_yuv_frame(&picture, force_keyframe)
    }

    /// Encodes one picture already converted to I420 (what the recorder
    /// does: it converts as it captures); otherwise as [`encode`].
    ///
    /// # Errors
    ///
    /// As for [`encode`].
    ///
    /// [`encode`]: H264Encoder::encode
    pub fn encode_yuv_frame(
        &mut self,
        frame: &YuvFrame,
        force_keyframe: bool,
    ) -> Result<EncodedFrame, EncodeError> {
        self.check_size(frame.size())?;
        let want_keyframe = force_keyframe || self.keyframe_due(frame.captured_at());
        if want_keyframe {
            self.inner.force_intra_frame();
        }
        let timestamp = self.timestamp(frame.captured_at());
        let unchanged = match (want_keyframe, self.last_picture.take()) {
            (false, Some(last)) => frame.changes_since(last),
            _ => None,
        };
        let (data, frame_type) = self.encode_planes_with(frame, timestamp, unchanged)?;
        let keyframe = frame_type == FrameType::IDR;
        if data.is_empty() || !matches!(frame_type, FrameType::IDR | FrameType::I | FrameType::P) {
            return Err(EncodeError::NoOutput {
                frame_type: format!("{frame_type:?}"),
            });
        }
        if want_keyframe && !keyframe {
            return Err(EncodeError::KeyframeNotProduced {
                frame_type: format!("{frame_type:?}"),
            });
        }
        if keyframe {
            // Which rule made this IDR: a caller's request (segment start),
            // the GOP, or OpenH264 itself (its scene-change detection, which
            // screen-content mode cannot turn off).
            let reason = if force_keyframe {
                "requested"
            } else if want_keyframe {
                "gop"
            } else {
                "openh264 scene change"
            };
            tracing::debug!(
                frame = self.frames_encoded,
                bytes = data.len(),
                reason,
                recoded_mbs = self.recoded.changed_count(),
                "keyframe"
            );
        }
        self.record(frame.captured_at(), keyframe);
        self.last_picture = Some(frame.id());
        if keyframe {
            self.recoded = ChangeMap::unchanged(frame.size());
        } else if let Some(map) = unchanged {
            self.unchanged_mbs += (map.len() - map.changed_count()) as u64;
            self.recoded.merge(map);
        } else {
            self.recoded = ChangeMap::everything(frame.size());
        }
        Ok(EncodedFrame { data, keyframe })
    }

    /// Initialises OpenH264 with a black frame and throws the result away;
    /// the first real frame is then forced to be an IDR anyway.
    fn probe(&mut self) -> Result<(), EncodeError> {
        let size = FrameSize::new(self.config.width, self.config.height);
        self.encode_planes(&YuvFrame::black(size, Instant::now()), Timestamp::ZERO)
            .map_err(|e| match e {
                EncodeError::OpenH264 { source, .. } => EncodeError::OpenH264 {
                    context: "initialisation (probe frame)",
                    source,
                },
                other => other,
            })
            .map(drop)
    }

    fn check_size(&self, size: FrameSize) -> Result<(), EncodeError> {
        if size.width == self.config.width && size.height == self.config.height {
            return Ok(());
        }
        Err(EncodeError::SizeMismatch {
            frame_width: size.width,
            frame_height: size.height,
            width: self.config.width,
            height: self.config.height,
        })
    }

    /// Whether the GOP since the last keyframe has run out at `captured_at`.
    fn keyframe_due(&self, captured_at: Instant) -> bool {
        let Some(last) = self.last_keyframe else {
            return true;
        };
        let frames = self.frames_encoded - last.index;
        let elapsed = captured_at.saturating_duration_since(last.captured_at);
        let gop = u64::from(self.gop_frames);
        let by_frames = frames >= gop
            && (frames >= gop * u64::from(GOP_STRETCH)
                || self.recoded.changed_count() as f64
                    >= REFRESH_SHARE * self.recoded.len() as f64);
        by_frames
            || (self.config.gop_by_time
                && elapsed + self.config.gop_time_slack() >= self.config.gop)
    }

    /// Milliseconds since the stream's first frame, for OpenH264's rate
    /// control.
    fn timestamp(&mut self, captured_at: Instant) -> Timestamp {
        let start = *self.stream_start.get_or_insert(captured_at);
        let millis = captured_at.saturating_duration_since(start).as_millis();
        Timestamp::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
    }

    /// [`encode_planes`](Self::encode_planes), telling OpenH264 first
    /// which macroblocks `changes` says are unchanged since the picture
    /// encoded last (and taking that back after, whatever happened).
    fn encode_planes_with(
        &mut self,
        picture: &YuvFrame,
        timestamp: Timestamp,
        changes: Option<&ChangeMap>,
    ) -> Result<(Vec<u8>, FrameType), EncodeError> {
        let Some(changes) = changes else {
            return self.encode_planes(picture, timestamp);
        };
        let unchanged = changes.unchanged_bytes();
        self.set_unchanged_mbs(Some(&unchanged))?;
        let encoded = self.encode_planes(picture, timestamp);
        self.set_unchanged_mbs(None)?;
        encoded
    }

    /// Hands OpenH264 the unchanged-macroblock map (one byte a block, see
    /// `SDeskrecUnchangedMbs`), or takes it back.
    fn set_unchanged_mbs(&mut self, map: Option<&[u8]>) -> Result<(), EncodeError> {
        let mut option = SDeskrecUnchangedMbs {
            pUnchanged: map.map_or(std::ptr::null(), <[u8]>::as_ptr),
            iMbCount: map.map_or(0, |m| i32::try_from(m.len()).unwrap_or(i32::MAX)),
        };
        // OpenH264 keeps the map's pointer and reads it only in the
        // `EncodeFrame` that `encode_planes_with` makes right after, while
        // `map` is alive; the map is cleared before that returns.
        let what = "the unchanged-macroblock map";
        self.set_option(ENCODER_OPTION_DESKREC_UNCHANGED_MBS, &mut option, what)
    }

    /// Sets one of OpenH264's options to `value`.
    fn set_option<T>(
        &mut self,
        option: ENCODER_OPTION,
        value: &mut T,
        what: &str,
    ) -> Result<(), EncodeError> {
        // SAFETY: `option` is one whose argument is a `T` (the callers
        // pair them); OpenH264 reads it during the call only.
        let status = unsafe {
            self.inner
                .raw_api()
                .set_option(option, std::ptr::from_mut(value).cast())
        };
        if status != 0 {
            return Err(EncodeError::InvalidConfig(format!(
                "OpenH264 refused {what}: error {status}"
            )));
        }
        Ok(())
    }

    /// Runs OpenH264 on the current planes; returns Annex-B bytes and the
    /// frame type.
    fn encode_planes(
        &mut self,
        picture: &YuvFrame,
        timestamp: Timestamp,
    ) -> Result<(Vec<u8>, FrameType), EncodeError> {
        let (width, height) = (self.config.width as usize, self.config.height as usize);
        let source = YUVSlices::new(picture.planes(), (width, height), picture.strides());
        let stream = self
            .inner
            .encode_at(&source, timestamp)
            .map_err(|e| EncodeError::openh264("encode", e))?;
        Ok((stream.to_vec(), stream.frame_type()))
    }

    /// Updates the frame count and keyframe bookkeeping after a success.
    fn record(&mut self, captured_at: Instant, keyframe: bool) {
        if keyframe {
            self.last_keyframe = Some(LastKeyframe {
                index: self.frames_encoded,
                captured_at,
            });
        }
        self.frames_encoded += 1;
    }
}

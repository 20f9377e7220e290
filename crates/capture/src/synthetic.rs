//! A deterministic [`FrameSource`] for tests, demos and CI machines without a
//! display, and [`read_frame_number`] to recognise its pictures after a round
//! trip through H.264.
//!
//! # Picture
//!
//! Every picture is a function of its size and its *picture number* only:
//!
//! - the background is diagonal colour stripes that move 8 px per picture,
//!   with a white square that slides along the lower half: enough motion that
//!   every picture differs and the encoder has real work;
//! - over it, in the top-left corner, the picture number as a code of
//!   [`CODE_COLUMNS`] x [`CODE_ROWS`] black/white cells of [`CODE_CELL`] px
//!   (see [`read_frame_number`] for the layout). Cells that large survive
//!   H.264 at any sane bit rate.
//!
//! # Moving and still
//!
//! In [`Motion::Moving`] each frame shows the next picture number, so a
//! decoded frame says which captured frame it came from. In [`Motion::Still`]
//! every frame repeats the last picture (number included), as an idle desktop
//! would; frames keep their own capture times. The mode can change between
//! frames.

use std::time::{Duration, Instant};

use crate::frame::BYTES_PER_PIXEL;
use crate::{CaptureError, Frame, FrameSize, FrameSource};

/// Side of one code cell, in pixels.
pub const CODE_CELL: u32 = 32;
/// Code cells per row: one per bit of a 16-bit half of the number.
pub const CODE_COLUMNS: u32 = 16;
/// Code rows: high half, low half, and the complements of both.
pub const CODE_ROWS: u32 = 4;
/// Smallest picture a [`SyntheticSource`] draws: the code must fit.
pub const MIN_SIZE: FrameSize = FrameSize::new(CODE_COLUMNS * CODE_CELL, CODE_ROWS * CODE_CELL);
/// Largest width or height a [`SyntheticSource`] draws.
pub const MAX_SIDE: u32 = 16_384;

/// Black and white cells must differ by at least this much (0-255 scale) for
/// a code to count as read; black/white after H.264 differ by ~200.
const MIN_CONTRAST: i32 = 64;
/// Stripe width and speed of the moving background.
const STRIPE: u32 = 32;
const STRIPE_STEP: u32 = 8;
/// Side and speed of the sliding square.
const SQUARE: u32 = 64;
const SQUARE_STEP: u32 = 16;
/// Background stripe colours, as BGRA.
const PALETTE: [[u8; 4]; 6] = [
    [180, 90, 60, 255],
    [60, 160, 200, 255],
    [90, 180, 90, 255],
    [200, 200, 80, 255],
    [140, 70, 160, 255],
    [110, 110, 110, 255],
];
const WHITE: [u8; 4] = [255, 255, 255, 255];
const BLACK: [u8; 4] = [0, 0, 0, 255];

/// Whether the picture changes from one frame to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Motion {
    /// Each frame shows the next picture number.
    #[default]
    Moving,
    /// Each frame repeats the previous picture exactly.
    Still,
}

/// Where capture times come from.
#[derive(Debug, Clone, Copy)]
enum Clock {
    /// `Instant::now()` at each `next_frame`, like a real screen.
    Real,
    /// Frame `n` (counting every frame produced) at `start + n * interval`.
    Fixed { start: Instant, interval: Duration },
    /// Each frame at the last `start + n * interval` before it is taken,
    /// showing picture `n`.
    Grid { start: Instant, interval: Duration },
}

/// A [`FrameSource`] that draws numbered test pictures (see the module docs).
#[derive(Debug)]
pub struct SyntheticSource {
    /// Size of every frame.
    size: FrameSize,
    /// Whether the next frame shows a new picture.
    motion: Motion,
    /// Source of capture times.
    clock: Clock,
    /// Frames returned so far.
    produced: u64,
    /// The picture number of the last frame returned.
    last_picture: Option<u32>,
    /// A rendered picture kept in still mode, so repeats cost a copy only.
    still_cache: Option<(u32, Vec<u8>)>,
}

impl SyntheticSource {
    /// A moving source of `width` x `height` frames stamped with the real
    /// monotonic clock.
    ///
    /// # Errors
    ///
    /// [`CaptureError::InvalidSettings`] when the size is below [`MIN_SIZE`]
    /// or a side is above [`MAX_SIDE`].
    pub fn new(width: u32, height: u32) -> Result<Self, CaptureError> {
        let fits = (MIN_SIZE.width..=MAX_SIDE).contains(&width)
            && (MIN_SIZE.height..=MAX_SIDE).contains(&height);
        if !fits {
            return Err(CaptureError::InvalidSettings(format!(
                "synthetic frames must be from {MIN_SIZE} to {MAX_SIDE}x{MAX_SIDE}, not {width}x{height}"
            )));
        }
        Ok(Self {
            size: FrameSize::new(width, height),
            motion: Motion::Moving,
            clock: Clock::Real,
            produced: 0,
            last_picture: None,
            still_cache: None,
        })
    }

    /// Stamps frame `n` with `start + n * interval` instead of the real clock,
    /// so tests get exact, repeatable times (`interval` = 1 / frame rate).
    #[must_use]
    pub fn with_fixed_clock(mut self, start: Instant, interval: Duration) -> Self {
        self.clock = Clock::Fixed { start, interval };
        self
    }

    /// Stamps a frame taken between `start + n * interval` and the next
    /// such time with the first, and shows picture `n` (when moving): the
    /// pictures keep to real time, and those whose moment was not taken (a
    /// recorder that paused or stalled) are missing, as a real screen's
    /// moments would be. With [`with_fixed_clock`](Self::with_fixed_clock)
    /// they would move later instead.
    #[must_use]
    pub fn with_grid_clock(mut self, start: Instant, interval: Duration) -> Self {
        self.clock = Clock::Grid { start, interval };
        self
    }

    /// Starts in the given motion mode.
    #[must_use]
    pub fn with_motion(mut self, motion: Motion) -> Self {
        self.motion = motion;
        self
    }

    /// Switches between moving and still from the next frame on.
    pub fn set_motion(&mut self, motion: Motion) {
        self.motion = motion;
    }

    /// How many frames [`next_frame`](FrameSource::next_frame) has returned.
    #[must_use]
    pub fn frames_produced(&self) -> u64 {
        self.produced
    }

    /// The picture number the next frame will show.
    fn next_picture(&self) -> u32 {
        match (self.last_picture, self.motion) {
            (None, _) => 0,
            (Some(n), Motion::Still) => n,
            (Some(n), Motion::Moving) => n.wrapping_add(1),
        }
    }

    /// The pixels of `picture`, from the still-mode cache when possible.
    fn pixels(&mut self, picture: u32) -> Vec<u8> {
        if self.motion == Motion::Moving {
            self.still_cache = None;
            return render(self.size, picture);
        }
        match &self.still_cache {
            Some((n, pixels)) if *n == picture => pixels.clone(),
            _ => {
                let pixels = render(self.size, picture);
                self.still_cache = Some((picture, pixels.clone()));
                pixels
            }
        }
    }

    /// With the grid clock, the number of the grid time now is at or after.
    fn grid_slot(&self) -> Option<u32> {
        let Clock::Grid { start, interval } = self.clock else {
            return None;
        };
        let n = start.elapsed().as_nanos() / interval.as_nanos().max(1);
        Some(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Capture time of the frame about to be returned (`slot`: its grid
    /// time's number, with the grid clock).
    fn capture_time(&self, slot: Option<u32>) -> Instant {
        match self.clock {
            Clock::Real => Instant::now(),
            Clock::Fixed { start, interval } => {
                let n = u32::try_from(self.produced).unwrap_or(u32::MAX);
                start + interval * n
            }
            Clock::Grid { start, interval } => start + interval * slot.unwrap_or_default(),
        }
    }
}

impl FrameSource for SyntheticSource {
    fn size(&self) -> FrameSize {
        self.size
    }

    fn next_frame(&mut self) -> Result<Frame, CaptureError> {
        let slot = self.grid_slot();
        let picture = match (slot, self.motion) {
            (Some(n), Motion::Moving) => n,
            _ => self.next_picture(),
        };
        let pixels = self.pixels(picture);
        let stride = self.size.width as usize * BYTES_PER_PIXEL;
        let frame = Frame::new(
            self.size.width,
            self.size.height,
            stride,
            pixels,
            self.capture_time(slot),
        )?;
        self.last_picture = Some(picture);
        self.produced += 1;
        Ok(frame)
    }
}

/// Draws picture number `picture` as tightly packed BGRA (stride = width * 4).
///
/// The result depends only on `size` and `picture`. `size` must be at least
/// [`MIN_SIZE`] for the code to be complete.
#[must_use]
pub fn render(size: FrameSize, picture: u32) -> Vec<u8> {
    let stride = size.width as usize * BYTES_PER_PIXEL;
    let mut pixels = vec![0u8; stride * size.height as usize];
    draw_background(&mut pixels, size, picture);
    draw_square(&mut pixels, size, picture);
    draw_code(&mut pixels, size, picture);
    pixels
}

/// Diagonal stripes, shifted [`STRIPE_STEP`] px per picture.
fn draw_background(pixels: &mut [u8], size: FrameSize, picture: u32) {
    let shift = u64::from(picture) * u64::from(STRIPE_STEP);
    let row_bytes = size.width as usize * BYTES_PER_PIXEL;
    for (y, row) in pixels.chunks_exact_mut(row_bytes).enumerate() {
        for (x, px) in row.chunks_exact_mut(BYTES_PER_PIXEL).enumerate() {
            let band = (x as u64 + y as u64 + shift) / u64::from(STRIPE);
            px.copy_from_slice(&PALETTE[(band % PALETTE.len() as u64) as usize]);
        }
    }
}

/// A white square sliding right along the lower half, wrapping around.
fn draw_square(pixels: &mut [u8], size: FrameSize, picture: u32) {
    let side = SQUARE.min(size.width).min(size.height / 2);
    let travel = u64::from(size.width - side + 1);
    let x0 = (u64::from(picture) * u64::from(SQUARE_STEP) % travel) as u32;
    let y0 = size.height / 2;
    fill_rect(pixels, size, (x0, y0), (side, side), WHITE);
}

/// The picture number as black (0) and white (1) cells; see
/// [`read_frame_number`].
fn draw_code(pixels: &mut [u8], size: FrameSize, picture: u32) {
    for (row, bits) in code_rows(picture).into_iter().enumerate() {
        for column in 0..CODE_COLUMNS {
            let bit = bits >> (CODE_COLUMNS - 1 - column) & 1;
            let colour = if bit == 1 { WHITE } else { BLACK };
            let origin = (column * CODE_CELL, row as u32 * CODE_CELL);
            fill_rect(pixels, size, origin, (CODE_CELL, CODE_CELL), colour);
        }
    }
}

/// The 16-bit value each code row shows, top to bottom.
fn code_rows(number: u32) -> [u16; CODE_ROWS as usize] {
    let high = (number >> 16) as u16;
    let low = number as u16;
    [high, low, !high, !low]
}

/// Fills a rectangle (clipped to the picture) with one colour.
fn fill_rect(
    pixels: &mut [u8],
    size: FrameSize,
    origin: (u32, u32),
    extent: (u32, u32),
    colour: [u8; 4],
) {
    let x_end = (origin.0 + extent.0).min(size.width) as usize;
    let y_end = (origin.1 + extent.1).min(size.height) as usize;
    let row_bytes = size.width as usize * BYTES_PER_PIXEL;
    for y in origin.1 as usize..y_end {
        let row = &mut pixels[y * row_bytes..(y + 1) * row_bytes];
        for px in row[origin.0 as usize * BYTES_PER_PIXEL..x_end * BYTES_PER_PIXEL]
            .chunks_exact_mut(BYTES_PER_PIXEL)
        {
            px.copy_from_slice(&colour);
        }
    }
}

/// Reads the picture number from an 8-bit grey (luma) picture, e.g. a frame
/// decoded with `ffmpeg ... -f rawvideo -pix_fmt gray -`.
///
/// Expected layout: `gray` holds `height` rows of `width` bytes, one byte per
/// pixel, no padding (what `-pix_fmt gray` writes), with the code in the
/// top-left corner, unscaled:
///
/// - rows of [`CODE_CELL`] x [`CODE_CELL`] px cells, [`CODE_COLUMNS`] per row,
///   white = 1, black = 0, most significant bit on the left;
/// - row 0: bits 31-16 of the number, row 1: bits 15-0, rows 2 and 3: the
///   same bits inverted.
///
/// Each cell is read as the mean of its central 16 x 16 px, and each bit by
/// comparing its cell with the inverted cell, so the result does not depend on
/// the luma range (limited 16-235 or full 0-255) or on compression noise.
///
/// Returns `None` when the picture is smaller than [`MIN_SIZE`], `gray` is
/// too short, or any bit's two cells are too alike (no code there).
#[must_use]
pub fn read_frame_number(gray: &[u8], width: usize, height: usize) -> Option<u32> {
    let big_enough = width >= MIN_SIZE.width as usize && height >= MIN_SIZE.height as usize;
    if !big_enough || gray.len() < width.checked_mul(height)? {
        return None;
    }
    decode_code(|x, y| gray[y * width + x])
}

/// Reads the picture number from a BGRA [`Frame`], as [`read_frame_number`]
/// does from a grey picture (luma computed with BT.709 weights).
#[must_use]
pub fn read_frame_number_bgra(frame: &Frame) -> Option<u32> {
    if frame.width() < MIN_SIZE.width || frame.height() < MIN_SIZE.height {
        return None;
    }
    decode_code(|x, y| {
        let px = &frame.row(y as u32)[x * BYTES_PER_PIXEL..][..BYTES_PER_PIXEL];
        let (b, g, r) = (u32::from(px[0]), u32::from(px[1]), u32::from(px[2]));
        ((54 * r + 183 * g + 19 * b) >> 8) as u8
    })
}

/// Decodes the code from a luma sampler `luma(x, y)`; the caller guarantees
/// that the picture is at least [`MIN_SIZE`].
fn decode_code(luma: impl Fn(usize, usize) -> u8) -> Option<u32> {
    let cell_mean = |column: u32, row: u32| -> i32 {
        let inner = CODE_CELL / 2;
        let x0 = (column * CODE_CELL + CODE_CELL / 4) as usize;
        let y0 = (row * CODE_CELL + CODE_CELL / 4) as usize;
        let sum: u32 = (y0..y0 + inner as usize)
            .flat_map(|y| (x0..x0 + inner as usize).map(move |x| (x, y)))
            .map(|(x, y)| u32::from(luma(x, y)))
            .sum();
        (sum / (inner * inner)) as i32
    };
    let mut number = 0u32;
    for row in 0..2 {
        for column in 0..CODE_COLUMNS {
            let contrast = cell_mean(column, row) - cell_mean(column, row + 2);
            if contrast.abs() < MIN_CONTRAST {
                return None;
            }
            number = number << 1 | u32::from(contrast > 0);
        }
    }
    Some(number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Luma of a tightly packed BGRA buffer (as the decoder test sees it).
    fn to_gray(bgra: &[u8]) -> Vec<u8> {
        bgra.chunks_exact(4)
            .map(|p| {
                ((54 * u32::from(p[2]) + 183 * u32::from(p[1]) + 19 * u32::from(p[0])) >> 8) as u8
            })
            .collect()
    }

    #[test]
    fn rejects_sizes_that_cannot_hold_the_code() {
        assert!(SyntheticSource::new(MIN_SIZE.width - 1, 360).is_err());
        assert!(SyntheticSource::new(640, MIN_SIZE.height - 1).is_err());
        assert!(SyntheticSource::new(MIN_SIZE.width, MIN_SIZE.height).is_ok());
    }

    #[test]
    fn moving_frames_count_up_and_differ() {
        let mut source = SyntheticSource::new(640, 360).unwrap();
        let frames: Vec<Frame> = (0..3).map(|_| source.next_frame().unwrap()).collect();
        let numbers: Vec<_> = frames.iter().map(read_frame_number_bgra).collect();
        assert_eq!(numbers, [Some(0), Some(1), Some(2)]);
        assert!(!frames[0].same_picture(&frames[1]));
        assert_eq!(source.frames_produced(), 3);
    }

    #[test]
    fn still_frames_repeat_the_last_picture() {
        let mut source = SyntheticSource::new(640, 360).unwrap();
        let first = source.next_frame().unwrap();
        let second = source.next_frame().unwrap();
        source.set_motion(Motion::Still);
        let still: Vec<Frame> = (0..3).map(|_| source.next_frame().unwrap()).collect();
        assert!(still.iter().all(|f| f.same_picture(&second)));
        assert!(!first.same_picture(&second));
        source.set_motion(Motion::Moving);
        assert_eq!(
            read_frame_number_bgra(&source.next_frame().unwrap()),
            Some(2)
        );
    }

    #[test]
    fn fixed_clock_spaces_frames_evenly() {
        let start = Instant::now();
        let interval = Duration::from_millis(200);
        let mut source = SyntheticSource::new(640, 360)
            .unwrap()
            .with_fixed_clock(start, interval);
        let times: Vec<Instant> = (0..3)
            .map(|_| source.next_frame().unwrap().captured_at())
            .collect();
        assert_eq!(times, [start, start + interval, start + 2 * interval]);
    }

    #[test]
    fn the_grid_clock_keeps_pictures_to_real_time_and_skips_moments_not_taken() {
        let interval = Duration::from_millis(20);
        // Started 3.5 intervals ago: the next frame is picture 3, at 3.
        let start = Instant::now() - interval * 7 / 2;
        let mut source = SyntheticSource::new(640, 360)
            .unwrap()
            .with_grid_clock(start, interval);
        let first = source.next_frame().unwrap();
        assert_eq!(read_frame_number_bgra(&first), Some(3));
        assert_eq!(first.captured_at(), start + interval * 3);
        // Five intervals go by untaken: the next picture is 8 or later.
        std::thread::sleep(interval * 5);
        let later = source.next_frame().unwrap();
        let n = read_frame_number_bgra(&later).unwrap();
        assert!(n >= 8, "{n}");
        assert_eq!(later.captured_at(), start + interval * n);
    }

    #[test]
    fn rendering_is_deterministic() {
        let size = FrameSize::new(640, 360);
        assert_eq!(render(size, 1234), render(size, 1234));
        assert_ne!(render(size, 1234), render(size, 1235));
    }

    #[test]
    fn no_code_in_a_flat_picture() {
        assert_eq!(read_frame_number(&vec![128; 640 * 360], 640, 360), None);
        assert_eq!(read_frame_number(&[0; 100], 640, 360), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Any number survives render -> luma -> read, also with the luma
        /// squeezed into limited range and noise added.
        #[test]
        fn code_round_trips(number: u32, noise in 0u8..40) {
            let size = MIN_SIZE;
            let gray: Vec<u8> = to_gray(&render(size, number))
                .iter()
                .enumerate()
                .map(|(i, &y)| {
                    let limited = 16 + u32::from(y) * 219 / 255;
                    let jitter = (i as u32).wrapping_mul(2_654_435_761) >> 24 & u32::from(noise);
                    (limited + jitter).min(255) as u8
                })
                .collect();
            prop_assert_eq!(read_frame_number(&gray, size.width as usize, size.height as usize), Some(number));
        }
    }
}

//! Pictures converted for the encoder ([`YuvFrame`]).
//!
//! The recorder converts each capture as soon as it is taken and keeps only
//! the converted picture: I420 holds 12 bits a pixel where BGRA holds 32, so
//! the pictures it has to hold at once (the last one sent, the ones queued
//! for the encoder) take 3 MiB each at 1080p instead of 8. A source that
//! can convert straight from its own buffer (X11's shared memory) skips the
//! BGRA copy altogether ([`FrameSource::next_yuv_frame`]).
//!
//! [`FrameSource::next_yuv_frame`]: crate::FrameSource::next_yuv_frame

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use yuvutils_rs::{
    YuvChromaSubsampling, YuvConversionMode, YuvPlanarImageMut, YuvRange, YuvStandardMatrix,
    bgra_to_yuv420,
};

use crate::CaptureError;
use crate::change::ChangeMap;
use crate::frame::{Frame, FrameSize};

/// The next [`YuvFrame::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Luma of black in limited range.
const BLACK_Y: u8 = 16;
/// Chroma of any grey.
const NEUTRAL_CHROMA: u8 = 128;

/// One captured picture in I420 (BT.709 matrix, limited range: what the
/// encoder signals in the stream), the moment it was captured and, when its
/// source knows, where it differs from the picture before it.
pub struct YuvFrame {
    /// Unique in the process: what a later picture's changes are relative
    /// to.
    id: u64,
    size: FrameSize,
    image: YuvPlanarImageMut<'static, u8>,
    captured_at: Instant,
    /// The blocks that may differ from the picture whose id is `.0`.
    changes: Option<(u64, ChangeMap)>,
}

impl YuvFrame {
    /// Converts `height` rows of `width` BGRA pixels, `stride` bytes apart.
    ///
    /// # Errors
    ///
    /// [`CaptureError::InvalidFrame`] when the buffer does not hold such a
    /// picture (the same checks as [`Frame::new`]).
    pub fn from_bgra(
        size: FrameSize,
        stride: usize,
        pixels: &[u8],
        captured_at: Instant,
    ) -> Result<Self, CaptureError> {
        crate::frame::check_layout(size.width, size.height, stride, pixels.len())?;
        let mut image =
            YuvPlanarImageMut::alloc(size.width, size.height, YuvChromaSubsampling::Yuv420);
        // `check_layout` made sure the stride fits in 32 bits.
        let stride =
            u32::try_from(stride).map_err(|e| CaptureError::InvalidFrame(e.to_string()))?;
        bgra_to_yuv420(
            &mut image,
            pixels,
            stride,
            YuvRange::Limited,
            YuvStandardMatrix::Bt709,
            YuvConversionMode::Balanced,
        )
        .map_err(|e| CaptureError::InvalidFrame(format!("converting to I420: {e}")))?;
        Ok(Self::new(size, image, captured_at))
    }

    fn new(size: FrameSize, image: YuvPlanarImageMut<'static, u8>, captured_at: Instant) -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            size,
            image,
            captured_at,
            changes: None,
        }
    }

    /// This picture's id, unique in the process.
    #[must_use]
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Says where this picture differs from picture `since` (an
    /// [`id`](Self::id)): nowhere outside `map`'s changed blocks, sample
    /// for sample. A map of another grid is ignored.
    #[must_use]
    pub fn with_changes(mut self, since: u64, map: ChangeMap) -> Self {
        if map.grid() == ChangeMap::unchanged(self.size).grid() {
            self.changes = Some((since, map));
        }
        self
    }

    /// Where this picture differs from picture `id`, if that is known:
    /// `None` means anywhere.
    #[must_use]
    pub fn changes_since(&self, id: u64) -> Option<&ChangeMap> {
        match &self.changes {
            Some((since, map)) if *since == id => Some(map),
            _ => None,
        }
    }

    /// Converts a BGRA frame.
    ///
    /// # Errors
    ///
    /// As [`YuvFrame::from_bgra`] (a [`Frame`] is always valid, so only if
    /// the converter itself fails).
    pub fn from_frame(frame: &Frame) -> Result<Self, CaptureError> {
        Self::from_bgra(
            frame.size(),
            frame.stride(),
            frame.pixels(),
            frame.captured_at(),
        )
    }

    /// An all-black picture (the encoder's probe frame).
    #[must_use]
    pub fn black(size: FrameSize, captured_at: Instant) -> Self {
        let mut image =
            YuvPlanarImageMut::alloc(size.width, size.height, YuvChromaSubsampling::Yuv420);
        image.y_plane.borrow_mut().fill(BLACK_Y);
        image.u_plane.borrow_mut().fill(NEUTRAL_CHROMA);
        image.v_plane.borrow_mut().fill(NEUTRAL_CHROMA);
        Self::new(size, image, captured_at)
    }

    /// Picture size in pixels.
    #[must_use]
    pub fn size(&self) -> FrameSize {
        self.size
    }

    /// When the picture was captured.
    #[must_use]
    pub fn captured_at(&self) -> Instant {
        self.captured_at
    }

    /// Whether both pictures have the same size and the same samples
    /// (capture time not compared): an unchanged screen need not be encoded.
    #[must_use]
    pub fn same_picture(&self, other: &YuvFrame) -> bool {
        self.size == other.size && self.planes() == other.planes()
    }

    /// The Y, U and V planes.
    #[must_use]
    pub fn planes(&self) -> (&[u8], &[u8], &[u8]) {
        (
            self.image.y_plane.borrow(),
            self.image.u_plane.borrow(),
            self.image.v_plane.borrow(),
        )
    }

    /// Bytes from one row to the next in each plane.
    #[must_use]
    pub fn strides(&self) -> (usize, usize, usize) {
        (
            self.image.y_stride as usize,
            self.image.u_stride as usize,
            self.image.v_stride as usize,
        )
    }
}

impl fmt::Debug for YuvFrame {
    /// Prints the size, not the megabytes of samples.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("YuvFrame")
            .field("id", &self.id)
            .field("size", &self.size)
            .field("captured_at", &self.captured_at)
            .field("changes", &self.changes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bgra(width: u32, height: u32, colour: [u8; 4]) -> Frame {
        let pixels = colour.repeat((width * height) as usize);
        Frame::new(width, height, width as usize * 4, pixels, Instant::now()).unwrap()
    }

    #[test]
    fn converts_with_the_bt709_limited_matrix() {
        let white = YuvFrame::from_frame(&bgra(16, 8, [255, 255, 255, 255])).unwrap();
        let (y, u, v) = white.planes();
        assert_eq!((y.len(), u.len(), v.len()), (128, 32, 32));
        assert!(y.iter().all(|&s| s == 235), "white is 235 in limited range");
        assert!(u.iter().chain(v).all(|&s| s == 128));
        // Pure red: Y = 16 + 219 * 0.2126 = 62.6 with BT.709 (BT.601 gives 81).
        let red = YuvFrame::from_frame(&bgra(16, 8, [0, 0, 255, 255])).unwrap();
        let y = red.planes().0[0];
        assert!((62..=64).contains(&y), "red luma {y}");
    }

    #[test]
    fn same_picture_compares_samples_and_size() {
        let a = YuvFrame::from_frame(&bgra(16, 8, [10, 20, 30, 0])).unwrap();
        let b = YuvFrame::from_frame(&bgra(16, 8, [10, 20, 30, 255])).unwrap();
        let c = YuvFrame::from_frame(&bgra(16, 8, [10, 20, 90, 0])).unwrap();
        let d = YuvFrame::from_frame(&bgra(16, 16, [10, 20, 30, 0])).unwrap();
        assert!(a.same_picture(&b), "alpha is ignored");
        assert!(!a.same_picture(&c));
        assert!(!a.same_picture(&d));
    }

    #[test]
    fn a_short_buffer_is_an_invalid_frame() {
        let err = YuvFrame::from_bgra(FrameSize::new(16, 8), 64, &[0; 100], Instant::now());
        assert!(matches!(err, Err(CaptureError::InvalidFrame(_))), "{err:?}");
    }
}

//! Captured pictures ([`Frame`]) and the trait every capture source
//! implements ([`FrameSource`]).

use std::fmt;
use std::time::Instant;

use crate::CaptureError;
use crate::yuv::YuvFrame;

/// Bytes per BGRA pixel.
pub const BYTES_PER_PIXEL: usize = 4;

/// Width and height of a picture, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameSize {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl FrameSize {
    /// A size of `width` x `height` pixels.
    #[must_use]
    pub const fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }
}

impl fmt::Display for FrameSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// One captured picture: BGRA pixels and the moment it was captured.
///
/// Pixel layout: rows top to bottom, `stride` bytes apart; each pixel is four
/// bytes in the order blue, green, red, alpha (what X11 ZPixmaps of depth
/// 24/32 and Windows `B8G8R8A8` textures hold). Alpha is ignored. Bytes past
/// `width * 4` in a row are padding and are never read.
///
/// The fields are checked once, in [`Frame::new`], so the encoder can trust
/// them.
#[derive(Clone)]
pub struct Frame {
    /// Picture size in pixels.
    size: FrameSize,
    /// Bytes from the start of one row to the start of the next.
    stride: usize,
    /// BGRA pixels; at least `stride * (height - 1) + width * 4` bytes.
    pixels: Vec<u8>,
    /// When the picture was taken, on the monotonic clock. Encoders and
    /// segment writers turn it into stream time.
    captured_at: Instant,
}

impl Frame {
    /// Wraps a BGRA buffer after checking that it holds `height` rows of
    /// `width` pixels, `stride` bytes apart.
    ///
    /// # Errors
    ///
    /// [`CaptureError::InvalidFrame`] when the size is zero, the stride is
    /// shorter than a row, or the buffer is too short.
    pub fn new(
        width: u32,
        height: u32,
        stride: usize,
        pixels: Vec<u8>,
        captured_at: Instant,
    ) -> Result<Self, CaptureError> {
        check_layout(width, height, stride, pixels.len())?;
        Ok(Self {
            size: FrameSize::new(width, height),
            stride,
            pixels,
            captured_at,
        })
    }

    /// Width in pixels.
    #[must_use]
    pub fn width(&self) -> u32 {
        self.size.width
    }

    /// Height in pixels.
    #[must_use]
    pub fn height(&self) -> u32 {
        self.size.height
    }

    /// Width and height.
    #[must_use]
    pub fn size(&self) -> FrameSize {
        self.size
    }

    /// Bytes from the start of one row to the start of the next.
    #[must_use]
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The whole BGRA buffer, padding included (see the type's docs).
    #[must_use]
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The `width * 4` bytes of row `y` (0 = top), without padding.
    ///
    /// # Panics
    ///
    /// When `y >= height`.
    #[must_use]
    pub fn row(&self, y: u32) -> &[u8] {
        assert!(y < self.size.height, "row {y} out of {}", self.size.height);
        let start = y as usize * self.stride;
        &self.pixels[start..start + self.size.width as usize * BYTES_PER_PIXEL]
    }

    /// When the picture was captured (monotonic clock).
    #[must_use]
    pub fn captured_at(&self) -> Instant {
        self.captured_at
    }

    /// Whether both frames have the same size and the same visible pixels
    /// (padding and capture time are not compared). A cheap way to skip
    /// unchanged frames.
    #[must_use]
    pub fn same_picture(&self, other: &Frame) -> bool {
        self.size == other.size && (0..self.size.height).all(|y| self.row(y) == other.row(y))
    }

    /// Gives the pixel buffer back, e.g. to reuse it for the next capture.
    #[must_use]
    pub fn into_pixels(self) -> Vec<u8> {
        self.pixels
    }
}

impl fmt::Debug for Frame {
    /// Prints the layout, not the megabytes of pixels.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("size", &self.size)
            .field("stride", &self.stride)
            .field("len", &self.pixels.len())
            .field("captured_at", &self.captured_at)
            .finish()
    }
}

/// Checks that `len` bytes hold `height` rows of `width` BGRA pixels.
pub(crate) fn check_layout(
    width: u32,
    height: u32,
    stride: usize,
    len: usize,
) -> Result<(), CaptureError> {
    let invalid = |msg: String| Err(CaptureError::InvalidFrame(msg));
    if width == 0 || height == 0 {
        return invalid(format!("empty frame {width}x{height}"));
    }
    let row_bytes = width as usize * BYTES_PER_PIXEL;
    if stride < row_bytes {
        return invalid(format!(
            "stride {stride} is shorter than a row of {row_bytes} bytes"
        ));
    }
    if u32::try_from(stride).is_err() {
        return invalid(format!("stride {stride} does not fit in 32 bits"));
    }
    let needed = (height as usize - 1)
        .checked_mul(stride)
        .and_then(|n| n.checked_add(row_bytes));
    match needed {
        Some(needed) if len >= needed => Ok(()),
        Some(needed) => invalid(format!(
            "buffer of {len} bytes, {width}x{height} needs {needed}"
        )),
        None => invalid(format!("{width}x{height} with stride {stride} overflows")),
    }
}

/// One monitor of the desktop, in desktop pixels (the coordinate space of
/// the frames a [`FrameSource`] returns: 0,0 is the frame's top-left pixel).
///
/// Recorders store the layout with each segment, so a player can tell which
/// part of a multi-monitor frame showed on which screen, and compare it
/// between frames to notice monitors being added, removed or moved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Monitor {
    /// The name the platform gives the monitor (X11: the RandR monitor name,
    /// usually the output name such as `"HDMI-1"`).
    pub name: String,
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Whether this is the primary monitor (at most one is).
    pub primary: bool,
}

impl Monitor {
    /// A single primary monitor named `"screen"` that covers a whole desktop
    /// of `size`: the layout of a source that knows no better.
    #[must_use]
    pub fn whole(size: FrameSize) -> Self {
        Self {
            name: "screen".to_owned(),
            x: 0,
            y: 0,
            width: size.width,
            height: size.height,
            primary: true,
        }
    }
}

/// A producer of frames: the X11 and Windows screen grabbers and the
/// [`SyntheticSource`](crate::SyntheticSource) used in tests and demos.
///
/// The recorder calls [`next_frame`](FrameSource::next_frame) once per tick of
/// its own timer (the policy frame rate); a source does not pace itself.
/// Sources are used from one capture thread; they need not be `Sync`.
pub trait FrameSource {
    /// The size of the frames the next call to `next_frame` is expected to
    /// return. Screens can be reconfigured while recording: a frame's own
    /// [`Frame::size`] is authoritative, and a change means the encoder must
    /// be recreated.
    fn size(&self) -> FrameSize;

    /// Captures the current picture.
    ///
    /// # Errors
    ///
    /// A [`CaptureError`]; [`CaptureError::Closed`] means no further frame
    /// will come from this source; [`CaptureError::LayoutChanged`] means the
    /// screen size or monitor layout changed: the source has already adapted,
    /// and the next call returns frames of the new [`size`](FrameSource::size)
    /// (the recorder starts a new segment and encoder).
    fn next_frame(&mut self) -> Result<Frame, CaptureError>;

    /// Captures the current picture, converted for the encoder: what the
    /// recorder calls. The default converts [`next_frame`]'s picture; a
    /// source that can convert from its own buffer saves the BGRA copy.
    ///
    /// # Errors
    ///
    /// As for `next_frame`.
    ///
    /// [`next_frame`]: FrameSource::next_frame
    fn next_yuv_frame(&mut self) -> Result<YuvFrame, CaptureError> {
        YuvFrame::from_frame(&self.next_frame()?)
    }

    /// Whether the picture may have changed since the last frame
    /// [`next_frame`](FrameSource::next_frame) returned; call it once per
    /// tick, before `next_frame`.
    ///
    /// `Ok(false)` promises that the screen still shows exactly the last
    /// frame's picture, so the recorder can repeat that frame (keeping the
    /// timeline exact) without capturing or encoding anything. `Ok(true)`
    /// means "capture": it is always the answer before the first frame and
    /// after a layout change, and may be a false alarm (a window redrawn
    /// with the same pixels).
    ///
    /// The default, for sources that cannot tell cheaply, is always `true`.
    ///
    /// # Errors
    ///
    /// As for `next_frame`, including [`CaptureError::LayoutChanged`].
    fn changed_since_last(&mut self) -> Result<bool, CaptureError> {
        Ok(true)
    }

    /// The monitors the frames show, in frame coordinates. The default is
    /// one monitor covering [`size`](FrameSource::size).
    fn layout(&self) -> Vec<Monitor> {
        vec![Monitor::whole(self.size())]
    }
}

impl<S: FrameSource + ?Sized> FrameSource for Box<S> {
    fn size(&self) -> FrameSize {
        (**self).size()
    }

    fn next_frame(&mut self) -> Result<Frame, CaptureError> {
        (**self).next_frame()
    }

    fn next_yuv_frame(&mut self) -> Result<YuvFrame, CaptureError> {
        (**self).next_yuv_frame()
    }

    fn changed_since_last(&mut self) -> Result<bool, CaptureError> {
        (**self).changed_since_last()
    }

    fn layout(&self) -> Vec<Monitor> {
        (**self).layout()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(width: u32, height: u32, stride: usize, len: usize) -> Result<Frame, CaptureError> {
        Frame::new(width, height, stride, vec![0; len], Instant::now())
    }

    #[test]
    fn accepts_tight_and_padded_buffers() {
        assert!(frame(4, 2, 16, 32).is_ok());
        // Last row needs no padding.
        assert!(frame(4, 2, 20, 36).is_ok());
    }

    #[test]
    fn rejects_bad_layouts() {
        assert!(frame(0, 2, 16, 32).is_err());
        assert!(frame(4, 0, 16, 32).is_err());
        assert!(frame(4, 2, 15, 32).is_err());
        assert!(frame(4, 2, 20, 35).is_err());
    }

    #[test]
    fn row_skips_padding() {
        let mut pixels = vec![0u8; 20 + 16];
        pixels[20..36].fill(7);
        let f = Frame::new(4, 2, 20, pixels, Instant::now()).unwrap();
        assert_eq!(f.row(0), &[0u8; 16]);
        assert_eq!(f.row(1), &[7u8; 16]);
    }

    #[test]
    fn same_picture_ignores_padding_and_time() {
        let a = Frame::new(
            1,
            2,
            8,
            vec![1, 1, 1, 1, 9, 9, 9, 9, 2, 2, 2, 2],
            Instant::now(),
        );
        let b = Frame::new(
            1,
            2,
            8,
            vec![1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 2, 2],
            Instant::now(),
        );
        let c = Frame::new(
            1,
            2,
            8,
            vec![1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 2, 3],
            Instant::now(),
        );
        let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
        assert!(a.same_picture(&b));
        assert!(!a.same_picture(&c));
    }
}

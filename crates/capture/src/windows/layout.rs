//! The virtual desktop as one picture: where each monitor goes in the frame
//! ([`DesktopLayout`]) and the composed picture itself ([`Canvas`]).
//!
//! Pure arithmetic on rectangles and byte buffers, compiled and tested on
//! every platform; the Windows source feeds it `GetMonitorInfoW` rectangles
//! and per-monitor captures.

use std::time::Instant;

use crate::frame::BYTES_PER_PIXEL;
use crate::{CaptureError, ChangeMap, Frame, FrameSize, Monitor, YuvFrame};

use super::blank::{BLANK_BGRA, GAP_BGRA};

/// Longest side of a composed desktop. Far above any real layout (eight 4K
/// monitors in a row are 30 720 px); a larger one means corrupt rectangles,
/// and would need a frame of gigabytes.
pub const MAX_DESKTOP_SIDE: u32 = 32_768;

/// A monitor as Windows reports it: its rectangle on the virtual desktop
/// (`MONITORINFO::rcMonitor`, in physical pixels for a per-monitor DPI aware
/// process; left/top may be negative for monitors left of or above the
/// primary one) and its GDI device name (`\\.\DISPLAY1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorRect {
    /// GDI device name, unique among the active monitors.
    pub name: String,
    /// Left edge, inclusive.
    pub left: i32,
    /// Top edge, inclusive.
    pub top: i32,
    /// Right edge, exclusive.
    pub right: i32,
    /// Bottom edge, exclusive.
    pub bottom: i32,
    /// Whether Windows calls it the primary monitor (`MONITORINFOF_PRIMARY`).
    pub primary: bool,
}

/// The part of the frame one monitor's picture covers, already clipped to
/// the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Left edge in the frame.
    pub x: u32,
    /// Top edge in the frame.
    pub y: u32,
    /// Width in pixels (may be less than the monitor's: the frame is cropped
    /// to an even size).
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Placement {
    /// The rectangle from `left`, `top` (inclusive) to `right`, `bottom`
    /// (exclusive), as Windows' `RECT`s give it, with what lies left of or
    /// above 0 cut off; `None` when nothing is left of it.
    #[must_use]
    pub fn from_edges(left: i32, top: i32, right: i32, bottom: i32) -> Option<Self> {
        let (x, y) = (left.max(0), top.max(0));
        let width = u32::try_from(right.checked_sub(x)?)
            .ok()
            .filter(|&w| w > 0)?;
        let height = u32::try_from(bottom.checked_sub(y)?)
            .ok()
            .filter(|&h| h > 0)?;
        // Both are at least 0.
        Some(Self {
            x: x.unsigned_abs(),
            y: y.unsigned_abs(),
            width,
            height,
        })
    }
}

/// The monitors of the virtual desktop laid out in one frame.
///
/// The frame covers the bounding box of all monitors, moved so that its
/// top-left corner is 0,0 (monitors left of or above the primary one have
/// negative Windows coordinates), and cropped to even width and height as
/// H.264 needs: an odd-sized desktop loses its last column or row. Areas of
/// the bounding box that no monitor covers (monitors of different sizes)
/// stay [`GAP_BGRA`].
///
/// Two layouts are equal when the recorder would need the same frames, so
/// comparing the current layout with the last one detects monitors being
/// added, removed, moved or resized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesktopLayout {
    /// Virtual-desktop coordinates of the frame's top-left pixel.
    origin: (i32, i32),
    /// The frame size (even).
    size: FrameSize,
    /// Monitors in frame coordinates: primary first, then top to bottom,
    /// left to right.
    monitors: Vec<Monitor>,
}

impl DesktopLayout {
    /// Lays out `rects`. Empty rectangles (which Windows reports for no
    /// active monitor, but corrupt data could) are left out.
    ///
    /// # Errors
    ///
    /// [`CaptureError::Backend`] when no monitor with an area remains, or
    /// the desktop is larger than [`MAX_DESKTOP_SIDE`] on a side (or smaller
    /// than 2x2, which an even crop would leave empty).
    pub fn new(rects: &[MonitorRect]) -> Result<Self, CaptureError> {
        let rects: Vec<&MonitorRect> = rects
            .iter()
            .filter(|r| r.right > r.left && r.bottom > r.top)
            .collect();
        let (Some(left), Some(top), Some(right), Some(bottom)) = (
            rects.iter().map(|r| r.left).min(),
            rects.iter().map(|r| r.top).min(),
            rects.iter().map(|r| r.right).max(),
            rects.iter().map(|r| r.bottom).max(),
        ) else {
            return Err(layout_error(
                "Windows reports no monitor (a service session, or a remote session \
                 without a display?)",
            ));
        };
        let side = |from: i32, to: i32| u32::try_from(i64::from(to) - i64::from(from)).ok();
        // Both are positive: every rectangle has right > left, bottom > top.
        let width = side(left, right).unwrap_or(u32::MAX);
        let height = side(top, bottom).unwrap_or(u32::MAX);
        if width > MAX_DESKTOP_SIDE || height > MAX_DESKTOP_SIDE {
            return Err(layout_error(format!(
                "the desktop is {width}x{height} px, larger than {MAX_DESKTOP_SIDE} px on a side"
            )));
        }
        let size = FrameSize::new(width & !1, height & !1);
        if size.width == 0 || size.height == 0 {
            return Err(layout_error(format!(
                "the desktop is {width}x{height} px, too small for a video frame"
            )));
        }
        let mut monitors: Vec<Monitor> = rects
            .iter()
            .map(|r| Monitor {
                name: r.name.clone(),
                // In range: each rectangle lies inside the bounding box,
                // whose sides were checked above.
                x: (i64::from(r.left) - i64::from(left)) as i32,
                y: (i64::from(r.top) - i64::from(top)) as i32,
                width: side(r.left, r.right).unwrap_or(0),
                height: side(r.top, r.bottom).unwrap_or(0),
                primary: r.primary,
            })
            .collect();
        monitors.sort_by_key(|m| (!m.primary, m.y, m.x));
        Ok(Self {
            origin: (left, top),
            size,
            monitors,
        })
    }

    /// The size of the composed frames.
    #[must_use]
    pub fn frame_size(&self) -> FrameSize {
        self.size
    }

    /// The monitors in frame coordinates, primary first.
    #[must_use]
    pub fn monitors(&self) -> &[Monitor] {
        &self.monitors
    }

    /// Virtual-desktop coordinates of the frame's top-left pixel.
    #[must_use]
    pub fn origin(&self) -> (i32, i32) {
        self.origin
    }

    /// Where the monitor with GDI device name `name` goes in the frame,
    /// clipped to the frame; `None` for a monitor that is not part of this
    /// layout or lies wholly in the cropped-off last column or row.
    #[must_use]
    pub fn placement(&self, name: &str) -> Option<Placement> {
        let m = self.monitors.iter().find(|m| m.name == name)?;
        placement_of(m, self.size)
    }
}

/// `m` clipped to a frame of `size`.
fn placement_of(m: &Monitor, size: FrameSize) -> Option<Placement> {
    let x = u32::try_from(m.x).ok()?;
    let y = u32::try_from(m.y).ok()?;
    let width = m.width.min(size.width.checked_sub(x)?);
    let height = m.height.min(size.height.checked_sub(y)?);
    (width > 0 && height > 0).then_some(Placement {
        x,
        y,
        width,
        height,
    })
}

fn layout_error(message: impl Into<String>) -> CaptureError {
    CaptureError::Backend {
        backend: "windows",
        source: message.into().into(),
    }
}

/// A borrowed BGRA picture: `size` pixels in rows `stride` bytes apart, e.g.
/// a mapped Direct3D staging texture (whose row pitch exceeds `width * 4`).
#[derive(Debug, Clone, Copy)]
pub struct Picture<'a> {
    /// The pixels; at least `stride * (height - 1) + width * 4` bytes.
    pub pixels: &'a [u8],
    /// Bytes from one row to the next.
    pub stride: usize,
    /// Width and height.
    pub size: FrameSize,
}

/// The composed desktop picture, kept between frames: each monitor's area is
/// rewritten only when that monitor has a new picture (and only in the
/// parts that changed, where Windows says which), so monitors that did not
/// change cost nothing. It remembers what it drew on since its last
/// [`YuvFrame`], which converts only that and says so.
#[derive(Debug, Clone)]
pub struct Canvas {
    size: FrameSize,
    /// Tightly packed BGRA rows (stride = `width * 4`).
    pixels: Vec<u8>,
    /// The blocks drawn on since `last_picture` (everything before the
    /// first).
    changes: ChangeMap,
    /// The last [`next_yuv_frame`](Canvas::next_yuv_frame) picture.
    last_picture: Option<YuvFrame>,
}

impl Canvas {
    /// A canvas for `layout`: every monitor's area [`BLANK_BGRA`] (nothing
    /// captured yet), the gaps between monitors [`GAP_BGRA`].
    #[must_use]
    pub fn new(layout: &DesktopLayout) -> Self {
        let size = layout.frame_size();
        let mut canvas = Self {
            size,
            pixels: GAP_BGRA.repeat(size.width as usize * size.height as usize),
            changes: ChangeMap::everything(size),
            last_picture: None,
        };
        for m in layout.monitors() {
            if let Some(p) = placement_of(m, size) {
                canvas.fill(p, BLANK_BGRA);
            }
        }
        canvas
    }

    /// Fills the area `p` with one colour.
    pub fn fill(&mut self, p: Placement, colour: [u8; 4]) {
        self.mark(p);
        for row in self.rows_mut(p) {
            for px in row.chunks_exact_mut(BYTES_PER_PIXEL) {
                px.copy_from_slice(&colour);
            }
        }
    }

    /// Fills the whole canvas with one colour.
    pub fn fill_all(&mut self, colour: [u8; 4]) {
        self.changes = ChangeMap::everything(self.size);
        for px in self.pixels.chunks_exact_mut(BYTES_PER_PIXEL) {
            px.copy_from_slice(&colour);
        }
    }

    /// Copies `src` into the area `p`, top-left aligned. Only the overlap is
    /// copied: a picture larger than the area (a monitor resized a moment
    /// ago, before the layout caught up) is cut, a smaller one leaves the
    /// rest of the area as it was.
    ///
    /// # Errors
    ///
    /// [`CaptureError::InvalidFrame`] when `src.pixels` is shorter than its
    /// size and stride promise (nothing is copied then).
    pub fn blit(&mut self, p: Placement, src: Picture<'_>) -> Result<(), CaptureError> {
        let whole = Placement {
            x: 0,
            y: 0,
            width: src.size.width,
            height: src.size.height,
        };
        self.blit_parts(p, src, &[whole])
    }

    /// Copies only the `parts` of `src` (rectangles in its own pixels, such
    /// as the dirty rectangles Windows reports) into the area `p`, as
    /// [`blit`](Canvas::blit) copies all of it.
    ///
    /// # Errors
    ///
    /// As [`blit`](Canvas::blit).
    pub fn blit_parts(
        &mut self,
        p: Placement,
        src: Picture<'_>,
        parts: &[Placement],
    ) -> Result<(), CaptureError> {
        let width = p.width.min(src.size.width);
        let height = p.height.min(src.size.height);
        if width == 0 || height == 0 {
            return Ok(());
        }
        let (width, height) = (width as usize, height as usize);
        let row_bytes = width * BYTES_PER_PIXEL;
        let needed = (height - 1)
            .checked_mul(src.stride)
            .and_then(|n| n.checked_add(row_bytes));
        if src.stride < row_bytes || needed.is_none_or(|n| src.pixels.len() < n) {
            return Err(CaptureError::InvalidFrame(format!(
                "monitor picture of {} bytes with stride {} cannot hold {width}x{height} px",
                src.pixels.len(),
                src.stride
            )));
        }
        for part in parts {
            // The part, clipped to what is copied at all.
            let x0 = (part.x as usize).min(width);
            let x1 = (part.x.saturating_add(part.width) as usize).min(width);
            let y0 = (part.y as usize).min(height);
            let y1 = (part.y.saturating_add(part.height) as usize).min(height);
            if x0 == x1 || y0 == y1 {
                continue;
            }
            // All four below the area's u32 sides.
            let area = Placement {
                x: p.x + x0 as u32,
                y: p.y + y0 as u32,
                width: (x1 - x0) as u32,
                height: (y1 - y0) as u32,
            };
            self.mark(area);
            let src_rows = src.pixels[y0 * src.stride..].chunks(src.stride);
            for (dst, src_row) in self.rows_mut(area).zip(src_rows) {
                dst.copy_from_slice(&src_row[x0 * BYTES_PER_PIXEL..x1 * BYTES_PER_PIXEL]);
            }
        }
        Ok(())
    }

    /// The picture as a [`YuvFrame`] captured at `captured_at`: only the
    /// blocks drawn on since the last one are converted, and the picture
    /// says which they are ([`YuvFrame::changes_since`] the last one).
    ///
    /// # Errors
    ///
    /// None in practice: the canvas always holds a valid layout.
    pub fn next_yuv_frame(&mut self, captured_at: Instant) -> Result<YuvFrame, CaptureError> {
        let changes = std::mem::replace(&mut self.changes, ChangeMap::unchanged(self.size));
        let picture = YuvFrame::converted(
            self.last_picture.as_ref(),
            Some(changes),
            self.size,
            self.size.width as usize * BYTES_PER_PIXEL,
            &self.pixels,
            captured_at,
        );
        // After a failure the next picture is converted whole.
        self.last_picture = picture.as_ref().ok().cloned();
        picture
    }

    /// Notes that the area `p` was drawn on.
    fn mark(&mut self, p: Placement) {
        // Placements are clipped to the frame, well inside i32.
        self.changes.mark(p.x as i32, p.y as i32, p.width, p.height);
    }

    /// A copy of the picture as a [`Frame`] captured at `captured_at`.
    ///
    /// # Errors
    ///
    /// None in practice: the canvas always holds a valid layout.
    pub fn to_frame(&self, captured_at: Instant) -> Result<Frame, CaptureError> {
        Frame::new(
            self.size.width,
            self.size.height,
            self.size.width as usize * BYTES_PER_PIXEL,
            self.pixels.clone(),
            captured_at,
        )
    }

    /// The byte ranges of the rows of area `p` (clipped to the canvas).
    fn rows_mut(&mut self, p: Placement) -> impl Iterator<Item = &mut [u8]> {
        let stride = self.size.width as usize * BYTES_PER_PIXEL;
        let x0 = (p.x.min(self.size.width) as usize) * BYTES_PER_PIXEL;
        let x1 = (p.x.saturating_add(p.width).min(self.size.width) as usize) * BYTES_PER_PIXEL;
        let y0 = p.y.min(self.size.height) as usize;
        let y1 = p.y.saturating_add(p.height).min(self.size.height) as usize;
        self.pixels[y0 * stride..y1 * stride]
            .chunks_exact_mut(stride)
            .map(move |row| &mut row[x0..x1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(name: &str, left: i32, top: i32, width: i32, height: i32) -> MonitorRect {
        MonitorRect {
            name: name.to_owned(),
            left,
            top,
            right: left + width,
            bottom: top + height,
            primary: left == 0 && top == 0,
        }
    }

    #[test]
    fn single_monitor_is_the_frame() {
        let layout = DesktopLayout::new(&[rect("D1", 0, 0, 1920, 1080)]).unwrap();
        assert_eq!(layout.frame_size(), FrameSize::new(1920, 1080));
        assert_eq!(layout.origin(), (0, 0));
        assert_eq!(
            layout.monitors(),
            &[Monitor {
                name: "D1".into(),
                x: 0,
                y: 0,
                width: 1920,
                height: 1080,
                primary: true
            }]
        );
        assert_eq!(
            layout.placement("D1"),
            Some(Placement {
                x: 0,
                y: 0,
                width: 1920,
                height: 1080
            })
        );
    }

    #[test]
    fn monitors_left_and_above_the_primary_are_moved_to_zero() {
        // A 1280x1024 monitor left of the primary, its top 100 px higher.
        let layout = DesktopLayout::new(&[
            rect("D1", 0, 0, 1920, 1080),
            rect("D2", -1280, -100, 1280, 1024),
        ])
        .unwrap();
        assert_eq!(layout.origin(), (-1280, -100));
        assert_eq!(layout.frame_size(), FrameSize::new(3200, 1180));
        let names: Vec<_> = layout.monitors().iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["D1", "D2"], "primary first");
        assert_eq!(
            (layout.monitors()[0].x, layout.monitors()[0].y),
            (1280, 100)
        );
        assert_eq!((layout.monitors()[1].x, layout.monitors()[1].y), (0, 0));
    }

    #[test]
    fn odd_desktops_are_cropped_to_even_and_placements_clipped() {
        let layout =
            DesktopLayout::new(&[rect("D1", 0, 0, 1366, 768), rect("D2", 1366, 0, 1023, 767)])
                .unwrap();
        assert_eq!(layout.frame_size(), FrameSize::new(2388, 768));
        // The monitor keeps its real size in the layout ...
        assert_eq!(layout.monitors()[1].width, 1023);
        // ... but its placement loses the cropped column.
        assert_eq!(
            layout.placement("D2"),
            Some(Placement {
                x: 1366,
                y: 0,
                width: 1022,
                height: 767
            })
        );
        assert_eq!(layout.placement("nope"), None);
    }

    #[test]
    fn vertical_stack_sorts_top_to_bottom_after_primary() {
        let layout = DesktopLayout::new(&[
            rect("D3", 0, 2160, 1920, 1080),
            rect("D2", 0, -1080, 1920, 1080),
            rect("D1", 0, 0, 1920, 1080),
        ])
        .unwrap();
        let names: Vec<_> = layout.monitors().iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["D1", "D2", "D3"]);
        assert_eq!(layout.frame_size(), FrameSize::new(1920, 4320));
    }

    #[test]
    fn rejects_no_monitor_and_absurd_sizes() {
        assert!(DesktopLayout::new(&[]).is_err());
        assert!(DesktopLayout::new(&[rect("D1", 0, 0, 0, 1080)]).is_err());
        assert!(DesktopLayout::new(&[rect("D1", 0, 0, 1, 1)]).is_err());
        let far = [
            rect("D1", 0, 0, 1920, 1080),
            rect("D2", i32::MAX - 10, 0, 10, 1080),
        ];
        assert!(DesktopLayout::new(&far).is_err());
        let extreme = [
            rect("D1", i32::MIN, i32::MIN, 10, 10),
            rect("D2", i32::MAX - 10, i32::MAX - 10, 10, 10),
        ];
        assert!(DesktopLayout::new(&extreme).is_err());
    }

    #[test]
    fn empty_rectangles_are_ignored() {
        let layout =
            DesktopLayout::new(&[rect("D1", 0, 0, 1920, 1080), rect("D2", 1920, 0, 0, 0)]).unwrap();
        assert_eq!(layout.monitors().len(), 1);
    }

    #[test]
    fn layouts_compare_equal_only_when_unchanged() {
        let a = [
            rect("D1", 0, 0, 1920, 1080),
            rect("D2", 1920, 0, 1920, 1080),
        ];
        let mut b = a.clone();
        b.reverse();
        assert_eq!(
            DesktopLayout::new(&a).unwrap(),
            DesktopLayout::new(&b).unwrap()
        );
        b[0].right += 640; // D2 resized
        assert_ne!(
            DesktopLayout::new(&a).unwrap(),
            DesktopLayout::new(&b).unwrap()
        );
    }

    /// A `width` x `height` picture whose every pixel is `[x, y, tag, 255]`,
    /// rows `stride` bytes apart (padding 0xEE).
    fn picture(width: u32, height: u32, stride: usize, tag: u8) -> Vec<u8> {
        let mut pixels = vec![0xEE; stride * height as usize];
        for y in 0..height as usize {
            for x in 0..width as usize {
                let at = y * stride + x * 4;
                pixels[at..at + 4].copy_from_slice(&[x as u8, y as u8, tag, 255]);
            }
        }
        pixels
    }

    fn pixel(canvas: &Canvas, x: u32, y: u32) -> [u8; 4] {
        let at = (y * canvas.size.width + x) as usize * 4;
        canvas.pixels[at..at + 4].try_into().unwrap()
    }

    /// Whether every pixel has colour `colour` (alpha ignored).
    fn is_all(canvas: &Canvas, colour: [u8; 4]) -> bool {
        canvas
            .pixels
            .chunks_exact(4)
            .all(|px| px[..3] == colour[..3])
    }

    #[test]
    fn canvas_starts_blank_with_gaps() {
        let layout = DesktopLayout::new(&[rect("D1", 0, 0, 8, 8), rect("D2", 8, 0, 4, 4)]).unwrap();
        let canvas = Canvas::new(&layout);
        assert_eq!(canvas.size, FrameSize::new(12, 8));
        assert_eq!(pixel(&canvas, 0, 0), BLANK_BGRA);
        assert_eq!(pixel(&canvas, 9, 3), BLANK_BGRA);
        assert_eq!(pixel(&canvas, 9, 5), GAP_BGRA, "below the small monitor");
    }

    #[test]
    fn monitors_are_composed_at_their_places() {
        let layout =
            DesktopLayout::new(&[rect("D1", 0, 0, 8, 6), rect("D2", -4, 2, 4, 4)]).unwrap();
        let mut canvas = Canvas::new(&layout);
        // D1 with a padded stride, as mapped textures have.
        let d1 = picture(8, 6, 40, 1);
        let d2 = picture(4, 4, 16, 2);
        let size = |w, h| FrameSize::new(w, h);
        canvas
            .blit(
                layout.placement("D1").unwrap(),
                Picture {
                    pixels: &d1,
                    stride: 40,
                    size: size(8, 6),
                },
            )
            .unwrap();
        canvas
            .blit(
                layout.placement("D2").unwrap(),
                Picture {
                    pixels: &d2,
                    stride: 16,
                    size: size(4, 4),
                },
            )
            .unwrap();
        assert_eq!(canvas.size, size(12, 6));
        assert_eq!(pixel(&canvas, 4, 0), [0, 0, 1, 255], "D1 origin");
        assert_eq!(pixel(&canvas, 11, 5), [7, 5, 1, 255], "D1 corner");
        assert_eq!(pixel(&canvas, 0, 2), [0, 0, 2, 255], "D2 origin");
        assert_eq!(pixel(&canvas, 3, 5), [3, 3, 2, 255], "D2 corner");
        assert_eq!(pixel(&canvas, 0, 0), GAP_BGRA, "above D2");
        let frame = canvas.to_frame(Instant::now()).unwrap();
        assert_eq!(frame.size(), size(12, 6));
        assert_eq!(&frame.row(5)[12..16], &[3, 3, 2, 255]);
    }

    #[test]
    fn blit_copies_only_the_overlap() {
        let layout = DesktopLayout::new(&[rect("D1", 0, 0, 4, 4)]).unwrap();
        let mut canvas = Canvas::new(&layout);
        let place = layout.placement("D1").unwrap();
        // Larger than the monitor: cut.
        let big = picture(6, 6, 24, 3);
        let size = FrameSize::new(6, 6);
        canvas
            .blit(
                place,
                Picture {
                    pixels: &big,
                    stride: 24,
                    size,
                },
            )
            .unwrap();
        assert_eq!(pixel(&canvas, 3, 3), [3, 3, 3, 255]);
        // Smaller: the rest stays.
        let small = picture(2, 2, 8, 4);
        let size = FrameSize::new(2, 2);
        canvas
            .blit(
                place,
                Picture {
                    pixels: &small,
                    stride: 8,
                    size,
                },
            )
            .unwrap();
        assert_eq!(pixel(&canvas, 1, 1), [1, 1, 4, 255]);
        assert_eq!(pixel(&canvas, 3, 3), [3, 3, 3, 255]);
    }

    #[test]
    fn blit_refuses_short_buffers_without_panicking() {
        let layout = DesktopLayout::new(&[rect("D1", 0, 0, 4, 4)]).unwrap();
        let mut canvas = Canvas::new(&layout);
        let place = layout.placement("D1").unwrap();
        let size = FrameSize::new(4, 4);
        let short = vec![0u8; 4 * 4 * 4 - 1];
        let err = canvas.blit(
            place,
            Picture {
                pixels: &short,
                stride: 16,
                size,
            },
        );
        assert!(matches!(err, Err(CaptureError::InvalidFrame(_))));
        let err = canvas.blit(
            place,
            Picture {
                pixels: &[0; 64],
                stride: 8,
                size,
            },
        );
        assert!(err.is_err(), "stride shorter than a row");
        assert!(is_all(&canvas, BLANK_BGRA), "nothing copied");
    }

    #[test]
    fn pictures_say_what_was_drawn_since_the_last_and_convert_it() {
        // Two 32x32 monitors side by side: 4x2 blocks.
        let layout =
            DesktopLayout::new(&[rect("D1", 0, 0, 32, 32), rect("D2", 32, 0, 32, 32)]).unwrap();
        let mut canvas = Canvas::new(&layout);
        let first = canvas.next_yuv_frame(Instant::now()).unwrap();
        assert_eq!(first.changes_since(0), None, "the first picture is new");
        let d2 = layout.placement("D2").unwrap();
        let pixels = picture(32, 32, 128, 7);
        let src = Picture {
            pixels: &pixels,
            stride: 128,
            size: FrameSize::new(32, 32),
        };
        // Only a dirty rectangle across D2's inner block boundary.
        let dirty = Placement {
            x: 10,
            y: 14,
            width: 4,
            height: 4,
        };
        canvas.blit_parts(d2, src, &[dirty]).unwrap();
        assert_eq!(pixel(&canvas, 32 + 10, 14), [10, 14, 7, 255]);
        assert_eq!(pixel(&canvas, 32 + 9, 14), BLANK_BGRA, "outside the part");
        let second = canvas.next_yuv_frame(Instant::now()).unwrap();
        let map = second.changes_since(first.id()).expect("changes known");
        assert_eq!(map.changed_blocks(), [(2, 0), (2, 1)]);
        let whole = YuvFrame::from_frame(&canvas.to_frame(Instant::now()).unwrap()).unwrap();
        assert!(
            second.same_picture(&whole),
            "converted as a whole picture is"
        );
        // Nothing drawn: nothing changed.
        let third = canvas.next_yuv_frame(Instant::now()).unwrap();
        assert!(third.changes_since(second.id()).unwrap().is_unchanged());
        canvas.blit(d2, src).unwrap();
        canvas.fill(layout.placement("D1").unwrap(), [0, 0, 0, 255]);
        let fourth = canvas.next_yuv_frame(Instant::now()).unwrap();
        assert_eq!(fourth.changes_since(third.id()).unwrap().changed_count(), 8);
        canvas.fill_all(BLANK_BGRA);
        let fifth = canvas.next_yuv_frame(Instant::now()).unwrap();
        assert_eq!(fifth.changes_since(fourth.id()).unwrap().changed_count(), 8);
    }

    #[test]
    fn placements_from_windows_edges_are_cut_at_zero_and_never_empty() {
        let p = |x, y, width, height| Placement {
            x,
            y,
            width,
            height,
        };
        assert_eq!(Placement::from_edges(3, 4, 10, 6), Some(p(3, 4, 7, 2)));
        assert_eq!(Placement::from_edges(-5, -1, 2, 3), Some(p(0, 0, 2, 3)));
        assert_eq!(Placement::from_edges(4, 4, 4, 9), None, "empty");
        assert_eq!(Placement::from_edges(9, 4, 2, 9), None, "inside out");
        assert_eq!(Placement::from_edges(-9, 0, -2, 9), None, "all below 0");
        assert_eq!(
            Placement::from_edges(i32::MIN, 0, i32::MAX, 1)
                .unwrap()
                .width,
            i32::MAX.unsigned_abs()
        );
    }

    #[test]
    fn fill_and_is_all() {
        let layout = DesktopLayout::new(&[rect("D1", 0, 0, 4, 4)]).unwrap();
        let mut canvas = Canvas::new(&layout);
        assert!(is_all(&canvas, BLANK_BGRA));
        canvas.fill(
            Placement {
                x: 2,
                y: 2,
                width: 10,
                height: 10,
            },
            [1, 2, 3, 255],
        );
        assert_eq!(pixel(&canvas, 3, 3), [1, 2, 3, 255]);
        assert!(!is_all(&canvas, BLANK_BGRA));
        canvas.fill_all(BLANK_BGRA);
        assert!(is_all(&canvas, BLANK_BGRA));
    }
}

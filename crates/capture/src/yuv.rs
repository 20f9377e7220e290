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
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use yuvutils_rs::{
    BufferStoreMut, YuvChromaSubsampling, YuvConversionMode, YuvPlanarImageMut, YuvRange,
    YuvStandardMatrix, bgra_to_yuv420,
};

use self::recycle::{Samples, Spare};
use crate::CaptureError;
use crate::change::{ChangeMap, MB_SIZE};
use crate::frame::{BYTES_PER_PIXEL, Frame, FrameSize};

mod recycle;

/// The next [`YuvFrame::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Luma of black in limited range.
const BLACK_Y: u8 = 16;
/// Chroma of any grey.
const NEUTRAL_CHROMA: u8 = 128;

/// I420 samples, shared by a picture's clones.
type Image = YuvPlanarImageMut<'static, u8>;

/// One captured picture in I420 (BT.709 matrix, limited range: what the
/// encoder signals in the stream), the moment it was captured and, when its
/// source knows, where it differs from the picture before it.
///
/// Clones share the samples: a source keeps the picture it delivered last
/// to convert only the changed blocks of the next one
/// ([`from_bgra_changes`](Self::from_bgra_changes)) at no memory cost
/// while the recorder holds it too. A picture built on another takes over
/// the samples of the last picture of its line dropped everywhere, if any
/// (the `recycle` module).
#[derive(Clone)]
pub struct YuvFrame {
    size: FrameSize,
    /// The samples, and the picture's id ([`id`](Self::id)).
    samples: Arc<Samples>,
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
        Self::converted(None, None, size, stride, pixels, captured_at)
    }

    /// Converts a picture (as [`from_bgra`](Self::from_bgra)) that differs
    /// from `previous` only in the blocks `changes` marks: `previous`'s
    /// samples are copied and only the changed blocks converted (typing
    /// changes a few dozen of 1080p's 8160). The picture says so:
    /// [`changes_since`](Self::changes_since) `previous` is `changes`.
    ///
    /// A full conversion is done instead, with the same result, when it is
    /// the faster way (many blocks changed, or many short runs) or `pixels`
    /// does not hold whole rows of `stride` bytes to the end; and, without
    /// `changes`, when `previous` or the map is of another size.
    ///
    /// # Errors
    ///
    /// As [`YuvFrame::from_bgra`].
    pub fn from_bgra_changes(
        previous: &YuvFrame,
        changes: ChangeMap,
        size: FrameSize,
        stride: usize,
        pixels: &[u8],
        captured_at: Instant,
    ) -> Result<Self, CaptureError> {
        Self::converted(
            Some(previous),
            Some(changes),
            size,
            stride,
            pixels,
            captured_at,
        )
    }

    /// Converts `pixels` as [`from_bgra_changes`](Self::from_bgra_changes)
    /// when both `last` (the picture a source delivered before) and where
    /// the screen changed since are known, else as
    /// [`from_bgra`](Self::from_bgra): what a source that tracks changes
    /// calls for every picture.
    pub(crate) fn converted(
        last: Option<&YuvFrame>,
        changes: Option<ChangeMap>,
        size: FrameSize,
        stride: usize,
        pixels: &[u8],
        captured_at: Instant,
    ) -> Result<Self, CaptureError> {
        crate::frame::check_layout(size.width, size.height, stride, pixels.len())?;
        let mut conversion = Conversion::new(last, changes, size);
        conversion.convert_band(0..size.height, pixels, stride)?;
        Ok(conversion.finish(captured_at))
    }

    /// A picture of `image`, whose samples go to `spare` once it is
    /// dropped everywhere.
    fn new(size: FrameSize, image: Image, captured_at: Instant, spare: Arc<Spare>) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Self {
            size,
            samples: Arc::new(Samples::new(image, id, spare)),
            captured_at,
            changes: None,
        }
    }

    fn image(&self) -> &Image {
        self.samples.image()
    }

    /// A copy of the samples, to change: made in `recycled` (the samples of
    /// a picture dropped, and its id) when it is laid out as this
    /// picture's, by copying only the blocks this picture says it changed
    /// since that one when it says so.
    fn copy_into(&self, recycled: Option<(u64, Image)>) -> Image {
        let mine = self.image();
        let layout = |image: &Image| {
            let strides = (image.y_stride, image.u_stride, image.v_stride);
            (image.width, image.height, strides)
        };
        let Some((id, mut image)) = recycled.filter(|(_, image)| layout(image) == layout(mine))
        else {
            let [y, u, v] = self.plane_array().map(<[u8]>::to_vec);
            return Image {
                y_plane: BufferStoreMut::Owned(y),
                u_plane: BufferStoreMut::Owned(u),
                v_plane: BufferStoreMut::Owned(v),
                ..*mine
            };
        };
        let from = self.plane_array();
        let mut to = [
            image.y_plane.borrow_mut(),
            image.u_plane.borrow_mut(),
            image.v_plane.borrow_mut(),
        ];
        match self.changes_since(id) {
            Some(map) => {
                for (row, columns) in map.runs() {
                    for (plane, span) in self.run_spans(row, &columns) {
                        to[plane][span.clone()].copy_from_slice(&from[plane][span]);
                    }
                }
            }
            None => {
                for (to, from) in to.iter_mut().zip(from) {
                    to.copy_from_slice(from);
                }
            }
        }
        image
    }

    /// This picture's id, unique in the process (a clone is the same
    /// picture): what a later picture's changes are relative to.
    #[must_use]
    pub fn id(&self) -> u64 {
        self.samples.id()
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

    /// Says that this picture's changes since picture `from`, if it has
    /// them, are its changes since picture `to`: the caller knows the two
    /// have the same samples (a recorder that drops a picture identical to
    /// the one it sent before). Otherwise unchanged.
    #[must_use]
    pub fn rebased(mut self, from: u64, to: u64) -> Self {
        if let Some((since, _)) = &mut self.changes
            && *since == from
        {
            *since = to;
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
        Self::new(size, image, captured_at, Arc::default())
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
    /// When one says where it changed from the other, only those blocks are
    /// compared.
    #[must_use]
    pub fn same_picture(&self, other: &YuvFrame) -> bool {
        if self.size != other.size {
            return false;
        }
        match self
            .changes_since(other.id())
            .or(other.changes_since(self.id()))
        {
            Some(changes) => changes
                .runs()
                .all(|(row, columns)| self.same_blocks(other, row, columns)),
            None => self.planes() == other.planes(),
        }
    }

    /// The blocks in which `other` has samples that differ from this
    /// picture's; every block when their sizes differ. Rows of blocks are
    /// compared whole first: most of a screen is the same.
    #[must_use]
    pub fn differing_blocks(&self, other: &YuvFrame) -> ChangeMap {
        if self.size != other.size {
            return ChangeMap::everything(other.size);
        }
        let mut map = ChangeMap::unchanged(self.size);
        let (columns, rows) = map.grid();
        for row in (0..rows).filter(|&row| !self.same_blocks(other, row, 0..columns)) {
            for column in 0..columns {
                if !self.same_blocks(other, row, column..column + 1) {
                    map.mark((column * MB_SIZE) as i32, (row * MB_SIZE) as i32, 1, 1);
                }
            }
        }
        map
    }

    /// Whether the blocks `columns` of block row `row` have the same
    /// samples in both pictures (of the same size).
    fn same_blocks(&self, other: &YuvFrame, row: u32, columns: Range<u32>) -> bool {
        let (mine, theirs) = (self.plane_array(), other.plane_array());
        self.run_spans(row, &columns)
            .all(|(plane, span)| mine[plane][span.clone()] == theirs[plane][span])
    }

    /// The samples of the blocks `columns` of block row `row`: spans of
    /// one row of a plane each, with the plane's index (Y, U, V).
    fn run_spans(
        &self,
        row: u32,
        columns: &Range<u32>,
    ) -> impl Iterator<Item = (usize, Range<usize>)> + use<> {
        let (xs, ys) = run_pixels(self.size, row, columns);
        let (y_stride, u_stride, v_stride) = self.strides();
        [(y_stride, 1), (u_stride, 2), (v_stride, 2)]
            .into_iter()
            .enumerate()
            .flat_map(move |(plane, (stride, scale))| {
                let xs = xs.start / scale..xs.end.div_ceil(scale);
                (ys.start / scale..ys.end.div_ceil(scale))
                    .map(move |r| (plane, r * stride + xs.start..r * stride + xs.end))
            })
    }

    /// The Y, U and V planes, to index.
    fn plane_array(&self) -> [&[u8]; 3] {
        let (y, u, v) = self.planes();
        [y, u, v]
    }

    /// The Y, U and V planes.
    #[must_use]
    pub fn planes(&self) -> (&[u8], &[u8], &[u8]) {
        let image = self.image();
        (
            image.y_plane.borrow(),
            image.u_plane.borrow(),
            image.v_plane.borrow(),
        )
    }

    /// Bytes from one row to the next in each plane.
    #[must_use]
    pub fn strides(&self) -> (usize, usize, usize) {
        let image = self.image();
        (
            image.y_stride as usize,
            image.u_stride as usize,
            image.v_stride as usize,
        )
    }
}

/// What a run of changed blocks costs to convert beyond its blocks, in
/// blocks: the converter's set-up and its narrow-row path. Measured on
/// 1080p (AVX2): one whole conversion 0.6 ms; 2,720 one-block runs 5.0 ms,
/// 41 runs of 2,394 blocks 0.3 ms.
const RUN_COST_IN_BLOCKS: usize = 24;

/// Whether converting `changes` block run by block run (after copying the
/// last picture's samples) costs less than converting the whole picture:
/// their cost in blocks is at most half the picture's.
fn blocks_cheaper(changes: &ChangeMap) -> bool {
    let cost = changes.changed_count() + RUN_COST_IN_BLOCKS * changes.runs().count();
    cost * 2 <= changes.len()
}

/// The pixels the blocks `columns` of block row `row` cover in a picture of
/// `size`: (columns, rows), the last block column and row cut at the
/// picture's edge.
fn run_pixels(size: FrameSize, row: u32, columns: &Range<u32>) -> (Range<usize>, Range<usize>) {
    let edge = |block: u32, side: u32| ((block * MB_SIZE).min(side)) as usize;
    (
        edge(columns.start, size.width)..edge(columns.end, size.width),
        edge(row, size.height)..edge(row + 1, size.height),
    )
}

/// A picture converted band of rows by band of rows, for a source whose
/// pixels come a band at a time: X11 captures through a shared segment of
/// a few dozen rows, so the whole screen is never held in BGRA (8 MiB at
/// 1080p, more than the rest of the capture path).
///
/// [`new`](Self::new) decides what is converted: only the changed blocks
/// (the rest is the last picture's samples), or the whole picture when that
/// is faster or nothing says what changed. [`bands`](Self::bands) names the
/// rows that needs; each goes to [`convert_band`](Self::convert_band);
/// [`finish`](Self::finish) makes the picture.
pub(crate) struct Conversion {
    size: FrameSize,
    image: Image,
    /// Whether every row is converted (else the changed blocks only, over
    /// a copy of the last picture's samples).
    whole: bool,
    /// Where the picture differs from the last one: (its id, the map).
    changes: Option<(u64, ChangeMap)>,
    /// The source's spare samples ([`YuvFrame`]'s line of pictures).
    spare: Arc<Spare>,
}

impl Conversion {
    /// A conversion of a picture of `size` that differs from `last` (the
    /// picture a source delivered before) only where `changes` says; as
    /// [`YuvFrame::from_bgra_changes`] says when the whole picture is
    /// converted instead.
    pub(crate) fn new(
        last: Option<&YuvFrame>,
        changes: Option<ChangeMap>,
        size: FrameSize,
    ) -> Self {
        let of_size = |map: &ChangeMap| map.grid() == ChangeMap::unchanged(size).grid();
        let spare: Arc<Spare> = last
            .map(|last| last.samples.spare().clone())
            .unwrap_or_default();
        let recycled = spare.take(size.width, size.height);
        let changes = match (last, changes) {
            (Some(last), Some(map)) if last.size == size && of_size(&map) => Some((last, map)),
            _ => None,
        };
        match changes {
            Some((last, map)) if blocks_cheaper(&map) => Self {
                size,
                image: last.copy_into(recycled),
                whole: false,
                changes: Some((last.id(), map)),
                spare,
            },
            // Every sample is converted: any samples of the size will do.
            changes => Self {
                size,
                image: recycled.map(|(_, image)| image).unwrap_or_else(|| {
                    YuvPlanarImageMut::alloc(size.width, size.height, YuvChromaSubsampling::Yuv420)
                }),
                whole: true,
                changes: changes.map(|(last, map)| (last.id(), map)),
                spare,
            },
        }
    }

    /// The bands of pixel rows to convert, top to bottom, each at most
    /// `max_rows` rows (at least one row of blocks) and starting on a
    /// block row: every row, or the rows of blocks with changes.
    #[cfg_attr(
        not(target_os = "linux"),
        allow(dead_code, reason = "X11 captures in bands")
    )]
    pub(crate) fn bands(&self, max_rows: u32) -> Vec<Range<u32>> {
        let grid_rows = ChangeMap::unchanged(self.size).grid().1;
        let block_rows: Vec<u32> = match &self.changes {
            Some((_, map)) if !self.whole => {
                let mut rows: Vec<u32> = map.runs().map(|(row, _)| row).collect();
                rows.dedup();
                rows
            }
            _ => (0..grid_rows).collect(),
        };
        let per_band = (max_rows / MB_SIZE).max(1);
        let mut bands: Vec<Range<u32>> = Vec::new();
        for row in block_rows {
            match bands.last_mut() {
                Some(band) if band.end == row && band.len() < per_band as usize => {
                    band.end = row + 1;
                }
                _ => bands.push(row..row + 1),
            }
        }
        let pixel_row = |row: u32| (row * MB_SIZE).min(self.size.height);
        bands
            .into_iter()
            .map(|band| pixel_row(band.start)..pixel_row(band.end))
            .collect()
    }

    /// Converts what this conversion needs of pixel rows `rows` (a band
    /// [`bands`](Self::bands) named), from `pixels`: those rows, `stride`
    /// bytes apart, from the picture's left edge. A buffer that holds a full
    /// stride past the band's last row lets runs in its last block row be
    /// converted on their own; without it they start at the left edge.
    ///
    /// # Errors
    ///
    /// [`CaptureError::InvalidFrame`] when `pixels` does not hold the rows,
    /// or `rows` does not start on a block row inside the picture.
    pub(crate) fn convert_band(
        &mut self,
        rows: Range<u32>,
        pixels: &[u8],
        stride: usize,
    ) -> Result<(), CaptureError> {
        if !rows.start.is_multiple_of(MB_SIZE) || rows.is_empty() || rows.end > self.size.height {
            return Err(CaptureError::InvalidFrame(format!(
                "rows {rows:?} are not a band of block rows of a {} picture",
                self.size
            )));
        }
        crate::frame::check_layout(self.size.width, rows.len() as u32, stride, pixels.len())?;
        let whole_rows = pixels.len() >= stride * rows.len();
        if self.whole || !whole_rows {
            let area = Area {
                top: rows.start as usize,
                left: 0,
                width: self.size.width as usize,
                height: rows.len(),
            };
            return convert_area(&mut self.image, &area, pixels, stride);
        }
        let Some((_, map)) = &self.changes else {
            unreachable!("a conversion of changed blocks has its map");
        };
        let block_rows = rows.start / MB_SIZE..rows.end.div_ceil(MB_SIZE);
        for (row, columns) in map.runs().filter(|(row, _)| block_rows.contains(row)) {
            convert_run(
                &mut self.image,
                self.size,
                (pixels, rows.start),
                stride,
                row,
                columns,
            )?;
        }
        Ok(())
    }

    /// The picture, captured at `captured_at`, once every band is
    /// converted.
    pub(crate) fn finish(self, captured_at: Instant) -> YuvFrame {
        let picture = YuvFrame::new(self.size, self.image, captured_at, self.spare);
        match self.changes {
            Some((last, map)) => picture.with_changes(last, map),
            None => picture,
        }
    }
}

/// Converts `image.height` rows of `image.width` BGRA pixels, `stride`
/// bytes apart, into `image`: the one place the matrix, range and precision
/// are chosen.
fn convert(
    image: &mut YuvPlanarImageMut<'_, u8>,
    pixels: &[u8],
    stride: usize,
) -> Result<(), CaptureError> {
    // Callers checked the layout, so the stride fits in 32 bits.
    let stride = u32::try_from(stride).map_err(|e| CaptureError::InvalidFrame(e.to_string()))?;
    bgra_to_yuv420(
        image,
        pixels,
        stride,
        YuvRange::Limited,
        YuvStandardMatrix::Bt709,
        YuvConversionMode::Balanced,
    )
    .map_err(|e| CaptureError::InvalidFrame(format!("converting to I420: {e}")))
}

/// A rectangle of a picture, in pixels.
struct Area {
    top: usize,
    left: usize,
    width: usize,
    height: usize,
}

impl Area {
    /// The samples of `image`'s Y, U and V planes from the area's first
    /// one to a full stride past its last row: what the converter is given
    /// of each plane (see [`convert_area`]).
    fn plane_rows(&self, image: &Image) -> [Range<usize>; 3] {
        let chroma_rows = self.height.div_ceil(2);
        let rows = |start: usize, stride: u32, count: usize| start..start + stride as usize * count;
        [
            rows(
                self.top * image.y_stride as usize + self.left,
                image.y_stride,
                self.height,
            ),
            rows(
                self.top / 2 * image.u_stride as usize + self.left / 2,
                image.u_stride,
                chroma_rows,
            ),
            rows(
                self.top / 2 * image.v_stride as usize + self.left / 2,
                image.v_stride,
                chroma_rows,
            ),
        ]
    }
}

/// Converts the blocks `columns` of block row `row` of a `size` picture
/// into `image`, in place, from `band`: pixels and the picture row its
/// first row is, holding whole rows of `stride` bytes from there to past
/// the run (checked by the caller).
///
/// The converter walks rows in steps of whole strides, in the source and in
/// each plane, so every slice it gets must hold the run's rows to a full
/// stride past its first sample. The planes end with the picture's last
/// row, and a band's pixels may end with its last row, so there that holds
/// only for a run that starts at column 0: such a run is widened to the
/// left edge (at most one row of blocks converted needlessly).
fn convert_run(
    image: &mut Image,
    size: FrameSize,
    band: (&[u8], u32),
    stride: usize,
    row: u32,
    columns: Range<u32>,
) -> Result<(), CaptureError> {
    let (pixels, first_row) = band;
    let (xs, ys) = run_pixels(size, row, &columns);
    let (top, height) = (ys.start, ys.len());
    // Where the area's first pixel is in the band.
    let from = |left: usize| (top - first_row as usize) * stride + left * BYTES_PER_PIXEL;
    let area_from = |left: usize| Area {
        top,
        left,
        width: xs.end - left,
        height,
    };
    let fits = |area: &Area| {
        let lens = [
            image.y_plane.borrow().len(),
            image.u_plane.borrow().len(),
            image.v_plane.borrow().len(),
        ];
        let planes_fit = area
            .plane_rows(image)
            .iter()
            .zip(lens)
            .all(|(rows, len)| rows.end <= len);
        planes_fit && from(area.left) + stride * height <= pixels.len()
    };
    let area = Some(area_from(xs.start))
        .filter(|area| fits(area))
        .unwrap_or_else(|| area_from(0));
    let start = from(area.left);
    convert_area(
        image,
        &area,
        &pixels[start..start + stride * height],
        stride,
    )
}

/// Converts `area` of the picture into `image`, in place, from `pixels`:
/// the area's rows, `stride` bytes apart, from its top-left pixel on.
///
/// Each slice the converter gets ends with the area's rows: it walks its
/// rows until the shortest slice ends, so a slice running on to the end of
/// the plane would have it convert every row below the area too.
fn convert_area(
    image: &mut Image,
    area: &Area,
    pixels: &[u8],
    stride: usize,
) -> Result<(), CaptureError> {
    let (y_stride, u_stride, v_stride) = (image.y_stride, image.u_stride, image.v_stride);
    let [y_rows, u_rows, v_rows] = area.plane_rows(image);
    let mut part = YuvPlanarImageMut {
        y_plane: BufferStoreMut::Borrowed(&mut image.y_plane.borrow_mut()[y_rows]),
        y_stride,
        u_plane: BufferStoreMut::Borrowed(&mut image.u_plane.borrow_mut()[u_rows]),
        u_stride,
        v_plane: BufferStoreMut::Borrowed(&mut image.v_plane.borrow_mut()[v_rows]),
        v_stride,
        // Both below the picture's own u32 sides.
        width: area.width as u32,
        height: area.height as u32,
    };
    convert(
        &mut part,
        &pixels[..pixels.len().min(stride * area.height)],
        stride,
    )
}

impl fmt::Debug for YuvFrame {
    /// Prints the size, not the megabytes of samples.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("YuvFrame")
            .field("id", &self.id())
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
    fn rebasing_moves_only_changes_since_the_picture_named() {
        let size = FrameSize::new(32, 16);
        let map = || {
            let mut map = ChangeMap::unchanged(size);
            map.mark(0, 0, 1, 1);
            map
        };
        let picture = YuvFrame::from_frame(&bgra(32, 16, [1, 2, 3, 255]))
            .unwrap()
            .with_changes(7, map());
        let moved = picture.clone().rebased(7, 9);
        assert!(moved.changes_since(7).is_none());
        assert_eq!(
            moved.changes_since(9).map(ChangeMap::changed_count),
            Some(1)
        );
        let kept = picture.rebased(8, 9);
        assert!(kept.changes_since(9).is_none(), "changes since 7, not 8");
        assert!(kept.changes_since(7).is_some());
    }

    /// A `width` x `height` picture of varied colours, rows `stride` bytes
    /// apart, changed where `seed` says.
    fn varied(width: usize, height: usize, stride: usize, seed: u8) -> Vec<u8> {
        let mut pixels = vec![0; stride * height];
        for y in 0..height {
            for x in 0..width {
                let v = (x * 7 + y * 13) as u8;
                let at = y * stride + x * 4;
                pixels[at..at + 4].copy_from_slice(&[v, v.wrapping_mul(3), seed ^ v, 255]);
            }
        }
        pixels
    }

    /// A 1040x280 picture (a partial last column and row of blocks; padded
    /// rows) before and after changes scattered as the test below says,
    /// and their map: big enough that the changes are converted run by run.
    struct Scattered {
        size: FrameSize,
        stride: usize,
        previous: YuvFrame,
        new: Vec<u8>,
        map: ChangeMap,
    }

    fn scattered() -> Scattered {
        let (width, height, stride) = (1040, 280, 1040 * 4 + 12);
        let size = FrameSize::new(width as u32, height as u32);
        let old = varied(width, height, stride, 0);
        let previous = YuvFrame::from_bgra(size, stride, &old, Instant::now()).unwrap();
        let mut new = old.clone();
        let mut map = ChangeMap::unchanged(size);
        // The corners, an edge's middle, across a 16-px boundary, inside,
        // and in the last block row away from the left edge.
        let mut change = |x: usize, y: usize| {
            let at = y * stride + x * 4;
            new[at..at + 3].copy_from_slice(&[255, 0, 40]);
            map.mark(x as i32, y as i32, 1, 1);
        };
        for (x, y) in [
            (0, 0),
            (1039, 0),
            (0, 279),
            (1039, 279),
            (520, 0),
            (15, 31),
            (40, 40),
            (70, 276),
        ] {
            change(x, y);
        }
        // A long run, as a line of text is.
        for x in 20..240 {
            change(x, 50);
        }
        assert!(blocks_cheaper(&map), "converted run by run");
        Scattered {
            size,
            stride,
            previous,
            new,
            map,
        }
    }

    #[test]
    fn converting_the_changed_blocks_gives_the_whole_conversion() {
        let Scattered {
            size,
            stride,
            previous,
            new,
            map,
        } = scattered();
        let partial =
            YuvFrame::from_bgra_changes(&previous, map.clone(), size, stride, &new, Instant::now())
                .unwrap();
        let whole = YuvFrame::from_bgra(size, stride, &new, Instant::now()).unwrap();
        assert!(
            partial.same_picture(&whole),
            "the same samples as converting it all"
        );
        assert!(!partial.same_picture(&previous));
        assert_eq!(partial.changes_since(previous.id()), Some(&map));
        assert_eq!(previous.planes().0[0], previous.clone().planes().0[0]);
    }

    #[test]
    fn a_picture_converted_band_by_band_is_the_whole_conversion() {
        let fixture = scattered();
        let (size, stride, new) = (fixture.size, fixture.stride, &fixture.new);
        let whole = YuvFrame::from_bgra(size, stride, new, Instant::now()).unwrap();
        // The changed blocks' rows, in bands of at most two block rows.
        let previous = &fixture.previous;
        let bands = Conversion::new(Some(previous), Some(fixture.map.clone()), size).bands(32);
        assert_eq!(bands, [0..32, 32..64, 272..280]);
        // Every row, for a whole conversion.
        let all = Conversion::new(None, None, size).bands(40);
        assert_eq!(all.len(), 280_usize.div_ceil(32));
        assert!(
            all.iter()
                .all(|band| band.start.is_multiple_of(16) && band.len() <= 32)
        );
        // Each band's pixels end with its last row, or hold a row to spare.
        let map = || Some(fixture.map.clone());
        for (changes, spare) in [(map(), 0), (map(), 1), (None, 0)] {
            let mut conversion = Conversion::new(Some(previous), changes, size);
            for rows in conversion.bands(32) {
                let from = rows.start as usize * stride;
                let to = (rows.end as usize + spare) * stride;
                let pixels = &new[from..to.min(new.len())];
                conversion.convert_band(rows, pixels, stride).unwrap();
            }
            let picture = conversion.finish(Instant::now());
            assert!(picture.same_picture(&whole), "spare rows {spare}");
        }
        let mut conversion = Conversion::new(None, None, size);
        let err = conversion.convert_band(8..40, new, stride).unwrap_err();
        assert!(
            err.to_string().contains("not a band of block rows"),
            "{err}"
        );
    }

    /// Where a picture's samples are (its Y plane's address).
    fn samples_at(picture: &YuvFrame) -> *const u8 {
        picture.planes().0.as_ptr()
    }

    /// Whether two pictures have the same samples everywhere.
    fn same_samples(a: &YuvFrame, b: &YuvFrame) -> bool {
        a.plane_array() == b.plane_array()
    }

    #[test]
    fn a_picture_is_built_in_the_samples_of_one_dropped() {
        // A 1040x280 screen where a few pixels change a picture, as typing
        // changes them, each picture built on the one before.
        let (width, height, stride) = (1040, 280, 1040 * 4);
        let size = FrameSize::new(width as u32, height as u32);
        let mut pixels = varied(width, height, stride, 0);
        let zero = YuvFrame::from_bgra(size, stride, &pixels, Instant::now()).unwrap();
        let mut next = |last: &YuvFrame, (x, y): (usize, usize)| {
            let at = y * stride + x * 4;
            pixels[at..at + 3].copy_from_slice(&[255, (x % 251) as u8, 40]);
            let mut map = ChangeMap::unchanged(size);
            map.mark(x as i32, y as i32, 1, 1);
            let picture =
                YuvFrame::from_bgra_changes(last, map, size, stride, &pixels, Instant::now())
                    .unwrap();
            let whole = YuvFrame::from_bgra(size, stride, &pixels, Instant::now()).unwrap();
            assert!(same_samples(&picture, &whole), "the picture at ({x}, {y})");
            picture
        };
        let one = next(&zero, (100, 100));
        // Picture 0 is dropped (the encoder is done with it; the source
        // holds 1): 2 is built in its samples, copying the block 1 changed
        // since 0 (`next` checks every sample).
        let zero_at = samples_at(&zero);
        drop(zero);
        let two = next(&one, (500, 20));
        assert_eq!(samples_at(&two), zero_at, "2 is built in 0's samples");
        // 3 is built while 1 and 2 are held, in new samples. Then 2 and 1
        // are dropped, in that order: 4 is built in 1's samples, which 3's
        // changes are not relative to, by copying all of 3's.
        let three = next(&two, (1039, 279));
        let one_at = samples_at(&one);
        drop(two);
        drop(one);
        let four = next(&three, (0, 0));
        assert_eq!(samples_at(&four), one_at, "4 is built in 1's samples");
    }

    #[test]
    fn a_whole_conversion_is_made_in_the_samples_of_a_picture_dropped() {
        // Odd sides: the last chroma column and row are half-covered.
        let (width, height, stride) = (33, 17, 33 * 4 + 4);
        let size = FrameSize::new(width as u32, height as u32);
        let convert = |last: Option<&YuvFrame>, seed: u8| {
            let pixels = varied(width, height, stride, seed);
            let picture =
                YuvFrame::converted(last, None, size, stride, &pixels, Instant::now()).unwrap();
            let whole = YuvFrame::from_bgra(size, stride, &pixels, Instant::now()).unwrap();
            (picture, whole)
        };
        let (first, _) = convert(None, 0);
        let (second, _) = convert(Some(&first), 99);
        let first_at = samples_at(&first);
        drop(first);
        let (third, whole) = convert(Some(&second), 7);
        assert_eq!(samples_at(&third), first_at, "built in the first's samples");
        assert!(same_samples(&third, &whole), "every sample converted");
    }

    #[test]
    fn only_the_changed_blocks_are_converted() {
        // Every pixel differs from the last picture, and the map names two
        // blocks: the other samples must stay the last picture's. A run
        // converted down to the picture's bottom (the converter walks rows
        // while its slices last) would change the blocks below it.
        let (width, height, stride) = (520, 140, 520 * 4);
        let size = FrameSize::new(width as u32, height as u32);
        let previous = YuvFrame::from_bgra(
            size,
            stride,
            &varied(width, height, stride, 0),
            Instant::now(),
        )
        .unwrap();
        let new = varied(width, height, stride, 99);
        let whole = YuvFrame::from_bgra(size, stride, &new, Instant::now()).unwrap();
        let mut map = ChangeMap::unchanged(size);
        map.mark(130, 0, 1, 1); // block (8, 0), at the top
        map.mark(519, 139, 1, 1); // block (32, 8), the partial corner
        assert!(blocks_cheaper(&map), "converted run by run");
        let partial =
            YuvFrame::from_bgra_changes(&previous, map.clone(), size, stride, &new, Instant::now())
                .unwrap();

        // A run in the last block row is converted from the left edge (see
        // `convert_run`): the corner's run takes in that whole row.
        let in_block =
            |x: usize, y: usize| y >= 128 || map.is_changed((x / 16) as u32, (y / 16) as u32);
        let planes = |p: &YuvFrame| {
            let (y, u, v) = p.planes();
            [y.to_vec(), u.to_vec(), v.to_vec()]
        };
        let (got, old, converted) = (planes(&partial), planes(&previous), planes(&whole));
        let (y_stride, u_stride, v_stride) = partial.strides();
        for (plane, (stride, scale)) in [(y_stride, 1), (u_stride, 2), (v_stride, 2)]
            .into_iter()
            .enumerate()
        {
            for (at, &sample) in got[plane].iter().enumerate() {
                let (x, y) = (at % stride * scale, at / stride * scale);
                let want = if in_block(x, y) { &converted } else { &old };
                assert_eq!(sample, want[plane][at], "plane {plane} at ({x}, {y})");
            }
        }
    }

    #[test]
    fn pictures_that_say_where_they_changed_are_compared_there_only() {
        let size = FrameSize::new(100, 70);
        let old = varied(100, 70, 400, 0);
        let previous = YuvFrame::from_bgra(size, 400, &old, Instant::now()).unwrap();
        let mut map = ChangeMap::unchanged(size);
        map.mark(96, 64, 4, 6); // the bottom-right block, partial both ways
        let mut new = old.clone();
        let same =
            YuvFrame::from_bgra_changes(&previous, map.clone(), size, 400, &new, Instant::now())
                .unwrap();
        assert!(same.same_picture(&previous) && previous.same_picture(&same));
        new[69 * 400 + 99 * 4] = 7; // the last pixel
        let changed =
            YuvFrame::from_bgra_changes(&previous, map.clone(), size, 400, &new, Instant::now())
                .unwrap();
        assert!(!changed.same_picture(&previous) && !previous.same_picture(&changed));
        // A change outside the map is not looked for: the map is trusted.
        new[0] = 7;
        let lying = YuvFrame::from_bgra(size, 400, &new, Instant::now())
            .unwrap()
            .with_changes(changed.id(), ChangeMap::unchanged(size));
        assert!(lying.same_picture(&changed));
        assert!(
            !YuvFrame::from_bgra(size, 400, &new, Instant::now())
                .unwrap()
                .same_picture(&changed)
        );
    }

    #[test]
    fn a_map_of_another_size_gets_a_whole_conversion_and_no_changes() {
        let size = FrameSize::new(32, 32);
        let previous = YuvFrame::from_frame(&bgra(32, 32, [1, 2, 3, 255])).unwrap();
        let pixels = varied(32, 32, 128, 9);
        let map = ChangeMap::unchanged(FrameSize::new(64, 32));
        let picture =
            YuvFrame::from_bgra_changes(&previous, map, size, 128, &pixels, Instant::now())
                .unwrap();
        let whole = YuvFrame::from_bgra(size, 128, &pixels, Instant::now()).unwrap();
        assert!(picture.same_picture(&whole));
        assert_eq!(picture.changes_since(previous.id()), None);
    }

    #[test]
    fn a_short_buffer_is_an_invalid_frame() {
        let err = YuvFrame::from_bgra(FrameSize::new(16, 8), 64, &[0; 100], Instant::now());
        assert!(matches!(err, Err(CaptureError::InvalidFrame(_))), "{err:?}");
    }
}

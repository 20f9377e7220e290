//! Which parts of a picture changed since the one before it
//! ([`ChangeMap`]), on the encoder's grid of 16x16 macroblocks.
//!
//! A screen where someone types changes a few hundred pixels a frame out of
//! two million. A source that knows where the screen changed (X11 DAMAGE,
//! Windows dirty rectangles) says so in a map, and the pipeline then spends
//! only on the changed blocks: the encoder skips the others without looking
//! at them (`third_party/openh264-sys2/DESKREC.md`).
//!
//! A map errs only one way: a block marked unchanged must be unchanged,
//! sample for sample, in Y, U and V. Marking an unchanged block as changed
//! costs time, never pictures. I420's chroma is sampled per 2x2 pixels, and
//! 16 is even, so a block's chroma depends on its own pixels only.

use std::fmt;
use std::ops::Range;

use crate::frame::{BYTES_PER_PIXEL, Frame, FrameSize};

/// A macroblock's side in pixels.
pub const MB_SIZE: u32 = 16;

/// One flag a macroblock, in raster order: whether it may have changed.
#[derive(Clone, PartialEq, Eq)]
pub struct ChangeMap {
    /// Macroblock columns and rows (the picture's size rounded up to 16).
    columns: u32,
    rows: u32,
    changed: Vec<bool>,
}

impl ChangeMap {
    /// A map of a picture of `size` in which nothing changed.
    #[must_use]
    pub fn unchanged(size: FrameSize) -> Self {
        let (columns, rows) = (size.width.div_ceil(MB_SIZE), size.height.div_ceil(MB_SIZE));
        Self {
            columns,
            rows,
            changed: vec![false; columns as usize * rows as usize],
        }
    }

    /// A map of a picture of `size` in which everything may have changed.
    #[must_use]
    pub fn everything(size: FrameSize) -> Self {
        let mut map = Self::unchanged(size);
        map.changed.fill(true);
        map
    }

    /// Marks the macroblocks the rectangle at (`x`, `y`), `width` x
    /// `height` pixels, touches; the parts outside the picture are ignored.
    pub fn mark(&mut self, x: i32, y: i32, width: u32, height: u32) {
        let span = |start: i32, len: u32, blocks: u32| {
            let end = i64::from(start) + i64::from(len);
            let first = i64::from(start).max(0) / i64::from(MB_SIZE);
            let last = (end.min(i64::from(blocks * MB_SIZE)) + i64::from(MB_SIZE) - 1)
                / i64::from(MB_SIZE);
            // Both lie in 0..=blocks.
            (first as u32)..(last.max(first) as u32)
        };
        if width == 0 || height == 0 {
            return;
        }
        let columns = span(x, width, self.columns);
        for row in span(y, height, self.rows) {
            let start = (row * self.columns) as usize;
            self.changed[start + columns.start as usize..start + columns.end as usize].fill(true);
        }
    }

    /// The blocks in which `new` differs from `old`, compared pixel by
    /// pixel (BGRA, alpha ignored), for a source that cannot tell where the
    /// screen changed; everything when the sizes differ.
    #[must_use]
    pub fn between(old: &Frame, new: &Frame) -> Self {
        if old.size() != new.size() {
            return Self::everything(new.size());
        }
        let mut map = Self::unchanged(new.size());
        let block_bytes = MB_SIZE as usize * BYTES_PER_PIXEL;
        for y in 0..new.height() {
            let row = (y / MB_SIZE * map.columns) as usize;
            let chunks = old
                .row(y)
                .chunks(block_bytes)
                .zip(new.row(y).chunks(block_bytes));
            for (column, (a, b)) in chunks.enumerate() {
                if !map.changed[row + column] && !same_colours(a, b) {
                    map.changed[row + column] = true;
                }
            }
        }
        map
    }

    /// Macroblock columns and rows.
    #[must_use]
    pub fn grid(&self) -> (u32, u32) {
        (self.columns, self.rows)
    }

    /// Whether the macroblock in `column`, `row` may have changed.
    ///
    /// # Panics
    ///
    /// When the block is outside the grid.
    #[must_use]
    pub fn is_changed(&self, column: u32, row: u32) -> bool {
        assert!(
            column < self.columns && row < self.rows,
            "block outside the grid"
        );
        self.changed[(row * self.columns + column) as usize]
    }

    /// How many macroblocks may have changed.
    #[must_use]
    pub fn changed_count(&self) -> usize {
        self.changed.iter().filter(|&&c| c).count()
    }

    /// How many macroblocks the picture has.
    #[must_use]
    pub fn len(&self) -> usize {
        self.changed.len()
    }

    /// Whether the picture has no macroblocks (never: pictures are at
    /// least 2x2).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty()
    }

    /// Whether nothing changed.
    #[must_use]
    pub fn is_unchanged(&self) -> bool {
        !self.changed.contains(&true)
    }

    /// Adds `other`'s changes (same grid) to this map.
    pub fn merge(&mut self, other: &ChangeMap) {
        if self.grid() != other.grid() {
            self.changed.fill(true);
            return;
        }
        for (mine, theirs) in self.changed.iter_mut().zip(&other.changed) {
            *mine |= *theirs;
        }
    }

    /// The changed blocks as runs along each row: `(row, columns)`, top to
    /// bottom, left to right, each run as long as it goes.
    pub(crate) fn runs(&self) -> impl Iterator<Item = (u32, Range<u32>)> + '_ {
        (0..self.rows).flat_map(move |row| {
            let flags = &self.changed[(row * self.columns) as usize..][..self.columns as usize];
            let mut column = 0;
            std::iter::from_fn(move || {
                let start = column + flags[column..].iter().position(|&c| c)?;
                let len = flags[start..].iter().take_while(|&&c| c).count();
                column = start + len;
                // Both fit in u32: the grid does.
                Some((row, start as u32..column as u32))
            })
        })
    }

    /// The changed blocks as (column, row), in raster order: what tests
    /// compare with.
    #[cfg(test)]
    pub(crate) fn changed_blocks(&self) -> Vec<(u32, u32)> {
        self.runs()
            .flat_map(|(row, columns)| columns.map(move |column| (column, row)))
            .collect()
    }

    /// One byte a macroblock, 1 where it is unchanged: OpenH264's form.
    pub(crate) fn unchanged_bytes(&self) -> Vec<u8> {
        self.changed.iter().map(|&c| u8::from(!c)).collect()
    }
}

impl fmt::Debug for ChangeMap {
    /// The grid and the count, not thousands of flags.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeMap")
            .field("grid", &self.grid())
            .field("changed", &self.changed_count())
            .finish()
    }
}

/// Whether two runs of BGRA pixels have the same colours (alpha ignored).
fn same_colours(a: &[u8], b: &[u8]) -> bool {
    a == b
        || a.chunks_exact(BYTES_PER_PIXEL)
            .zip(b.chunks_exact(BYTES_PER_PIXEL))
            .all(|(p, q)| p[..3] == q[..3])
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn grey(width: u32, height: u32) -> Frame {
        let pixels = [90, 90, 90, 255].repeat((width * height) as usize);
        Frame::new(width, height, width as usize * 4, pixels, Instant::now()).unwrap()
    }

    fn changed(map: &ChangeMap) -> Vec<(u32, u32)> {
        let by_flags: Vec<_> = {
            let (columns, rows) = map.grid();
            (0..rows)
                .flat_map(|r| (0..columns).map(move |c| (c, r)))
                .filter(|&(c, r)| map.is_changed(c, r))
                .collect()
        };
        assert_eq!(
            map.changed_blocks(),
            by_flags,
            "the runs say what the flags say"
        );
        by_flags
    }

    #[test]
    fn a_rectangle_marks_every_block_it_touches_and_no_other() {
        // 1920x1080: 120x68 blocks, the last row half outside the picture.
        let size = FrameSize::new(1920, 1080);
        let mut map = ChangeMap::unchanged(size);
        assert_eq!((map.grid(), map.len()), ((120, 68), 8160));
        map.mark(15, 0, 2, 1); // across the first 16-px boundary
        assert_eq!(changed(&map), [(0, 0), (1, 0)]);
        let mut map = ChangeMap::unchanged(size);
        map.mark(1919, 1079, 1, 1); // the last pixel
        assert_eq!(changed(&map), [(119, 67)]);
        let mut map = ChangeMap::unchanged(size);
        map.mark(-5, 1070, 22, 500); // partly outside, clipped
        assert_eq!(changed(&map), [(0, 66), (1, 66), (0, 67), (1, 67)]);
        let mut map = ChangeMap::unchanged(size);
        map.mark(32, 32, 16, 16); // exactly one block
        map.mark(40, 40, 0, 9); // empty
        assert_eq!(changed(&map), [(2, 2)]);
        assert_eq!(map.unchanged_bytes().iter().filter(|&&b| b == 0).count(), 1);
    }

    #[test]
    fn comparing_pictures_finds_the_blocks_that_differ() {
        let old = grey(64, 40);
        let mut pixels = old.clone().into_pixels();
        let at = |x: usize, y: usize| (y * 64 + x) * 4;
        pixels[at(17, 3)] = 200; // blue of one pixel in block (1, 0)
        pixels[at(63, 39) + 3] = 0; // alpha only: not a change
        pixels[at(0, 39) + 2] = 1; // red, block (0, 2) of the 8-px last row
        let new = Frame::new(64, 40, 256, pixels, Instant::now()).unwrap();
        let map = ChangeMap::between(&old, &new);
        assert_eq!(changed(&map), [(1, 0), (0, 2)]);
        assert!(ChangeMap::between(&old, &old).is_unchanged());
        let other = grey(32, 40);
        assert_eq!(ChangeMap::between(&other, &new).changed_count(), 12);
    }

    #[test]
    fn runs_follow_the_changed_blocks_row_by_row() {
        let mut map = ChangeMap::unchanged(FrameSize::new(80, 40)); // 5x3
        map.mark(0, 0, 32, 1); // (0..2, 0)
        map.mark(64, 0, 1, 1); // (4, 0): the last column
        map.mark(16, 20, 48, 1); // (1..4, 1)
        map.mark(0, 39, 80, 1); // the whole last row
        let runs: Vec<_> = map.runs().collect();
        assert_eq!(runs, [(0, 0..2), (0, 4..5), (1, 1..4), (2, 0..5)]);
        assert_eq!(
            ChangeMap::unchanged(FrameSize::new(80, 40)).runs().count(),
            0
        );
    }

    #[test]
    fn merging_adds_changes() {
        let size = FrameSize::new(64, 32);
        let mut a = ChangeMap::unchanged(size);
        a.mark(0, 0, 1, 1);
        let mut b = ChangeMap::unchanged(size);
        b.mark(63, 31, 1, 1);
        a.merge(&b);
        assert_eq!(changed(&a), [(0, 0), (3, 1)]);
        a.merge(&ChangeMap::unchanged(FrameSize::new(16, 16)));
        assert_eq!(
            a.changed_count(),
            8,
            "a map of another grid changes everything"
        );
    }
}

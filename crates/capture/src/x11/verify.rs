//! Checking DAMAGE against the pixels, and falling back to comparing
//! pictures when it is wrong.
//!
//! A source that trusts DAMAGE captures only when the server reports
//! drawing, and tells the encoder that the blocks it did not report are
//! unchanged. If something draws without the server knowing (a GPU client
//! writing to a scan-out buffer behind a compositor's back, a broken
//! driver), that change would never be recorded. So the source keeps a
//! checksum of every 16x16 block of the last picture it delivered
//! (updated for the damaged blocks as it captures), and every
//! [`VERIFY_EVERY`] it captures the whole screen whether or not anything
//! was reported, and compares. A block that changed without damage means
//! DAMAGE cannot be trusted on this display: the source switches to
//! comparing pictures for good, and delivers the capture that showed it.
//!
//! CRC-32 per block: a change the checksum misses needs 2^-32 luck on
//! every changed block of a check; it only decides whether to stop trusting
//! DAMAGE, never which blocks are encoded.

use std::time::{Duration, Instant};

use crate::change::{ChangeMap, MB_SIZE};
use crate::frame::{BYTES_PER_PIXEL, FrameSize};

/// How often DAMAGE is checked against the pixels.
pub(super) const VERIFY_EVERY: Duration = Duration::from_secs(5);

/// Checksums of the 16x16 blocks of the last picture delivered.
pub(super) struct BlockSums {
    size: FrameSize,
    /// Raster order; empty until a whole picture was summed.
    sums: Vec<u32>,
    /// When the last whole-screen check was.
    checked_at: Instant,
    every: Duration,
}

impl BlockSums {
    /// No picture yet; checks every `every`.
    pub(super) fn new(every: Duration) -> Self {
        Self {
            size: FrameSize::new(0, 0),
            sums: Vec::new(),
            checked_at: Instant::now(),
            every,
        }
    }

    /// Forgets the picture (after a layout change).
    pub(super) fn forget(&mut self) {
        self.sums.clear();
    }

    /// Whether a whole-screen check is due.
    pub(super) fn check_due(&self) -> bool {
        !self.sums.is_empty() && self.checked_at.elapsed() >= self.every
    }

    /// Records the picture just delivered: the blocks `damaged` marks, or
    /// all of them when nothing was summed yet, the size changed, or
    /// `damaged` is `None`.
    pub(super) fn delivered(
        &mut self,
        size: FrameSize,
        pixels: &[u8],
        damaged: Option<&ChangeMap>,
    ) {
        let whole = self.sums.is_empty() || self.size != size || damaged.is_none();
        if whole {
            self.size = size;
            let (columns, rows) = ChangeMap::unchanged(size).grid();
            self.sums = vec![0; columns as usize * rows as usize];
            self.checked_at = Instant::now();
        }
        let (columns, rows) = ChangeMap::unchanged(size).grid();
        for row in 0..rows {
            for column in 0..columns {
                if whole || damaged.is_some_and(|map| map.is_changed(column, row)) {
                    let at = (row * columns + column) as usize;
                    self.sums[at] = block_sum(size, pixels, column, row);
                }
            }
        }
    }

    /// Compares a whole capture with the last picture: the blocks that
    /// differ. The check is done for now whatever it finds.
    pub(super) fn check(&mut self, size: FrameSize, pixels: &[u8]) -> ChangeMap {
        self.checked_at = Instant::now();
        let mut differing = ChangeMap::unchanged(size);
        if self.size != size || self.sums.is_empty() {
            return ChangeMap::everything(size);
        }
        let (columns, rows) = differing.grid();
        for row in 0..rows {
            for column in 0..columns {
                let at = (row * columns + column) as usize;
                if self.sums[at] != block_sum(size, pixels, column, row) {
                    let side = MB_SIZE;
                    differing.mark((column * side) as i32, (row * side) as i32, 1, 1);
                }
            }
        }
        differing
    }
}

/// CRC-32 of block (`column`, `row`)'s pixels in tightly packed BGRA rows.
fn block_sum(size: FrameSize, pixels: &[u8], column: u32, row: u32) -> u32 {
    let stride = size.width as usize * BYTES_PER_PIXEL;
    let x0 = (column * MB_SIZE) as usize * BYTES_PER_PIXEL;
    let x1 = (((column + 1) * MB_SIZE).min(size.width)) as usize * BYTES_PER_PIXEL;
    let mut hasher = crc32fast::Hasher::new();
    for y in row * MB_SIZE..((row + 1) * MB_SIZE).min(size.height) {
        let start = y as usize * stride;
        hasher.update(&pixels[start + x0..start + x1]);
    }
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_changed_without_damage_is_found_and_damaged_ones_are_not() {
        let size = FrameSize::new(40, 20); // 3x2 blocks, the last partial
        let mut pixels = vec![7u8; 40 * 20 * 4];
        let mut sums = BlockSums::new(Duration::ZERO);
        assert!(!sums.check_due(), "nothing to check before a picture");
        sums.delivered(size, &pixels, None);
        assert!(sums.check_due());
        assert!(sums.check(size, &pixels).is_unchanged());

        // A damaged change, recorded as delivered: no difference after.
        pixels[(3 * 40 + 20) * 4] = 9; // block (1, 0)
        let mut damaged = ChangeMap::unchanged(size);
        damaged.mark(20, 3, 1, 1);
        sums.delivered(size, &pixels, Some(&damaged));
        assert!(sums.check(size, &pixels).is_unchanged());

        // A change nobody reported, in the partial block (2, 1).
        pixels[(19 * 40 + 39) * 4 + 1] = 1;
        let found = sums.check(size, &pixels);
        assert_eq!(found.changed_count(), 1);
        assert!(found.is_changed(2, 1));
    }
}

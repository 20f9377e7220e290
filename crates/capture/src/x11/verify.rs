//! Checking DAMAGE against the pixels, and falling back to comparing
//! pictures when it is wrong.
//!
//! A source that trusts DAMAGE captures only when the server reports
//! drawing, and tells the encoder that the blocks it did not report are
//! unchanged. If something draws without the server knowing (a GPU client
//! writing to a scan-out buffer behind a compositor's back, a broken
//! driver), that change would never be recorded. So every [`VERIFY_EVERY`]
//! that nothing was reported, the source captures the whole screen anyway,
//! converts it, and compares it with the last picture it delivered, block
//! by block ([`missed`]). A block that changed without damage means DAMAGE
//! cannot be trusted on this display: the source switches to comparing
//! pictures for good; its next picture is a capture made for it, converted
//! whole.
//!
//! The comparison is of the converted samples, which are what gets
//! encoded: a change that converts to the same samples would not be in the
//! recording either. Nothing is kept for it but the last picture, which
//! the source keeps anyway; the first version kept a CRC-32 of every
//! block, updated for each damaged block of every picture, which cost a
//! busy screen ~0.5 ms a picture (`docs/benchmarks.md#capture`).

use std::time::{Duration, Instant};

use crate::{ChangeMap, YuvFrame};

/// How often DAMAGE is checked against the pixels.
pub(super) const VERIFY_EVERY: Duration = Duration::from_secs(5);

/// When the next check of DAMAGE is due.
pub(super) struct CheckSchedule {
    /// When the last whole-screen check was.
    checked_at: Instant,
    every: Duration,
}

impl CheckSchedule {
    /// The first check `every` from now.
    pub(super) fn new(every: Duration) -> Self {
        Self {
            checked_at: Instant::now(),
            every,
        }
    }

    /// Whether a whole-screen check is due.
    pub(super) fn due(&self) -> bool {
        self.checked_at.elapsed() >= self.every
    }

    /// A check was done now, whatever it found.
    pub(super) fn checked(&mut self) {
        self.checked_at = Instant::now();
    }
}

/// How many blocks of `now` (the whole screen, captured while DAMAGE
/// reported `reported` since `last`, the picture delivered last) differ
/// from `last` without DAMAGE having named them.
pub(super) fn missed(reported: &ChangeMap, last: &YuvFrame, now: &YuvFrame) -> usize {
    let mut covered = reported.clone();
    covered.merge(&last.differing_blocks(now));
    covered.changed_count() - reported.changed_count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FrameSize;

    fn picture(size: FrameSize, pixels: &[u8]) -> YuvFrame {
        let stride = size.width as usize * 4;
        YuvFrame::from_bgra(size, stride, pixels, Instant::now()).unwrap()
    }

    #[test]
    fn a_block_changed_without_damage_is_found_and_damaged_ones_are_not() {
        let size = FrameSize::new(40, 20); // 3x2 blocks, the last partial
        let mut pixels = vec![7u8; 40 * 20 * 4];
        let last = picture(size, &pixels);
        let nothing = ChangeMap::unchanged(size);
        assert_eq!(missed(&nothing, &last, &picture(size, &pixels)), 0);

        pixels[(3 * 40 + 20) * 4] = 90; // block (1, 0)
        let mut damaged = ChangeMap::unchanged(size);
        damaged.mark(20, 3, 1, 1);
        assert_eq!(missed(&damaged, &last, &picture(size, &pixels)), 0);
        assert_eq!(missed(&nothing, &last, &picture(size, &pixels)), 1);

        pixels[(19 * 40 + 39) * 4 + 1] = 200; // block (2, 1), the corner
        assert_eq!(missed(&damaged, &last, &picture(size, &pixels)), 1);
    }
}

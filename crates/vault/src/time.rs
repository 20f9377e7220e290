//! Time on the recording timeline: UTC microseconds.

use serde::{Deserialize, Serialize};

/// A point in time, in microseconds since the Unix epoch (UTC).
///
/// Microseconds keep a frame's time exact at any frame rate and fit 292,000
/// years in an `i64`.
pub type Micros = i64;

/// A half-open time range `[start, end)` in UTC microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeRange {
    /// First microsecond in the range.
    pub start: Micros,
    /// First microsecond after the range.
    pub end: Micros,
}

impl TimeRange {
    /// A range from `start` to `end`.
    pub fn new(start: Micros, end: Micros) -> Self {
        Self { start, end }
    }

    /// Length in microseconds (0 for an empty or inverted range).
    pub fn duration(&self) -> Micros {
        self.end.saturating_sub(self.start).max(0)
    }

    /// Whether the two ranges share at least one microsecond.
    pub fn overlaps(&self, other: &TimeRange) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// The part of `self` inside `other`, if any.
    pub fn intersect(&self, other: &TimeRange) -> Option<TimeRange> {
        let r = TimeRange::new(self.start.max(other.start), self.end.min(other.end));
        (r.start < r.end).then_some(r)
    }

    /// Whether `t` is inside the range.
    pub fn contains(&self, t: Micros) -> bool {
        self.start <= t && t < self.end
    }
}

impl std::fmt::Display for TimeRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{} .. {}) ({:.3} s)",
            self.start,
            self.end,
            self.duration() as f64 / 1e6
        )
    }
}

/// The current UTC time in microseconds.
pub fn now_micros() -> Micros {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as Micros)
        .unwrap_or(0)
}

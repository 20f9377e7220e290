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

/// A µs time as text: the one place Deskrec prints a time, so logs, audit
/// exports, API bodies, reasons and pages agree. Every form is UTC; a time
/// outside what a calendar can show (years beyond 9999) prints as
/// `N µs` rather than failing.
pub mod utc {
    use super::Micros;

    /// RFC 3339 with the time's full precision, e.g.
    /// `2026-11-24T09:00:03.25Z`: for APIs, logs and exports.
    pub fn rfc3339(us: Micros) -> String {
        format_with(us, |t| t.to_string())
    }

    /// RFC 3339 to the second, e.g. `2026-11-24T09:00:03Z`: in reasons and
    /// messages people read.
    pub fn to_second(us: Micros) -> String {
        format_with(us, |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
    }

    /// `2026-11-24 09:00:03 UTC`: on pages.
    pub fn for_people(us: Micros) -> String {
        format_with(us, |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
    }

    fn format_with(us: Micros, f: impl FnOnce(jiff::Timestamp) -> String) -> String {
        jiff::Timestamp::from_microsecond(us).map_or_else(|_| format!("{us} µs"), f)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_form_is_utc_and_a_time_out_of_range_still_prints() {
            let us = 1_795_510_803_250_000; // 2026-11-24T09:00:03.25Z
            assert_eq!(rfc3339(us), "2026-11-24T09:00:03.25Z");
            assert_eq!(to_second(us), "2026-11-24T09:00:03Z");
            assert_eq!(for_people(us), "2026-11-24 09:00:03 UTC");
            assert_eq!(rfc3339(i64::MAX), format!("{} µs", i64::MAX));
        }
    }
}

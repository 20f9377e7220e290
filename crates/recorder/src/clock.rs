//! The recording timeline: monotonic time anchored to UTC.

use std::time::Instant;

use deskrec_vault::{Micros, now_micros};

/// Turns monotonic instants into UTC microseconds. Anchored once, so a
/// wall-clock change (NTP step, a user changing the time) cannot make
/// frame times jump or run backwards; the jump is measured instead, for
/// the audit.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    utc: Micros,
    instant: Instant,
}

impl Timeline {
    /// Anchors the timeline at this moment.
    pub fn start() -> Self {
        Self {
            utc: now_micros(),
            instant: Instant::now(),
        }
    }

    /// UTC time of `at` on this timeline.
    pub fn at(&self, at: Instant) -> Micros {
        match at.checked_duration_since(self.instant) {
            Some(d) => self.utc + d.as_micros() as Micros,
            None => self.utc - self.instant.duration_since(at).as_micros() as Micros,
        }
    }

    /// How far the wall clock has moved away from the timeline since the
    /// anchor (positive: the wall clock is ahead).
    pub fn wall_clock_drift(&self) -> Micros {
        now_micros() - self.at(Instant::now())
    }
}

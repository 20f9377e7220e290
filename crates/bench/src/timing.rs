//! Timing helpers: a shared machine is noisy, so figures are medians of
//! several runs, and a figure and its reference are run alternately so both
//! see the same background load.

use std::time::{Duration, Instant};

use anyhow::Result;

/// Runs `f` and returns how long it took.
pub fn timed(f: impl FnOnce() -> Result<()>) -> Result<Duration> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed())
}

/// The median of `samples` (the mean of the middle two for an even count).
pub fn median(samples: &[f64]) -> f64 {
    assert!(!samples.is_empty(), "median of no samples");
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let mid = s.len() / 2;
    if s.len().is_multiple_of(2) {
        (s[mid - 1] + s[mid]) / 2.0
    } else {
        s[mid]
    }
}

/// A measured case: prepares untimed, then times its work with [`timed`].
pub type Case<'a> = &'a mut dyn FnMut() -> Result<Duration>;

/// Runs `cases` in turn, `warmup` unrecorded rounds then `runs` recorded
/// ones, and returns the median seconds of each case. The order rotates
/// every round so no case always runs on another's leftovers (dirty page
/// cache, warm CPU caches).
pub fn interleaved(warmup: usize, runs: usize, cases: &mut [Case<'_>]) -> Result<Vec<f64>> {
    let n = cases.len();
    let mut samples = vec![Vec::with_capacity(runs); n];
    for round in 0..warmup + runs {
        for k in 0..n {
            let case = (round + k) % n;
            let took = cases[case]()?;
            if round >= warmup {
                samples[case].push(took.as_secs_f64());
            }
        }
    }
    Ok(samples.iter().map(|s| median(s)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn interleaved_records_only_measured_rounds_and_rotates() {
        let order = std::cell::RefCell::new(Vec::new());
        let mut calls = 0;
        let mut a = || {
            order.borrow_mut().push('a');
            calls += 1;
            Ok(Duration::from_secs(calls))
        };
        let mut b = || {
            order.borrow_mut().push('b');
            Ok(Duration::from_secs(7))
        };
        let medians = interleaved(1, 3, &mut [&mut a, &mut b]).unwrap();
        assert_eq!(medians, [3.0, 7.0]);
        assert_eq!(order.into_inner().iter().collect::<String>(), "abbaabba");
    }
}

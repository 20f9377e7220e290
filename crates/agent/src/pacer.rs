//! The upload bandwidth cap: every upload asks the pacer before sending a
//! piece, and the pacer spaces the pieces so all uploads together stay
//! under the policy's bytes per second.
//!
//! A virtual clock: each piece is given the moment the link would be free
//! for it at the capped rate (after every piece before it), and waits
//! until then. The long-run average is the cap; a burst is at most one
//! piece, which [`Pacer::piece_bytes`] keeps to half a second's worth.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Smallest PATCH piece under a cap (a tus PATCH costs a round trip and a
/// server fsync; smaller pieces would cost more than they smooth).
const MIN_PIECE: u64 = 16 << 10;

/// Spaces uploads to a bytes-per-second cap shared by all of them.
#[derive(Debug)]
pub struct Pacer {
    /// When the link is free again at the capped rate.
    free_at: Mutex<Option<Instant>>,
}

impl Default for Pacer {
    fn default() -> Self {
        Self::new()
    }
}

impl Pacer {
    /// A pacer with nothing sent yet.
    pub fn new() -> Self {
        Self {
            free_at: Mutex::new(None),
        }
    }

    /// How big a piece to send under `cap` (bytes per second), at most
    /// `max`: about half a second's worth, so the rate stays even.
    pub fn piece_bytes(cap: Option<u64>, max: u64) -> u64 {
        match cap {
            Some(rate) => (rate / 2).max(MIN_PIECE).min(max),
            None => max,
        }
    }

    /// Waits until `bytes` may be sent under `cap` (bytes per second;
    /// `None` sends at once).
    pub async fn pace(&self, bytes: u64, cap: Option<u64>) {
        let Some(rate) = cap.filter(|r| *r > 0) else {
            return;
        };
        let start = {
            let mut free_at = self.free_at.lock().await;
            let now = Instant::now();
            let start = free_at.map_or(now, |t| t.max(now));
            *free_at = Some(start + Duration::from_secs_f64(bytes as f64 / rate as f64));
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn uploads_together_keep_to_the_cap() {
        let pacer = std::sync::Arc::new(Pacer::new());
        let t0 = Instant::now();
        // Two uploads of ten 100 kB pieces each at 200 kB/s: 2 MB take
        // 10 s, less the last piece's own time (it is sent, not waited for).
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let p = pacer.clone();
                tokio::spawn(async move {
                    for _ in 0..10 {
                        p.pace(100_000, Some(200_000)).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(9_400) && took <= Duration::from_millis(9_600),
            "{took:?}"
        );
        // No cap: no wait.
        let t1 = Instant::now();
        pacer.pace(1 << 30, None).await;
        assert_eq!(t1.elapsed(), Duration::ZERO);
    }

    #[test]
    fn pieces_are_half_a_second_of_the_cap() {
        assert_eq!(Pacer::piece_bytes(None, 4 << 20), 4 << 20);
        assert_eq!(Pacer::piece_bytes(Some(1_000_000), 4 << 20), 500_000);
        assert_eq!(Pacer::piece_bytes(Some(1_000), 4 << 20), 16 << 10);
        assert_eq!(Pacer::piece_bytes(Some(100 << 20), 4 << 20), 4 << 20);
    }
}

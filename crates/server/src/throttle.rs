//! Slowing down password guessing.
//!
//! Each login may fail [`FREE_FAILURES`] times; after that, every further
//! attempt must wait a delay that doubles with each failure (30 s, 1 min,
//! 2 min … at most 15 min) after the last one, and is refused with 429
//! before any password is checked. A success clears the count. Delays
//! rather than a hard lockout, so an attacker who knows a supervisor's
//! login can slow their sign-in but not lock them out for good.
//!
//! Password checks (Argon2id, deliberately slow) also run at most
//! [`MAX_CONCURRENT_CHECKS`] at a time, so a flood of sign-ins cannot take
//! every core from agents' uploads.
//!
//! State is in memory: a restart forgets failures, which costs an attacker
//! a restart of the server per [`FREE_FAILURES`] guesses.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

/// Failures allowed per login before delays start.
pub const FREE_FAILURES: u32 = 10;
/// The first delay; it doubles with each further failure.
const FIRST_DELAY: Duration = Duration::from_secs(30);
/// The longest delay.
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// Failures older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Logins tracked before old entries are pruned.
const MAX_TRACKED: usize = 10_000;
/// Password checks running at once.
pub const MAX_CONCURRENT_CHECKS: usize = 2;

/// Failed sign-ins per login, and the password-check gate.
#[derive(Debug)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, Failures>>,
    checks: Semaphore,
}

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            failures: Mutex::new(HashMap::new()),
            checks: Semaphore::new(MAX_CONCURRENT_CHECKS),
        }
    }
}

impl LoginThrottle {
    /// `Err(wait)` if `login` must wait before trying again.
    pub fn check(&self, login: &str) -> Result<(), Duration> {
        self.check_at(login, Instant::now())
    }

    fn check_at(&self, login: &str, now: Instant) -> Result<(), Duration> {
        let map = self.lock();
        let Some(f) = map.get(&key(login)) else {
            return Ok(());
        };
        let Some(delay) = delay(f.count) else {
            return Ok(());
        };
        let ready = f.last + delay;
        if now >= ready {
            Ok(())
        } else {
            Err(ready - now)
        }
    }

    /// Records a failed sign-in of `login`.
    pub fn failed(&self, login: &str) {
        self.failed_at(login, Instant::now());
    }

    fn failed_at(&self, login: &str, now: Instant) {
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED {
            map.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
        }
        let f = map.entry(key(login)).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.duration_since(f.last) >= FORGET_AFTER {
            f.count = 0;
        }
        f.count += 1;
        f.last = now;
    }

    /// Clears `login`'s failures after a successful sign-in.
    pub fn succeeded(&self, login: &str) {
        self.lock().remove(&key(login));
    }

    /// Waits for a password-check slot; hold it while verifying.
    pub async fn check_slot(&self) -> SemaphorePermit<'_> {
        self.checks
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Logins compare case-insensitively, as Windows logins do.
fn key(login: &str) -> String {
    login.trim().to_lowercase()
}

/// The wait after `count` failures, if any.
fn delay(count: u32) -> Option<Duration> {
    let over = count.checked_sub(FREE_FAILURES)?;
    Some(
        FIRST_DELAY
            .saturating_mul(1u32.checked_shl(over).unwrap_or(u32::MAX))
            .min(MAX_DELAY),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_start_after_the_free_failures_double_and_are_capped() {
        let t = LoginThrottle::default();
        let t0 = Instant::now();
        for i in 0..FREE_FAILURES {
            assert!(t.check_at("CORP\\vic", t0).is_ok(), "attempt {i}");
            t.failed_at("CORP\\vic", t0);
        }
        assert_eq!(t.check_at("corp\\VIC", t0), Err(FIRST_DELAY));
        assert!(
            t.check_at("CORP\\ann", t0).is_ok(),
            "other logins are not affected"
        );
        let later = t0 + FIRST_DELAY;
        assert!(t.check_at("CORP\\vic", later).is_ok());
        t.failed_at("CORP\\vic", later);
        assert_eq!(t.check_at("CORP\\vic", later), Err(FIRST_DELAY * 2));
        assert_eq!(delay(FREE_FAILURES + 20), Some(MAX_DELAY));
        assert_eq!(delay(u32::MAX), Some(MAX_DELAY));
        t.succeeded("CORP\\VIC");
        assert!(t.check_at("CORP\\vic", later).is_ok());
    }

    #[test]
    fn old_failures_are_forgotten() {
        let t = LoginThrottle::default();
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            t.failed_at("x", t0);
        }
        t.failed_at("x", t0 + FORGET_AFTER);
        assert!(t.check_at("x", t0 + FORGET_AFTER).is_ok());
    }
}

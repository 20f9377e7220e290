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
//! The same delays apply per client address, after
//! [`FREE_FAILURES_PER_ADDRESS`] failures: one client guessing many
//! logins (or flooding with made-up ones) is slowed without slowing
//! supervisors elsewhere, and its refused attempts never reach a password
//! check, so they cannot hold the check slots real sign-ins wait for.
//!
//! A login longer than [`MAX_LOGIN_BYTES`] is refused before any of this
//! (no Windows login comes near it), and each table holds at most
//! [`MAX_TRACKED`] keys, the stalest evicted first: a flood of made-up
//! logins costs a bounded amount of memory.
//!
//! State is in memory: a restart forgets failures, which costs an attacker
//! a restart of the server per [`FREE_FAILURES`] guesses.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

/// Failures allowed per login before delays start.
pub const FREE_FAILURES: u32 = 10;
/// Failures allowed per client address before delays start: a shared
/// office address has several supervisors mistyping.
pub const FREE_FAILURES_PER_ADDRESS: u32 = 50;
/// The longest login accepted for a sign-in (a Windows `DOMAIN\user` is
/// at most about 100 characters).
pub const MAX_LOGIN_BYTES: usize = 256;
/// The first delay; it doubles with each further failure.
const FIRST_DELAY: Duration = Duration::from_secs(30);
/// The longest delay.
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// Failures older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Keys (logins, addresses) each table tracks at most.
pub const MAX_TRACKED: usize = 10_000;
/// Password checks running at once.
pub const MAX_CONCURRENT_CHECKS: usize = 2;

/// Failed sign-ins per login and per address, and the password-check gate.
#[derive(Debug)]
pub struct LoginThrottle {
    logins: Failures<String>,
    addresses: Failures<IpAddr>,
    checks: Semaphore,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            logins: Failures::new(FREE_FAILURES),
            addresses: Failures::new(FREE_FAILURES_PER_ADDRESS),
            checks: Semaphore::new(MAX_CONCURRENT_CHECKS),
        }
    }
}

/// Why a sign-in is refused before its password is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The login is longer than [`MAX_LOGIN_BYTES`].
    LoginTooLong,
    /// Too many failures for this login or from this address: try again
    /// after the wait.
    Wait(Duration),
}

impl LoginThrottle {
    /// `Err` if a sign-in of `login` from `from` must not be checked now.
    pub fn check(&self, login: &str, from: IpAddr) -> Result<(), Refusal> {
        self.check_at(login, from, Instant::now())
    }

    fn check_at(&self, login: &str, from: IpAddr, now: Instant) -> Result<(), Refusal> {
        if login.len() > MAX_LOGIN_BYTES {
            return Err(Refusal::LoginTooLong);
        }
        let wait = [
            self.logins.wait(&key(login), now),
            self.addresses.wait(&from, now),
        ]
        .into_iter()
        .flatten()
        .max();
        match wait {
            Some(w) => Err(Refusal::Wait(w)),
            None => Ok(()),
        }
    }

    /// Records a failed sign-in of `login` from `from`.
    pub fn failed(&self, login: &str, from: IpAddr) {
        self.failed_at(login, from, Instant::now());
    }

    fn failed_at(&self, login: &str, from: IpAddr, now: Instant) {
        self.logins.failed(key(login), now);
        self.addresses.failed(from, now);
    }

    /// Clears `login`'s failures after a successful sign-in (its address
    /// keeps its count: one right password does not excuse many wrong
    /// ones).
    pub fn succeeded(&self, login: &str) {
        self.logins.clear(&key(login));
    }

    /// Waits for a password-check slot; hold it while verifying.
    pub async fn check_slot(&self) -> SemaphorePermit<'_> {
        self.checks
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }

    /// Logins and addresses tracked now (for tests and metrics).
    pub fn tracked(&self) -> (usize, usize) {
        (self.logins.len(), self.addresses.len())
    }
}

/// Failure counts by key, bounded to [`MAX_TRACKED`] keys.
#[derive(Debug)]
struct Failures<K> {
    free: u32,
    map: Mutex<HashMap<K, Count>>,
}

#[derive(Clone, Copy, Debug)]
struct Count {
    count: u32,
    last: Instant,
}

impl<K: Hash + Eq + Clone> Failures<K> {
    fn new(free: u32) -> Self {
        Self {
            free,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// How long `key` must still wait, if at all.
    fn wait(&self, key: &K, now: Instant) -> Option<Duration> {
        let map = self.lock();
        let f = map.get(key)?;
        let ready = f.last + delay(f.count, self.free)?;
        (now < ready).then(|| ready - now)
    }

    fn failed(&self, key: K, now: Instant) {
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
            map.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
            // Still full: evict the stalest key. O(n), but only on a
            // flood, and n is bounded.
            if map.len() >= MAX_TRACKED
                && let Some(stalest) = map
                    .iter()
                    .min_by_key(|(_, f)| f.last)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&stalest);
            }
        }
        let f = map.entry(key).or_insert(Count {
            count: 0,
            last: now,
        });
        if now.duration_since(f.last) >= FORGET_AFTER {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
    }

    fn clear(&self, key: &K) {
        self.lock().remove(key);
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Count>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Logins compare case-insensitively, as Windows logins do.
fn key(login: &str) -> String {
    login.trim().to_lowercase()
}

/// The wait after `count` failures of which `free` cost nothing, if any.
fn delay(count: u32, free: u32) -> Option<Duration> {
    let over = count.checked_sub(free)?;
    Some(
        FIRST_DELAY
            .saturating_mul(1u32.checked_shl(over).unwrap_or(u32::MAX))
            .min(MAX_DELAY),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const AWAY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn delays_start_after_the_free_failures_double_and_are_capped() {
        let t = LoginThrottle::default();
        let t0 = Instant::now();
        for i in 0..FREE_FAILURES {
            assert!(t.check_at("CORP\\vic", HOME, t0).is_ok(), "attempt {i}");
            t.failed_at("CORP\\vic", HOME, t0);
        }
        assert_eq!(
            t.check_at("corp\\VIC", AWAY, t0),
            Err(Refusal::Wait(FIRST_DELAY))
        );
        assert!(
            t.check_at("CORP\\ann", HOME, t0).is_ok(),
            "other logins are not affected"
        );
        let later = t0 + FIRST_DELAY;
        assert!(t.check_at("CORP\\vic", HOME, later).is_ok());
        t.failed_at("CORP\\vic", HOME, later);
        assert_eq!(
            t.check_at("CORP\\vic", HOME, later),
            Err(Refusal::Wait(FIRST_DELAY * 2))
        );
        assert_eq!(delay(FREE_FAILURES + 20, FREE_FAILURES), Some(MAX_DELAY));
        assert_eq!(delay(u32::MAX, FREE_FAILURES), Some(MAX_DELAY));
        t.succeeded("CORP\\VIC");
        assert!(t.check_at("CORP\\vic", HOME, later).is_ok());
    }

    #[test]
    fn old_failures_are_forgotten() {
        let t = LoginThrottle::default();
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            t.failed_at("x", HOME, t0);
        }
        t.failed_at("x", HOME, t0 + FORGET_AFTER);
        assert!(t.check_at("x", HOME, t0 + FORGET_AFTER).is_ok());
    }

    #[test]
    fn one_address_guessing_many_logins_is_slowed_and_others_are_not() {
        let t = LoginThrottle::default();
        let t0 = Instant::now();
        for i in 0..FREE_FAILURES_PER_ADDRESS {
            let login = format!("CORP\\made-up-{i}");
            assert!(t.check_at(&login, AWAY, t0).is_ok(), "attempt {i}");
            t.failed_at(&login, AWAY, t0);
        }
        assert_eq!(
            t.check_at("CORP\\yet-another", AWAY, t0),
            Err(Refusal::Wait(FIRST_DELAY))
        );
        assert!(
            t.check_at("CORP\\vic", HOME, t0).is_ok(),
            "a supervisor at another address signs in"
        );
    }

    #[test]
    fn a_long_login_is_refused_before_it_is_looked_up_or_tracked() {
        let t = LoginThrottle::default();
        let long = "x".repeat(MAX_LOGIN_BYTES + 1);
        assert_eq!(t.check(&long, HOME), Err(Refusal::LoginTooLong));
        assert!(t.check(&"x".repeat(MAX_LOGIN_BYTES), HOME).is_ok());
        assert_eq!(t.tracked(), (0, 0));
    }

    #[test]
    fn a_flood_of_made_up_logins_keeps_the_table_bounded() {
        let t = LoginThrottle::default();
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED + 500 {
            t.failed_at(
                &format!("flood-{i}"),
                HOME,
                t0 + Duration::from_millis(i as u64),
            );
        }
        let (logins, addresses) = t.tracked();
        assert_eq!(logins, MAX_TRACKED);
        assert_eq!(addresses, 1);
        // The stalest went first; the newest are still counted.
        assert!(t.logins.wait(&key("flood-0"), t0).is_none());
        assert!(
            t.logins
                .lock()
                .contains_key(&key(&format!("flood-{}", MAX_TRACKED + 499)))
        );
    }
}

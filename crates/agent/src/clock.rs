//! The agent's clock and its offset to the server's.
//!
//! Contact times arrive on the server's clock; segments are stamped with
//! the PC's. The agent measures the difference with an NTP-style exchange
//! ([`ClockProbe`](deskrec_protocol::ClockProbe) /
//! [`ClockReply`]) on every connect and periodically, keeps the median of
//! a few samples (one slow round trip cannot move it much) and converts
//! contact times with it. The clock itself is injectable, so tests can run
//! an agent whose clock is minutes off.

use deskrec_protocol::ClockReply;
use deskrec_vault::Micros;
use serde::{Deserialize, Serialize};

/// Where the agent reads the time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, µs since the Unix epoch, on this PC's clock.
    fn now(&self) -> Micros;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Micros {
        deskrec_vault::now_micros()
    }
}

/// The system clock moved by a fixed amount: a PC whose clock is wrong.
#[derive(Debug, Clone, Copy)]
pub struct SkewedClock {
    /// Added to the system time, µs (positive: the PC is ahead).
    pub skew_us: i64,
}

impl Clock for SkewedClock {
    fn now(&self) -> Micros {
        deskrec_vault::now_micros() + self.skew_us
    }
}

/// The measured offset: `server clock - agent clock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockOffset {
    /// Server minus agent, µs.
    pub offset_us: i64,
    /// Round trip of the sample whose offset was chosen, µs.
    pub rtt_us: i64,
    /// How many samples the median was taken over.
    pub samples: u32,
    /// When it was measured (agent clock).
    pub measured_at: Micros,
}

impl ClockOffset {
    /// A server time on the agent's clock.
    pub fn to_agent(&self, server: Micros) -> Micros {
        server - self.offset_us
    }

    /// An agent time on the server's clock.
    pub fn to_server(&self, agent: Micros) -> Micros {
        agent + self.offset_us
    }
}

/// One exchange: `(offset, round trip)` from a reply received at `t3`
/// (agent clock).
pub fn sample(reply: &ClockReply, t3: Micros) -> (i64, i64) {
    let offset = ((reply.t1 - reply.t0) + (reply.t2 - t3)) / 2;
    let rtt = (t3 - reply.t0) - (reply.t2 - reply.t1);
    (offset, rtt)
}

/// The median of the samples' offsets (the lower middle one for an even
/// count), or `None` without samples.
pub fn estimate(samples: &[(i64, i64)], measured_at: Micros) -> Option<ClockOffset> {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let &(offset_us, rtt_us) = sorted.get(sorted.len().checked_sub(1)? / 2)?;
    Some(ClockOffset {
        offset_us,
        rtt_us,
        samples: samples.len() as u32,
        measured_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_sample_and_median() {
        // Agent 300 s behind the server, 10 ms each way, 1 ms on the server.
        let skew = 300_000_000;
        let reply = ClockReply {
            t0: 1_000_000,
            t1: 1_000_000 + skew + 10_000,
            t2: 1_000_000 + skew + 11_000,
        };
        assert_eq!(sample(&reply, 1_021_000), (skew, 20_000));
        // One slow, asymmetric sample does not move the median.
        let samples = [(skew, 20_000), (skew + 40_000, 90_000), (skew - 1, 21_000)];
        let est = estimate(&samples, 5).unwrap();
        assert_eq!((est.offset_us, est.samples), (skew, 3));
        assert_eq!(est.to_agent(skew + 7), 7);
        assert_eq!(est.to_server(7), skew + 7);
        assert!(estimate(&[], 5).is_none());
    }
}

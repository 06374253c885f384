//! Reconnect pacing. The delays are the AVS Device SDK's table (250 ms, 1 s, 3 s, 5 s, 10 s, 20 s, then
//! 20 s) with ±50 % jitter, so that a fleet of devices that lost the network together does not reconnect
//! in lockstep. Two rules the SDK's users missed (avs-device-sdk #582, #1550) bound the rest: a hard budget
//! of attempts in any window, and a connection counts as healthy — and starts the table again — only
//! once it has stayed up for a while, so a server that accepts and then fails at once cannot make a
//! reconnect storm.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// How reconnect attempts are paced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// The delay before the 1st, 2nd, … attempt after a failure; the last one repeats. Each is jittered
    /// into [delay / 1.5, delay × 1.5].
    pub delays: Vec<Duration>,
    /// At most this many connection attempts in any `window`.
    pub max_attempts: usize,
    pub window: Duration,
    /// A connection up at least this long starts the delays again.
    pub healthy_after: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            delays: [250, 1_000, 3_000, 5_000, 10_000, 20_000].map(Duration::from_millis).to_vec(),
            max_attempts: 50,
            window: Duration::from_secs(600),
            healthy_after: Duration::from_secs(30),
        }
    }
}

impl ReconnectPolicy {
    /// The same policy on a clock running `factor` times faster: for simulations and tests of long
    /// outages.
    pub fn compressed(self, factor: u32) -> Self {
        ReconnectPolicy {
            delays: self.delays.iter().map(|d| *d / factor).collect(),
            max_attempts: self.max_attempts,
            window: self.window / factor,
            healthy_after: self.healthy_after / factor,
        }
    }
}

/// Tracks attempts and says how long to wait before the next.
#[derive(Debug)]
pub struct Backoff {
    policy: ReconnectPolicy,
    /// Failures since the last healthy connection.
    step: usize,
    /// When recent attempts started, oldest first; none older than the window.
    attempts: VecDeque<Instant>,
    connected_since: Option<Instant>,
}

impl Backoff {
    pub fn new(policy: ReconnectPolicy) -> Self {
        Backoff { policy, step: 0, attempts: VecDeque::new(), connected_since: None }
    }

    /// A connection attempt starts now.
    pub fn attempt(&mut self) {
        let now = Instant::now();
        self.forget_before(now);
        self.attempts.push_back(now);
        self.connected_since = None;
    }

    /// The attempt made a working connection.
    pub fn connected(&mut self) {
        self.connected_since = Some(Instant::now());
    }

    /// What was waited out succeeded: the next failure starts the table again.
    pub fn reset(&mut self) {
        self.step = 0;
    }

    /// The connection (or the attempt) ended: how long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let now = Instant::now();
        if self.connected_since.take().is_some_and(|since| now.duration_since(since) >= self.policy.healthy_after) {
            self.reset();
        }
        let base = self.policy.delays.get(self.step).or(self.policy.delays.last()).copied().unwrap_or_default();
        self.step += 1;
        let delay = jitter(base, random_unit());
        self.forget_before(now);
        if self.attempts.len() < self.policy.max_attempts {
            return delay;
        }
        // The budget is spent: wait until the oldest attempt in it leaves the window.
        let frees_at = self.attempts[self.attempts.len() - self.policy.max_attempts] + self.policy.window;
        delay.max(frees_at.saturating_duration_since(now))
    }

    fn forget_before(&mut self, now: Instant) {
        while self.attempts.front().is_some_and(|t| now.duration_since(*t) >= self.policy.window) {
            self.attempts.pop_front();
        }
    }
}

/// `base` scaled into [base/1.5, base×1.5] by `unit` ∈ [0, 1).
fn jitter(base: Duration, unit: f64) -> Duration {
    let low = base.as_secs_f64() / 1.5;
    let high = base.as_secs_f64() * 1.5;
    Duration::from_secs_f64(low + (high - low) * unit)
}

fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    // The system RNG only fails on a broken system; the unjittered midpoint is a safe fallback.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Duration) -> u64 {
        d.as_millis() as u64
    }

    #[tokio::test(start_paused = true)]
    async fn delays_follow_the_table_within_the_jitter_band() {
        let mut b = Backoff::new(ReconnectPolicy::default());
        for base in [250, 1_000, 3_000, 5_000, 10_000, 20_000, 20_000, 20_000] {
            b.attempt();
            let d = ms(b.next_delay());
            assert!(d >= base * 2 / 3 && d <= base * 3 / 2, "{d} outside the band of {base}");
            tokio::time::sleep(Duration::from_millis(d)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_connection_that_stayed_up_starts_the_table_again() {
        let mut b = Backoff::new(ReconnectPolicy::default());
        for _ in 0..4 {
            b.attempt();
            let _ = b.next_delay();
        }
        // Accepted, then dropped at once (a server failing every SynchronizeState): still backing off.
        b.attempt();
        b.connected();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(b.next_delay() >= Duration::from_millis(6_666), "the 5th step (10 s) goes on");
        // Up for longer than healthy_after: the next failure retries quickly.
        b.attempt();
        b.connected();
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert!(b.next_delay() <= Duration::from_millis(375));
    }

    /// A night offline with every attempt failing at once: never more than 50 attempts in any ten
    /// minutes, and never more than one step (20 s + jitter) between attempts once the table is climbed,
    /// so the device is back within one step of the network returning.
    #[tokio::test(start_paused = true)]
    async fn a_long_outage_keeps_to_the_attempt_budget_and_keeps_trying() {
        let policy = ReconnectPolicy::default();
        let mut b = Backoff::new(policy.clone());
        let start = Instant::now();
        let mut attempts = Vec::new();
        while Instant::now() - start < Duration::from_secs(8 * 3600) {
            b.attempt();
            attempts.push(Instant::now());
            tokio::time::sleep(b.next_delay()).await;
        }
        for (i, first) in attempts.iter().enumerate() {
            let in_window = attempts[i..].iter().take_while(|t| **t - *first < policy.window).count();
            assert!(in_window <= 50, "{in_window} attempts in the 10 minutes from attempt {i}");
        }
        let longest = attempts.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(longest <= Duration::from_secs(30), "longest gap {longest:?}");
        assert!(attempts.len() > 8 * 60 * 2, "kept trying all night: {} attempts", attempts.len());
    }

    #[test]
    fn jitter_spans_the_band_and_compression_scales_every_duration() {
        assert_eq!(jitter(Duration::from_secs(3), 0.0), Duration::from_secs(2));
        assert!(jitter(Duration::from_secs(3), 0.999_999) > Duration::from_millis(4_499));
        let fast = ReconnectPolicy::default().compressed(100);
        assert_eq!(fast.delays[0], Duration::from_micros(2_500));
        assert_eq!((fast.window, fast.max_attempts), (Duration::from_secs(6), 50));
    }
}

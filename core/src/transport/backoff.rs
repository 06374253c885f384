//! Reconnect pacing: the AVS Device SDK's table (250 ms, 1 s, 3 s, 5 s, 10 s, 20 s, then 20 s) with ±50 %
//! jitter, so that a fleet of devices that lost the network together does not reconnect in lockstep.

use std::time::Duration;

const TABLE_MS: [u64; 6] = [250, 1_000, 3_000, 5_000, 10_000, 20_000];

#[derive(Debug, Default)]
pub struct Backoff {
    attempt: usize,
}

impl Backoff {
    /// The delay before the next attempt; each call moves one step up the table.
    pub fn next_delay(&mut self) -> Duration {
        let base = TABLE_MS[self.attempt.min(TABLE_MS.len() - 1)];
        self.attempt += 1;
        Duration::from_millis(jitter(base, random_unit()))
    }

    /// A connection that came up healthy starts the table again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// `base` scaled into [base/1.5, base×1.5] by `unit` ∈ [0, 1).
fn jitter(base: u64, unit: f64) -> u64 {
    let low = base as f64 / 1.5;
    let high = base as f64 * 1.5;
    (low + (high - low) * unit) as u64
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

    #[test]
    fn delays_follow_the_table_within_the_jitter_band_and_reset() {
        let mut b = Backoff::default();
        for base in TABLE_MS.iter().chain([20_000, 20_000].iter()) {
            let d = b.next_delay().as_millis() as u64;
            assert!(d >= base * 2 / 3 && d <= base * 3 / 2, "{d} outside the band of {base}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(375));
    }

    #[test]
    fn jitter_spans_the_band() {
        assert_eq!(jitter(3_000, 0.0), 2_000);
        assert_eq!(jitter(3_000, 0.999_999), 4_499);
    }
}

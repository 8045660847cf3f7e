//! Exponential backoff with full jitter, as AWS's architecture blog and
//! Vector recommend: each wait is uniform in [0, min(cap, base * 2^n)].

use std::time::Duration;

/// Backoff state for one retry loop.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    seed: u64,
}

impl Backoff {
    /// A backoff from `base` up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9, |d| d.as_nanos() as u64);
        Self { base, cap, attempt: 0, seed: seed | 1 }
    }

    /// The next wait.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.base.saturating_mul(1_u32 << self.attempt.min(20)).min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        // xorshift64: jitter needs no cryptographic randomness.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let fraction = (self.seed >> 11) as f64 / (1_u64 << 53) as f64;
        ceiling.mul_f64(fraction)
    }

    /// Start again from the base after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_stay_under_a_growing_capped_ceiling() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        for attempt in 0..30 {
            let ceiling =
                Duration::from_millis(100 * (1 << attempt.min(20))).min(Duration::from_secs(2));
            assert!(backoff.next_delay() <= ceiling);
        }
        let late: Vec<_> = (0..50).map(|_| backoff.next_delay()).collect();
        assert!(
            late.iter().any(|d| *d > Duration::from_millis(200)),
            "jitter spreads up to the cap"
        );
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}

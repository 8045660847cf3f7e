//! Exponential backoff with full jitter, as AWS's architecture blog and
//! Vector recommend: each wait is uniform in [0, min(cap, base * 2^n)];
//! and [`jitter`], the ±10 % spread of poll intervals. Both draw from one
//! xorshift generator: timing needs no cryptographic randomness.

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
        Self { base, cap, attempt: 0, seed: clock_seed() }
    }

    /// The next wait.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.base.saturating_mul(1_u32 << self.attempt.min(20)).min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(next_fraction(&mut self.seed))
    }

    /// Start again from the base after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// `duration` ± 10 %, so that many pollers started together do not poll
/// in lockstep.
pub fn jitter(duration: Duration) -> Duration {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEED: AtomicU64 = AtomicU64::new(0);
    let mut seed = match SEED.load(Ordering::Relaxed) {
        0 => clock_seed(),
        seed => seed,
    };
    let fraction = next_fraction(&mut seed);
    SEED.store(seed, Ordering::Relaxed);
    duration.mul_f64(0.9 + fraction / 5.0)
}

/// A non-zero seed from the clock.
fn clock_seed() -> u64 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x9E37_79B9, |d| d.as_nanos() as u64);
    seed | 1
}

/// One xorshift64 step: a fraction uniform in [0, 1).
fn next_fraction(seed: &mut u64) -> f64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    (*seed >> 11) as f64 / (1_u64 << 53) as f64
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

    #[test]
    fn jitter_stays_within_ten_percent_and_spreads() {
        let interval = Duration::from_secs(100);
        let waits: Vec<_> = (0..200).map(|_| jitter(interval)).collect();
        assert!(
            waits.iter().all(|w| *w >= Duration::from_secs(90) && *w <= Duration::from_secs(110))
        );
        assert!(waits.iter().any(|w| *w < Duration::from_secs(97)), "{waits:?}");
        assert!(waits.iter().any(|w| *w > Duration::from_secs(103)), "{waits:?}");
    }
}

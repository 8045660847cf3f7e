//! Adaptive request concurrency: how many requests a sink keeps in flight,
//! learned from the destination's answers, in the manner of TCP congestion
//! control (and of Vector's `adaptive_concurrency`, whose decision rule this
//! follows: vectordotdev/vector@ff1446a0a35cf6737e2fffcdced88fbe99665ffd:src/sinks/util/adaptive_concurrency/controller.rs).
//!
//! Once per round trip the mean round-trip time of the requests answered in
//! it is compared with a moving average of earlier ones:
//!
//! - at most that average, every slot was taken and nothing pushed back:
//!   one more slot (doubling until the first decrease, like TCP's slow
//!   start, so a cluster 200 ms away is filled in a second, not in ten);
//! - more than the average plus 2.5 standard deviations (and 5 %): the limit falls
//!   to 90 %; a request answered 429, 503, a timeout or another retry: it
//!   halves (as TCP does on loss; Vector takes 90 % for both, which needs
//!   twenty round trips of 503s to get from 16 to 2).
//!
//! A fixed `request.concurrency` skips all of this. A lower limit never
//! cancels a request: the permits of finished ones are taken back instead.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The weight of a new interval in the moving average (Vector's default).
const EWMA_ALPHA: f64 = 0.4;
/// How many standard deviations above the average count as slower.
const DEVIATION_SCALE: f64 = 2.5;
/// The share of the limit kept when the round trip grows.
const DECREASE_RATIO: f64 = 0.9;
/// The share kept when the destination pushes back.
const BACKPRESSURE_RATIO: f64 = 0.5;
/// The shortest interval between two decisions (a loopback answers in µs).
const MIN_INTERVAL: Duration = Duration::from_millis(5);

/// What one answer tells the limiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    /// Answered per item: its round-trip time counts.
    Answered,
    /// 429, 503, a timeout, a retried item: the destination is overloaded.
    Backpressure,
    /// A refusal, a split, a rejection-only answer: neither.
    Neutral,
}

/// An exponentially weighted moving mean and variance.
#[derive(Clone, Copy, Debug)]
struct Ewma {
    mean: f64,
    variance: f64,
}

impl Ewma {
    fn update(&mut self, value: f64) {
        let diff = value - self.mean;
        let increment = EWMA_ALPHA * diff;
        self.mean += increment;
        self.variance = (1.0 - EWMA_ALPHA) * (self.variance + diff * increment);
    }
}

#[derive(Debug)]
struct State {
    limit: usize,
    /// Permits to take back as requests finish (after a decrease).
    debt: usize,
    in_flight: usize,
    reached_limit: bool,
    backpressure: bool,
    slow_start: bool,
    past: Option<Ewma>,
    /// This interval's round trips: sum and count.
    sum: f64,
    count: u32,
    next_update: Instant,
}

/// The concurrency limit of one sink.
#[derive(Debug)]
pub(crate) struct Limiter {
    semaphore: Arc<Semaphore>,
    state: Mutex<State>,
    adaptive: bool,
    ceiling: usize,
    gauge: metrics::Gauge,
}

/// A slot held by one batch until it is final.
#[derive(Debug)]
pub(crate) struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    limiter: Arc<Limiter>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.limiter.lock();
        state.in_flight -= 1;
        if state.debt > 0
            && let Some(permit) = self.permit.take()
        {
            state.debt -= 1;
            permit.forget();
        }
    }
}

impl Limiter {
    /// A limiter starting at 1 and learning up to `ceiling` (`adaptive`),
    /// or fixed at `ceiling`.
    pub(crate) fn new(adaptive: bool, ceiling: usize, gauge: metrics::Gauge) -> Arc<Self> {
        let limit = if adaptive { 1 } else { ceiling };
        gauge.set(limit as f64);
        Arc::new(Self {
            semaphore: Arc::new(Semaphore::new(limit)),
            state: Mutex::new(State {
                limit,
                debt: 0,
                in_flight: 0,
                reached_limit: false,
                backpressure: false,
                slow_start: true,
                past: None,
                sum: 0.0,
                count: 0,
                next_update: Instant::now(),
            }),
            adaptive,
            ceiling,
            gauge,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current limit.
    #[cfg(test)]
    pub(crate) fn limit(&self) -> usize {
        self.lock().limit
    }

    /// Whether a slot is free right now.
    pub(crate) fn has_room(&self) -> bool {
        self.semaphore.available_permits() > 0
    }

    /// Wait for a slot.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Option<Slot> {
        let permit = self.semaphore.clone().acquire_owned().await.ok()?;
        let mut state = self.lock();
        state.in_flight += 1;
        if state.in_flight >= state.limit {
            state.reached_limit = true;
        }
        drop(state);
        Some(Slot { permit: Some(permit), limiter: self.clone() })
    }

    /// One answer, `rtt` after its request left.
    pub(crate) fn observe(&self, rtt: Duration, signal: Signal) {
        let now = Instant::now();
        let mut state = self.lock();
        match signal {
            Signal::Answered => {
                state.sum += rtt.as_secs_f64();
                state.count += 1;
            }
            Signal::Backpressure => state.backpressure = true,
            Signal::Neutral => {}
        }
        let current = (state.count > 0).then(|| state.sum / f64::from(state.count));
        let Some(mut past) = state.past else {
            if let Some(current) = current {
                state.past = Some(Ewma { mean: current, variance: 0.0 });
                state.next_update = now + interval(current);
                (state.sum, state.count) = (0.0, 0);
            }
            return;
        };
        if now < state.next_update {
            return;
        }
        if self.adaptive {
            self.decide(&mut state, past, current);
        }
        // The next decision one round trip on: the current one when it is
        // shorter, so a destination that recovered is answered quickly.
        let mut next = past.mean;
        if let Some(current) = current {
            past.update(current);
            state.past = Some(past);
            next = past.mean.min(current);
        }
        state.next_update = now + interval(next);
        (state.sum, state.count) = (0.0, 0);
        state.backpressure = false;
        state.reached_limit = state.in_flight >= state.limit;
    }

    fn decide(&self, state: &mut State, past: Ewma, current: Option<f64>) {
        // At least 5 % of the average: a destination that always takes the
        // same time has no variance, and must not look slower at the ceiling.
        let threshold = (past.variance.sqrt() * DEVIATION_SCALE).max(past.mean * 0.05);
        // Within 1 % counts as no slower (float sums of equal times differ).
        let faster = current.is_some_and(|current| current <= past.mean * 1.01);
        let slower = current.is_some_and(|current| current > past.mean + threshold);
        if state.limit < self.ceiling && state.reached_limit && !state.backpressure && faster {
            let step = if state.slow_start { state.limit } else { 1 };
            let raised = (state.limit + step).min(self.ceiling);
            self.raise(state, raised - state.limit);
        } else if state.limit > 1 && (state.backpressure || slower) {
            state.slow_start = false;
            let ratio = if state.backpressure { BACKPRESSURE_RATIO } else { DECREASE_RATIO };
            let lowered = ((state.limit as f64 * ratio) as usize).clamp(1, state.limit - 1);
            let cut = state.limit - lowered;
            state.limit = lowered;
            // Take free permits back now, the rest as requests finish.
            let forgotten = self.semaphore.forget_permits(cut);
            state.debt += cut - forgotten;
            self.gauge.set(state.limit as f64);
        }
    }

    fn raise(&self, state: &mut State, by: usize) {
        state.limit += by;
        let repaid = by.min(state.debt);
        state.debt -= repaid;
        self.semaphore.add_permits(by - repaid);
        self.gauge.set(state.limit as f64);
    }
}

fn interval(mean_secs: f64) -> Duration {
    Duration::from_secs_f64(mean_secs.max(0.0)).max(MIN_INTERVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(adaptive: bool, ceiling: usize) -> Arc<Limiter> {
        Limiter::new(adaptive, ceiling, metrics::Gauge::noop())
    }

    /// Run rounds of `limit` requests that each take `rtt` and answer `signal`.
    async fn rounds(limiter: &Arc<Limiter>, count: usize, rtt: Duration, signal: Signal) {
        for _ in 0..count {
            let mut slots = Vec::new();
            for _ in 0..limiter.limit() {
                slots.push(limiter.acquire().await.expect("open"));
            }
            tokio::time::sleep(rtt).await;
            for slot in slots {
                limiter.observe(rtt, signal);
                drop(slot);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_destination_is_given_every_slot_up_to_the_ceiling() {
        let limiter = limiter(true, 64);
        rounds(&limiter, 12, Duration::from_millis(50), Signal::Answered).await;
        assert_eq!(limiter.limit(), 64, "slow start doubles while the round trip stays flat");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slower_destination_or_backpressure_lowers_the_limit_and_it_recovers() {
        let limiter = limiter(true, 32);
        rounds(&limiter, 8, Duration::from_millis(10), Signal::Answered).await;
        assert_eq!(limiter.limit(), 32);
        rounds(&limiter, 3, Duration::from_millis(400), Signal::Answered).await;
        let after_slow = limiter.limit();
        assert!(after_slow < 32, "a round trip 40 times longer lowers it: {after_slow}");
        rounds(&limiter, 20, Duration::from_millis(400), Signal::Backpressure).await;
        let after_503 = limiter.limit();
        assert!(after_503 < after_slow / 2, "503s keep lowering it: {after_503}");
        rounds(&limiter, 60, Duration::from_millis(10), Signal::Answered).await;
        assert!(limiter.limit() > after_503 + 10, "it recovers: {}", limiter.limit());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lower_limit_takes_back_the_permits_of_requests_in_flight() {
        let limiter = limiter(true, 16);
        rounds(&limiter, 6, Duration::from_millis(10), Signal::Answered).await;
        assert_eq!(limiter.limit(), 16);
        let mut slots = Vec::new();
        for _ in 0..16 {
            slots.push(limiter.acquire().await.expect("open"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        limiter.observe(Duration::from_millis(20), Signal::Backpressure);
        let lowered = limiter.limit();
        assert!(lowered < 16);
        drop(slots);
        assert_eq!(limiter.semaphore.available_permits(), lowered, "no more slots than the limit");
    }

    #[tokio::test(start_paused = true)]
    async fn a_fixed_concurrency_never_moves() {
        let limiter = limiter(false, 4);
        rounds(&limiter, 5, Duration::from_millis(10), Signal::Backpressure).await;
        rounds(&limiter, 5, Duration::from_millis(10), Signal::Answered).await;
        assert_eq!(limiter.limit(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn demand_below_the_limit_does_not_raise_it() {
        let limiter = limiter(true, 32);
        for _ in 0..20 {
            let slot = limiter.acquire().await.expect("open");
            tokio::time::sleep(Duration::from_millis(10)).await;
            limiter.observe(Duration::from_millis(10), Signal::Answered);
            drop(slot);
            let second = limiter.acquire().await.expect("open");
            drop(second);
        }
        assert!(limiter.limit() <= 2, "one request at a time is no evidence: {}", limiter.limit());
    }
}

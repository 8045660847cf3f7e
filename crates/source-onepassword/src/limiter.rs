//! One rate limiter per token, shared by every stream and every source that
//! uses it: the API counts requests per account (600 a minute, 30,000 an
//! hour), so three streams polling on their own would exceed it together.
//! A `Retry-After` seen by one stream pauses them all. It also paces the
//! polls of caught-up streams: together they spend at most half of the
//! token's sustained budget, so a backfill and other users keep the rest.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use sluice_core::Secret;
use tokio::time::Instant;

use crate::config::RateLimitConfig;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
/// The API counts a request when it arrives, sluice when it sends it: an
/// early request that took longer on the way than a later one would let a
/// 601st arrive inside the API's minute (the one 429 a benchmark backfill
/// drew). A request leaves sluice's windows this much later than the API's.
/// It costs 1.6 % of the ceiling (600 requests per 61 s).
const SLACK: Duration = Duration::from_secs(1);
/// A long wait is slept in slices of this, each reported as it ends.
const WAIT_SLICE: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Windows {
    sent: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

/// Sliding-window limiter.
#[derive(Debug)]
pub struct Limiter {
    limits: RateLimitConfig,
    windows: Mutex<Windows>,
    /// Streams polling with this token (every source that uses it).
    pollers: AtomicUsize,
}

/// One stream's share of a token's polls, held while it runs.
#[derive(Debug)]
pub struct Poller(Arc<Limiter>);

impl Drop for Poller {
    fn drop(&mut self) {
        self.0.pollers.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Limiter {
    /// A limiter of its own (tests); sources use [`Limiter::for_token`].
    pub fn new(limits: RateLimitConfig) -> Self {
        Self { limits, windows: Mutex::new(Windows::default()), pollers: AtomicUsize::new(0) }
    }

    /// Count a stream among this token's pollers until the guard drops.
    pub fn poller(self: &Arc<Self>) -> Poller {
        self.pollers.fetch_add(1, Ordering::Relaxed);
        Poller(self.clone())
    }

    /// How long a caught-up stream waits before it polls again: `configured`,
    /// or longer when the token's pollers would together spend more than
    /// half of its sustained budget (the lower of the minute's limit and a
    /// sixtieth of the hour's). Three streams at 600/min and 30,000/h may
    /// poll every 0.72 s; two sources sharing a token, every 1.44 s.
    pub fn idle_interval(&self, configured: Duration) -> Duration {
        let per_minute = f64::from(self.limits.per_minute.min(self.limits.per_hour / 60).max(1));
        let pollers = self.pollers.load(Ordering::Relaxed).max(1) as f64;
        configured.max(Duration::from_secs_f64(pollers * 60.0 / (per_minute / 2.0)))
    }

    /// The limiter shared by every user of `token` (keyed by a hash; the
    /// token itself is not kept). The first user's limits apply.
    pub fn for_token(token: &Secret, limits: RateLimitConfig) -> Arc<Self> {
        static REGISTRY: OnceLock<Mutex<HashMap<u64, Arc<Limiter>>>> = OnceLock::new();
        let mut hasher = DefaultHasher::new();
        token.expose().hash(&mut hasher);
        let key = hasher.finish();
        let mut registry =
            REGISTRY.get_or_init(Mutex::default).lock().unwrap_or_else(|p| p.into_inner());
        registry.entry(key).or_insert_with(|| Arc::new(Self::new(limits))).clone()
    }

    fn lock(&self) -> MutexGuard<'_, Windows> {
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long to wait before a request may be sent at `now`; zero records it as sent.
    fn reserve(&self, now: Instant) -> Duration {
        let mut windows = self.lock();
        if let Some(until) = windows.paused_until {
            if until > now {
                return until - now;
            }
            windows.paused_until = None;
        }
        while windows.sent.front().is_some_and(|t| now.duration_since(*t) >= HOUR + SLACK) {
            windows.sent.pop_front();
        }
        let minute_start =
            windows.sent.partition_point(|t| now.duration_since(*t) >= MINUTE + SLACK);
        if windows.sent.len() - minute_start >= self.limits.per_minute as usize {
            return (windows.sent[minute_start] + MINUTE + SLACK) - now;
        }
        if windows.sent.len() >= self.limits.per_hour as usize {
            return (windows.sent[0] + HOUR + SLACK) - now;
        }
        windows.sent.push_back(now);
        Duration::ZERO
    }

    /// Wait until a request may be sent; returns how long that took.
    /// `waited` is told each slice (at most 1 s) of the wait as it ends, so
    /// a long pause is counted while it lasts.
    pub async fn acquire(&self, mut waited: impl FnMut(Duration)) -> Duration {
        let started = Instant::now();
        loop {
            let wait = self.reserve(Instant::now());
            if wait.is_zero() {
                return started.elapsed();
            }
            let slice = wait.min(WAIT_SLICE);
            tokio::time::sleep(slice).await;
            waited(slice);
        }
    }

    /// Send nothing before `after` from now (a `Retry-After`, a reset).
    /// Whether this starts a pause (none was in force), for logging it once.
    pub fn pause_for(&self, after: Duration) -> bool {
        let now = Instant::now();
        let until = now.checked_add(after.min(crate::client::MAX_WAIT)).unwrap_or(now);
        let mut windows = self.lock();
        let current = windows.paused_until.filter(|current| *current > now);
        windows.paused_until = Some(current.map_or(until, |current| current.max(until)));
        current.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_polls_of_every_stream_of_a_token_spend_at_most_half_its_budget() {
        let limiter = Arc::new(Limiter::new(RateLimitConfig::default()));
        let second = Duration::from_secs(1);
        let one_source: Vec<Poller> = (0..3).map(|_| limiter.poller()).collect();
        assert_eq!(limiter.idle_interval(second), second, "3 x 60/min is under 250/min");
        let another: Vec<Poller> = (0..3).map(|_| limiter.poller()).collect();
        let shared = limiter.idle_interval(second);
        assert_eq!(shared, Duration::from_secs_f64(1.44), "6 streams share 250/min");
        assert!(6.0 * 60.0 / shared.as_secs_f64() <= 250.0 + 1e-9);
        drop(another);
        assert_eq!(limiter.idle_interval(second), second);
        drop(one_source);
        let tight = Limiter::new(RateLimitConfig { per_minute: 60, per_hour: 30_000 });
        assert_eq!(tight.idle_interval(second), Duration::from_secs(2), "one poller, 30 of 60/min");
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_the_minute_window() {
        let limiter = Limiter::new(RateLimitConfig { per_minute: 2, per_hour: 100 });
        assert_eq!(limiter.acquire(|_| {}).await, Duration::ZERO);
        assert_eq!(limiter.acquire(|_| {}).await, Duration::ZERO);
        let waited = limiter.acquire(|_| {}).await;
        assert_eq!(
            waited,
            MINUTE + SLACK,
            "the third request waits for the first to leave the minute, and the slack"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_wait_is_counted_while_it_lasts() {
        let limiter = Limiter::new(RateLimitConfig::default());
        assert!(limiter.pause_for(Duration::from_millis(2500)));
        let mut slices = Vec::new();
        let waited = limiter.acquire(|slice| slices.push(slice)).await;
        assert_eq!(waited, Duration::from_millis(2500));
        assert_eq!(
            slices,
            [Duration::from_secs(1), Duration::from_secs(1), Duration::from_millis(500)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_user_until_it_ends() {
        let limiter = Arc::new(Limiter::new(RateLimitConfig::default()));
        assert!(limiter.pause_for(Duration::from_secs(7)), "a new pause");
        assert!(!limiter.pause_for(Duration::from_secs(3)), "one already in force");
        let other = limiter.clone();
        let (a, b) = tokio::join!(limiter.acquire(|_| {}), other.acquire(|_| {}));
        assert_eq!(
            (a, b),
            (Duration::from_secs(7), Duration::from_secs(7)),
            "the longer pause wins"
        );
        assert!(limiter.pause_for(Duration::from_secs(1)), "the first pause ended");
    }

    #[test]
    fn one_limiter_per_token() {
        let limits = RateLimitConfig::default();
        let a = Limiter::for_token(&Secret::new("token-a"), limits);
        let again = Limiter::for_token(&Secret::new("token-a"), limits);
        let b = Limiter::for_token(&Secret::new("token-b"), limits);
        assert!(Arc::ptr_eq(&a, &again));
        assert!(!Arc::ptr_eq(&a, &b));
    }
}

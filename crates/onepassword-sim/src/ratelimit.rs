//! Per-account sliding windows: 600 requests a minute and 30,000 an hour by default.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::RateLimits;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// The state of an account's windows after a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Requests allowed per minute.
    pub limit: u32,
    /// Requests left in the current minute.
    pub remaining: u32,
    /// Seconds until the minute window frees a request.
    pub reset_secs: u64,
}

/// A refused request: wait this many seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    /// Seconds until a request would be accepted.
    pub retry_after_secs: u64,
    /// The quota as it stands.
    pub quota: Quota,
}

/// Sliding windows per account.
#[derive(Debug)]
pub struct RateLimiter {
    limits: RateLimits,
    accounts: Mutex<HashMap<String, VecDeque<Instant>>>,
}

fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

impl RateLimiter {
    /// A limiter with `limits`.
    pub fn new(limits: RateLimits) -> Self {
        Self { limits, accounts: Mutex::new(HashMap::new()) }
    }

    /// Count a request of `account` at `now`, or refuse it.
    pub fn check(&self, account: &str, now: Instant) -> Result<Quota, Limited> {
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        let times = accounts.entry(account.to_owned()).or_default();
        while times.front().is_some_and(|t| now.duration_since(*t) >= HOUR) {
            times.pop_front();
        }
        let minute_start = times.partition_point(|t| now.duration_since(*t) >= MINUTE);
        let in_minute = (times.len() - minute_start) as u32;
        let reset = |oldest: Option<&Instant>, window: Duration| {
            oldest.map_or(0, |t| ceil_secs((*t + window).saturating_duration_since(now)))
        };
        let minute_reset = reset(times.get(minute_start), MINUTE);
        if in_minute >= self.limits.per_minute || times.len() as u32 >= self.limits.per_hour {
            let retry = if in_minute >= self.limits.per_minute {
                minute_reset
            } else {
                reset(times.front(), HOUR)
            };
            let quota =
                Quota { limit: self.limits.per_minute, remaining: 0, reset_secs: minute_reset };
            return Err(Limited { retry_after_secs: retry.max(1), quota });
        }
        times.push_back(now);
        Ok(Quota {
            limit: self.limits.per_minute,
            remaining: self.limits.per_minute - in_minute - 1,
            reset_secs: reset(times.get(minute_start), MINUTE),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minute_and_hour_windows_slide() {
        let limiter = RateLimiter::new(RateLimits { per_minute: 2, per_hour: 3 });
        let t0 = Instant::now();
        assert_eq!(limiter.check("a", t0).map(|q| q.remaining), Ok(1));
        assert_eq!(limiter.check("a", t0 + Duration::from_secs(10)).map(|q| q.remaining), Ok(0));
        let limited = limiter.check("a", t0 + Duration::from_secs(20)).expect_err("minute full");
        assert_eq!(limited.retry_after_secs, 40);
        assert!(limiter.check("b", t0).is_ok(), "accounts are separate");
        assert!(
            limiter.check("a", t0 + Duration::from_secs(61)).is_ok(),
            "the first request left the minute"
        );
        let limited = limiter.check("a", t0 + Duration::from_secs(200)).expect_err("hour full");
        assert_eq!(limited.retry_after_secs, 3400);
        assert!(limiter.check("a", t0 + Duration::from_secs(3600)).is_ok());
    }
}

//! Whether a sink is getting anywhere, for `/health`: it is unhealthy while
//! the destination refuses (credentials, privileges, a blocked index, a full
//! dead letter), after several failed requests in a row, or when events have
//! waited `unhealthy_after` without any of them becoming final. It turns
//! healthy again by itself as soon as deliveries go through.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::health::HealthHandle;
use crate::sink::outcome::Failure;

/// Failed requests in a row after which `/health` turns unhealthy.
const FAILED_ATTEMPTS: u32 = 5;

#[derive(Debug)]
struct State {
    /// Events the sink holds that are not final yet.
    waiting: usize,
    /// When an event last became final, or when waiting began.
    last_progress: Instant,
    /// Failed attempts in a row, since when, and the last failure.
    failing: Option<(u32, Instant, String)>,
    /// Items held back because the destination refuses them; the newest reason.
    refused: usize,
    refused_since: Option<Instant>,
    refused_reason: String,
    /// What `/health` shows now.
    shown: Option<String>,
    /// What was last logged: the verdict without its durations, so a
    /// reason that only grows older is logged once.
    logged: Option<String>,
}

/// One sink's progress, shared by its delivery tasks.
#[derive(Clone, Debug)]
pub struct Progress {
    state: Arc<Mutex<State>>,
    health: HealthHandle,
    destination: Arc<str>,
    unhealthy_after: Duration,
}

fn minutes(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

impl Progress {
    /// Progress of a sink delivering to `destination` (e.g. `Elasticsearch`).
    pub fn new(health: HealthHandle, destination: &str, unhealthy_after: Duration) -> Self {
        let state = State {
            waiting: 0,
            last_progress: Instant::now(),
            failing: None,
            refused: 0,
            refused_since: None,
            refused_reason: String::new(),
            shown: None,
            logged: None,
        };
        health.set_healthy("");
        Self {
            state: Arc::new(Mutex::new(state)),
            health,
            destination: destination.into(),
            unhealthy_after,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `n` events entered the sink.
    pub fn accepted(&self, n: usize) {
        let mut state = self.lock();
        if state.waiting == 0 {
            state.last_progress = Instant::now();
        }
        state.waiting += n;
    }

    /// `n` events became final (delivered or dead-lettered).
    pub fn finished(&self, n: usize) {
        let mut state = self.lock();
        state.waiting = state.waiting.saturating_sub(n);
        state.last_progress = Instant::now();
        drop(state);
        self.refresh();
    }

    /// A request went through.
    pub fn attempt_ok(&self) {
        self.lock().failing = None;
        self.refresh();
    }

    /// A request failed (not a refusal).
    pub fn attempt_failed(&self, failure: &Failure) {
        let mut state = self.lock();
        let (count, since) = match state.failing.take() {
            Some((count, since, _)) => (count + 1, since),
            None => (1, Instant::now()),
        };
        state.failing = Some((count, since, failure.to_string()));
        drop(state);
        self.refresh();
    }

    /// Change the count of items held back by a refusal by `delta`.
    pub fn refused(&self, delta: isize, failure: Option<&Failure>) {
        self.count_refused(delta, failure);
        self.refresh();
    }

    /// `count` refused items were given up (a request abandoned at
    /// shutdown): nothing was delivered, so a verdict that clears now is not
    /// logged as the sink being healthy again.
    pub fn withdrawn(&self, count: usize) {
        self.count_refused(-(count as isize), None);
        self.refresh_with(false);
    }

    fn count_refused(&self, delta: isize, failure: Option<&Failure>) {
        let mut state = self.lock();
        state.refused = state.refused.saturating_add_signed(delta);
        if let Some(failure) = failure {
            state.refused_reason = failure.to_string();
        }
        if state.refused == 0 {
            state.refused_since = None;
        } else if state.refused_since.is_none() {
            state.refused_since = Some(Instant::now());
        }
    }

    /// Why the sink is unhealthy now, if it is: the text for `/health` and
    /// the same without its durations and counts (what is logged once).
    fn verdict(&self, state: &State, now: Instant) -> Option<(String, String)> {
        let name = &self.destination;
        if let Some(since) = state.refused_since {
            let key = format!("{name} refuses: {}", state.refused_reason);
            let wait = minutes(now - since);
            let text = format!("{key} for {wait}; {} event(s) wait", state.waiting);
            return Some((text, key));
        }
        if let Some((count, since, reason)) = &state.failing
            && *count >= FAILED_ATTEMPTS
        {
            let key = format!("{name}: {reason}");
            let wait = minutes(now - *since);
            return Some((format!("{key} for {wait} ({count} failed attempts in a row)"), key));
        }
        let stalled = now - state.last_progress;
        if state.waiting > 0 && stalled >= self.unhealthy_after {
            let last = state
                .failing
                .as_ref()
                .map(|(_, _, r)| format!("; last failure: {r}"))
                .unwrap_or_default();
            let key = format!("{name}: nothing delivered while events wait{last}");
            let text = format!(
                "{name}: nothing delivered for {} while {} event(s) wait{last}",
                minutes(stalled),
                state.waiting
            );
            return Some((text, key));
        }
        None
    }

    /// Show the current verdict on `/health` (called on every change and by
    /// [`Progress::watch`] once a second, so durations stay current).
    pub fn refresh(&self) {
        self.refresh_with(true);
    }

    fn refresh_with(&self, recovered: bool) {
        let mut state = self.lock();
        let verdict = self.verdict(&state, Instant::now());
        let (text, key) = verdict.map_or((None, None), |(text, key)| (Some(text), Some(key)));
        if text == state.shown {
            return;
        }
        state.shown = text.clone();
        let log = key != state.logged;
        state.logged = key;
        drop(state);
        match text {
            Some(reason) => {
                if log {
                    tracing::warn!(component = %self.health_id(), %reason, "sink unhealthy");
                }
                self.health.set_unhealthy("", reason);
            }
            None if recovered => {
                tracing::info!(component = %self.health_id(), "sink healthy again");
                self.health.set_healthy("");
            }
            None => {
                tracing::debug!(component = %self.health_id(), "the refused requests were given up (stopping); nothing was delivered");
                self.health.set_healthy("");
            }
        }
    }

    fn health_id(&self) -> &str {
        self.health.id()
    }

    /// Refresh once a second until dropped (spawn it; abort it at the end).
    pub async fn watch(self) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.refresh();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Health;

    fn progress() -> (Health, Progress) {
        let health = Health::new();
        let progress = Progress::new(health.handle("es"), "Elasticsearch", Duration::from_secs(60));
        (health, progress)
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_shows_at_once_and_clears_when_nothing_is_refused() {
        let (health, progress) = progress();
        progress.accepted(10);
        let failure = Failure::new(403, "security_exception", "unauthorized for API key");
        progress.refused(10, Some(&failure));
        tokio::time::advance(Duration::from_secs(125)).await;
        progress.refresh();
        assert_eq!(
            health.report().unhealthy["es"],
            "Elasticsearch refuses: 403 security_exception: unauthorized for API key for 2m 5s; 10 event(s) wait"
        );
        progress.refused(-10, None);
        progress.finished(10);
        assert!(health.report().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_failures_and_a_stall_turn_unhealthy() {
        let (health, progress) = progress();
        progress.accepted(3);
        let failure = Failure::new(503, "unavailable_shards_exception", "");
        for _ in 0..FAILED_ATTEMPTS - 1 {
            progress.attempt_failed(&failure);
        }
        assert!(health.report().is_ok(), "a few failures are normal");
        progress.attempt_failed(&failure);
        assert!(
            health.report().unhealthy["es"]
                .contains("503 unavailable_shards_exception for 0s (5 failed attempts in a row)")
        );
        progress.attempt_ok();
        assert!(health.report().is_ok());

        // Slow requests that never fail still show when nothing gets through.
        tokio::time::advance(Duration::from_secs(61)).await;
        progress.refresh();
        assert_eq!(
            health.report().unhealthy["es"],
            "Elasticsearch: nothing delivered for 1m 1s while 3 event(s) wait"
        );
        progress.finished(3);
        assert!(health.report().is_ok());
        tokio::time::advance(Duration::from_secs(600)).await;
        progress.refresh();
        assert!(health.report().is_ok(), "an idle sink is healthy");
    }
}

//! The poller of one stream. It follows the cursor while `has_more`, sends
//! each page as one acknowledgement batch, and commits a page's cursor only
//! when that page and every page before it are final. A page whose delivery
//! errored is fetched again from the last committed cursor, never skipped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sluice_core::Event;
use sluice_core::ack::{BatchNotifier, BatchStatus, OrderedAcks};
use sluice_core::backoff::Backoff;
use sluice_core::component::{BoxError, Outputs, ShutdownSignal};
use sluice_core::health::HealthHandle;
use sluice_core::metrics::{ComponentMetrics, Stage};

use crate::streams::Stream;
use tokio::time::Instant;

use crate::checkpoint::StreamCheckpoint;
use crate::client::{ApiClient, ApiError, Page, Request};
use crate::config::Settings;
use crate::limiter::Limiter;

mod commit;
mod health;
pub(crate) mod measure;
mod page;
mod start;

use page::PageEvents;

use measure::StreamMetrics;

/// Pages in a row with `has_more` but no events before the poller treats the
/// stream as caught up, whatever the cursor does (an API that hands out a new
/// cursor on every empty page would otherwise be polled at the rate limit).
const STUCK_PAGES: u32 = 5;
/// Cursors remembered: one the API hands out again is a cycle, and the
/// stream waits an interval instead of going round it at the rate limit.
const RECENT_CURSORS: usize = 16;
/// How often the lag and checkpoint age gauges move while a stream waits.
const GAUGES_EVERY: Duration = Duration::from_secs(5);

/// Everything one stream's poller needs.
#[derive(Debug)]
pub struct StreamPoller {
    /// The stream.
    pub stream: Stream,
    /// The source's id.
    pub source_id: String,
    /// Settings.
    pub settings: Arc<Settings>,
    /// The API.
    pub client: ApiClient,
    /// The token's shared limiter.
    pub limiter: Arc<Limiter>,
    /// Where pages go.
    pub out: Arc<Outputs>,
    /// Stop signal.
    pub shutdown: ShutdownSignal,
    /// Health switch of the source.
    pub health: HealthHandle,
    /// The source's metrics.
    pub metrics: ComponentMetrics,
    /// The checkpoint file.
    pub checkpoint_path: PathBuf,
    /// The token's account, when the token says.
    pub account: Option<String>,
    /// The sinks the source's events reach (recorded in the checkpoint).
    pub consumers: Arc<[String]>,
}

/// Where a page leaves the stream, kept until the page is final.
#[derive(Debug)]
struct Position {
    cursor: String,
    newest: Option<DateTime<Utc>>,
    events: u64,
}

struct State {
    checkpoint: StreamCheckpoint,
    committed_at: Instant,
    next: Request,
    acks: OrderedAcks<Position>,
    backoff: Backoff,
    stuck: u32,
    /// The last cursors the API answered with, newest last.
    recent: std::collections::VecDeque<String>,
    /// Reported on `/health` and `stream_up` 0: refused, or failing too long.
    down: bool,
    /// When the current run of failed requests began.
    /// Since when requests fail, and the last error: checked on every
    /// failure and on the gauge timer, so `/health` turns within seconds of
    /// `unhealthy_after` and its "for N" stays current between retries.
    failing: Option<(Instant, String)>,
    /// When the last progress line was logged (behind a lock: the rate
    /// limiter's wait logs it through a shared borrow).
    progress_at: std::sync::Mutex<Instant>,
    /// Whether the last page said more is waiting (a backfill under way).
    backfilling: bool,
    events_this_run: u64,
    /// The checkpoint file is behind `checkpoint` (a write failed: a full or
    /// read-only disk). No page is fetched until a write succeeds; the write
    /// is retried with `save_backoff`, and the stream shows on `/health`.
    unsaved: bool,
    /// The last write failed (logged once, and on `/health` until one succeeds).
    save_failed: bool,
    save_backoff: Backoff,
}

impl StreamPoller {
    /// Poll until shutdown, then commit what was acknowledged.
    pub async fn run(self) -> Result<(), BoxError> {
        let metrics = StreamMetrics::new(&self.metrics, self.stream);
        metrics.up.set(1.0);
        let _poller = self.limiter.poller();
        let (checkpoint, unsaved) = self.prepare_checkpoint()?;
        let next = self.resume_request(&checkpoint);
        let mut state = State {
            checkpoint,
            committed_at: Instant::now(),
            next,
            acks: OrderedAcks::new(),
            backoff: Backoff::new(
                Duration::from_secs(1),
                self.settings.retry_max_backoff.max(Duration::from_secs(1)),
            ),
            stuck: 0,
            recent: std::collections::VecDeque::new(),
            down: false,
            failing: None,
            progress_at: std::sync::Mutex::new(Instant::now()),
            backfilling: false,
            events_this_run: 0,
            unsaved,
            save_failed: false,
            save_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(5)),
        };
        self.save(&mut state, &metrics);
        let result = self.poll(&mut state, &metrics).await;
        // Stop fetching; commit every page the sinks still acknowledge.
        while !state.acks.is_empty() {
            let (position, status) = state.acks.next().await;
            if !status.is_final() {
                tracing::warn!(stream = %self.stream, "a page failed while draining; it is fetched again at the next start");
                break;
            }
            self.commit(&mut state, &metrics, position);
        }
        if state.unsaved {
            tracing::error!(stream = %self.stream, path = %self.checkpoint_path.display(), "stopping with a checkpoint that could not be written; what it held is fetched again at the next start");
        }
        result
    }

    async fn poll(&self, state: &mut State, metrics: &StreamMetrics) -> Result<(), BoxError> {
        loop {
            while let Some((position, status)) = state.acks.try_next() {
                self.on_ack(state, metrics, position, status).await?;
            }
            self.update_gauges(state, metrics);
            if self.shutdown.is_cancelled() {
                return Ok(());
            }
            if state.unsaved && !self.save(state, metrics) {
                let wait = state.save_backoff.next_delay();
                self.idle(state, metrics, wait).await?;
                continue;
            }
            if state.acks.len() >= self.settings.max_pages_in_flight {
                if self.wait_for_room(state, metrics).await? {
                    return Ok(());
                }
                continue;
            }
            // A rate-limit wait is counted, and the gauges move, while it lasts.
            let waiting = self.limiter.acquire(|slice| {
                metrics.rate_limit_wait.record(slice.as_secs_f64());
                self.update_gauges(state, metrics);
            });
            tokio::select! {
                _ = waiting => {}
                () = self.shutdown.cancelled() => return Ok(()),
            }
            let token = match self.settings.token.load() {
                Ok(token) => token,
                Err(err) => {
                    self.refuse(state, metrics, &err.to_string());
                    self.idle(state, metrics, self.settings.refused_retry).await?;
                    continue;
                }
            };
            let (result, quota) = tokio::select! {
                answer = self.client.page(&token, self.stream, &state.next) => answer,
                () = self.shutdown.cancelled() => return Ok(()),
            };
            if quota.remaining == Some(0)
                && let Some(reset) = quota.reset
                && self.limiter.pause_for(reset)
            {
                tracing::info!(stream = %self.stream, wait = ?reset, "the token's rate limit is used up (RateLimit-Remaining: 0); every stream of this token waits for the reset");
            }
            match result {
                Ok(page) => self.on_answer(state, metrics, page).await?,
                Err(err) => {
                    metrics.request(err.status_label());
                    self.on_error(state, metrics, err).await?;
                }
            }
        }
    }

    /// Wait until a page in flight is final (the sinks hold the stream
    /// back); whether shutdown came first. The checkpoint age and lag keep
    /// moving meanwhile, or the stale and lagging alerts could never fire
    /// during an outage.
    async fn wait_for_room(
        &self,
        state: &mut State,
        metrics: &StreamMetrics,
    ) -> Result<bool, BoxError> {
        let mut gauges = tokio::time::interval(GAUGES_EVERY);
        loop {
            tokio::select! {
                (position, status) = state.acks.next() => {
                    self.on_ack(state, metrics, position, status).await?;
                    return Ok(false);
                }
                _ = gauges.tick() => self.update_gauges(state, metrics),
                () = self.shutdown.cancelled() => return Ok(true),
            }
        }
    }

    /// A page came: the stream is up again; emit it, then follow the cursor
    /// at once during a backfill, or wait an interval.
    async fn on_answer(
        &self,
        state: &mut State,
        metrics: &StreamMetrics,
        page: Page,
    ) -> Result<(), BoxError> {
        metrics.request("200".into());
        state.failing = None;
        if state.down {
            state.down = false;
            metrics.up.set(1.0);
            self.health.set_healthy(self.stream.as_str());
            tracing::info!(stream = %self.stream, "the API accepts the stream again");
        }
        state.backoff.reset();
        let has_more = page.has_more;
        let caught_up = !self.on_page(state, metrics, page).await?;
        // The loop's next turn logs the progress (update_gauges).
        state.backfilling = has_more && !caught_up;
        if state.backfilling {
            return Ok(());
        }
        let interval = self.limiter.idle_interval(self.settings.interval);
        self.idle(state, metrics, jitter(interval)).await
    }

    /// Emit a page. Returns whether the cursor moved or events came (false: treat as caught up).
    async fn on_page(
        &self,
        state: &mut State,
        metrics: &StreamMetrics,
        page: Page,
    ) -> Result<bool, BoxError> {
        metrics.pages.increment(1);
        let count = page.items.len();
        let moved = !matches!(&state.next, Request::Cursor(c) if *c == page.cursor);
        let (notifier, receiver) = BatchNotifier::new_with_receiver();
        let PageEvents { events, newest, bytes } = page::events_of(
            page.items,
            &page.not_utf8,
            &notifier,
            &self.source_id,
            self.stream,
            &self.metrics,
        );
        drop(notifier);
        metrics.events.increment(count as u64);
        self.metrics.received(count, bytes);
        state.events_this_run += count as u64;
        if count > 0 || moved {
            state.acks.push(
                Position { cursor: page.cursor.clone(), newest, events: count as u64 },
                receiver,
            );
            self.send(state, metrics, events).await?;
        }
        Ok(self.follow(state, page.cursor, count, moved, page.has_more))
    }

    /// Send a page's events. Not cancelled by shutdown: a page half sent
    /// would count as delivered. A full channel (the sinks held back) can
    /// take long: the gauges keep moving meanwhile.
    async fn send(
        &self,
        state: &mut State,
        metrics: &StreamMetrics,
        events: Vec<Event>,
    ) -> Result<(), BoxError> {
        let send = self.out.send(events);
        tokio::pin!(send);
        let mut gauges =
            tokio::time::interval_at(tokio::time::Instant::now() + GAUGES_EVERY, GAUGES_EVERY);
        loop {
            tokio::select! {
                sent = &mut send => return Ok(sent?),
                _ = gauges.tick() => self.update_gauges(state, metrics),
            }
        }
    }

    /// Take the page's cursor as the next request; whether to follow it at
    /// once (false: a cycle, or empty pages that say more is waiting, so
    /// treat the stream as caught up).
    fn follow(
        &self,
        state: &mut State,
        cursor: String,
        count: usize,
        moved: bool,
        has_more: bool,
    ) -> bool {
        let cycle = moved && state.recent.contains(&cursor);
        if state.recent.len() == RECENT_CURSORS {
            state.recent.pop_front();
        }
        state.recent.push_back(cursor.clone());
        state.next = Request::Cursor(cursor);
        if cycle && has_more {
            tracing::warn!(stream = %self.stream, "the API answered with a cursor it gave before (a cycle); waiting an interval instead of following it");
            state.stuck = 0;
            return false;
        }
        if count == 0 && has_more {
            state.stuck += 1;
            if state.stuck >= STUCK_PAGES {
                tracing::warn!(stream = %self.stream, pages = state.stuck, "the API keeps answering empty pages with has_more; waiting an interval");
                state.stuck = 0;
                return false;
            }
        } else {
            state.stuck = 0;
        }
        true
    }

    async fn on_error(
        &self,
        state: &mut State,
        metrics: &StreamMetrics,
        err: ApiError,
    ) -> Result<(), BoxError> {
        match err {
            ApiError::RateLimited { retry_after } => {
                let wait = retry_after
                    .unwrap_or_else(|| state.backoff.next_delay())
                    .max(Duration::from_millis(100));
                metrics.retry("rate_limited");
                if self.limiter.pause_for(wait) {
                    tracing::info!(stream = %self.stream, ?wait, "429 Too Many Requests; every stream of this token waits");
                }
                Ok(())
            }
            err if err.is_refusal() => {
                metrics.component.error(
                    Stage::Receiving,
                    if matches!(err, ApiError::Unauthorized) {
                        "unauthorized"
                    } else {
                        "bad_request"
                    },
                );
                self.refuse(state, metrics, &err.to_string());
                self.idle(state, metrics, self.settings.refused_retry).await
            }
            err => {
                let reason = match err {
                    ApiError::Malformed(_) => "malformed",
                    ApiError::Transport(_) => "transport",
                    _ => "server_error",
                };
                metrics.retry(reason);
                metrics.component.error(Stage::Receiving, reason);
                let wait = state.backoff.next_delay();
                tracing::warn!(stream = %self.stream, error = %err, retry_in = ?wait, "request failed; retrying");
                let since = state.failing.as_ref().map_or_else(Instant::now, |(since, _)| *since);
                state.failing = Some((since, err.to_string()));
                self.check_failing(state, metrics);
                self.idle(state, metrics, wait).await
            }
        }
    }

    /// Wait `duration`, committing acknowledgements as they come.
    async fn idle(
        &self,
        state: &mut State,
        metrics: &StreamMetrics,
        duration: Duration,
    ) -> Result<(), BoxError> {
        let now = Instant::now();
        let deadline = now.checked_add(duration).unwrap_or(now + crate::client::MAX_WAIT);
        let mut gauges = tokio::time::interval_at(now + GAUGES_EVERY, GAUGES_EVERY);
        loop {
            tokio::select! {
                (position, status) = state.acks.next() => self.on_ack(state, metrics, position, status).await?,
                _ = gauges.tick() => {
                    self.update_gauges(state, metrics);
                    self.check_failing(state, metrics);
                }
                () = tokio::time::sleep_until(deadline) => return Ok(()),
                () = self.shutdown.cancelled() => return Ok(()),
            }
        }
    }

    async fn on_ack(
        &self,
        state: &mut State,
        metrics: &StreamMetrics,
        position: Position,
        status: BatchStatus,
    ) -> Result<(), BoxError> {
        if status.is_final() {
            self.commit(state, metrics, position);
            return Ok(());
        }
        // A sink gave up on a page: fetch again from the last committed
        // cursor rather than skip it. Later pages are fetched again too.
        let wait = state.backoff.next_delay();
        tracing::warn!(stream = %self.stream, retry_in = ?wait, "a page was not delivered; fetching again from the last committed cursor");
        metrics.retry("delivery_failed");
        state.acks.clear();
        state.next = self.resume_request(&state.checkpoint);
        // Going back on purpose: the cursors handed out again are no cycle.
        state.recent.clear();
        state.stuck = 0;
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = self.shutdown.cancelled() => {}
        }
        Ok(())
    }
}

/// `duration` ± 10 %, so many sources do not poll in lockstep.
fn jitter(duration: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let factor = 0.9 + f64::from(nanos % 1000) / 5000.0;
    duration.mul_f64(factor)
}

//! The poller of one stream. It follows the cursor while `has_more`, sends
//! each page as one acknowledgement batch, and commits a page's cursor only
//! when that page and every page before it are final. A page whose delivery
//! errored is fetched again from the last committed cursor, never skipped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sluice_core::Event;
use sluice_core::ack::{BatchNotifier, BatchStatus, EventFinalizers, OrderedAcks};
use sluice_core::backoff::Backoff;
use sluice_core::component::{BoxError, Outputs, ShutdownSignal};
use sluice_core::health::HealthHandle;
use sluice_core::metrics::{ComponentMetrics, Stage};

use crate::streams::Stream;
use tokio::time::Instant;

use crate::checkpoint::{self, StreamCheckpoint};
use crate::client::{ApiClient, ApiError, Page, Request};
use crate::config::{Settings, StartTime};
use crate::limiter::Limiter;

mod health;
pub(crate) mod measure;

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
        let mut checkpoint = checkpoint::load(&self.checkpoint_path)?.unwrap_or_default();
        if let (Some(_), Some(theirs), Some(ours)) =
            (&checkpoint.cursor, &checkpoint.account, &self.account)
            && theirs != ours
        {
            return Err(format!(
                "stream {}: the checkpoint {} holds a cursor of account {theirs}, and the token is of account {ours}; a cursor of another account cannot be used. Point data_dir elsewhere, or start this source afresh with `sluice checkpoint reset <config> --source {}`",
                self.stream,
                self.checkpoint_path.display(),
                self.source_id
            )
            .into());
        }
        if let Some(warning) =
            checkpoint::consumers_missing_history(&checkpoint, &self.consumers, &self.source_id)
        {
            tracing::warn!(stream = %self.stream, path = %self.checkpoint_path.display(), "{warning}");
        }
        // Recorded at once (the cursor unchanged), so that it is said once
        // even while the stream has nothing new to commit.
        let consumers_changed =
            checkpoint.cursor.is_some() && checkpoint.consumers[..] != self.consumers[..];
        if consumers_changed {
            checkpoint.consumers = self.consumers.to_vec();
        }
        // A first start fixes its start time, so that a restart before the
        // first commit does not move the window forward.
        let first_start = checkpoint.cursor.is_none() && checkpoint.start_time.is_none();
        if first_start {
            let start = self.settings.start_time.resolve(Utc::now());
            checkpoint.start_time = Some(start.to_rfc3339_opts(SecondsFormat::Nanos, true));
            checkpoint.api_version = self.settings.api_version;
        }
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
            unsaved: first_start || consumers_changed,
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

    fn resume_request(&self, checkpoint: &StreamCheckpoint) -> Request {
        let limit = self.settings.limit;
        match (&checkpoint.cursor, checkpoint.api_version == self.settings.api_version) {
            (Some(cursor), true) => {
                tracing::info!(stream = %self.stream, "resuming from the checkpointed cursor");
                Request::Cursor(cursor.clone())
            }
            (cursor, same_version) => {
                let start = match (
                    &checkpoint.start_time,
                    &checkpoint.newest_timestamp,
                    cursor.is_some() && !same_version,
                ) {
                    (Some(start), _, _) => DateTime::parse_from_rfc3339(start)
                        .map(|t| StartTime::At(t.with_timezone(&Utc)))
                        .unwrap_or(self.settings.start_time),
                    (None, Some(newest), true) => {
                        tracing::warn!(stream = %self.stream, "the checkpoint's cursor is for another api_version; restarting from its newest timestamp (late events before it may be missed)");
                        DateTime::parse_from_rfc3339(newest)
                            .map(|t| StartTime::At(t.with_timezone(&Utc)))
                            .unwrap_or(self.settings.start_time)
                    }
                    _ => self.settings.start_time,
                };
                let start_time =
                    start.resolve(Utc::now()).to_rfc3339_opts(SecondsFormat::Nanos, true);
                tracing::info!(stream = %self.stream, %start_time, "no checkpoint: starting a new cursor");
                Request::Reset { limit, start_time }
            }
        }
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
                // Held back by the sinks: the checkpoint age and lag keep
                // moving meanwhile, or the stale and lagging alerts could
                // never fire during an outage.
                let mut gauges = tokio::time::interval(GAUGES_EVERY);
                loop {
                    tokio::select! {
                        (position, status) = state.acks.next() => {
                            self.on_ack(state, metrics, position, status).await?;
                            break;
                        }
                        _ = gauges.tick() => self.update_gauges(state, metrics),
                        () = self.shutdown.cancelled() => return Ok(()),
                    }
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
                Ok(page) => {
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
                        continue;
                    }
                    let interval = self.limiter.idle_interval(self.settings.interval);
                    self.idle(state, metrics, jitter(interval)).await?;
                }
                Err(err) => {
                    metrics.request(err.status_label());
                    self.on_error(state, metrics, err).await?;
                }
            }
        }
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
        let mut events = Vec::with_capacity(count);
        let mut newest: Option<DateTime<Utc>> = None;
        let mut bytes = 0;
        let source_id: Arc<str> = self.source_id.as_str().into();
        let dataset: Arc<str> = self.stream.dataset().into();
        for (n, raw) in page.items.into_iter().enumerate() {
            bytes += raw.len();
            let parsed = if page.not_utf8.contains(&n) {
                Err("the item is not valid UTF-8 (shown with U+FFFD in place of the invalid bytes)"
                    .to_owned())
            } else {
                Event::from_json(raw.clone()).map_err(|e| e.to_string())
            };
            let mut event = match parsed {
                Ok(event) => event,
                // One item the API sent that cannot be an event (a number
                // out of range, say) must not stop the stream: it goes on
                // as a `pipeline_error` event with its raw text, and the
                // rest of the page is delivered.
                Err(err) => {
                    self.metrics.error(Stage::Receiving, "parse_failed");
                    tracing::error!(stream = %self.stream, error = %err, "an item of the page is not a usable event; it goes on as a pipeline_error event with its raw text");
                    let meta = sluice_core::EventMetadata {
                        raw: Some(raw),
                        dataset: Some(dataset.clone()),
                        ..Default::default()
                    };
                    let message = format!("the item is not a usable event: {err}");
                    Event::pipeline_error(meta, "parse_failed", message, &self.source_id)
                }
            };
            if let Some(ts) = timestamp_of(&event) {
                newest = Some(newest.map_or(ts, |n| n.max(ts)));
            }
            event.meta.dataset = Some(dataset.clone());
            event.meta.source_id = Some(source_id.clone());
            event.meta.finalizers = EventFinalizers::new(notifier.finalizer());
            events.push(event);
        }
        drop(notifier);
        metrics.events.increment(count as u64);
        self.metrics.received(count, bytes);
        state.events_this_run += count as u64;
        if count > 0 || moved {
            state.acks.push(
                Position { cursor: page.cursor.clone(), newest, events: count as u64 },
                receiver,
            );
            // Not cancelled by shutdown: a page half sent would count as
            // delivered. A full channel (the sinks held back) can take long:
            // the gauges keep moving meanwhile.
            let send = self.out.send(events);
            tokio::pin!(send);
            let mut gauges =
                tokio::time::interval_at(tokio::time::Instant::now() + GAUGES_EVERY, GAUGES_EVERY);
            loop {
                tokio::select! {
                    sent = &mut send => {
                        sent?;
                        break;
                    }
                    _ = gauges.tick() => self.update_gauges(state, metrics),
                }
            }
        }
        let cycle = moved && state.recent.contains(&page.cursor);
        if state.recent.len() == RECENT_CURSORS {
            state.recent.pop_front();
        }
        state.recent.push_back(page.cursor.clone());
        state.next = Request::Cursor(page.cursor);
        if cycle && page.has_more {
            tracing::warn!(stream = %self.stream, "the API answered with a cursor it gave before (a cycle); waiting an interval instead of following it");
            state.stuck = 0;
            return Ok(false);
        }
        if count == 0 && page.has_more {
            state.stuck += 1;
            if state.stuck >= STUCK_PAGES {
                tracing::warn!(stream = %self.stream, pages = state.stuck, "the API keeps answering empty pages with has_more; waiting an interval");
                state.stuck = 0;
                return Ok(false);
            }
        } else {
            state.stuck = 0;
        }
        Ok(true)
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

    /// Take a final page's position into the checkpoint and write it.
    fn commit(&self, state: &mut State, metrics: &StreamMetrics, position: Position) {
        let checkpoint = &mut state.checkpoint;
        if checkpoint.cursor.as_deref() == Some(position.cursor.as_str()) && position.events == 0 {
            return;
        }
        checkpoint.cursor = Some(position.cursor);
        checkpoint.api_version = self.settings.api_version;
        checkpoint.start_time = None;
        checkpoint.events = checkpoint.events.saturating_add(position.events);
        checkpoint.account.clone_from(&self.account);
        checkpoint.consumers = self.consumers.to_vec();
        checkpoint.url = Some(self.client.base().to_owned());
        if let Some(newest) = position.newest {
            let known = checkpoint
                .newest_timestamp
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
            if known.is_none_or(|k| newest > k) {
                checkpoint.newest_timestamp =
                    Some(newest.to_rfc3339_opts(SecondsFormat::AutoSi, true));
            }
        }
        checkpoint.committed_at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        state.unsaved = true;
        self.save(state, metrics);
    }

    /// Write the checkpoint if the file is behind it; whether the file is
    /// now current. A failed write never ends the stream: it shows on
    /// `/health` under `<stream>.checkpoint` and is retried, and the same
    /// (or a newer) content is written once the disk accepts it.
    fn save(&self, state: &mut State, metrics: &StreamMetrics) -> bool {
        if !state.unsaved {
            return true;
        }
        let key = format!("{}.checkpoint", self.stream);
        match checkpoint::save(&self.checkpoint_path, &state.checkpoint) {
            Ok(()) => {
                state.unsaved = false;
                if std::mem::take(&mut state.save_failed) {
                    tracing::info!(stream = %self.stream, "the checkpoint is written again");
                    self.health.set_healthy(&key);
                }
                state.save_backoff.reset();
                state.committed_at = Instant::now();
                self.update_gauges(state, metrics);
                true
            }
            Err(err) => {
                if !std::mem::replace(&mut state.save_failed, true) {
                    tracing::error!(stream = %self.stream, error = %err, "the checkpoint cannot be written; no new page is fetched until it can (the write is retried)");
                }
                metrics.component.error(Stage::Processing, "checkpoint_write");
                self.health.set_unhealthy(&key, format!("{err}; retrying"));
                false
            }
        }
    }
}

/// The event's `timestamp`, when it is RFC 3339.
fn timestamp_of(event: &Event) -> Option<DateTime<Utc>> {
    let vrl::value::Value::Object(map) = &event.value else { return None };
    let text = match map.get("timestamp")? {
        value @ (vrl::value::Value::Bytes(_) | vrl::value::Value::String(_)) => {
            value.to_string_lossy()
        }
        _ => return None,
    };
    DateTime::parse_from_rfc3339(&text).ok().map(|t| t.with_timezone(&Utc))
}

/// `duration` ± 10 %, so many sources do not poll in lockstep.
fn jitter(duration: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let factor = 0.9 + f64::from(nanos % 1000) / 5000.0;
    duration.mul_f64(factor)
}

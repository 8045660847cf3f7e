//! One stream on the polling kit ([`sluice_core::poll`]): what is 1Password
//! about it. The stream follows the cursor while `has_more`, treats a cycle
//! of cursors or empty pages that say more is waiting as caught up, shares
//! its token's rate limiter (a 429 or `RateLimit-Remaining: 0` pauses every
//! stream of the token), and commits a page's cursor into its checkpoint.
//! The kit sends each page as one acknowledgement batch and commits in
//! order; a page whose delivery errored is fetched again from the last
//! committed cursor, never skipped.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sluice_core::component::{BoxError, Outputs, ShutdownSignal};
use sluice_core::health::HealthHandle;
use sluice_core::metrics::ComponentMetrics;
use sluice_core::poll::{FetchError, Fetched, PollMetrics, PollSettings, PollTarget, Poller};

use crate::checkpoint::StreamCheckpoint;
use crate::client::{ApiClient, ApiError, Page, Request};
use crate::config::Settings;
use crate::limiter::Limiter;
use crate::streams::Stream;

mod commit;
pub(crate) mod measure;
mod page;
mod start;

use measure::StreamMetrics;
use page::PageEvents;

/// Pages in a row with `has_more` but no events before the poller treats the
/// stream as caught up, whatever the cursor does (an API that hands out a new
/// cursor on every empty page would otherwise be polled at the rate limit).
const STUCK_PAGES: u32 = 5;
/// Cursors remembered: one the API hands out again is a cycle, and the
/// stream waits an interval instead of going round it at the rate limit.
const RECENT_CURSORS: usize = 16;

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
pub(crate) struct Position {
    cursor: String,
    newest: Option<DateTime<Utc>>,
    events: u64,
}

/// A stream as the polling kit sees it.
struct Target {
    poller: StreamPoller,
    checkpoint: StreamCheckpoint,
    next: Request,
    stuck: u32,
    /// The last cursors the API answered with, newest last.
    recent: VecDeque<String>,
    own: StreamMetrics,
}

impl StreamPoller {
    /// Poll until shutdown, then commit what was acknowledged.
    pub async fn run(self) -> Result<(), BoxError> {
        let metrics = PollMetrics::new(&self.metrics, "sluice_onepassword", self.stream.as_str());
        let _poller = self.limiter.poller();
        let (checkpoint, unsaved) = self.prepare_checkpoint()?;
        let next = self.resume_request(&checkpoint);
        let kit = Poller {
            out: self.out.clone(),
            shutdown: self.shutdown.clone(),
            health: self.health.clone(),
            metrics: metrics.clone(),
            settings: PollSettings {
                max_in_flight: self.settings.max_pages_in_flight,
                retry_max_backoff: self.settings.retry_max_backoff,
                refused_retry: self.settings.refused_retry,
                unhealthy_after: self.settings.unhealthy_after,
            },
        };
        let own = StreamMetrics::new(&metrics);
        let mut target =
            Target { poller: self, checkpoint, next, stuck: 0, recent: VecDeque::new(), own };
        kit.run(&mut target, unsaved).await
    }
}

impl PollTarget for Target {
    type Position = Position;

    fn label(&self) -> &str {
        self.poller.stream.as_str()
    }

    fn api(&self) -> &str {
        "the Events API"
    }

    fn refused_hint(&self) -> &str {
        "the API refuses this stream; the other streams go on. Fix the token (a token_file is read again) or reset the checkpoint"
    }

    /// A rate-limit wait is counted while it lasts.
    async fn ready(&self) {
        let wait = &self.own.rate_limit_wait;
        self.poller.limiter.acquire(|slice| wait.record(slice.as_secs_f64())).await;
    }

    async fn fetch(&mut self, metrics: &PollMetrics) -> Result<Fetched<Position>, FetchError> {
        let poller = &self.poller;
        let token = poller.settings.token.load().map_err(|err| FetchError::Refused {
            reason: "token_unreadable",
            message: err.to_string(),
        })?;
        let (result, quota) = poller.client.page(&token, poller.stream, &self.next).await;
        if quota.remaining == Some(0)
            && let Some(reset) = quota.reset
            && poller.limiter.pause_for(reset)
        {
            tracing::info!(stream = %poller.stream, wait = ?reset, "the token's rate limit is used up (RateLimit-Remaining: 0); every stream of this token waits for the reset");
        }
        match result {
            Ok(page) => {
                metrics.request("200".into());
                Ok(self.on_page(page))
            }
            Err(err) => {
                metrics.request(err.status_label());
                Err(fetch_error(err))
            }
        }
    }

    fn rate_limited(&mut self, wait: Duration) -> bool {
        if self.poller.limiter.pause_for(wait) {
            tracing::info!(stream = %self.poller.stream, ?wait, "429 Too Many Requests; every stream of this token waits");
        }
        true
    }

    fn commit(&mut self, position: Position) -> bool {
        commit::take(&mut self.checkpoint, &self.poller, position)
    }

    fn save(&mut self) -> Result<(), String> {
        crate::checkpoint::save(&self.poller.checkpoint_path, &self.checkpoint)
            .map_err(|e| e.to_string())
    }

    fn checkpoint_path(&self) -> &Path {
        &self.poller.checkpoint_path
    }

    /// Back to the last committed cursor; the cursors handed out again are
    /// no cycle.
    fn rewind(&mut self) {
        self.next = self.poller.resume_request(&self.checkpoint);
        self.recent.clear();
        self.stuck = 0;
    }

    fn interval(&self) -> Duration {
        self.poller.limiter.idle_interval(self.poller.settings.interval)
    }

    fn gauges(&self) {
        if let Some(lag) = measure::lag(&self.checkpoint) {
            self.own.set_lag(lag);
        }
    }

    fn log_progress(&self, events: u64) {
        measure::log_progress(self.poller.stream, &self.checkpoint, events);
    }
}

impl Target {
    /// A page's events and what delivering them commits: its cursor, when
    /// it moved or events came.
    fn on_page(&mut self, page: Page) -> Fetched<Position> {
        self.own.pages.increment(1);
        let count = page.items.len();
        let moved = !matches!(&self.next, Request::Cursor(c) if *c == page.cursor);
        let PageEvents { events, newest, bytes } = page::events_of(
            page.items,
            &page.not_utf8,
            &self.poller.source_id,
            self.poller.stream,
            &self.poller.metrics,
        );
        self.poller.metrics.received(count, bytes);
        let position = (count > 0 || moved).then(|| Position {
            cursor: page.cursor.clone(),
            newest,
            events: count as u64,
        });
        let follow = self.follow(page.cursor, count, moved, page.has_more);
        let more = page.has_more && follow;
        Fetched { events, position, more }
    }

    /// Take the page's cursor as the next request; whether to follow it at
    /// once (false: a cycle, or empty pages that say more is waiting, so
    /// treat the stream as caught up).
    fn follow(&mut self, cursor: String, count: usize, moved: bool, has_more: bool) -> bool {
        let cycle = moved && self.recent.contains(&cursor);
        if self.recent.len() == RECENT_CURSORS {
            self.recent.pop_front();
        }
        self.recent.push_back(cursor.clone());
        self.next = Request::Cursor(cursor);
        let stream = self.poller.stream;
        if cycle && has_more {
            tracing::warn!(%stream, "the API answered with a cursor it gave before (a cycle); waiting an interval instead of following it");
            self.stuck = 0;
            return false;
        }
        if count == 0 && has_more {
            self.stuck += 1;
            if self.stuck >= STUCK_PAGES {
                tracing::warn!(%stream, pages = self.stuck, "the API keeps answering empty pages with has_more; waiting an interval");
                self.stuck = 0;
                return false;
            }
        } else {
            self.stuck = 0;
        }
        true
    }
}

/// How the kit handles an API error: 429 waits, 401/400 refuse, the rest retry.
fn fetch_error(err: ApiError) -> FetchError {
    match err {
        ApiError::RateLimited { retry_after } => FetchError::RateLimited { retry_after },
        err if err.is_refusal() => FetchError::Refused {
            reason: if matches!(err, ApiError::Unauthorized) {
                "unauthorized"
            } else {
                "bad_request"
            },
            message: err.to_string(),
        },
        err => FetchError::Failed {
            reason: match err {
                ApiError::Malformed(_) => "malformed",
                ApiError::Transport(_) => "transport",
                _ => "server_error",
            },
            message: err.to_string(),
        },
    }
}

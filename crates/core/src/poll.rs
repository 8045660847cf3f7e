//! The polling kit: the source-side twin of [`crate::sink`]. A source that
//! polls an API implements [`PollTarget`] (fetch from where it stands, say
//! what a delivered batch commits and whether more is waiting), and the
//! [`Poller`] runs the loop every such source needs:
//!
//! - the target's rate-limiter hook ([`PollTarget::ready`]) before each fetch;
//! - one acknowledgement batch per fetch, committed **in order** once it and
//!   every batch before it are final ([`crate::OrderedAcks`]); a batch a sink
//!   gave up on rewinds the target to its last commit, never skips;
//! - at most `max_in_flight` batches unacknowledged (backpressure), and no
//!   fetch before the queues behind the source have room to make a batch
//!   ([`crate::component::Outputs::reserve`], held until the batch is
//!   sent): 500 sources starting with a backlog into one transform hold as
//!   many pages in memory as its queue holds, not 1,500;
//! - exponential backoff with full jitter on failures, the interval spread
//!   by [`crate::backoff::jitter`];
//! - `/health` and the `<prefix>_stream_up` gauge: down at once when the API
//!   refuses, or once requests have failed for `unhealthy_after`;
//! - the checkpoint written after each commit, a failed write retried and
//!   shown on `/health` as `<label>.checkpoint` (no fetch until it succeeds);
//! - the gauges kept moving while the poller waits, a progress line every
//!   5 s during a backfill, and a drain on shutdown that commits what the
//!   sinks still acknowledge.
//!
//! [`CheckpointStore`] keeps a serde position in an atomic file.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use crate::Event;

mod driver;
mod health;
mod metrics;
mod store;
#[cfg(test)]
mod tests;

pub use driver::Poller;
pub use metrics::PollMetrics;
pub use store::{CheckpointStore, StoreError};

/// What a polling source fetches from, and where it stands.
pub trait PollTarget: Send + Sync {
    /// Where a fetched batch leaves the target, kept until the batch is
    /// final and then handed to [`commit`](PollTarget::commit).
    type Position: Send + Sync + 'static;

    /// The name on `/health`, in logs (`stream=`) and in the `stream` label.
    fn label(&self) -> &str;

    /// The API, as logs name it (`the Events API`).
    fn api(&self) -> &str;

    /// What to tell the operator when the API refuses the target.
    fn refused_hint(&self) -> &str;

    /// Wait until a request may be made (a shared rate limiter). The
    /// gauges keep moving meanwhile.
    fn ready(&self) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }

    /// Fetch the next batch. Count each request with
    /// [`PollMetrics::request`].
    fn fetch(
        &mut self,
        metrics: &PollMetrics,
    ) -> impl Future<Output = Result<Fetched<Self::Position>, FetchError>> + Send;

    /// A 429 asked to wait `wait`: whether the target waits it out itself
    /// (a limiter shared with other pollers); otherwise the poller idles.
    fn rate_limited(&mut self, wait: Duration) -> bool {
        let _ = wait;
        false
    }

    /// Take a final batch's position into the checkpoint; whether it
    /// changed (and must be saved).
    fn commit(&mut self, position: Self::Position) -> bool;

    /// Write the checkpoint.
    fn save(&mut self) -> Result<(), String>;

    /// Where the checkpoint is written (for logs).
    fn checkpoint_path(&self) -> &Path;

    /// A batch was not delivered: go back to the last commit.
    fn rewind(&mut self);

    /// How long to wait once caught up (before jitter).
    fn interval(&self) -> Duration;

    /// Move the target's own gauges (lag, say); called every few seconds.
    fn gauges(&self) {}

    /// Log where a backfill stands (called at most every 5 s while one is
    /// under way), with the events fetched since the start.
    fn log_progress(&self, events: u64) {
        let _ = events;
    }
}

/// One fetch's answer.
#[derive(Debug)]
pub struct Fetched<P> {
    /// The events to send (their finalizers are set by the poller).
    pub events: Vec<Event>,
    /// What delivering them commits; `None`: nothing to commit (the events,
    /// if any, are sent without acknowledgement).
    pub position: Option<P>,
    /// Fetch again at once (a backfill); otherwise wait an interval.
    pub more: bool,
}

/// Why a fetch failed.
#[derive(Debug)]
pub enum FetchError {
    /// 429: wait `retry_after` (or a backoff) and try again.
    RateLimited {
        /// What the API asked for.
        retry_after: Option<Duration>,
    },
    /// The API refuses the credentials or the request (401, 403, 400): the
    /// target is down on `/health` at once and tried every `refused_retry`.
    Refused {
        /// The error counter's `reason` label.
        reason: &'static str,
        /// What `/health` and the log say.
        message: String,
    },
    /// Anything else (5xx, transport, a malformed answer): retried with
    /// backoff, down on `/health` after `unhealthy_after`.
    Failed {
        /// The retry and error counters' `reason` label.
        reason: &'static str,
        /// What the log and `/health` say.
        message: String,
    },
}

/// The poller's timings and limits.
#[derive(Clone, Debug)]
pub struct PollSettings {
    /// Batches sent and not yet acknowledged before the poller waits.
    pub max_in_flight: usize,
    /// The backoff's ceiling.
    pub retry_max_backoff: Duration,
    /// How often a refused target is tried again.
    pub refused_retry: Duration,
    /// How long requests may fail before `/health` reports the target.
    pub unhealthy_after: Duration,
}

/// The longest single wait (a deadline that would overflow is capped to it).
const MAX_WAIT: Duration = Duration::from_secs(3600);
/// How often the gauges move while the poller waits.
const GAUGES_EVERY: Duration = Duration::from_secs(5);
/// How often a backfill logs where it stands.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

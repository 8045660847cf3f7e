//! Simulator settings and fault descriptions.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::SimStream;

/// The API's documented limits: 600 requests a minute and 30,000 an hour, per account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimits {
    /// Requests per sliding minute.
    pub per_minute: u32,
    /// Requests per sliding hour.
    pub per_hour: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self { per_minute: 600, per_hour: 30_000 }
    }
}

/// Random faults on event requests, each a probability from 0 to 1.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Answer 500, 502 or 503.
    pub error_rate: f64,
    /// Answer after `slow_ms`.
    pub slow_rate: f64,
    /// The delay of a slow answer, in milliseconds.
    pub slow_ms: u64,
    /// Send a truncated JSON body.
    pub malformed_rate: f64,
    /// Reset the connection in the middle of the body.
    pub reset_rate: f64,
    /// Answer an empty page with `has_more: true` when more exists (the spec allows it).
    pub empty_page_rate: f64,
}

/// A one-shot fault for the next event request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Answer with this status and the API's JSON error body (429 adds `Retry-After: 1`).
    Status {
        /// The HTTP status.
        status: u16,
    },
    /// Wait before answering normally.
    Slow {
        /// Milliseconds.
        ms: u64,
    },
    /// Truncated JSON.
    Malformed,
    /// Connection reset mid-body.
    Reset,
    /// An empty page with `has_more: true`.
    EmptyPage,
}

/// How to run a simulator.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of the event generator, the signing key and the cursor key.
    pub seed: u64,
    /// Events generated per stream at start, spread over `backfill_window`.
    pub events_per_stream: usize,
    /// How far back the backfill reaches.
    pub backfill_window: Duration,
    /// Where the backfill window ends, in Unix nanoseconds; default the start
    /// of the current minute, so a restart within it makes the same events.
    pub backfill_until: Option<i64>,
    /// New events per second per stream while running.
    pub rate_per_sec: f64,
    /// Rate limits per account; `None` turns them off.
    pub rate_limits: Option<RateLimits>,
    /// Send `RateLimit-Limit/Remaining/Reset` on every answer (only documented for v3).
    pub rate_limit_headers: bool,
    /// Random faults.
    pub faults: Faults,
    /// Raw NDJSON events served instead of generated ones, per stream.
    pub fixtures: Vec<(SimStream, PathBuf)>,
    /// The token audience (`aud[0]`); defaults to the bound `host:port`.
    pub audience: Option<String>,
    /// The HMAC key of cursors; defaults to one derived from the seed.
    pub cursor_key: Option<String>,
    /// People of the Users API beyond the event generator's twelve.
    pub users: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            events_per_stream: 0,
            backfill_window: Duration::from_secs(24 * 3600),
            backfill_until: None,
            rate_per_sec: 0.0,
            rate_limits: Some(RateLimits::default()),
            rate_limit_headers: true,
            faults: Faults::default(),
            fixtures: Vec::new(),
            audience: None,
            cursor_key: None,
            users: 0,
        }
    }
}

//! The delivery layer: one driver that every batching sink (Elasticsearch,
//! Splunk HEC, the sluice forwarder) runs on, so all of them fail the same way.
//!
//! A sink supplies an encoder (event → [`Encoded`] item) and a
//! [`BatchService`] ("send these items, tell me each one's outcome"). The
//! driver does the rest: batches by events, bytes and linger time
//! ([`config::BatchConfig`]); a concurrency limit, adaptive by default
//! (`adaptive.rs`), that is also the backpressure; retries with
//! exponential backoff and full jitter; halving
//! of requests that are too large or invalid; the dead letter; and `/health`.
//!
//! # The rule: only a failure caused by the document itself is a rejection
//!
//! Every answer is classified into an [`ItemOutcome`] or a [`RequestError`]:
//!
//! | class | examples | what happens |
//! |---|---|---|
//! | delivered | ES 2xx, 409 on `create` (a replay) | acknowledged; the source may commit |
//! | retry | 429, 5xx, 408, timeouts, resets, malformed or short answers, unknown statuses | sent again with backoff; `/health` after 5 failures in a row |
//! | refused | 401, 403, 404, a blocked index, an unknown pipeline | `/health` at once; sent again every `refused_retry_secs` |
//! | too large / invalid request | 413, a whole-request 400 | split in halves until the bad document is alone |
//! | rejected | a mapping conflict, a value of the wrong type | written to the dead letter with the reason, then acknowledged |
//!
//! Nothing is acknowledged while its fate is unknown, so the source's
//! checkpoints wait and a restart re-reads. A dead letter always exists
//! (`<data_dir>/<sink id>/dead-letter.ndjson` unless `dead_letter.path` moves
//! it); it is fsynced before the rejection is acknowledged, and when it is
//! full or unwritable the sink waits and `/health` says so. Nothing is ever
//! logged and dropped. `/health` also turns unhealthy when events have waited
//! `request.unhealthy_after_secs` without any delivery.

mod adaptive;
pub mod config;
mod dead_letter;
mod deliver;
mod driver;
pub mod outcome;
mod progress;
mod service;
#[cfg(test)]
mod tests;

pub use config::{
    BatchConfig, Concurrency, DeadLetterConfig, DriverSettings, RequestConfig, validate_delivery,
};
pub use dead_letter::{DeadLetter, Rejection};
pub use driver::BatchSink;
pub use outcome::{EncodeError, Failure, ItemOutcome, RequestError};
pub use progress::Progress;
pub use service::{BatchService, Encoded};

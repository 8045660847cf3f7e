//! sluice-core: the contracts every sluice plugin builds on, and the two
//! kits they share. It names no plugin, no 1Password stream and no YAML
//! loader (that runtime is `sluice-topology`, used by the binary alone).
//!
//! **Writing a plugin, you need five modules (six for a polling source):**
//!
//! - [`component`]: the [`Source`](component::Source),
//!   [`Sink`](component::Sink) and
//!   [`FunctionTransform`](component::FunctionTransform) traits, their
//!   contexts (input, outputs, shutdown, `data_dir`, health, metrics) and
//!   preflight;
//! - [`ack`]: end-to-end acknowledgements: a source makes a
//!   [`BatchNotifier`] per batch and commits from [`OrderedAcks`]; a sink
//!   finishes each event's finalizers with its fate;
//! - [`config`]: [`FieldError`](config::FieldError) and
//!   [`check_range`](config::check_range), what a pure `validate()` returns;
//! - [`sink`]: the delivery layer a batching sink runs on: give it an
//!   encoder and a [`BatchService`](sink::BatchService), and it batches,
//!   limits concurrency, retries, splits, dead-letters and reports health;
//! - [`http`] (feature `http`): the HTTP client, TLS settings, sensitive
//!   headers, capped bodies, error texts without secrets;
//! - [`poll`], for a source that polls an API: its twin of [`sink`], a
//!   driver over a small trait that waits for the rate limiter, backs off,
//!   reports health, commits acknowledged batches in order and drains.
//!
//! **The rest, as you meet it:** [`event`] (the [`Event`]: a
//! `vrl::value::Value` plus its source id, dataset, raw text and
//! finalizers), [`metrics`] and [`health`] (what `/metrics` and `/health`
//! show), [`secret`] (values that never print), [`checkpoint`] (atomic
//! files), [`durable`] (fsynced appends: the file sink, dead letters),
//! [`backoff`] (exponential, full jitter), [`lookup`] (tables one source
//! fills and transforms read, to enrich events), [`queue`] and [`tap`] (what
//! [`component::Outputs`] sends through), [`error`] (a cause chain on one
//! line); `test_util` (feature `test-util`) holds recording components, a
//! scripted destination and a driver harness for plugin tests.
#![deny(missing_docs)]

pub mod ack;
pub mod backoff;
pub mod checkpoint;
pub mod component;
pub mod config;
pub mod durable;
pub mod error;
pub mod event;
pub mod health;
#[cfg(feature = "http")]
pub mod http;
pub mod lookup;
pub mod metrics;
pub mod poll;
pub mod queue;
pub mod secret;
pub mod sink;
pub mod tap;

pub use ack::{AckStatus, BatchNotifier, BatchStatus, OrderedAcks};
pub use event::{Event, EventMetadata};
pub use secret::{Secret, SecretSource};
#[cfg(any(test, feature = "test-util"))]
pub mod test_util;

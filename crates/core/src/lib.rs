//! sluice-core: what every sluice component shares.
//!
//! sluice moves 1Password Events API activity into SIEMs. This crate sits
//! under every plugin (sources, transforms, sinks) and knows none of them:
//!
//! - [`event`]: the [`Event`] (a `vrl::value::Value` plus metadata: the
//!   source id, the dataset its source names, the raw text, acknowledgements);
//! - [`ack`]: end-to-end acknowledgements (batch notifiers, finalizers, the
//!   ordered acknowledgement stream a source commits from);
//! - [`component`]: the source, transform and sink contracts and fan-out;
//! - [`topology`]: graph checks, wiring with bounded channels, drain;
//! - [`config`]: YAML loading, environment variables, positioned errors;
//! - [`metrics`], [`health`]: what `/metrics` and `/health` report;
//! - [`checkpoint`]: atomic checkpoint files; [`secret`]: redacted secrets;
//! - [`backoff`]: exponential backoff with full jitter for retry loops;
//! - [`sink`]: the delivery layer every batching sink runs on (batching,
//!   concurrency, retries, outcome classes, dead letter, health);
//! - [`http`] (feature `http`): the HTTP client builder, sensitive headers,
//!   capped bodies, error descriptions without secrets;
//! - [`durable`]: fsynced appends of whole lines (file sink, dead letters);
//! - [`error`]: an error and its causes on one line;
//! - [`diff`]: field-by-field differences between JSON documents;
//! - [`tap`]: live copies of an output's events for `sluice tap`;
#![deny(missing_docs)]

pub mod ack;
pub mod backoff;
pub mod checkpoint;
pub mod component;
pub mod config;
pub mod diff;
pub mod durable;
pub mod error;
pub mod event;
pub mod health;
#[cfg(feature = "http")]
pub mod http;
pub mod metrics;
pub mod queue;
pub mod secret;
pub mod sink;
pub mod tap;
pub mod topology;

pub use ack::{AckStatus, BatchNotifier, BatchStatus, OrderedAcks};
pub use event::{Event, EventMetadata};
pub use secret::{Secret, SecretSource};
#[cfg(any(test, feature = "test-util"))]
pub mod test_util;

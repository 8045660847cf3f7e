//! sluice-sink-splunk-hec: the `splunk_hec` sink, which delivers to
//! Splunk's HTTP Event Collector. It sits at the end of a topology, depends
//! on `sluice-core` only, and runs on core's delivery layer
//! ([`sluice_core::sink`]).
//!
//! - [`config`]: settings, validated without I/O into [`Settings`];
//! - [`encode`]: an event → one HEC envelope (the raw 1Password item byte
//!   for byte, or the ECS document) with `time`, `sourcetype` and `index`;
//! - `client`: POSTs on channels that keep their cookies, the ack query loop;
//! - `acks`: pending indexer acknowledgements keyed by (channel, cookies, ackId);
//! - `classify`: HEC's reply codes → delivered, retry, refused, rejected;
//! - [`sink`]: the component: preflight, then the delivery layer.
#![deny(missing_docs)]

mod acks;
mod classify;
mod client;
pub mod config;
pub mod encode;
pub mod sink;

pub use client::describe_metrics;
pub use config::{Settings, SplunkHecSinkConfig};
pub use sink::SplunkHecSink;

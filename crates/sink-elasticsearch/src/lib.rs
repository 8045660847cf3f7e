//! sluice-sink-elasticsearch: the `elasticsearch` sink. It sits at the end of
//! a topology and depends on `sluice-core` only.
//!
//! - [`config`]: settings, validated without I/O;
//! - [`encode`]: an event → one `create` action and its document, with the
//!   data stream fields and `_id` = the event's uuid;
//! - [`client`]: `_bulk` requests (gzip, auth, endpoint failover) and their
//!   answers, per item;
//! - [`dead_letter`]: rejected documents, with their reasons, in an NDJSON file;
//! - [`sink`]: batching, concurrency, per-item acknowledgement and retry.
#![deny(missing_docs)]

pub mod client;
pub mod config;
pub mod dead_letter;
pub mod encode;
pub mod sink;

pub use config::ElasticsearchSinkConfig;
pub use sink::ElasticsearchSink;

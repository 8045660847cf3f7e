//! sluice-sink-elasticsearch: the `elasticsearch` sink. It sits at the end of
//! a topology, depends on `sluice-core` only, and runs on core's delivery
//! layer ([`sluice_core::sink`]), which batches, retries and dead-letters.
//!
//! - [`config`]: settings, validated without I/O into [`Settings`];
//! - [`encode`]: an event → one `create` action and its document, with the
//!   data stream fields and `_id` = the event's uuid (or a hash of its raw
//!   original);
//! - `client`: `_bulk` requests (gzip, auth, endpoint failover);
//! - `classify`: Elasticsearch's answers → delivered, retry, refused,
//!   rejected (only document errors are rejections);
//! - `integration`: with `ingest: elastic`, the preflight's check that
//!   Elastic's 1Password integration (templates, pipelines) is installed;
//! - `hooks`: with `ingest: sluice`, the pipeline that runs Elastic's
//!   `@custom` hooks on sluice's documents;
//! - `privileges`: the has-privileges check that names what the API key lacks;
//! - [`sink`]: the component: preflight, then the delivery layer.
#![deny(missing_docs)]

mod classify;
mod client;
pub mod config;
pub mod encode;
mod hooks;
mod integration;
mod privileges;
pub mod sink;

pub use config::{ElasticsearchSinkConfig, EventOriginal, Ingest, Settings};
pub use hooks::HOOKS_PIPELINE;
pub use sink::ElasticsearchSink;

//! sluice-testkit: strict emulators of the systems sluice's sinks talk to,
//! written from their official API documentation, for tests only (no
//! Elasticsearch or Splunk server runs on the test machines).
//!
//! - [`elasticsearch`]: `_bulk`, `GET /`, `GET /_cluster/health`,
//!   `PUT/GET /_index_template`, with strict request validation, Elastic's
//!   answers and faults on demand.
#![deny(missing_docs)]

pub mod elasticsearch;

pub use elasticsearch::{EsAuth, EsEmulator, EsEmulatorConfig, EsFault, ItemFailure};

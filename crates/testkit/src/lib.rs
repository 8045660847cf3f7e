//! sluice-testkit: strict emulators of the systems sluice's sinks talk to,
//! written from their official API documentation, for tests only (no
//! Elasticsearch or Splunk server runs on the test machines).
//!
//! - [`elasticsearch`]: `_bulk`, `GET /`, `GET /_cluster/health`,
//!   `PUT/GET /_index_template`, with strict request validation, Elastic's
//!   answers and faults on demand;
//! - [`splunk`]: the HTTP Event Collector (`/event`, `/ack`, `/health`),
//!   tokens with and without indexer acknowledgement, channels, lost and
//!   late acks, and several indexers behind a sticky load balancer;
//! - [`pki`]: a throwaway certificate authority with server and client
//!   certificates, for TLS and mutual TLS tests.
#![deny(missing_docs)]
// Handlers return the error answer itself as `Err(Response)`.
#![allow(clippy::result_large_err)]

pub mod elasticsearch;
pub mod pki;
pub mod splunk;

pub use elasticsearch::fleet;
pub use elasticsearch::{EsAuth, EsEmulator, EsEmulatorConfig, EsFault, ItemFailure, Latency};
pub use splunk::{HecEmulator, HecEmulatorConfig, HecFault, HecToken, IndexedEvent};

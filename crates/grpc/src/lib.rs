//! sluice-grpc: the forwarder between sluice instances, in the place of
//! Vector's `vector` sink and source or Fluent Bit's `forward` with
//! `require_ack_response`. It depends on `sluice-core` only and speaks
//! `proto/sluice/v1/forward.proto`:
//!
//! - [`sink`]: the `sluice` sink on an edge, on core's delivery layer
//!   (batching, retries, dead letter, health), over one or several
//!   aggregators with TLS, mutual TLS or a bearer token;
//! - [`source`]: the `sluice` source on an aggregator, which answers a push
//!   only when its own sinks acknowledged every event;
//! - [`proto`]: the generated messages; [`tls`]: certificates on both ends.
#![deny(missing_docs)]

pub mod proto;
pub mod sink;
pub mod source;
pub mod tls;

pub use sink::{SluiceSink, SluiceSinkConfig};
pub use source::{SluiceSource, SluiceSourceConfig};

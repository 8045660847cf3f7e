//! sluice-transform-vrl: the `vrl` transform, the only crate that pulls the
//! VRL compiler and standard library.
//!
//! - [`config`]: settings; validation reads and compiles the program once;
//! - [`condition`]: VRL conditions for `sluice test`;
//! - [`transform`]: runs it per event within a time budget (`budget`: the
//!   time its thread ran, not the time it waited for a core), and turns an
//!   event it fails on into an annotated `pipeline_error` document for
//!   `<id>.dropped`;
//! - [`geoip`]: sluice's own VRL functions `geoip_city` and `geoip_asn`;
//! - [`lookup`]: `get_lookup(table, key)`, rows another component published.
#![deny(missing_docs)]

mod budget;
pub mod condition;
pub mod config;
pub mod geoip;
pub mod lookup;
mod nesting;
pub mod transform;

pub use config::{GeoIpConfig, VrlTransformConfig};
pub use transform::VrlTransform;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

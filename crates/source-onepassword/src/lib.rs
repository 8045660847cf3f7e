//! sluice-source-onepassword: the `onepassword` source, which polls the
//! 1Password Events API.
//!
//! It sits between the API and sluice's topology, and depends on
//! `sluice-core` only:
//!
//! - [`config`]: settings, validated without I/O;
//! - [`token`]: the token (inline or from a file) and its decoded claims;
//! - [`client`]: HTTP requests and the API's answers, classified;
//! - [`limiter`]: one rate limiter per token, shared by every stream and source;
//! - [`checkpoint`]: one cursor file per (source, stream), written atomically;
//! - [`stream`]: the poller of one stream: follow the cursor, emit pages,
//!   commit a page's cursor only when it and every page before it are final;
//! - [`source`]: preflight (token, audience, introspection) and one poller per stream.
#![deny(missing_docs)]

pub mod checkpoint;
pub mod client;
pub mod config;
pub mod limiter;
pub mod source;
pub mod stream;
pub mod token;

pub use config::{ApiVersion, OnePasswordSourceConfig};
pub use source::OnePasswordSource;

use std::path::PathBuf;

/// What can go wrong in this source. No variant ever holds the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token file cannot be read.
    #[error("cannot read the token file {}: {source}", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The token is unusable.
    #[error("{0}")]
    Token(String),
    /// A check before the start failed.
    #[error("{0}")]
    Preflight(String),
    /// A checkpoint cannot be read or written.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What happened.
        message: String,
    },
}

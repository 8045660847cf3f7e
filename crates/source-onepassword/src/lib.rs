//! sluice-source-onepassword: the `onepassword` source, which polls the
//! 1Password Events API.
//!
//! It sits between the API and sluice's topology, and depends on
//! `sluice-core` only:
//!
//! - [`config`]: settings, validated without I/O into [`Settings`];
//! - [`streams`]: the three API streams and the dataset each one's events carry;
//! - `token`: the token (inline or from a file) and its decoded claims;
//! - `client`: HTTP requests and the API's answers, classified; [`ApiVersion`];
//! - `limiter`: one rate limiter per token, shared by every stream and source;
//! - [`checkpoint`]: one cursor file per (source, stream), written atomically,
//!   and what `sluice checkpoint list|reset` shows and does;
//! - `stream`: the poller of one stream: follow the cursor, emit pages,
//!   commit a page's cursor only when it and every page before it are final;
//! - [`source`]: preflight (token, audience, introspection) and one poller per stream;
//! - [`error`]: this crate's [`Error`].
#![deny(missing_docs)]

pub mod checkpoint;
mod client;
pub mod config;
pub mod error;
mod limiter;
pub mod source;
mod stream;
pub mod streams;
mod token;

pub use client::ApiVersion;
pub use config::{OnePasswordSourceConfig, Settings};
pub use error::Error;
pub use source::OnePasswordSource;
pub use stream::measure::describe as describe_metrics;
pub use streams::Stream;

//! What can go wrong in this source. No variant ever holds the token.

use std::path::PathBuf;

/// What can go wrong in this source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token is unusable.
    #[error("{0}")]
    Token(String),
    /// A command was given a value it cannot use.
    #[error("{0}")]
    Usage(String),
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

impl From<sluice_core::poll::StoreError> for Error {
    fn from(err: sluice_core::poll::StoreError) -> Self {
        Self::Checkpoint { path: err.path, message: err.message }
    }
}

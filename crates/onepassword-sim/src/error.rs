//! Why the simulator cannot start.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the simulator cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The listen address is unusable.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A fixture file is unreadable or holds something that is not an event.
    #[error("fixture {}:{line}: {message}", path.display())]
    Fixture {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when the file cannot be read).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

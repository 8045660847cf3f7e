//! A position kept as JSON in an atomic file ([`crate::checkpoint`]):
//! read at start, written after each commit.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A checkpoint file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("checkpoint {}: {message}", path.display())]
pub struct StoreError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// A checkpoint of type `C` in one file.
#[derive(Debug)]
pub struct CheckpointStore<C> {
    path: PathBuf,
    kind: PhantomData<fn() -> C>,
}

impl<C: Serialize + DeserializeOwned> CheckpointStore<C> {
    /// The store at `path`.
    pub fn new(path: PathBuf) -> Self {
        Self { path, kind: PhantomData }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checkpoint, `None` when there is none yet.
    pub fn load(&self) -> Result<Option<C>, StoreError> {
        let error = |message: String| StoreError { path: self.path.clone(), message };
        let Some(bytes) = crate::checkpoint::read(&self.path).map_err(|e| error(e.to_string()))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            error(format!(
                "not a checkpoint ({e}); fix it or reset it with `sluice checkpoint reset`"
            ))
        })
    }

    /// Replace the file with `checkpoint`, atomically and durably.
    pub fn save(&self, checkpoint: &C) -> Result<(), StoreError> {
        let error = |message: String| StoreError { path: self.path.clone(), message };
        let bytes = serde_json::to_vec_pretty(checkpoint).map_err(|e| error(e.to_string()))?;
        crate::checkpoint::write_atomic(&self.path, &bytes).map_err(|e| error(e.to_string()))
    }
}

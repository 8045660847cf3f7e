//! One checkpoint file per (source, stream): `<data_dir>/<source id>/<stream>.json`,
//! holding the cursor of the last page that is final together with every
//! page before it. Written atomically (temporary file, fsync, rename).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_core::Stream;

use crate::Error;
use crate::config::ApiVersion;

/// A stream's saved position.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCheckpoint {
    /// The cursor to continue from; `None` after a reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The API version the cursor belongs to.
    pub api_version: ApiVersion,
    /// Where to start when there is no cursor (set by `sluice checkpoint reset --start-time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// The newest event timestamp delivered (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_timestamp: Option<String>,
    /// Events delivered since the checkpoint was created.
    #[serde(default)]
    pub events: u64,
    /// When it was written (RFC 3339).
    #[serde(default)]
    pub committed_at: String,
}

/// The file of `stream` of the source `source_id`.
pub fn path(data_dir: &Path, source_id: &str, stream: Stream) -> PathBuf {
    data_dir.join(source_id).join(format!("{}.json", stream.as_str()))
}

/// Read a checkpoint; `None` if there is none.
pub fn load(path: &Path) -> Result<Option<StreamCheckpoint>, Error> {
    let error = |message: String| Error::Checkpoint { path: path.to_owned(), message };
    let Some(bytes) = sluice_core::checkpoint::read(path).map_err(|e| error(e.to_string()))? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        error(format!("not a checkpoint ({e}); fix it or reset it with `sluice checkpoint reset`"))
    })
}

/// Write a checkpoint atomically.
pub fn save(path: &Path, checkpoint: &StreamCheckpoint) -> Result<(), Error> {
    let bytes = serde_json::to_vec_pretty(checkpoint).expect("a checkpoint serialises");
    sluice_core::checkpoint::write_atomic(path, &bytes)
        .map_err(|e| Error::Checkpoint { path: path.to_owned(), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reports_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = path(dir.path(), "op", Stream::ItemUsages);
        assert!(file.ends_with("op/item_usages.json"));
        assert_eq!(load(&file).expect("readable"), None);
        let checkpoint = StreamCheckpoint {
            cursor: Some("abc".into()),
            events: 3,
            ..StreamCheckpoint::default()
        };
        save(&file, &checkpoint).expect("written");
        assert_eq!(load(&file).expect("readable"), Some(checkpoint));
        std::fs::write(&file, "{not json").expect("write");
        let error = load(&file).expect_err("corrupt").to_string();
        assert!(error.contains("sluice checkpoint reset"), "{error}");
    }
}

//! Documents Elasticsearch rejected for good (a mapping conflict, a bad
//! value), kept with the reason in an NDJSON file, fsynced before the events
//! are acknowledged as rejected. Replay them with the `file` source once the
//! cause is fixed.

use std::path::{Path, PathBuf};

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// One rejected document.
#[derive(Debug)]
pub struct Rejected<'a> {
    /// The data stream or index.
    pub index: &'a str,
    /// The item status.
    pub status: u16,
    /// `error.type`.
    pub error_type: &'a str,
    /// `error.reason`.
    pub reason: &'a str,
    /// The document line as sent.
    pub document: &'a [u8],
}

/// An append-only dead-letter file.
#[derive(Debug)]
pub struct DeadLetter {
    path: PathBuf,
    file: Mutex<Option<tokio::fs::File>>,
    component_id: String,
}

impl DeadLetter {
    /// A dead letter at `path` (opened at the first write).
    pub fn new(path: &Path, component_id: &str) -> Self {
        Self {
            path: path.to_owned(),
            file: Mutex::new(None),
            component_id: component_id.to_owned(),
        }
    }

    /// Append and fsync.
    pub async fn write(&self, rejected: &[Rejected<'_>]) -> std::io::Result<()> {
        let mut lines = Vec::new();
        for item in rejected {
            let document: serde_json::Value = serde_json::from_slice(item.document)
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(item.document)));
            let record = json!({
                "@timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "index": item.index,
                "status": item.status,
                "error": {"type": item.error_type, "reason": item.reason},
                "sluice": {"component_id": self.component_id},
                "document": document,
            });
            serde_json::to_writer(&mut lines, &record)?;
            lines.push(b'\n');
        }
        let mut guard = self.file.lock().await;
        if guard.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(dir).await?;
            }
            *guard = Some(
                tokio::fs::OpenOptions::new().create(true).append(true).open(&self.path).await?,
            );
        }
        let file = guard.as_mut().expect("opened");
        file.write_all(&lines).await?;
        file.flush().await?;
        file.sync_data().await
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

//! The dead letter every batching sink has: documents the destination
//! rejected for good, one NDJSON record each with the reason, appended and
//! fsynced before the events are acknowledged as rejected. Replay them with
//! the `file` source once the cause is fixed.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::Mutex;

use crate::durable::{AppendError, DurableFile};
use crate::sink::outcome::Failure;

/// One dead-letter record.
#[derive(Serialize)]
struct Record<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: &'a str,
    destination: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    error: ErrorFields<'a>,
    sluice: SluiceFields<'a>,
    document: &'a RawValue,
}

#[derive(Serialize)]
struct ErrorFields<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    reason: &'a str,
}

#[derive(Serialize)]
struct SluiceFields<'a> {
    component_id: &'a str,
}

/// A rejected document.
#[derive(Debug)]
pub struct Rejection<'a> {
    /// Where it was going (an index, a sourcetype).
    pub destination: &'a str,
    /// Why it was rejected.
    pub failure: &'a Failure,
    /// The document as sent (JSON).
    pub document: &'a [u8],
}

/// A sink's dead-letter file, shared by its delivery tasks.
#[derive(Debug)]
pub struct DeadLetter {
    file: Mutex<DurableFile>,
    path: PathBuf,
    component_id: String,
}

impl DeadLetter {
    /// The dead letter of sink `component_id` at `path`, at most `max_bytes` long.
    pub fn new(path: PathBuf, max_bytes: u64, component_id: &str) -> Self {
        Self {
            file: Mutex::new(DurableFile::new(path.clone(), Some(max_bytes))),
            path,
            component_id: component_id.to_owned(),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append the records, durably; all or none of them are written.
    pub async fn write(&self, rejections: &[Rejection<'_>]) -> Result<(), AppendError> {
        let now = crate::event::now_rfc3339();
        let mut lines = Vec::new();
        for rejection in rejections {
            let quoted;
            let document = match serde_json::from_slice::<&RawValue>(rejection.document) {
                Ok(raw) => raw,
                // Not JSON (a protocol's own encoding): kept as a string.
                Err(_) => {
                    quoted = serde_json::value::to_raw_value(&String::from_utf8_lossy(
                        rejection.document,
                    ))
                    .map_err(|e| self.io(e.into()))?;
                    &quoted
                }
            };
            let record = Record {
                timestamp: &now,
                destination: rejection.destination,
                status: rejection.failure.status,
                error: ErrorFields {
                    kind: &rejection.failure.kind,
                    reason: &rejection.failure.reason,
                },
                sluice: SluiceFields { component_id: &self.component_id },
                document,
            };
            serde_json::to_writer(&mut lines, &record).map_err(|e| self.io(e.into()))?;
            lines.push(b'\n');
        }
        self.file.lock().await.append(&lines).await
    }

    fn io(&self, source: std::io::Error) -> AppendError {
        AppendError::Io { path: self.path.clone(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_keep_the_document_as_json_with_the_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dead = DeadLetter::new(dir.path().join("es/dead-letter.ndjson"), 1 << 20, "es");
        let failure = Failure::new(400, "mapper_parsing_exception", "failed to parse field [n]");
        dead.write(&[
            Rejection {
                destination: "logs-acme.audit-default",
                failure: &failure,
                document: br#"{"n":"x"}"#,
            },
            Rejection { destination: "main", failure: &failure, document: b"\x08not json" },
        ])
        .await
        .expect("written");
        let text = std::fs::read_to_string(dead.path()).expect("read");
        let records: Vec<serde_json::Value> =
            text.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
        assert_eq!(records[0]["document"], serde_json::json!({"n": "x"}));
        assert_eq!(records[0]["status"], 400);
        assert_eq!(records[0]["error"]["type"], "mapper_parsing_exception");
        assert_eq!(records[0]["sluice"]["component_id"], "es");
        assert_eq!(records[1]["document"], "\u{8}not json");
        assert!(records[0]["@timestamp"].as_str().expect("time").ends_with('Z'));
    }
}

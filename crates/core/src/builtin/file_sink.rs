//! The `file` sink: appends NDJSON and acknowledges only after the lines are
//! flushed and fsynced. Typical use: a dead-letter file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::encode_ndjson;
use crate::ack::{AckStatus, PendingAcks};
use crate::backoff::Backoff;
use crate::component::{BoxError, ComponentFuture, DEFAULT_OUTPUT, Sink, SinkContext};
use crate::config::FieldError;
use crate::metrics::Stage;

/// `type: file` under `sinks`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// The file to append to, relative to the config file's folder; its folder is created.
    pub path: PathBuf,
}

impl FileSinkConfig {
    /// Resolve the path against `dir`.
    pub fn validate(mut self, dir: &Path) -> Result<FileSink, Vec<FieldError>> {
        if self.path.as_os_str().is_empty() {
            return Err(vec![FieldError::new("path", "path must not be empty")]);
        }
        self.path = dir.join(&self.path);
        Ok(FileSink { path: self.path })
    }
}

/// A validated `file` sink.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
}

impl FileSink {
    async fn open(&self) -> std::io::Result<tokio::fs::File> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await?;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .await?;
        repair_torn_tail(&mut file, &self.path).await?;
        Ok(file)
    }
}

impl Sink for FileSink {
    fn run(self: Box<Self>, mut cx: SinkContext) -> ComponentFuture {
        Box::pin(async move {
            let mut file = self
                .open()
                .await
                .map_err(|e| format!("cannot open {}: {e}", self.path.display()))?;
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
            let mut buffer = Vec::new();
            while let Some(mut events) = cx.input.recv().await {
                let mut pending = PendingAcks::default();
                for event in &mut events {
                    pending.push(event.take_finalizers());
                }
                buffer.clear();
                let failed = encode_ndjson(&events, &mut buffer);
                if !failed.is_empty() {
                    cx.metrics.error(Stage::Sending, "encode_failed");
                    cx.metrics.discarded(failed.len(), false);
                }
                match write_durably(&mut file, &buffer).await {
                    Ok(()) => {
                        pending.resolve(AckStatus::Delivered);
                        cx.metrics.sent(events.len() - failed.len(), DEFAULT_OUTPUT);
                        cx.health.set_healthy("");
                        backoff.reset();
                    }
                    Err(err) => {
                        // Unresolved, `pending` errors the batch: its source reads it again.
                        drop(pending);
                        cx.metrics.error(Stage::Sending, "write_failed");
                        let wait = backoff.next_delay();
                        tracing::error!(path = %self.path.display(), error = %err, retry_in = ?wait, "cannot write; the batch will be read again");
                        cx.health.set_unhealthy(
                            "",
                            format!("cannot write {}: {err}", self.path.display()),
                        );
                        tokio::time::sleep(wait).await;
                        file = reopen(&self, file).await?;
                    }
                }
            }
            Ok(())
        })
    }
}

async fn write_durably(file: &mut tokio::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    let before = file.metadata().await?.len();
    let result = async {
        file.write_all(bytes).await?;
        file.flush().await?;
        file.sync_data().await
    }
    .await;
    if result.is_err() {
        // Cut off a partial write so the file holds only whole lines.
        let _ = file.set_len(before).await;
    }
    result
}

/// A crash (kill -9, power loss) during a write can leave half a line at the
/// end. It was never acknowledged, so its source sends it again: cut it off
/// so the file holds only whole lines.
async fn repair_torn_tail(file: &mut tokio::fs::File, path: &Path) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    const CHUNK: u64 = 64 * 1024;
    let len = file.metadata().await?.len();
    let mut end = len;
    let mut buffer = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        buffer.resize((end - start) as usize, 0);
        file.seek(std::io::SeekFrom::Start(start)).await?;
        file.read_exact(&mut buffer).await?;
        if let Some(newline) = buffer.iter().rposition(|b| *b == b'\n') {
            end = start + newline as u64 + 1;
            break;
        }
        end = start;
    }
    if end < len {
        tracing::warn!(path = %path.display(), bytes = len - end, "removing an incomplete last line left by a crash");
        file.set_len(end).await?;
        file.sync_data().await?;
    }
    Ok(())
}

async fn reopen(sink: &FileSink, old: tokio::fs::File) -> Result<tokio::fs::File, BoxError> {
    drop(old);
    Ok(sink.open().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opening_cuts_off_a_torn_last_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out/x.ndjson");
        let sink =
            FileSinkConfig { path: "out/x.ndjson".into() }.validate(dir.path()).expect("valid");
        drop(sink.open().await.expect("creates folder and file"));
        std::fs::write(&path, "{\"a\":1}\n{\"a\":2}\n{\"a\":").expect("write");
        drop(sink.open().await.expect("open"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{\"a\":1}\n{\"a\":2}\n");
        std::fs::write(&path, "no newline at all").expect("write");
        drop(sink.open().await.expect("open"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "");
    }
}

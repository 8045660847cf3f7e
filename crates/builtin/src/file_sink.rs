//! The `file` sink: appends NDJSON and acknowledges only after the lines are
//! flushed and fsynced. Typical use: a dead-letter file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::encode_ndjson;
use sluice_core::ack::AckStatus;
use sluice_core::backoff::Backoff;
use sluice_core::component::{ComponentFuture, DEFAULT_OUTPUT, Sink, SinkContext};
use sluice_core::config::FieldError;
use sluice_core::durable::DurableFile;
use sluice_core::metrics::Stage;

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

impl Sink for FileSink {
    fn run(self: Box<Self>, mut cx: SinkContext) -> ComponentFuture {
        Box::pin(async move {
            let mut file = DurableFile::new(&self.path, None);
            file.open().await?;
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
            let mut buffer = Vec::new();
            while let Some(mut events) = cx.input.recv().await {
                let (pending, encoded) = encode_ndjson(&mut events, &mut buffer);
                loop {
                    match file.append(&buffer).await {
                        Ok(()) => break,
                        Err(err) => {
                            cx.metrics.error(Stage::Sending, "write_failed");
                            let wait = backoff.next_delay();
                            let error = sluice_core::error::error_chain(&err);
                            tracing::error!(%error, retry_in = ?wait, "cannot write; the events wait and are written again");
                            cx.health.set_unhealthy("", error);
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
                pending.resolve(AckStatus::Delivered);
                cx.metrics.sent(encoded, DEFAULT_OUTPUT);
                cx.health.set_healthy("");
                backoff.reset();
            }
            Ok(())
        })
    }
}

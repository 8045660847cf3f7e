//! The `file` source: reads NDJSON, one raw 1Password item per line (or a
//! sink's dead letter, `format: dead_letter`), and checkpoints its byte
//! offset only once the lines before it are final. Its use is replaying an
//! export or a dead letter through a pipeline.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use vrl::value::{ObjectMap, Value};

use sluice_core::ack::{BatchNotifier, BatchStatus, EventFinalizers, OrderedAcks};
use sluice_core::backoff::Backoff;
use sluice_core::component::{BoxError, ComponentFuture, Source, SourceContext};
use sluice_core::event::Event;
use sluice_core::metrics::Stage;

use lines::{Batch, Line, LineReader};

pub use config::{FileSourceConfig, LineFormat, ReadMode};
/// The named output that receives lines that are not valid JSON (core's
/// `<id>.dropped` port, which every component's failures share).
pub use sluice_core::component::DROPPED;

/// A validated `file` source, ready to run.
#[derive(Debug)]
pub struct FileSource {
    config: FileSourceConfig,
    /// The dataset its events carry, from `dataset` or `stream`.
    dataset: Option<Arc<str>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    path: PathBuf,
    offset: u64,
}

impl Source for FileSource {
    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        Box::pin(async move { Reader::start(*self, cx).await?.run().await })
    }
}

/// How often the checkpoint is written while batches are acknowledged: a
/// crash reads again at most this much (the sinks' ids make that harmless),
/// and a fast replay does not wait on an fsync per batch.
const SAVE_EVERY: Duration = Duration::from_secs(1);

struct Reader {
    config: FileSourceConfig,
    dataset: Option<Arc<str>>,
    cx: SourceContext,
    checkpoint_path: PathBuf,
    /// The file; `None` only while a read runs on the blocking pool.
    lines: Option<LineReader>,
    /// Offset up to which everything is final and saved.
    committed: u64,
    /// Offset up to which everything is final, perhaps not saved yet.
    acked: u64,
    saved_at: Instant,
    acks: OrderedAcks<u64>,
    rewind: Backoff,
}

impl Reader {
    async fn start(source: FileSource, cx: SourceContext) -> Result<Self, BoxError> {
        let FileSource { mut config, dataset } = source;
        // The checkpoint names the file absolutely, whatever the working directory.
        config.path = tokio::fs::canonicalize(&config.path)
            .await
            .map_err(|e| format!("cannot open {}: {e}", config.path.display()))?;
        let checkpoint_path = cx.data_dir.join(&cx.id).join("checkpoint.json");
        let saved = sluice_core::checkpoint::read(&checkpoint_path)
            .map_err(|e| format!("cannot read checkpoint {}: {e}", checkpoint_path.display()))?;
        let mut committed = match saved.map(|bytes| serde_json::from_slice::<Checkpoint>(&bytes)) {
            Some(Ok(saved)) if saved.path == config.path => saved.offset,
            Some(Ok(saved)) => {
                tracing::info!(old = %saved.path.display(), new = %config.path.display(), "path changed; reading from the start");
                0
            }
            Some(Err(err)) => {
                return Err(
                    format!("corrupt checkpoint {}: {err}", checkpoint_path.display()).into()
                );
            }
            None => 0,
        };
        let file = std::fs::File::open(&config.path)
            .map_err(|e| format!("cannot open {}: {e}", config.path.display()))?;
        let len = file.metadata()?.len();
        if len < committed {
            tracing::warn!(path = %config.path.display(), committed, len, "file is shorter than the checkpoint (truncated?); reading from the start");
            committed = 0;
        }
        let lines = LineReader::open(file, committed, config.max_line_bytes)?;
        let reader = Self {
            config,
            dataset,
            cx,
            checkpoint_path,
            lines: Some(lines),
            committed,
            acked: committed,
            saved_at: Instant::now(),
            acks: OrderedAcks::new(),
            rewind: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
        };
        if committed > 0 {
            tracing::info!(path = %reader.config.path.display(), offset = committed, "resuming from checkpoint");
        }
        Ok(reader)
    }

    async fn run(mut self) -> Result<(), BoxError> {
        let shutdown = self.cx.shutdown.clone();
        loop {
            while let Some((offset, status)) = self.acks.try_next() {
                self.on_ack(offset, status).await?;
            }
            let pending_bytes = self.position().saturating_sub(self.acked);
            if !self.acks.is_empty()
                && (self.acks.len() >= self.config.max_pending_batches
                    || pending_bytes >= self.config.max_pending_bytes)
            {
                tokio::select! {
                    (offset, status) = self.acks.next() => self.on_ack(offset, status).await?,
                    () = shutdown.cancelled() => break,
                }
                continue;
            }
            if shutdown.is_cancelled() {
                break;
            }
            // One batch from a local file: not raced against shutdown, so
            // the reader always comes back from the blocking pool.
            let Batch { lines, at_end } = self.read_batch().await?;
            if !lines.is_empty() {
                // Not cancelled by shutdown: a batch half sent to a fan-out
                // would count as delivered by the consumers it never reached.
                self.emit(lines).await?;
            }
            if at_end {
                if self.config.mode == ReadMode::Once {
                    break;
                }
                let poll = Duration::from_millis(self.config.poll_interval_ms);
                tokio::select! {
                    (offset, status) = self.acks.next() => self.on_ack(offset, status).await?,
                    () = tokio::time::sleep(poll) => {
                        self.save_acked()?;
                        self.check_truncation().await?;
                    }
                    () = shutdown.cancelled() => break,
                }
            }
        }
        // Stop reading; commit everything that the sinks still acknowledge.
        // Nothing more is sent: downstream sees the end now and flushes what
        // it holds instead of waiting for more (a batch's linger).
        self.cx.out.close();
        while !self.acks.is_empty() {
            let (offset, status) = self.acks.next().await;
            if !status.is_final() {
                tracing::warn!(
                    offset = self.committed,
                    "a batch failed while draining; it will be read again at the next start"
                );
                break;
            }
            self.acked = self.acked.max(offset);
        }
        self.save_acked()
    }

    /// Read up to a batch of complete lines on the blocking pool.
    async fn read_batch(&mut self) -> Result<Batch, BoxError> {
        let mut lines = self.lines.take().ok_or("the file reader was lost")?;
        let (max, once) = (self.config.batch_max_events, self.config.mode == ReadMode::Once);
        let (lines, batch) = tokio::task::spawn_blocking(move || {
            let batch = lines.read_batch(max, once);
            (lines, batch)
        })
        .await?;
        self.lines = Some(lines);
        Ok(batch?)
    }

    async fn emit(&mut self, lines: Vec<Line>) -> Result<(), BoxError> {
        let (notifier, receiver) = BatchNotifier::new_with_receiver();
        let mut events = Vec::with_capacity(lines.len());
        let mut dropped = Vec::new();
        let mut bytes = 0;
        let source_id: std::sync::Arc<str> = self.cx.id.as_str().into();
        for Line { offset, bytes: raw, len, truncated } in lines {
            bytes += raw.len();
            if truncated {
                self.cx.metrics.error(Stage::Receiving, "line_too_long");
                let path = self.config.path.display();
                let max = self.config.max_line_bytes;
                tracing::error!(%path, offset, bytes = len, max_line_bytes = max, "line longer than max_line_bytes; it goes on as one pipeline_error event with its first bytes");
                let message = format!(
                    "the line is {len} bytes, longer than max_line_bytes ({max}); its first {max} bytes are kept"
                );
                dropped.push(self.invalid_line(offset, raw, &message));
                continue;
            }
            if raw.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let (item, dataset) = match self.config.format {
                LineFormat::Ndjson => (raw.clone(), self.dataset.clone()),
                LineFormat::DeadLetter => match dead_letter::unwrap(&raw, self.dataset.as_ref()) {
                    Ok((item, dataset)) => (item, Some(dataset)),
                    Err(message) => {
                        self.cx.metrics.error(Stage::Receiving, "parse_failed");
                        let path = self.config.path.display();
                        let to = self.invalid_goes_to();
                        tracing::error!(%path, offset, error = %message, "dead-letter line cannot be replayed; {to}");
                        dropped.push(self.invalid_line(offset, raw, &message));
                        continue;
                    }
                },
            };
            let mut event = match Event::from_json(item) {
                Ok(event) => event,
                Err(err) => {
                    self.cx.metrics.error(Stage::Receiving, "parse_failed");
                    let path = self.config.path.display();
                    let to = self.invalid_goes_to();
                    tracing::error!(%path, offset, error = %err, "line is not valid JSON; {to}");
                    dropped.push(self.invalid_line(offset, raw, &format!("invalid JSON: {err}")));
                    continue;
                }
            };
            event.meta.source_id = Some(source_id.clone());
            event.meta.dataset = dataset;
            event.meta.finalizers = EventFinalizers::new(notifier.finalizer());
            events.push(event);
        }
        for event in &mut dropped {
            event.meta.finalizers = EventFinalizers::new(notifier.finalizer());
        }
        drop(notifier);
        self.cx.metrics.received(events.len() + dropped.len(), bytes);
        self.acks.push(self.position(), receiver);
        self.cx.out.send(events).await?;
        self.cx.out.send_failed(dropped).await?;
        Ok(())
    }

    /// Where a line that cannot be read goes, for its log line.
    fn invalid_goes_to(&self) -> String {
        if self.cx.out.is_consumed(sluice_core::component::DROPPED) {
            format!("sent to `{}.dropped`", self.cx.id)
        } else {
            format!(
                "nothing reads `{}.dropped`, so it goes down the default output as a pipeline_error event",
                self.cx.id
            )
        }
    }

    fn invalid_line(&self, offset: u64, raw: Bytes, message: &str) -> Event {
        let mut error = ObjectMap::new();
        error.insert("message".into(), Value::from(message));
        error.insert("component_id".into(), Value::from(self.cx.id.clone()));
        let mut file = ObjectMap::new();
        file.insert("path".into(), Value::from(self.config.path.display().to_string()));
        file.insert("offset".into(), Value::from(offset as i64));
        // `event.kind: pipeline_error` tells later transforms it already failed
        // (the vrl transform passes it on untouched instead of mapping it).
        let mut kind = ObjectMap::new();
        kind.insert("kind".into(), Value::from("pipeline_error"));
        let mut root = ObjectMap::new();
        root.insert("event".into(), Value::Object(kind));
        root.insert("message".into(), Value::from(String::from_utf8_lossy(&raw).into_owned()));
        root.insert("error".into(), Value::Object(error));
        root.insert("file".into(), Value::Object(file));
        let mut event = Event::new(Value::Object(root));
        event.meta.raw = Some(raw);
        event.meta.source_id = Some(self.cx.id.as_str().into());
        event.meta.dataset = self.dataset.clone();
        event
    }

    fn position(&self) -> u64 {
        self.lines.as_ref().map_or(self.committed, LineReader::position)
    }

    async fn on_ack(&mut self, offset: u64, status: BatchStatus) -> Result<(), BoxError> {
        if status.is_final() {
            self.rewind.reset();
            self.acked = self.acked.max(offset);
            if self.saved_at.elapsed() >= SAVE_EVERY {
                self.save_acked()?;
            }
            return Ok(());
        }
        // A sink gave up on a batch: read again from the last final position
        // rather than skip it. Later batches are re-sent too (at least once).
        let wait = self.rewind.next_delay();
        self.save_acked()?;
        tracing::warn!(from = self.committed, retry_in = ?wait, "a batch was not delivered; reading it again");
        self.acks.clear();
        tokio::time::sleep(wait).await;
        self.seek(self.committed)
    }

    /// Save what was acknowledged since the last save.
    fn save_acked(&mut self) -> Result<(), BoxError> {
        self.saved_at = Instant::now();
        if self.acked <= self.committed {
            return Ok(());
        }
        self.save(self.acked)
    }

    /// Write `offset` as the checkpoint, whatever it was.
    fn save(&mut self, offset: u64) -> Result<(), BoxError> {
        let checkpoint = Checkpoint { path: self.config.path.clone(), offset };
        let bytes = serde_json::to_vec(&checkpoint)?;
        sluice_core::checkpoint::write_atomic(&self.checkpoint_path, &bytes).map_err(|e| {
            format!("cannot write checkpoint {}: {e}", self.checkpoint_path.display())
        })?;
        self.committed = offset;
        self.acked = offset;
        Ok(())
    }

    fn seek(&mut self, offset: u64) -> Result<(), BoxError> {
        self.lines.as_mut().ok_or("the file reader was lost")?.seek(offset)?;
        Ok(())
    }

    /// A file shorter than what was read was truncated or replaced.
    async fn check_truncation(&mut self) -> Result<(), BoxError> {
        let len = tokio::fs::metadata(&self.config.path).await?.len();
        let position = self.position();
        if len >= position {
            return Ok(());
        }
        tracing::warn!(path = %self.config.path.display(), len, position, "file was truncated; reading from the start");
        while !self.acks.is_empty() {
            let (offset, status) = self.acks.next().await;
            if status.is_final() {
                self.acked = self.acked.max(offset);
            }
        }
        self.save_acked()?;
        let file = std::fs::File::open(&self.config.path)?;
        self.lines = Some(LineReader::open(file, 0, self.config.max_line_bytes)?);
        self.save(0)
    }
}

mod config;
mod dead_letter;
mod lines;
#[cfg(test)]
mod tests;

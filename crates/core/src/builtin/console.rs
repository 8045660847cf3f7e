//! The `console` sink: NDJSON on standard output, for the demo and debugging.

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::encode_ndjson;
use crate::ack::{AckStatus, PendingAcks};
use crate::component::{ComponentFuture, DEFAULT_OUTPUT, Sink, SinkContext};
use crate::config::FieldError;
use crate::metrics::Stage;

/// `type: console` under `sinks`. It has no options.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSinkConfig {}

impl ConsoleSinkConfig {
    /// Nothing to check.
    pub fn validate(self) -> Result<ConsoleSink, Vec<FieldError>> {
        Ok(ConsoleSink)
    }
}

/// A validated `console` sink.
#[derive(Debug)]
pub struct ConsoleSink;

impl Sink for ConsoleSink {
    fn run(self: Box<Self>, mut cx: SinkContext) -> ComponentFuture {
        Box::pin(async move {
            let mut stdout = tokio::io::stdout();
            let mut buffer = Vec::new();
            while let Some(mut events) = cx.input.recv().await {
                let mut pending = PendingAcks::default();
                for event in &mut events {
                    pending.push(event.take_finalizers());
                }
                buffer.clear();
                let failed = encode_ndjson(&events, &mut buffer);
                if let Err(err) = async {
                    stdout.write_all(&buffer).await?;
                    stdout.flush().await
                }
                .await
                {
                    cx.metrics.error(Stage::Sending, "write_failed");
                    return Err(format!("cannot write to standard output: {err}").into());
                }
                pending.resolve(AckStatus::Delivered);
                cx.metrics.discarded(failed.len(), false);
                cx.metrics.sent(events.len() - failed.len(), DEFAULT_OUTPUT);
            }
            Ok(())
        })
    }
}

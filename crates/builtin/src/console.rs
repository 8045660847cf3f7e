//! The `console` sink: NDJSON on standard output, for the demo and debugging.

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::encode_ndjson;
use sluice_core::ack::AckStatus;
use sluice_core::component::{ComponentFuture, DEFAULT_OUTPUT, Sink, SinkContext};
use sluice_core::config::FieldError;
use sluice_core::metrics::Stage;

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
                let (pending, encoded) = encode_ndjson(&mut events, &mut buffer);
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
                cx.metrics.sent(encoded, DEFAULT_OUTPUT);
            }
            Ok(())
        })
    }
}

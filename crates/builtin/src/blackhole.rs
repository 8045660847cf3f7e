//! The `blackhole` sink: counts events and acknowledges them. For benchmarks
//! and for measuring a source alone.

use serde::Deserialize;

use sluice_core::ack::AckStatus;
use sluice_core::component::{ComponentFuture, DEFAULT_OUTPUT, Sink, SinkContext};
use sluice_core::config::FieldError;

/// `type: blackhole` under `sinks`. It has no options.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlackholeSinkConfig {}

impl BlackholeSinkConfig {
    /// Nothing to check.
    pub fn validate(self) -> Result<BlackholeSink, Vec<FieldError>> {
        Ok(BlackholeSink)
    }
}

/// A validated `blackhole` sink.
#[derive(Debug)]
pub struct BlackholeSink;

impl Sink for BlackholeSink {
    fn run(self: Box<Self>, mut cx: SinkContext) -> ComponentFuture {
        Box::pin(async move {
            while let Some(mut events) = cx.input.recv().await {
                for event in &mut events {
                    event.take_finalizers().finish(AckStatus::Delivered);
                }
                cx.metrics.sent(events.len(), DEFAULT_OUTPUT);
            }
            Ok(())
        })
    }
}

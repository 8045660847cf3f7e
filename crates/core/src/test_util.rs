//! Recording components for tests of the topology and of plugins.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use vrl::value::Value;

use crate::ack::{AckStatus, BatchNotifier, BatchStatus, EventFinalizers, OrderedAcks};
use crate::component::{ComponentFuture, DEFAULT_OUTPUT, Sink, SinkContext, Source, SourceContext};
use crate::event::Event;

mod scripted;
pub use scripted::{
    Answer, DriverRun, ScriptedService, default_delivery, encode_json, start_batch_sink,
};

/// Where [`VecSource`] records `(batch index, status)`.
pub type Statuses = Arc<Mutex<Vec<(usize, BatchStatus)>>>;

/// Emits fixed batches, then waits for their statuses (in order) and stops.
#[derive(Debug)]
pub struct VecSource {
    /// The batches to emit.
    pub batches: Vec<Vec<Value>>,
    /// Receives `(batch index, status)` in batch order.
    pub statuses: Statuses,
}

impl VecSource {
    /// A source of `batches`, and where their statuses will be recorded.
    pub fn new(batches: Vec<Vec<Value>>) -> (Self, Statuses) {
        let statuses = Arc::new(Mutex::new(Vec::new()));
        (Self { batches, statuses: statuses.clone() }, statuses)
    }
}

impl Source for VecSource {
    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            let batches = self.batches.into_iter().map(|b| b.into_iter().map(Event::new).collect());
            emit_and_wait(batches, cx, self.statuses).await
        })
    }
}

/// Emits raw JSON items of one dataset, as the onepassword source does (the
/// raw text kept in the metadata), then waits for their statuses and stops.
#[derive(Debug)]
pub struct RawSource {
    /// The batches of raw items to emit.
    pub batches: Vec<Vec<bytes::Bytes>>,
    /// Their dataset (`okta.system`, say).
    pub dataset: Arc<str>,
    /// Receives `(batch index, status)` in batch order.
    pub statuses: Statuses,
}

impl RawSource {
    /// A source of `batches` of `dataset`, and where their statuses will be recorded.
    pub fn new(batches: Vec<Vec<bytes::Bytes>>, dataset: &str) -> (Self, Statuses) {
        let statuses = Arc::new(Mutex::new(Vec::new()));
        (Self { batches, dataset: Arc::from(dataset), statuses: statuses.clone() }, statuses)
    }
}

impl Source for RawSource {
    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            let values = self.batches.into_iter().map(|batch| {
                batch
                    .into_iter()
                    .map(|raw| {
                        let mut event = Event::from_json(raw).expect("a JSON item");
                        event.meta.dataset = Some(self.dataset.clone());
                        event
                    })
                    .collect()
            });
            emit_and_wait(values, cx, self.statuses).await
        })
    }
}

/// Emit each batch with its own notifier, then record the statuses in order.
async fn emit_and_wait(
    batches: impl Iterator<Item = Vec<Event>>,
    cx: SourceContext,
    statuses: Statuses,
) -> Result<(), crate::component::BoxError> {
    let mut acks = OrderedAcks::new();
    for (index, batch) in batches.enumerate() {
        let (notifier, receiver) = BatchNotifier::new_with_receiver();
        let events = batch
            .into_iter()
            .map(|mut event| {
                event.meta.finalizers = EventFinalizers::new(notifier.finalizer());
                event
            })
            .collect();
        acks.push(index, receiver);
        cx.out.send(events).await?;
    }
    while !acks.is_empty() {
        let (index, status) = acks.next().await;
        statuses.lock().expect("lock").push((index, status));
    }
    Ok(())
}

/// Records what it receives and finalizes it with a chosen status, after
/// taking a permit from `gate` for each array (so a test can hold it back).
#[derive(Debug, Clone)]
pub struct RecordingSink {
    /// Everything received, in order.
    pub received: Arc<Mutex<Vec<Value>>>,
    /// The status given to every event.
    pub status: AckStatus,
    /// One permit per array; `None` never waits.
    pub gate: Option<Arc<Semaphore>>,
    /// Acknowledge nothing until the input ends, like a batching sink
    /// whose partial batch waits for more events.
    pub hold_until_end: bool,
}

impl RecordingSink {
    /// A sink that delivers immediately.
    pub fn new(status: AckStatus) -> Self {
        Self { received: Arc::default(), status, gate: None, hold_until_end: false }
    }

    /// A sink that acknowledges what it received only once its input ends.
    pub fn until_end(status: AckStatus) -> Self {
        Self { hold_until_end: true, ..Self::new(status) }
    }

    /// A sink that waits for a permit per array.
    pub fn gated(status: AckStatus) -> (Self, Arc<Semaphore>) {
        let gate = Arc::new(Semaphore::new(0));
        (Self { gate: Some(gate.clone()), ..Self::new(status) }, gate)
    }

    /// What it received so far.
    pub fn values(&self) -> Vec<Value> {
        self.received.lock().expect("lock").clone()
    }
}

impl Sink for RecordingSink {
    fn run(self: Box<Self>, mut cx: SinkContext) -> ComponentFuture {
        Box::pin(async move {
            let mut held = Vec::new();
            while let Some(mut events) = cx.input.recv().await {
                if let Some(gate) = &self.gate {
                    gate.acquire().await.expect("gate open").forget();
                }
                for event in &mut events {
                    let finalizers = event.take_finalizers();
                    if self.hold_until_end {
                        held.push(finalizers);
                    } else {
                        finalizers.finish(self.status);
                    }
                    self.received.lock().expect("lock").push(event.value.clone());
                }
                cx.metrics.sent(events.len(), DEFAULT_OUTPUT);
            }
            for finalizers in held {
                finalizers.finish(self.status);
            }
            Ok(())
        })
    }
}

/// Wait until `check` holds, polling every 10 ms for at most `timeout`.
pub async fn wait_for(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}

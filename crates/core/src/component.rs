//! The contracts between the topology and its components.
//!
//! A source gets a [`SourceContext`] and runs until it is told to stop; a
//! sink gets a [`SinkContext`] and runs until its input closes; a transform
//! is a plain per-event function that the topology drives. Components are
//! built by the binary from their validated configs.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::event::Event;
use crate::health::HealthHandle;
use crate::metrics::ComponentMetrics;
use crate::queue::{QueueReceiver, QueueSender};
use crate::tap::TapPoint;

/// An error crossing the component boundary.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A running component.
pub type ComponentFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// Checks a component makes before it runs.
pub type PreflightFuture<'a> = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>>;

/// What a component's file checks found, tied to its keys so that they are
/// shown at file:line: errors stop `validate` and `run`, warnings are logged.
#[derive(Debug, Default)]
pub struct FileChecks {
    /// Problems that make the component unusable (a token file that is missing).
    pub errors: Vec<crate::config::FieldError>,
    /// Problems it can run with (a token for another host behind a relay).
    pub warnings: Vec<crate::config::FieldError>,
}

impl FileChecks {
    /// Checks that found `errors` (none, when it is empty) and no warning.
    pub fn errors(errors: impl IntoIterator<Item = crate::config::FieldError>) -> Self {
        Self { errors: errors.into_iter().collect(), warnings: Vec::new() }
    }
}

/// The signal that tells sources to stop fetching.
pub type ShutdownSignal = CancellationToken;

pub use crate::metrics::DEFAULT_OUTPUT;

/// A preflight that could not reach its destination (a 1Password host, an
/// Elasticsearch or Splunk endpoint). `sluice run` starts anyway, says so
/// once and keeps retrying (a sink briefly down must not stop a start);
/// `sluice validate --network` fails with it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);

/// The downstream component stopped: nothing can be sent any more.
#[derive(Debug, thiserror::Error)]
#[error("a downstream component stopped")]
pub struct ClosedError;

/// The consumers an output sends to, and whether one the config names for
/// it is gone (its channel closed while this output still runs).
#[derive(Debug, Default)]
struct Wired {
    senders: Arc<Vec<QueueSender>>,
    lost: bool,
}

type Consumers = std::sync::Mutex<Wired>;

/// The consumers of one output, and its tap point. The topology keeps a
/// [`FanoutLink`] to it, so that a config reload can change the consumers
/// while the producer runs.
#[derive(Debug, Default)]
pub struct Fanout {
    senders: Arc<Consumers>,
    tap: Option<Arc<TapPoint>>,
}

/// A weak handle on a [`Fanout`]: it does not keep the consumers' channels
/// open once the producer has ended.
#[derive(Clone, Debug)]
pub struct FanoutLink(std::sync::Weak<Consumers>);

impl FanoutLink {
    /// Replace the consumers, if the producer still runs; whether it does.
    /// `lost` says that a consumer the config names for this output could
    /// not be reached: what the output sends from then on counts as errored
    /// (read again), never as delivered.
    pub fn set_consumers(&self, senders: Vec<QueueSender>, lost: bool) -> bool {
        let Some(consumers) = self.0.upgrade() else { return false };
        *consumers.lock().unwrap_or_else(|p| p.into_inner()) =
            Wired { senders: Arc::new(senders), lost };
        true
    }
}

impl Fanout {
    /// Offer copies of what this output sends to `tap`'s watchers.
    pub fn set_tap(&mut self, tap: Arc<TapPoint>) {
        self.tap = Some(tap);
    }

    /// Replace the consumers. A send already under way finishes with the
    /// ones it started with.
    pub fn set_consumers(&self, senders: Vec<QueueSender>) {
        *self.senders.lock().unwrap_or_else(|p| p.into_inner()) =
            Wired { senders: Arc::new(senders), lost: false };
    }

    /// A handle to change the consumers later.
    pub fn link(&self) -> FanoutLink {
        FanoutLink(Arc::downgrade(&self.senders))
    }

    /// Room to make a batch for every consumer ([`QueueSender::reserve`]),
    /// taken queue by queue in one global order.
    pub async fn reserve(&self) -> Reservation {
        let (senders, _) = self.current();
        let mut queues: Vec<&QueueSender> = senders.iter().collect();
        queues.sort_by_key(|q| q.queue_id());
        queues.dedup_by_key(|q| q.queue_id());
        let mut permits = Vec::with_capacity(queues.len());
        for queue in queues {
            permits.extend(queue.reserve().await);
        }
        Reservation { _permits: permits }
    }

    fn current(&self) -> (Arc<Vec<QueueSender>>, bool) {
        let wired = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        (wired.senders.clone(), wired.lost)
    }

    /// Send to every consumer, waiting for room in each (backpressure). With
    /// no consumer in the config, the events are dropped (the config check
    /// warned about it). When a consumer the config names is gone, the
    /// events are marked errored before they leave: none of them counts as
    /// delivered, and the source reads them again.
    pub async fn send(&self, events: Vec<Event>) -> Result<(), ClosedError> {
        if let Some(tap) = &self.tap {
            tap.offer(&events);
        }
        let (senders, lost) = self.current();
        if lost {
            for event in &events {
                event.meta.finalizers.update_status(crate::ack::AckStatus::Errored);
            }
        }
        let Some((last, rest)) = senders.split_last() else { return Ok(()) };
        let bytes = crate::queue::size_of(&events);
        for sender in rest {
            sender.send(events.clone(), bytes).await.map_err(|_| ClosedError)?;
        }
        last.send(events, bytes).await.map_err(|_| ClosedError)
    }
}

/// Room reserved to make a batch for an output's consumers: held from
/// before a fetch until its batch was sent, so a burst of producers (many
/// sources starting with a backlog) holds as many batches in memory as the
/// queues hold, not one per producer.
#[derive(Debug)]
pub struct Reservation {
    _permits: Vec<tokio::sync::OwnedSemaphorePermit>,
}

/// The outputs of a source or transform: the default one and named ports
/// (`<id>.dropped`).
#[derive(Debug)]
pub struct Outputs {
    default: Fanout,
    named: BTreeMap<String, Fanout>,
    metrics: ComponentMetrics,
    closed: bool,
}

impl Outputs {
    /// Outputs with the given consumers.
    pub fn new(
        default: Fanout,
        named: BTreeMap<String, Fanout>,
        metrics: ComponentMetrics,
    ) -> Self {
        Self { default, named, metrics, closed: false }
    }

    /// Send nothing more: let go of the consumers' channels now, so that
    /// they see these outputs end without waiting for the component to
    /// return. A source that has read everything and only waits for its
    /// acknowledgements closes them: a sink holding a partial batch for
    /// more events sends it at once instead of waiting out its linger. A
    /// send after it is refused with [`ClosedError`].
    pub fn close(&mut self) {
        self.closed = true;
        self.default.set_consumers(Vec::new());
        for fanout in self.named.values() {
            fanout.set_consumers(Vec::new());
        }
    }

    /// Reserve room for one batch on the default output (see [`Reservation`]).
    pub async fn reserve(&self) -> Reservation {
        self.default.reserve().await
    }

    /// Send on the default output.
    pub async fn send(&self, events: Vec<Event>) -> Result<(), ClosedError> {
        if self.closed {
            return Err(ClosedError);
        }
        if events.is_empty() {
            return Ok(());
        }
        let count = events.len();
        self.default.send(events).await?;
        self.metrics.sent(count, DEFAULT_OUTPUT);
        Ok(())
    }

    /// Whether any component reads the named output `port`.
    pub fn is_consumed(&self, port: &str) -> bool {
        self.named.get(port).is_some_and(|fanout| !fanout.current().0.is_empty())
    }

    /// Send events a component failed on: to `<id>.dropped` when a component
    /// reads it, otherwise down the default output, so they are never lost.
    pub async fn send_failed(&self, events: Vec<Event>) -> Result<(), ClosedError> {
        if self.is_consumed(DROPPED) {
            self.send_to(DROPPED, events).await
        } else {
            self.send(events).await
        }
    }

    /// Send on the named output `port`. A port the component did not declare
    /// is a programming error; its events are dropped with a log line.
    pub async fn send_to(&self, port: &str, events: Vec<Event>) -> Result<(), ClosedError> {
        if self.closed {
            return Err(ClosedError);
        }
        if events.is_empty() {
            return Ok(());
        }
        let Some(fanout) = self.named.get(port) else {
            tracing::error!(port, "event sent to an undeclared output; dropped");
            self.metrics.discarded(events.len(), false);
            return Ok(());
        };
        let count = events.len();
        fanout.send(events).await?;
        self.metrics.sent(count, port);
        Ok(())
    }
}

/// Input of a transform or sink.
#[derive(Debug)]
pub struct EventReceiver {
    rx: QueueReceiver,
    metrics: ComponentMetrics,
}

impl EventReceiver {
    /// Wrap a channel.
    pub fn new(rx: QueueReceiver, metrics: ComponentMetrics) -> Self {
        Self { rx, metrics }
    }

    /// The next events; `None` once every upstream finished.
    pub async fn recv(&mut self) -> Option<Vec<Event>> {
        let array = self.rx.recv().await?;
        let events = array.into_events();
        let bytes = events.iter().map(|e| e.meta.raw.as_ref().map_or(0, |r| r.len())).sum();
        self.metrics.received(events.len(), bytes);
        Some(events)
    }

    /// Whether no events are waiting right now (a sink sends a partial
    /// batch at once then, instead of lingering for more).
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

/// What a source runs with.
#[derive(Debug)]
pub struct SourceContext {
    /// Its id.
    pub id: String,
    /// Where it sends events.
    pub out: Outputs,
    /// Fires when the source must stop fetching, commit what was
    /// acknowledged and return.
    pub shutdown: ShutdownSignal,
    /// The `data_dir`; a source keeps its checkpoints under `<data_dir>/<id>/`.
    pub data_dir: PathBuf,
    /// Its health switch.
    pub health: HealthHandle,
    /// Its metrics.
    pub metrics: ComponentMetrics,
    /// The sinks its events reach when it starts, as `<id> (<type>)`,
    /// sorted: a source records them beside its position, so that another
    /// pipeline resuming that position is noticed.
    pub consumers: Vec<String>,
}

/// What a sink runs with.
#[derive(Debug)]
pub struct SinkContext {
    /// Its id.
    pub id: String,
    /// Its input; the sink returns once it yields `None`.
    pub input: EventReceiver,
    /// The `data_dir`; a sink keeps its files (the dead letter) under `<data_dir>/<id>/`.
    pub data_dir: PathBuf,
    /// Its health switch.
    pub health: HealthHandle,
    /// Its metrics.
    pub metrics: ComponentMetrics,
}

/// Produces events.
pub trait Source: Send {
    /// Checks that read local files the component needs (a token file,
    /// certificates), run by `sluice validate` and `sluice run` after the
    /// settings are valid. Files are read again when used: this only moves
    /// their problems to the config's file:line.
    fn check_files(&self) -> FileChecks {
        FileChecks::default()
    }

    /// Checks that need the network or the filesystem (a token, an
    /// endpoint), run once before `run` and by `sluice validate --network`.
    /// An error stops the start with a message naming the component.
    fn preflight(&mut self) -> PreflightFuture<'_> {
        Box::pin(async { Ok(()) })
    }

    /// Run until the shutdown signal, or until there is nothing more to read.
    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture;
}

/// Delivers events, and marks each one's finalizer when delivery is final.
pub trait Sink: Send {
    /// As [`Source::check_files`].
    fn check_files(&self) -> FileChecks {
        FileChecks::default()
    }

    /// Checks that need the network (credentials, the destination's
    /// version), run once before `run` and by `sluice validate --network`.
    fn preflight(&mut self) -> PreflightFuture<'_> {
        Box::pin(async { Ok(()) })
    }

    /// What the destination needs before the first event that a check may
    /// not do (install an ingest pipeline, say): run by `sluice run` and a
    /// reload after a preflight that passed, never by `sluice validate`.
    fn prepare(&mut self) -> PreflightFuture<'_> {
        Box::pin(async { Ok(()) })
    }

    /// Run until the input closes, then flush and return.
    fn run(self: Box<Self>, cx: SinkContext) -> ComponentFuture;
}

/// The named output that receives events a transform failed on.
pub const DROPPED: &str = "dropped";

/// Where a transform puts its results.
#[derive(Debug, Default)]
pub struct TransformOutput {
    default: Vec<Event>,
    named: BTreeMap<String, Vec<Event>>,
    failed: Vec<Event>,
}

impl TransformOutput {
    /// Emit on the default output.
    pub fn push(&mut self, event: Event) {
        self.default.push(event);
    }

    /// Emit on a named output (declared in the component's config).
    pub fn push_to(&mut self, port: &str, event: Event) {
        self.named.entry(port.to_owned()).or_default().push(event);
    }

    /// Emit an event the transform failed on, annotated with the reason. It
    /// goes to `<id>.dropped` when a component reads that output, and
    /// otherwise down the default output, so a failure is never silent.
    pub fn push_failed(&mut self, event: Event) {
        self.failed.push(event);
    }

    /// What was pushed so far: (default and named outputs, failed events). For tests.
    pub fn take_for_test(&mut self) -> (Vec<Event>, Vec<Event>) {
        let mut emitted = std::mem::take(&mut self.default);
        emitted.extend(std::mem::take(&mut self.named).into_values().flatten());
        (emitted, std::mem::take(&mut self.failed))
    }

    /// Send everything collected, emptying the buffers.
    pub async fn flush(&mut self, outputs: &Outputs) -> Result<(), ClosedError> {
        outputs.send(std::mem::take(&mut self.default)).await?;
        for (port, events) in std::mem::take(&mut self.named) {
            outputs.send_to(&port, events).await?;
        }
        outputs.send_failed(std::mem::take(&mut self.failed)).await
    }
}

/// Maps one event to zero or more events. Dropping an event counts as
/// delivering it, so a failed event belongs on a named output instead.
pub trait FunctionTransform: Send {
    /// Transform one event.
    fn transform(&mut self, event: Event, out: &mut TransformOutput);

    /// How many copies of it the topology runs side by side, each on whole
    /// arrays of events (default 1). Order across arrays is then not kept;
    /// acknowledgements are, since an array is never split.
    fn concurrency(&self) -> usize {
        1
    }

    /// A copy with its own state, for [`FunctionTransform::concurrency`];
    /// `None` when it cannot be copied (it then runs alone).
    fn fork(&self) -> Option<Box<dyn FunctionTransform>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn producers_reserve_as_many_batches_as_the_queue_holds() {
        let config = crate::queue::BufferConfig { max_arrays: 2, ..Default::default() };
        let (tx, _rx) = crate::queue::queue(config, Vec::new());
        let outputs: Vec<Outputs> = (0..3)
            .map(|n| {
                let default = Fanout::default();
                default.set_consumers(vec![tx.clone(), tx.clone()]);
                Outputs::new(
                    default,
                    BTreeMap::new(),
                    ComponentMetrics::new(&format!("src{n}"), "source", "test"),
                )
            })
            .collect();
        let first = outputs[0].reserve().await;
        let _second = outputs[1].reserve().await;
        let third = outputs[2].reserve();
        tokio::pin!(third);
        let waited = tokio::time::timeout(std::time::Duration::from_secs(5), &mut third).await;
        assert!(waited.is_err(), "a third producer waits while two batches are being made");
        drop(first);
        tokio::time::timeout(std::time::Duration::from_secs(5), third)
            .await
            .expect("room once a batch was sent");
    }

    #[tokio::test]
    async fn closed_outputs_end_their_consumers_and_refuse_more() {
        let (tx, mut rx) = crate::queue::queue(crate::queue::BufferConfig::default(), Vec::new());
        let default = Fanout::default();
        default.set_consumers(vec![tx]);
        let metrics = ComponentMetrics::new("src", "source", "test");
        let mut outputs = Outputs::new(default, BTreeMap::new(), metrics);
        outputs.send(vec![Event::new(vrl::value::Value::from("a"))]).await.expect("sent");
        outputs.close();
        assert!(rx.recv().await.is_some(), "what was sent before is still received");
        assert!(rx.recv().await.is_none(), "then the channel ends, the producer still alive");
        let refused = outputs.send(vec![Event::new(vrl::value::Value::from("b"))]).await;
        assert!(refused.is_err(), "a send after close is refused, not dropped");
    }
}

//! The run loop of a batching sink: encode each event, gather batches by
//! events, bytes and linger time, and hand each batch to a delivery task
//! under a concurrency limit. Waiting for a free slot stops the loop from
//! reading its input, which is the backpressure that holds back the source.

use std::sync::Arc;

use bytes::Bytes;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use crate::ack::PendingAcks;
use crate::component::{BoxError, SinkContext};
use crate::event::Event;
use crate::metrics::Stage;
use crate::sink::adaptive::Limiter;
use crate::sink::config::DriverSettings;
use crate::sink::dead_letter::DeadLetter;
use crate::sink::deliver::{Chunk, deliver, reject};
use crate::sink::outcome::{EncodeError, Failure};
use crate::sink::progress::Progress;
use crate::sink::service::{BatchService, Encoded, Shared};

/// A batching sink: a name for logs and `/health`, an encoder and a service.
#[derive(Debug)]
pub struct BatchSink<S, E> {
    /// What logs and `/health` call the destination, e.g. `Elasticsearch`.
    pub destination: &'static str,
    /// Sends batches.
    pub service: S,
    /// Turns an event into an item; an error rejects that event alone.
    pub encode: E,
    /// Batching, concurrency, retry and dead-letter settings.
    pub settings: DriverSettings,
}

impl<S, E> BatchSink<S, E>
where
    S: BatchService,
    E: FnMut(&mut Event) -> Result<Encoded, EncodeError> + Send,
{
    /// Run until the input closes and every batch is final.
    pub async fn run(self, mut cx: SinkContext) -> Result<(), BoxError> {
        let BatchSink { destination, service, mut encode, settings } = self;
        cx.metrics.register_delivery();
        let path = settings.dead_letter_path(&cx.data_dir, &cx.id);
        let progress = Progress::new(cx.health.clone(), destination, settings.unhealthy_after);
        let watch = tracing::Instrument::in_current_span(progress.clone().watch());
        let _watch = AbortOnDropHandle::new(tokio::spawn(watch));
        let limit = metrics::gauge!("sluice_sink_concurrency_limit", cx.metrics.labels());
        let shared = Arc::new(Shared {
            dead_letter: DeadLetter::new(path, settings.dead_letter_max_bytes, &cx.id),
            service,
            progress,
            metrics: cx.metrics.clone(),
            id: cx.id.clone(),
            destination: destination.to_owned(),
            limiter: Limiter::new(settings.adaptive, settings.concurrency, limit),
            latency: metrics::histogram!(
                "sluice_sink_delivery_latency_seconds",
                cx.metrics.labels()
            ),
            settings,
        });
        let mut tasks = JoinSet::new();
        let mut batch = Chunk::default();
        let mut bytes = 0;
        let mut deadline: Option<Instant> = None;
        loop {
            tokio::select! {
                received = cx.input.recv() => {
                    let Some(events) = received else { break };
                    shared.progress.accepted(events.len());
                    for mut event in events {
                        let acks = PendingAcks::new(event.take_finalizers());
                        match encode(&mut event) {
                            Ok(encoded) => {
                                bytes += encoded.payload.len();
                                batch.push(encoded, acks);
                            }
                            Err(reason) => unencodable(&shared, &event, acks, reason).await,
                        }
                        if batch.len() >= shared.settings.max_events || bytes >= shared.settings.max_bytes {
                            dispatch(&mut tasks, &shared, std::mem::take(&mut batch)).await;
                            bytes = 0;
                            deadline = None;
                        }
                    }
                    // Nothing else is waiting and a request slot is free: a
                    // partial batch goes now rather than lingering. Under
                    // load the slots are busy or input waits, and batches fill.
                    if !batch.is_empty() && cx.input.is_empty() && shared.limiter.has_room() {
                        dispatch(&mut tasks, &shared, std::mem::take(&mut batch)).await;
                        bytes = 0;
                        deadline = None;
                    } else if !batch.is_empty() && deadline.is_none() {
                        deadline = Some(Instant::now() + shared.settings.linger);
                    }
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    dispatch(&mut tasks, &shared, std::mem::take(&mut batch)).await;
                    bytes = 0;
                    deadline = None;
                }
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => surface(joined)?,
            }
        }
        dispatch(&mut tasks, &shared, batch).await;
        while let Some(joined) = tasks.join_next().await {
            surface(joined)?;
        }
        Ok(())
    }
}

/// An event that cannot be encoded is the document's fault: dead letter.
async fn unencodable<S: BatchService>(
    shared: &Shared<S>,
    event: &Event,
    acks: PendingAcks,
    reason: EncodeError,
) {
    shared.metrics.error(Stage::Sending, "encode_failed");
    let original = event.meta.raw.clone().unwrap_or_default();
    let document = serde_json::to_vec(&String::from_utf8_lossy(&original)).unwrap_or_default();
    let encoded =
        Encoded { payload: Bytes::new(), document: document.into(), destination: "".into() };
    let failure = Failure::without_status("encode_failed", reason.to_string());
    reject(shared, vec![(encoded, acks, failure)]).await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn surface(joined: Result<(), tokio::task::JoinError>) -> Result<(), BoxError> {
    joined.map_err(|err| format!("a delivery task failed: {err}").into())
}

async fn dispatch<S: BatchService>(tasks: &mut JoinSet<()>, shared: &Arc<Shared<S>>, batch: Chunk) {
    if batch.is_empty() {
        return;
    }
    // Waiting for a slot holds back the input: backpressure to the source.
    let Some(slot) = shared.limiter.acquire().await else { return };
    let shared = shared.clone();
    let delivery = async move {
        deliver(&shared, batch).await;
        drop(slot);
    };
    tasks.spawn(tracing::Instrument::in_current_span(delivery));
}

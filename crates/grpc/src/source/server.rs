//! `Forward.Push` on the aggregator: check the token, bound the batches in
//! flight, turn the events into one tracked batch of the topology, and
//! answer with each event's fate once the batch is final downstream.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use metrics::{counter, gauge};
use sluice_core::ack::{AckStatus, BatchNotifier, BatchOutcome, EventFinalizers};
use sluice_core::component::{Outputs, SourceContext};
use sluice_core::metrics::{ComponentMetrics, Stage};
use sluice_core::{Event, Secret};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status};
use vrl::value::Value;

use super::joins::{Answer, Joins, Lookup};
use crate::proto::forward_server::Forward;
use crate::proto::{self, PushRequest, PushResponse, Rejection, push_response};

/// The longest `batch_id` used for joining resends (sluice sends 16 bytes).
const MAX_BATCH_ID: usize = 64;

/// What every push shares.
pub(crate) struct Receiver {
    id: Arc<str>,
    out: Outputs,
    token: Option<Secret>,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    joins: Mutex<Joins>,
    metrics: ComponentMetrics,
    shutdown: CancellationToken,
}

/// The gRPC service.
#[derive(Clone)]
pub(crate) struct Handler(pub(crate) Arc<Receiver>);

fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A `sender` name fit for a metric label.
fn label(sender: &str) -> String {
    let name: String = sender
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        .take(64)
        .collect();
    if name.is_empty() { "unnamed".into() } else { name }
}

/// HELP text of the aggregator's own families (call once, after the
/// recorder is installed).
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!("sluice_forward_in_flight_batches", "Pushed batches not yet answered.");
    describe_counter!("sluice_forward_batches_total", "Pushed batches, by sender and answer.");
    describe_counter!("sluice_forward_events_total", "Pushed events, by sender.");
}

impl Receiver {
    pub(crate) fn new(cx: SourceContext, token: Option<Secret>, max_in_flight: usize) -> Self {
        gauge!("sluice_forward_in_flight_batches", cx.metrics.labels()).set(0.0);
        Self {
            id: cx.id.into(),
            out: cx.out,
            token,
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            joins: Mutex::new(Joins::default()),
            metrics: cx.metrics,
            shutdown: cx.shutdown,
        }
    }

    fn count(&self, sender: &str, answer: &'static str) {
        let labels =
            self.metrics.labels_with(&[("sender", label(sender)), ("answer", answer.into())]);
        counter!("sluice_forward_batches_total", labels).increment(1);
    }

    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(token) = &self.token else { return Ok(()) };
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        match given {
            Some(given) if equal_in_constant_time(given.as_bytes(), token.expose().as_bytes()) => {
                Ok(())
            }
            given => {
                let what = if given.is_some() { "a wrong" } else { "no" };
                let peer =
                    request.remote_addr().map_or_else(|| "unknown".into(), |a| a.to_string());
                tracing::warn!(%peer, "push refused: the edge sent {what} bearer token");
                self.metrics.error(Stage::Receiving, "unauthenticated");
                Err(Status::unauthenticated(format!(
                    "the aggregator refused {what} bearer token: set the sink's `token` to the source's"
                )))
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Joins> {
        self.joins.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn delivered() -> PushResponse {
    PushResponse { status: push_response::Status::Delivered as i32, rejections: Vec::new() }
}

/// The datasets of one batch, each held once (a batch has one to three).
#[derive(Default)]
struct Datasets(Vec<Arc<str>>);

impl Datasets {
    /// The event's dataset: `dataset`, else (a sender from before the wire
    /// carried datasets, which forwarded only 1Password's streams)
    /// `1password.<stream>`; any name is taken.
    fn of(&mut self, event: &proto::Event) -> Option<Arc<str>> {
        let legacy;
        let name = match (event.dataset.as_str(), event.stream.as_str()) {
            ("", "") => return None,
            ("", stream) => {
                legacy = format!("1password.{stream}");
                legacy.as_str()
            }
            (dataset, _) => dataset,
        };
        if let Some(known) = self.0.iter().find(|known| known.as_ref() == name) {
            return Some(known.clone());
        }
        let dataset: Arc<str> = Arc::from(name);
        self.0.push(dataset.clone());
        Some(dataset)
    }
}

/// One wire event → a topology event, or why not.
fn decode(
    event: proto::Event,
    source_id: &Arc<str>,
    datasets: &mut Datasets,
) -> Result<Event, (&'static str, String)> {
    let dataset = datasets.of(&event);
    let value: Value = serde_json::from_slice(&event.document)
        .map_err(|e| ("invalid_document", format!("the document is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(("invalid_document", "the document is not a JSON object".into()));
    }
    let mut decoded = Event::new(value);
    decoded.meta.source_id = Some(source_id.clone());
    decoded.meta.dataset = dataset;
    decoded.meta.raw = (!event.raw.is_empty()).then_some(event.raw);
    Ok(decoded)
}

/// The answer for a final batch: any event not delivered means "send again".
fn answer(outcome: &BatchOutcome, mut rejections: Vec<Rejection>) -> Answer {
    let errored = outcome.events.iter().filter(|s| **s == AckStatus::Errored).count();
    if errored > 0 {
        return Err((
            Code::Unavailable,
            format!(
                "{errored} of {} events were not delivered by the aggregator's sinks; send the batch again",
                outcome.events.len()
            ),
        ));
    }
    for (index, status) in outcome.events.iter().enumerate() {
        if *status == AckStatus::Rejected {
            rejections.push(Rejection {
                index: index as u32,
                kind: "rejected_downstream".into(),
                reason: "a sink of the aggregator rejected it (see that sink's dead letter)".into(),
            });
        }
    }
    if rejections.is_empty() {
        return Ok(delivered());
    }
    rejections.sort_by_key(|r| r.index);
    Ok(PushResponse { status: push_response::Status::Rejected as i32, rejections })
}

/// Put one batch into the topology and publish its answer when it is final.
async fn deliver(
    receiver: Arc<Receiver>,
    batch_id: Bytes,
    request: PushRequest,
    permit: OwnedSemaphorePermit,
    tx: watch::Sender<Option<Answer>>,
) {
    let in_flight = gauge!("sluice_forward_in_flight_batches", receiver.metrics.labels());
    in_flight.increment(1.0);
    let PushRequest { events: wire, sender, .. } = request;
    let (notifier, acks) = BatchNotifier::new_tracked(wire.len());
    let mut rejections = Vec::new();
    let mut events = Vec::with_capacity(wire.len());
    let mut bytes = 0;
    let count = wire.len();
    let mut datasets = Datasets::default();
    for (index, event) in wire.into_iter().enumerate() {
        bytes += event.document.len();
        match decode(event, &receiver.id, &mut datasets) {
            Ok(mut event) => {
                event.meta.finalizers = EventFinalizers::new(notifier.finalizer_at(index));
                events.push(event);
            }
            Err((kind, reason)) => {
                receiver.metrics.error(Stage::Receiving, kind);
                rejections.push(Rejection { index: index as u32, kind: kind.into(), reason });
            }
        }
    }
    drop(notifier);
    receiver.metrics.received(count, bytes);
    counter!(
        "sluice_forward_events_total",
        receiver.metrics.labels_with(&[("sender", label(&sender))])
    )
    .increment(count as u64);
    let result = match receiver.out.send(events).await {
        Ok(()) => answer(&acks.await, rejections),
        Err(_) => {
            Err((Code::Unavailable, "the aggregator is stopping; send the batch again".into()))
        }
    };
    receiver.count(
        &sender,
        match &result {
            Ok(r) if r.rejections.is_empty() => "delivered",
            Ok(_) => "rejected",
            Err(_) => "unavailable",
        },
    );
    if !batch_id.is_empty() {
        receiver.lock().finish(&batch_id, &result);
    }
    tx.send_replace(Some(result));
    in_flight.decrement(1.0);
    drop(permit);
}

#[tonic::async_trait]
impl Forward for Handler {
    async fn push(&self, request: Request<PushRequest>) -> Result<Response<PushResponse>, Status> {
        let receiver = &self.0;
        receiver.authorize(&request)?;
        let request = request.into_inner();
        if request.events.is_empty() {
            return Ok(Response::new(delivered()));
        }
        if receiver.shutdown.is_cancelled() {
            return Err(Status::unavailable("the aggregator is stopping; send the batch again"));
        }
        // A copy: the received id is a slice of the whole request's buffer,
        // which the answer cache would otherwise keep for ten minutes.
        let id = match request.batch_id.len() {
            1..=MAX_BATCH_ID => Bytes::copy_from_slice(&request.batch_id),
            _ => Bytes::new(),
        };
        let mut rx = {
            let mut joins = receiver.lock();
            let lookup = if id.is_empty() { Lookup::New } else { joins.lookup(&id) };
            match lookup {
                Lookup::Done(answer) => {
                    receiver.count(&request.sender, "answered_again");
                    return Ok(Response::new(answer));
                }
                Lookup::Running(rx) => {
                    receiver.count(&request.sender, "joined");
                    rx
                }
                Lookup::New => {
                    let Ok(permit) = receiver.in_flight.clone().try_acquire_owned() else {
                        receiver.count(&request.sender, "resource_exhausted");
                        return Err(Status::resource_exhausted(format!(
                            "{} batches are in flight, the aggregator's limit (max_in_flight); back off and send again",
                            receiver.max_in_flight
                        )));
                    };
                    let (tx, rx) = watch::channel(None);
                    if !id.is_empty() {
                        joins.start(id.clone(), rx.clone());
                    }
                    tokio::spawn(deliver(receiver.clone(), id, request, permit, tx));
                    rx
                }
            }
        };
        let answer = match rx.wait_for(Option::is_some).await {
            Ok(answer) => answer.clone(),
            Err(_) => None,
        };
        match answer {
            Some(Ok(response)) => Ok(Response::new(response)),
            Some(Err((code, message))) => Err(Status::new(code, message)),
            None => Err(Status::unavailable("the delivery of the batch stopped; send it again")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(equal_in_constant_time(b"secret", b"secret"));
        assert!(!equal_in_constant_time(b"secret", b"secreT"));
        assert!(!equal_in_constant_time(b"secret", b"secret2"));
    }

    #[test]
    fn sender_labels_are_bounded_and_tame() {
        assert_eq!(label("edge-1.example:op"), "edge-1.example:op");
        assert_eq!(label("a b\"c{}"), "abc");
        assert_eq!(label(""), "unnamed");
        assert_eq!(label(&"x".repeat(500)).len(), 64);
    }

    #[test]
    fn bad_events_are_rejected_with_their_reason() {
        let id: Arc<str> = "agg".into();
        let event = |stream: &str, document: &'static [u8]| proto::Event {
            stream: stream.into(),
            document: Bytes::from_static(document),
            ..Default::default()
        };
        let mut datasets = Datasets::default();
        let mut decode = |event| decode(event, &id, &mut datasets);
        assert_eq!(decode(event("", b"{bad")).expect_err("json").0, "invalid_document");
        assert_eq!(decode(event("", b"[1]")).expect_err("array").0, "invalid_document");
        // A sender from before datasets: its stream is a 1Password one.
        let ok = decode(event("audit_events", br#"{"a":1}"#)).expect("valid");
        assert_eq!(ok.meta.dataset.as_deref(), Some("1password.audit_events"));
        assert!(ok.meta.raw.is_none());
        // A dataset the aggregator has not seen is taken as it is, and held
        // once per batch.
        let okta = || proto::Event {
            dataset: "okta.system".into(),
            stream: "system".into(),
            ..event("", b"{}")
        };
        let (first, second) = (decode(okta()).expect("valid"), decode(okta()).expect("valid"));
        assert_eq!(first.meta.dataset.as_deref(), Some("okta.system"));
        assert!(Arc::ptr_eq(
            first.meta.dataset.as_ref().expect("a"),
            second.meta.dataset.as_ref().expect("b")
        ));
        assert!(decode(event("", b"{}")).expect("valid").meta.dataset.is_none());
    }

    #[test]
    fn an_errored_event_asks_for_the_batch_again_rejections_are_listed() {
        use sluice_core::BatchStatus;
        let outcome =
            |events: Vec<AckStatus>| BatchOutcome { status: BatchStatus::Delivered, events };
        let again = answer(&outcome(vec![AckStatus::Delivered, AckStatus::Errored]), vec![]);
        assert!(matches!(again, Err((Code::Unavailable, _))));
        let mixed = answer(
            &outcome(vec![AckStatus::Rejected, AckStatus::Delivered, AckStatus::Dropped]),
            vec![Rejection { index: 2, kind: "invalid_document".into(), reason: "x".into() }],
        )
        .expect("an answer");
        assert_eq!(mixed.status, push_response::Status::Rejected as i32);
        let listed: Vec<_> = mixed.rejections.iter().map(|r| (r.index, r.kind.as_str())).collect();
        assert_eq!(listed, [(0, "rejected_downstream"), (2, "invalid_document")]);
        assert_eq!(answer(&outcome(vec![AckStatus::Delivered]), vec![]), Ok(delivered()));
    }
}

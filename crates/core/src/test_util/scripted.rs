//! A scripted destination for tests of the delivery layer (and of sinks
//! built on it): each request gets the answer a script gives, and
//! [`start_batch_sink`] runs core's [`BatchSink`] against it with batches of
//! JSON values, recording each batch's final status.

use std::collections::VecDeque;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::task::JoinHandle;
use vrl::value::Value;

use crate::ack::{BatchNotifier, EventFinalizers, OrderedAcks};
use crate::component::{BoxError, EventReceiver, SinkContext};
use crate::event::Event;
use crate::health::Health;
use crate::metrics::ComponentMetrics;
use crate::queue::{BufferConfig, queue, size_of};
use crate::sink::{
    BatchConfig, BatchService, BatchSink, DeadLetterConfig, DriverSettings, EncodeError, Encoded,
    ItemOutcome, RequestConfig, RequestError, validate_delivery,
};
use crate::test_util::Statuses;

/// What the scripted destination answers one request.
#[derive(Clone, Debug)]
pub enum Answer {
    /// Every item of the request gets this outcome.
    Each(ItemOutcome),
    /// These outcomes in order (fewer than the items: a short answer).
    Items(Vec<ItemOutcome>),
    /// The request fails as a whole.
    Request(RequestError),
}

type Script = Box<dyn FnMut(&[Encoded]) -> Answer + Send>;

/// A [`BatchService`] whose answers come from a script; it records the
/// payloads of every request it was sent.
#[derive(Clone)]
pub struct ScriptedService {
    script: Arc<Mutex<Script>>,
    requests: Arc<Mutex<Vec<Vec<Bytes>>>>,
}

impl std::fmt::Debug for ScriptedService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedService").field("requests", &self.requests().len()).finish()
    }
}

impl ScriptedService {
    /// Answer each request with `script(items)`.
    pub fn new(script: impl FnMut(&[Encoded]) -> Answer + Send + 'static) -> Self {
        Self { script: Arc::new(Mutex::new(Box::new(script))), requests: Arc::default() }
    }

    /// Answer requests with `answers` in turn, then deliver everything.
    pub fn queue(answers: impl IntoIterator<Item = Answer>) -> Self {
        let mut answers: VecDeque<Answer> = answers.into_iter().collect();
        Self::new(move |_| answers.pop_front().unwrap_or(Answer::Each(ItemOutcome::Delivered)))
    }

    /// The payloads of every request so far, in the order they were sent.
    pub fn requests(&self) -> Vec<Vec<Bytes>> {
        self.requests.lock().expect("lock").clone()
    }

    /// How many items each request held.
    pub fn request_sizes(&self) -> Vec<usize> {
        self.requests().iter().map(Vec::len).collect()
    }
}

impl BatchService for ScriptedService {
    fn send(
        &self,
        items: &[Encoded],
    ) -> impl Future<Output = Result<Vec<ItemOutcome>, RequestError>> + Send {
        self.requests.lock().expect("lock").push(items.iter().map(|i| i.payload.clone()).collect());
        let answer = (self.script.lock().expect("lock"))(items);
        let result = match answer {
            Answer::Each(outcome) => Ok(vec![outcome; items.len()]),
            Answer::Items(outcomes) => Ok(outcomes),
            Answer::Request(error) => Err(error),
        };
        std::future::ready(result)
    }
}

/// The delivery settings a sink gets from an empty config, with the dead
/// letter under `dir`.
pub fn default_delivery(dir: &Path) -> DriverSettings {
    validate_delivery(
        &BatchConfig::default(),
        &RequestConfig::default(),
        &DeadLetterConfig::default(),
        dir,
    )
    .expect("the defaults are valid")
}

/// The test encoder: an event's JSON text is its payload and document; an
/// event with `"unencodable": true` cannot be encoded.
pub fn encode_json(event: &mut Event) -> Result<Encoded, EncodeError> {
    if let Value::Object(map) = &event.value
        && map.get("unencodable") == Some(&Value::Boolean(true))
    {
        return Err(EncodeError::Invalid("the event says it cannot be encoded".into()));
    }
    let mut document = Vec::new();
    event.write_json(&mut document);
    let document = Bytes::from(document);
    Ok(Encoded { payload: document.clone(), document, destination: "scripted".into() })
}

/// A [`BatchSink`] (id `sink`) running against `service`, fed `batches`.
#[derive(Debug)]
pub struct DriverRun {
    /// `(batch index, status)` as each batch becomes final, in order.
    pub statuses: Statuses,
    /// The health the sink reports to.
    pub health: Health,
    source: JoinHandle<()>,
    sink: JoinHandle<Result<(), BoxError>>,
}

/// Run core's driver with `service`, `settings` and `data_dir` on
/// `batches`, each batch with its own notifier; the input closes after the
/// last one.
pub fn start_batch_sink<S: BatchService>(
    service: S,
    settings: DriverSettings,
    data_dir: &Path,
    batches: Vec<Vec<Value>>,
) -> DriverRun {
    let health = Health::new();
    let metrics = ComponentMetrics::new("sink", "sink", "scripted");
    let (tx, rx) = queue(BufferConfig::default(), metrics.labels());
    let cx = SinkContext {
        id: "sink".into(),
        input: EventReceiver::new(rx, metrics.clone()),
        data_dir: data_dir.to_owned(),
        health: health.handle("sink"),
        metrics,
    };
    let sink = BatchSink { destination: "Scripted", service, encode: encode_json, settings };
    let sink = tokio::spawn(sink.run(cx));
    let statuses: Statuses = Arc::default();
    let recorded = statuses.clone();
    let source = tokio::spawn(async move {
        let mut acks = OrderedAcks::new();
        for (index, batch) in batches.into_iter().enumerate() {
            let (notifier, receiver) = BatchNotifier::new_with_receiver();
            let events: Vec<Event> = batch
                .into_iter()
                .map(|value| {
                    let mut event = Event::new(value);
                    event.meta.finalizers = EventFinalizers::new(notifier.finalizer());
                    event
                })
                .collect();
            acks.push(index, receiver);
            let bytes = size_of(&events);
            tx.send(events, bytes).await.expect("the sink reads its input");
        }
        drop(tx);
        while !acks.is_empty() {
            let (index, status) = acks.next().await;
            recorded.lock().expect("lock").push((index, status));
        }
    });
    DriverRun { statuses, health, source, sink }
}

impl DriverRun {
    /// The statuses so far.
    pub fn statuses(&self) -> Vec<(usize, crate::BatchStatus)> {
        self.statuses.lock().expect("lock").clone()
    }

    /// What `/health` says about the sink, if it is unhealthy.
    pub fn unhealthy(&self) -> Option<String> {
        self.health.report().unhealthy.values().next().cloned()
    }

    /// Wait until every batch is final and the sink has returned.
    pub async fn finish(self) -> Vec<(usize, crate::BatchStatus)> {
        self.source.await.expect("the source task");
        self.sink.await.expect("the sink task").expect("the sink ends cleanly");
        self.statuses.lock().expect("lock").clone()
    }

    /// Stop both tasks (a test that leaves the sink waiting).
    pub fn abort(self) {
        self.source.abort();
        self.sink.abort();
    }
}

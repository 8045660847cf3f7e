//! Batching, request concurrency and per-item acknowledgement.
//!
//! Each item is finalized on its own answer: 2xx and 409 (already indexed:
//! a replay) are delivered; 429 and 5xx items are sent again alone, with
//! backoff, which also holds back the source; other 4xx are rejected into the
//! dead-letter file with their reason. Whole-request failures (429, 5xx,
//! timeouts, refused connections) are retried without limit, so a down
//! cluster stops the source instead of losing events; 401/403 mark `/health`
//! and retry slowly; 413 splits the batch.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sluice_core::Event;
use sluice_core::ack::{AckStatus, PendingAcks};
use sluice_core::backoff::Backoff;
use sluice_core::component::{
    BoxError, ComponentFuture, DEFAULT_OUTPUT, PreflightFuture, Sink, SinkContext,
};
use sluice_core::health::HealthHandle;
use sluice_core::metrics::{ComponentMetrics, Stage};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{BulkError, EsClient, ItemOutcome};
use crate::config::Settings;
use crate::dead_letter::{DeadLetter, Rejected};
use crate::encode::{Encoded, encode};

/// The version whose built-in `ecs@mappings` types ECS fields in `logs-*-*`.
const ECS_MAPPINGS_SINCE: (u64, u64) = (8, 13);

/// A validated `elasticsearch` sink.
#[derive(Debug)]
pub struct ElasticsearchSink {
    settings: Arc<Settings>,
}

struct Item {
    encoded: Encoded,
    acks: PendingAcks,
}

/// What every request task shares.
struct Shared {
    settings: Arc<Settings>,
    client: EsClient,
    dead_letter: Option<DeadLetter>,
    metrics: ComponentMetrics,
    health: HealthHandle,
    id: String,
}

impl ElasticsearchSink {
    pub(crate) fn new(settings: Settings) -> Self {
        Self { settings: Arc::new(settings) }
    }

    /// The validated settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }
}

fn version_below(version: &str, (major, minor): (u64, u64)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) < (major, minor)
}

impl Sink for ElasticsearchSink {
    fn preflight(&mut self) -> PreflightFuture<'_> {
        Box::pin(async move {
            let client = EsClient::new(&self.settings)?;
            match client.version().await {
                Ok(version) if version_below(&version, ECS_MAPPINGS_SINCE) => {
                    tracing::warn!(%version, "Elasticsearch is older than 8.13, whose ecs@mappings types ECS fields in logs-*-* data streams; install the 1Password integration's templates");
                    Ok(())
                }
                Ok(version) => {
                    tracing::info!(%version, "Elasticsearch reached");
                    Ok(())
                }
                Err(BulkError::Refused(status)) => Err(format!(
                    "Elasticsearch refused the credentials (HTTP {status}); check `auth`"
                )
                .into()),
                Err(err) => {
                    tracing::warn!(error = %err, "Elasticsearch cannot be reached yet; events wait in the source until it can");
                    Ok(())
                }
            }
        })
    }

    fn run(self: Box<Self>, mut cx: SinkContext) -> ComponentFuture {
        Box::pin(async move {
            let settings = self.settings.clone();
            let shared = Arc::new(Shared {
                client: EsClient::new(&settings)?,
                dead_letter: settings
                    .dead_letter
                    .as_ref()
                    .map(|path| DeadLetter::new(path, &cx.id)),
                metrics: cx.metrics.clone(),
                health: cx.health.clone(),
                id: cx.id.clone(),
                settings: settings.clone(),
            });
            let permits = Arc::new(Semaphore::new(settings.concurrency));
            let mut tasks: JoinSet<()> = JoinSet::new();
            let mut batch: Vec<Item> = Vec::new();
            let mut bytes = 0;
            let mut deadline: Option<Instant> = None;
            let linger = Duration::from_secs_f64(settings.batch.timeout_secs);
            loop {
                tokio::select! {
                    received = cx.input.recv() => {
                        let Some(events) = received else { break };
                        for event in events {
                            let Some(item) = prepare(event, &shared) else { continue };
                            bytes += item.encoded.bytes.len();
                            batch.push(item);
                            if batch.len() >= settings.batch.max_events || bytes >= settings.batch.max_bytes {
                                dispatch(&mut tasks, &permits, &shared, std::mem::take(&mut batch)).await;
                                bytes = 0;
                                deadline = None;
                            }
                        }
                        if !batch.is_empty() && deadline.is_none() {
                            deadline = Some(Instant::now() + linger);
                        }
                    }
                    () = sleep_until(deadline), if deadline.is_some() => {
                        dispatch(&mut tasks, &permits, &shared, std::mem::take(&mut batch)).await;
                        bytes = 0;
                        deadline = None;
                    }
                    Some(joined) = tasks.join_next(), if !tasks.is_empty() => surface(joined)?,
                }
            }
            dispatch(&mut tasks, &permits, &shared, batch).await;
            while let Some(joined) = tasks.join_next().await {
                surface(joined)?;
            }
            Ok(())
        })
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn surface(joined: Result<(), tokio::task::JoinError>) -> Result<(), BoxError> {
    joined.map_err(|err| format!("a bulk request task failed: {err}").into())
}

/// Encode an event; one that cannot be encoded is rejected at once.
fn prepare(mut event: Event, shared: &Shared) -> Option<Item> {
    let acks = PendingAcks::new(event.take_finalizers());
    match encode(&mut event, &shared.settings) {
        Ok(encoded) => Some(Item { encoded, acks }),
        Err(err) => {
            tracing::error!(component = %shared.id, error = %err, "an event cannot be encoded as JSON; rejected");
            shared.metrics.error(Stage::Sending, "encode_failed");
            shared.metrics.discarded(1, false);
            acks.resolve(AckStatus::Rejected);
            None
        }
    }
}

async fn dispatch(
    tasks: &mut JoinSet<()>,
    permits: &Arc<Semaphore>,
    shared: &Arc<Shared>,
    items: Vec<Item>,
) {
    if items.is_empty() {
        return;
    }
    // Waiting for a permit holds back the input: backpressure to the source.
    let permit: OwnedSemaphorePermit =
        permits.clone().acquire_owned().await.expect("the semaphore is never closed");
    let shared = shared.clone();
    tasks.spawn(async move {
        deliver(&shared, items).await;
        drop(permit);
    });
}

/// Send `items` until every one is delivered or rejected.
fn deliver<'a>(
    shared: &'a Shared,
    items: Vec<Item>,
) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
    Box::pin(async move {
        let mut backoff =
            Backoff::new(Duration::from_millis(500), shared.settings.retry_max_backoff);
        let mut pending = items;
        let mut refused = false;
        while !pending.is_empty() {
            let mut body = Vec::with_capacity(pending.iter().map(|i| i.encoded.bytes.len()).sum());
            for item in &pending {
                body.extend_from_slice(&item.encoded.bytes);
            }
            match shared.client.bulk(&body, pending.len()).await {
                Ok(outcomes) => {
                    if refused {
                        refused = false;
                        shared.health.set_healthy("");
                    }
                    let retry = settle(shared, pending, outcomes).await;
                    if !retry.is_empty() {
                        let wait = backoff.next_delay();
                        retry_metric(shared, "item_rejected_execution");
                        tracing::debug!(component = %shared.id, items = retry.len(), ?wait, "items answered 429/5xx; sending them again");
                        tokio::time::sleep(wait).await;
                    }
                    pending = retry;
                }
                Err(BulkError::Refused(status)) => {
                    shared.metrics.error(Stage::Sending, "unauthorized");
                    if !refused {
                        refused = true;
                        tracing::error!(component = %shared.id, status, retry_every = ?shared.settings.refused_retry, "Elasticsearch refuses the credentials; nothing is sent until it accepts them");
                        shared.health.set_unhealthy(
                            "",
                            format!("Elasticsearch refuses the credentials (HTTP {status})"),
                        );
                    }
                    tokio::time::sleep(shared.settings.refused_retry).await;
                }
                Err(BulkError::TooLarge) if pending.len() > 1 => {
                    let second = pending.split_off(pending.len() / 2);
                    deliver(shared, pending).await;
                    deliver(shared, second).await;
                    return;
                }
                Err(BulkError::TooLarge) => {
                    let outcome = ItemOutcome {
                        status: 413,
                        error_type: "request_too_large".into(),
                        reason: "the document alone is larger than http.max_content_length".into(),
                    };
                    reject(shared, pending, vec![outcome]).await;
                    return;
                }
                Err(BulkError::Rejected(status, body)) => {
                    let outcome =
                        ItemOutcome { status, error_type: "request_rejected".into(), reason: body };
                    let outcomes = vec![outcome; pending.len()];
                    reject(shared, pending, outcomes).await;
                    return;
                }
                Err(err) => {
                    let kind = match err {
                        BulkError::Retriable(429, _) => "rate_limited",
                        BulkError::Retriable(..) => "server_error",
                        BulkError::Malformed(_) => "malformed_response",
                        _ => "transport",
                    };
                    shared.metrics.error(Stage::Sending, kind);
                    retry_metric(shared, kind);
                    let wait = backoff.next_delay();
                    tracing::warn!(component = %shared.id, error = %err, retry_in = ?wait, items = pending.len(), "bulk request failed; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    })
}

fn retry_metric(shared: &Shared, reason: &'static str) {
    let labels = shared.metrics.labels_with(&[("reason", reason.to_owned())]);
    metrics::counter!("sluice_elasticsearch_retries_total", labels).increment(1);
}

/// Finalize delivered and rejected items; the ones to send again.
async fn settle(shared: &Shared, items: Vec<Item>, outcomes: Vec<ItemOutcome>) -> Vec<Item> {
    let mut retry = Vec::new();
    let mut rejected = Vec::new();
    let mut delivered = 0;
    let mut replayed = 0;
    for (item, outcome) in items.into_iter().zip(outcomes) {
        match outcome.status {
            200..=299 => {
                item.acks.resolve(AckStatus::Delivered);
                delivered += 1;
            }
            // Already indexed: a replay after a crash or a retry.
            409 => {
                item.acks.resolve(AckStatus::Delivered);
                delivered += 1;
                replayed += 1;
            }
            429 | 500..=599 => retry.push(item),
            _ => rejected.push((item, outcome)),
        }
    }
    shared.metrics.sent(delivered, DEFAULT_OUTPUT);
    if replayed > 0 {
        metrics::counter!("sluice_elasticsearch_duplicates_total", shared.metrics.labels())
            .increment(replayed as u64);
    }
    if !rejected.is_empty() {
        let (items, outcomes): (Vec<Item>, Vec<ItemOutcome>) = rejected.into_iter().unzip();
        reject(shared, items, outcomes).await;
    }
    retry
}

/// Write rejected items to the dead letter, then acknowledge them as rejected.
async fn reject(shared: &Shared, items: Vec<Item>, outcomes: Vec<ItemOutcome>) {
    let outcome_of = |index: usize| &outcomes[index.min(outcomes.len() - 1)];
    let records: Vec<Rejected<'_>> = items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let outcome = outcome_of(index);
            let document = item.encoded.bytes.splitn(2, |b| *b == b'\n').nth(1).unwrap_or_default();
            Rejected {
                index: &item.encoded.index,
                status: outcome.status,
                error_type: &outcome.error_type,
                reason: &outcome.reason,
                document: document.strip_suffix(b"\n").unwrap_or(document),
            }
        })
        .collect();
    let first = outcome_of(0);
    match &shared.dead_letter {
        Some(dead_letter) => {
            if let Err(err) = dead_letter.write(&records).await {
                // Unresolved, the acknowledgements error: the source sends them again.
                tracing::error!(component = %shared.id, path = %dead_letter.path().display(), error = %err, "cannot write the dead letter; the events will be sent again");
                shared.metrics.error(Stage::Sending, "dead_letter_failed");
                return;
            }
            tracing::warn!(component = %shared.id, items = items.len(), status = first.status, error_type = %first.error_type, reason = %first.reason, path = %dead_letter.path().display(), "Elasticsearch rejected documents; written to the dead letter");
        }
        None => {
            tracing::error!(component = %shared.id, items = items.len(), status = first.status, error_type = %first.error_type, reason = %first.reason, "Elasticsearch rejected documents and no dead_letter is configured; they are dropped");
        }
    }
    drop(records);
    shared.metrics.error(Stage::Sending, "rejected");
    shared.metrics.discarded(items.len(), false);
    for item in items {
        item.acks.resolve(AckStatus::Rejected);
    }
}

//! One batch, from its first request until every item is final: delivered,
//! or rejected into the dead letter. Everything else is sent again, so an
//! item is never acknowledged while its fate is unknown.

use std::time::Duration;

use crate::ack::{AckStatus, PendingAcks};
use crate::backoff::Backoff;
use crate::component::DEFAULT_OUTPUT;
use crate::metrics::Stage;
use crate::sink::adaptive::Signal;
use crate::sink::dead_letter::Rejection;
use crate::sink::outcome::{Failure, ItemOutcome, RequestError};
use crate::sink::progress::Progress;
use crate::sink::service::{BatchService, Encoded, Shared};

/// Items on their way, with their acknowledgements.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    encoded: Vec<Encoded>,
    acks: Vec<PendingAcks>,
}

impl Chunk {
    pub(crate) fn push(&mut self, encoded: Encoded, acks: PendingAcks) {
        self.encoded.push(encoded);
        self.acks.push(acks);
    }

    pub(crate) fn len(&self) -> usize {
        self.encoded.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.encoded.is_empty()
    }

    fn split(mut self) -> (Chunk, Chunk) {
        let at = self.len() / 2;
        let second = Chunk { encoded: self.encoded.split_off(at), acks: self.acks.split_off(at) };
        (self, second)
    }
}

/// Items held back by a refusal, counted in [`Progress`] until released.
struct Held<'a> {
    progress: &'a Progress,
    count: usize,
}

impl<'a> Held<'a> {
    fn new(progress: &'a Progress) -> Self {
        Self { progress, count: 0 }
    }

    fn set(&mut self, count: usize, failure: Option<&Failure>) {
        let delta = count as isize - self.count as isize;
        if delta != 0 || failure.is_some() {
            self.progress.refused(delta, failure);
        }
        self.count = count;
    }
}

impl Drop for Held<'_> {
    /// Still counted here, the items were withdrawn (the request given up at
    /// shutdown), not accepted: the sink is not "healthy again".
    fn drop(&mut self) {
        if self.count > 0 {
            self.progress.withdrawn(self.count);
        }
    }
}

/// Deliver `chunk`; halves of a request too large or invalid are delivered
/// one after the other until each item is final.
pub(crate) async fn deliver<S: BatchService>(shared: &Shared<S>, chunk: Chunk) {
    let mut stack = vec![chunk];
    while let Some(chunk) = stack.pop() {
        if let Some((first, second)) = deliver_chunk(shared, chunk).await {
            stack.push(second);
            stack.push(first);
        }
    }
}

/// What one answer leaves to do.
enum Next {
    Done,
    Again(Chunk, Duration),
    Split(Chunk, Chunk),
}

/// Send until every item is final, or return the halves to send instead.
async fn deliver_chunk<S: BatchService>(
    shared: &Shared<S>,
    mut chunk: Chunk,
) -> Option<(Chunk, Chunk)> {
    let settings = &shared.settings;
    let mut backoff = Backoff::new(settings.retry_initial_backoff, settings.retry_max_backoff);
    let mut held = Held::new(&shared.progress);
    let mut logged_refusal = false;
    loop {
        let sent = tokio::time::Instant::now();
        let result = shared.service.send(&chunk.encoded).await;
        shared.limiter.observe(sent.elapsed(), signal(&result));
        let result = match result {
            Ok(outcomes) if outcomes.len() != chunk.len() => {
                Err(RequestError::Retry(Failure::without_status(
                    "short_answer",
                    format!("{} answers for {} items", outcomes.len(), chunk.len()),
                )))
            }
            other => other,
        };
        let next = match result {
            Ok(outcomes) => settle(shared, chunk, outcomes, &mut held, &mut backoff).await,
            Err(RequestError::TooLarge(failure) | RequestError::Invalid(failure))
                if chunk.len() > 1 =>
            {
                shared.metrics.retry("split");
                tracing::debug!(component = %shared.id, items = chunk.len(), %failure, "splitting the request in halves");
                let (first, second) = chunk.split();
                Next::Split(first, second)
            }
            Err(RequestError::TooLarge(failure) | RequestError::Invalid(failure)) => {
                let (encoded, acks) = (chunk.encoded.remove(0), chunk.acks.remove(0));
                reject(shared, vec![(encoded, acks, failure)]).await;
                Next::Done
            }
            Err(RequestError::Refused(failure)) => {
                shared.metrics.error(Stage::Sending, "refused");
                shared.metrics.retry("refused");
                if !logged_refusal {
                    logged_refusal = true;
                    tracing::error!(component = %shared.id, %failure, items = chunk.len(), retry_every = ?settings.refused_retry, "{} refuses the request; nothing is acknowledged and the source waits until it accepts", shared.destination);
                }
                held.set(chunk.len(), Some(&failure));
                Next::Again(chunk, settings.refused_retry)
            }
            Err(RequestError::Retry(failure)) => {
                shared.metrics.error(Stage::Sending, "request_failed");
                shared.metrics.retry("request_failed");
                shared.progress.attempt_failed(&failure);
                let wait = backoff.next_delay();
                tracing::warn!(component = %shared.id, %failure, retry_in = ?wait, items = chunk.len(), "request to {} failed; retrying", shared.destination);
                Next::Again(chunk, wait)
            }
        };
        match next {
            Next::Done => return None,
            Next::Split(first, second) => return Some((first, second)),
            Next::Again(rest, wait) => {
                tokio::time::sleep(wait).await;
                chunk = rest;
            }
        }
    }
}

/// What an answer says about the destination's load.
fn signal(result: &Result<Vec<ItemOutcome>, RequestError>) -> Signal {
    match result {
        Ok(outcomes) if outcomes.iter().any(|o| matches!(o, ItemOutcome::Retry(_))) => {
            Signal::Backpressure
        }
        Ok(_) => Signal::Answered,
        Err(RequestError::Retry(_)) => Signal::Backpressure,
        Err(_) => Signal::Neutral,
    }
}

/// Finalize what the answer made final; the rest, and how long to wait.
async fn settle<S: BatchService>(
    shared: &Shared<S>,
    chunk: Chunk,
    outcomes: Vec<ItemOutcome>,
    held: &mut Held<'_>,
    backoff: &mut Backoff,
) -> Next {
    let mut rest = Chunk::default();
    let mut rejected = Vec::new();
    let (mut delivered, mut duplicates) = (0, 0);
    let (mut refused, mut retry) = (None, None);
    let mut refused_count = 0;
    let now = std::time::Instant::now();
    for ((encoded, acks), outcome) in chunk.encoded.into_iter().zip(chunk.acks).zip(outcomes) {
        match outcome {
            ItemOutcome::Delivered | ItemOutcome::Duplicate => {
                duplicates += usize::from(outcome == ItemOutcome::Duplicate);
                delivered += 1;
                if let Some(received) = acks.received_at() {
                    shared.latency.record(now.saturating_duration_since(received).as_secs_f64());
                }
                acks.resolve(AckStatus::Delivered);
            }
            ItemOutcome::Rejected(failure) => rejected.push((encoded, acks, failure)),
            ItemOutcome::Refused(failure) => {
                refused_count += 1;
                refused.get_or_insert(failure);
                rest.push(encoded, acks);
            }
            ItemOutcome::Retry(failure) => {
                retry.get_or_insert(failure);
                rest.push(encoded, acks);
            }
        }
    }
    shared.metrics.sent(delivered, DEFAULT_OUTPUT);
    shared.metrics.duplicates(duplicates);
    let finished = delivered + rejected.len();
    if !rejected.is_empty() {
        reject(shared, rejected).await;
    }
    held.set(refused_count, refused.as_ref());
    if let Some(failure) = &refused {
        shared.metrics.error(Stage::Sending, "refused");
        shared.metrics.retry("refused");
        tracing::warn!(component = %shared.id, items = refused_count, %failure, retry_in = ?shared.settings.refused_retry, "{} refuses items; they wait and are sent again", shared.destination);
    } else if let Some(failure) = &retry
        && finished == 0
    {
        shared.progress.attempt_failed(failure);
    } else {
        shared.progress.attempt_ok();
    }
    if delivered > 0 {
        shared.progress.finished(delivered);
    }
    if rest.is_empty() {
        return Next::Done;
    }
    if let Some(failure) = retry.as_ref().filter(|_| refused.is_none()) {
        shared.metrics.retry("item_retry");
        tracing::debug!(component = %shared.id, items = rest.len(), %failure, "items to send again");
    }
    let wait = if refused.is_some() { shared.settings.refused_retry } else { backoff.next_delay() };
    Next::Again(rest, wait)
}

/// Write rejected items to the dead letter, durably, then acknowledge them
/// as rejected. A dead letter that cannot be written (full, a disk error)
/// holds the sink back and shows on `/health`; nothing is dropped.
pub(crate) async fn reject<S: BatchService>(
    shared: &Shared<S>,
    items: Vec<(Encoded, PendingAcks, Failure)>,
) {
    let rejections: Vec<Rejection<'_>> = items
        .iter()
        .map(|(encoded, _, failure)| Rejection {
            destination: &encoded.destination,
            failure,
            document: &encoded.document,
        })
        .collect();
    let mut held = Held::new(&shared.progress);
    let mut backoff =
        Backoff::new(shared.settings.retry_initial_backoff, shared.settings.refused_retry);
    while let Err(err) = shared.dead_letter.write(&rejections).await {
        shared.metrics.error(Stage::Sending, "dead_letter_failed");
        let wait = backoff.next_delay();
        tracing::error!(component = %shared.id, error = %crate::error::error_chain(&err), retry_in = ?wait, items = items.len(), "cannot write the dead letter; the sink waits until it can");
        held.set(
            items.len(),
            Some(&Failure::without_status(
                "dead_letter_unwritable",
                crate::error::error_chain(&err),
            )),
        );
        tokio::time::sleep(wait).await;
    }
    drop(held);
    let first = &items[0].2;
    tracing::warn!(component = %shared.id, items = items.len(), %first, path = %shared.dead_letter.path().display(), "{} rejected documents; written to the dead letter", shared.destination);
    shared.metrics.rejected(items.len());
    shared.progress.finished(items.len());
    drop(rejections);
    for (_, acks, _) in items {
        acks.resolve(AckStatus::Rejected);
    }
}

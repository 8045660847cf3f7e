//! End-to-end acknowledgements, in Vector's finalizer model.
//!
//! A source creates one [`BatchNotifier`] per batch it emits (a 1Password page, a
//! run of file lines) and attaches it to every event of the batch. Each event
//! holds an [`EventFinalizer`]; cloning the event for fan-out shares it, so the
//! batch resolves only once every copy is finished. Statuses only get worse
//! (`Dropped` < `Delivered` < `Errored` < `Rejected`); an event dropped without
//! an explicit status counts as delivered, which is what an intentional filter
//! wants. When the last reference to the batch goes away, the source's
//! [`BatchStatusReceiver`] yields the final [`BatchStatus`].
//!
//! [`OrderedAcks`] turns those receivers back into source order, so a source
//! commits position N only when N and everything before it is final.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use tokio::sync::oneshot;

/// What happened to one event. Ordered from best to worst: the worst status
/// of every copy of every event in a batch becomes the batch's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum AckStatus {
    /// Dropped without an explicit status (e.g. filtered); counts as delivered.
    Dropped = 0,
    /// Durably accepted by the destination.
    Delivered = 1,
    /// Delivery failed in a way that may succeed if retried.
    Errored = 2,
    /// The destination refused the event for good (it went to a dead letter).
    Rejected = 3,
}

impl AckStatus {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Dropped,
            1 => Self::Delivered,
            2 => Self::Errored,
            _ => Self::Rejected,
        }
    }
}

/// The final status of a whole batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchStatus {
    /// Every event was delivered or intentionally dropped.
    Delivered,
    /// At least one event errored and none was rejected.
    Errored,
    /// At least one event was rejected.
    Rejected,
}

impl BatchStatus {
    /// Whether the batch is final: a source may commit past it. A rejected
    /// batch went to a dead letter with its reason, so it is final; an
    /// errored one is not and must be read again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Delivered | Self::Rejected)
    }

    fn from_ack(status: AckStatus) -> Self {
        match status {
            AckStatus::Dropped | AckStatus::Delivered => Self::Delivered,
            AckStatus::Errored => Self::Errored,
            AckStatus::Rejected => Self::Rejected,
        }
    }
}

struct BatchInner {
    status: AtomicU8,
    /// One slot per event when the batch was made with
    /// [`BatchNotifier::new_tracked`]; empty otherwise.
    events: Box<[AtomicU8]>,
    tx: Option<oneshot::Sender<BatchOutcome>>,
    /// When the source made it (about when it received the events).
    created: std::time::Instant,
}

/// What a tracked batch resolves to: the batch's status and each event's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchOutcome {
    /// The worst status of every event.
    pub status: BatchStatus,
    /// Each event's own status, in the order of [`BatchNotifier::finalizer_at`]
    /// indices; empty for a batch that was not tracked.
    pub events: Vec<AckStatus>,
}

impl Drop for BatchInner {
    fn drop(&mut self) {
        let status = BatchStatus::from_ack(AckStatus::from_u8(self.status.load(Ordering::Acquire)));
        let events = self.events.iter().map(|s| AckStatus::from_u8(s.load(Ordering::Acquire)));
        if let Some(tx) = self.tx.take() {
            // The source may have stopped listening; then nobody needs the answer.
            let _ = tx.send(BatchOutcome { status, events: events.collect() });
        }
    }
}

/// One per source batch. Attach it to each event with [`BatchNotifier::finalizer`].
#[derive(Clone)]
pub struct BatchNotifier(Arc<BatchInner>);

impl fmt::Debug for BatchNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchNotifier")
            .field("status", &AckStatus::from_u8(self.0.status.load(Ordering::Relaxed)))
            .finish()
    }
}

impl BatchNotifier {
    /// A new notifier and the receiver that resolves when the batch is final.
    pub fn new_with_receiver() -> (Self, BatchStatusReceiver) {
        let (notifier, receiver) = Self::new_tracked(0);
        (notifier, BatchStatusReceiver(receiver.0))
    }

    /// A notifier that also keeps each of `len` events' own status (a
    /// receiver that must answer per event, like the `sluice` source).
    /// Give event `i` the finalizer [`BatchNotifier::finalizer_at`]`(i)`.
    pub fn new_tracked(len: usize) -> (Self, TrackedReceiver) {
        let (tx, rx) = oneshot::channel();
        let events = (0..len).map(|_| AtomicU8::new(0)).collect();
        let inner = BatchInner {
            status: AtomicU8::new(0),
            events,
            tx: Some(tx),
            created: std::time::Instant::now(),
        };
        (Self(Arc::new(inner)), TrackedReceiver(rx))
    }

    /// A finalizer for one event of this batch.
    pub fn finalizer(&self) -> EventFinalizer {
        self.finalizer_at(usize::MAX)
    }

    /// The finalizer of event `index` of a tracked batch (an index out of
    /// range is only counted in the batch's status).
    pub fn finalizer_at(&self, index: usize) -> EventFinalizer {
        EventFinalizer(Arc::new(FinalizerInner {
            status: AtomicU8::new(0),
            index,
            batch: self.clone(),
        }))
    }

    fn record(&self, index: usize, status: AckStatus) {
        self.0.status.fetch_max(status as u8, Ordering::AcqRel);
        if let Some(slot) = self.0.events.get(index) {
            slot.fetch_max(status as u8, Ordering::AcqRel);
        }
    }
}

struct FinalizerInner {
    status: AtomicU8,
    index: usize,
    batch: BatchNotifier,
}

impl Drop for FinalizerInner {
    fn drop(&mut self) {
        self.batch.record(self.index, AckStatus::from_u8(*self.status.get_mut()));
    }
}

/// One event's share of a batch. Clones (fan-out copies) share one status.
#[derive(Clone)]
pub struct EventFinalizer(Arc<FinalizerInner>);

impl fmt::Debug for EventFinalizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EventFinalizer")
            .field(&AckStatus::from_u8(self.0.status.load(Ordering::Relaxed)))
            .finish()
    }
}

impl EventFinalizer {
    /// Record a status; a better status never overwrites a worse one.
    pub fn update(&self, status: AckStatus) {
        self.0.status.fetch_max(status as u8, Ordering::AcqRel);
    }
}

/// The finalizers an event carries: usually none or one.
#[derive(Clone, Debug, Default)]
pub struct EventFinalizers(Vec<EventFinalizer>);

impl EventFinalizers {
    /// Finalizers holding one entry.
    pub fn new(finalizer: EventFinalizer) -> Self {
        Self(vec![finalizer])
    }

    /// Record `status` on every finalizer.
    pub fn update_status(&self, status: AckStatus) {
        for finalizer in &self.0 {
            finalizer.update(status);
        }
    }

    /// Add another event's finalizers (when events are merged).
    pub fn merge(&mut self, other: EventFinalizers) {
        self.0.extend(other.0);
    }

    /// Whether there is nothing to acknowledge.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Resolve with `status` now.
    pub fn finish(self, status: AckStatus) {
        self.update_status(status);
    }
}

/// Finalizers a sink holds while a delivery is under way. Unless the sink
/// resolves them, they count as [`AckStatus::Errored`] when dropped, so a sink
/// that fails, panics or is aborted never acknowledges what it did not deliver.
#[derive(Debug, Default)]
pub struct PendingAcks(EventFinalizers);

impl PendingAcks {
    /// Take over finalizers.
    pub fn new(finalizers: EventFinalizers) -> Self {
        Self(finalizers)
    }

    /// Add finalizers to the pending set.
    pub fn push(&mut self, finalizers: EventFinalizers) {
        self.0.merge(finalizers);
    }

    /// Resolve everything with `status`.
    pub fn resolve(mut self, status: AckStatus) {
        std::mem::take(&mut self.0).finish(status);
    }
}

impl PendingAcks {
    /// When the earliest of these events' source batches was made: about
    /// when its source received it (for the delivery latency).
    pub fn received_at(&self) -> Option<std::time::Instant> {
        self.0.0.iter().map(|finalizer| finalizer.0.batch.0.created).min()
    }
}

impl Drop for PendingAcks {
    fn drop(&mut self) {
        self.0.update_status(AckStatus::Errored);
    }
}

/// Resolves to the final status of a batch.
#[derive(Debug)]
pub struct BatchStatusReceiver(oneshot::Receiver<BatchOutcome>);

impl BatchStatusReceiver {
    /// The status if the batch is already final.
    pub fn try_recv(&mut self) -> Option<BatchStatus> {
        match self.0.try_recv() {
            Ok(outcome) => Some(outcome.status),
            Err(oneshot::error::TryRecvError::Empty) => None,
            // Unreachable in practice: the sender lives in the batch's Drop.
            Err(oneshot::error::TryRecvError::Closed) => Some(BatchStatus::Errored),
        }
    }
}

impl Future for BatchStatusReceiver {
    type Output = BatchStatus;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<BatchStatus> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|result| result.map_or(BatchStatus::Errored, |outcome| outcome.status))
    }
}

/// Resolves to the final status of a tracked batch and of each of its events.
#[derive(Debug)]
pub struct TrackedReceiver(oneshot::Receiver<BatchOutcome>);

impl Future for TrackedReceiver {
    type Output = BatchOutcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<BatchOutcome> {
        Pin::new(&mut self.0).poll(cx).map(|result| {
            // Unreachable in practice: the sender lives in the batch's Drop.
            result.unwrap_or(BatchOutcome { status: BatchStatus::Errored, events: Vec::new() })
        })
    }
}

/// Batch statuses in the order the batches were created, each with the
/// position (cursor, offset) the source attached to it.
#[derive(Debug)]
pub struct OrderedAcks<T> {
    pending: VecDeque<(T, BatchStatusReceiver)>,
}

impl<T> Default for OrderedAcks<T> {
    fn default() -> Self {
        Self { pending: VecDeque::new() }
    }
}

impl<T> OrderedAcks<T> {
    /// An empty stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Track a batch; `position` comes back with its status.
    pub fn push(&mut self, position: T, receiver: BatchStatusReceiver) {
        self.pending.push_back((position, receiver));
    }

    /// Batches not yet returned.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no batch is outstanding.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The oldest batch's status once it is final. Never returns a later
    /// batch before an earlier one, however early the later one resolved.
    /// Pending forever when nothing is tracked. Cancel-safe.
    pub async fn next(&mut self) -> (T, BatchStatus) {
        let Some((_, receiver)) = self.pending.front_mut() else {
            return std::future::pending().await;
        };
        let status = receiver.await;
        let (position, _) = self.pending.pop_front().expect("front exists");
        (position, status)
    }

    /// The oldest batch's status if it is already final.
    pub fn try_next(&mut self) -> Option<(T, BatchStatus)> {
        let (_, receiver) = self.pending.front_mut()?;
        let status = receiver.try_recv()?;
        let (position, _) = self.pending.pop_front()?;
        Some((position, status))
    }

    /// Forget every outstanding batch (a source that rewinds re-reads them).
    pub fn clear(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize) -> (Vec<EventFinalizer>, BatchStatusReceiver) {
        let (notifier, receiver) = BatchNotifier::new_with_receiver();
        ((0..n).map(|_| notifier.finalizer()).collect(), receiver)
    }

    #[tokio::test]
    async fn dropped_events_count_as_delivered() {
        let (finalizers, receiver) = batch(3);
        drop(finalizers);
        assert_eq!(receiver.await, BatchStatus::Delivered);
    }

    #[tokio::test]
    async fn fan_out_resolves_only_after_every_copy() {
        let (mut finalizers, mut receiver) = batch(1);
        let original = finalizers.pop().expect("one");
        let copy_for_sink_b = original.clone();
        original.update(AckStatus::Delivered);
        drop(original);
        assert_eq!(receiver.try_recv(), None, "sink b still holds its copy");
        copy_for_sink_b.update(AckStatus::Delivered);
        drop(copy_for_sink_b);
        assert_eq!(receiver.await, BatchStatus::Delivered);
    }

    #[tokio::test]
    async fn worst_status_wins() {
        for (statuses, expected) in [
            (vec![AckStatus::Delivered, AckStatus::Errored], BatchStatus::Errored),
            (vec![AckStatus::Errored, AckStatus::Rejected], BatchStatus::Rejected),
            (vec![AckStatus::Rejected, AckStatus::Delivered], BatchStatus::Rejected),
            (
                vec![AckStatus::Rejected, AckStatus::Errored, AckStatus::Delivered],
                BatchStatus::Rejected,
            ),
            (vec![AckStatus::Dropped, AckStatus::Delivered], BatchStatus::Delivered),
        ] {
            let (finalizers, receiver) = batch(statuses.len());
            for (finalizer, status) in finalizers.iter().zip(&statuses) {
                finalizer.update(*status);
            }
            drop(finalizers);
            assert_eq!(receiver.await, expected, "{statuses:?}");
        }
    }

    #[tokio::test]
    async fn a_tracked_batch_reports_each_events_own_status() {
        let (notifier, receiver) = BatchNotifier::new_tracked(3);
        let finalizers: Vec<_> = (0..3).map(|i| notifier.finalizer_at(i)).collect();
        drop(notifier);
        let copy_of_second = finalizers[1].clone();
        finalizers[0].update(AckStatus::Delivered);
        finalizers[1].update(AckStatus::Delivered);
        copy_of_second.update(AckStatus::Rejected);
        drop(finalizers);
        drop(copy_of_second);
        let outcome = receiver.await;
        assert_eq!(outcome.status, BatchStatus::Rejected);
        assert_eq!(
            outcome.events,
            vec![AckStatus::Delivered, AckStatus::Rejected, AckStatus::Dropped],
            "the worst status of every copy of an event, per event"
        );
    }

    #[tokio::test]
    async fn a_status_never_improves() {
        let (mut finalizers, receiver) = batch(1);
        let finalizer = finalizers.pop().expect("one");
        finalizer.update(AckStatus::Errored);
        finalizer.update(AckStatus::Delivered);
        drop(finalizer);
        assert_eq!(receiver.await, BatchStatus::Errored);
    }

    #[tokio::test]
    async fn pending_acks_dropped_unresolved_count_as_errored() {
        let (finalizers, receiver) = batch(2);
        let mut pending = PendingAcks::default();
        for finalizer in finalizers {
            pending.push(EventFinalizers::new(finalizer));
        }
        drop(pending);
        assert_eq!(receiver.await, BatchStatus::Errored);

        let (finalizers, receiver) = batch(1);
        let pending = PendingAcks::new(EventFinalizers(finalizers));
        pending.resolve(AckStatus::Delivered);
        assert_eq!(receiver.await, BatchStatus::Delivered);
    }

    #[tokio::test]
    async fn ordered_stream_holds_back_a_later_batch() {
        let mut acks = OrderedAcks::new();
        let (first, first_rx) = batch(1);
        let (second, second_rx) = batch(1);
        acks.push(1_u64, first_rx);
        acks.push(2_u64, second_rx);

        drop(second);
        assert!(acks.try_next().is_none(), "batch 2 is final but batch 1 is not");
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), acks.next()).await;
        assert!(waiting.is_err(), "next() must wait for batch 1");

        drop(first);
        assert_eq!(acks.next().await, (1, BatchStatus::Delivered));
        assert_eq!(acks.try_next(), Some((2, BatchStatus::Delivered)));
        assert!(acks.is_empty());
    }

    #[test]
    fn only_delivered_and_rejected_are_final() {
        assert!(BatchStatus::Delivered.is_final());
        assert!(BatchStatus::Rejected.is_final());
        assert!(!BatchStatus::Errored.is_final());
    }
}

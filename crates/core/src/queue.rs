//! The bounded queue in front of every transform and sink: bounded in event
//! arrays (as a tokio channel is) and in bytes, so that a topology's memory
//! does not depend on how large its events are. A sender waits for room in
//! both (backpressure up to the source, which then stops reading); the room
//! is given back when the consumer takes the array out.
//!
//! Bytes are [`Event::size_estimate`]s: what the decoded event holds in
//! memory, approximately. An array larger than the whole byte budget is let
//! through alone, so that one large batch cannot wedge a topology.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use metrics::{Gauge, Label};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::config::{FieldError, check_range};
use crate::event::{Event, EventArray};

/// `buffer:` at the top of a config: the bound of every component's input queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// Event arrays (a source's batch, a page) a queue holds (1 to 1024, default 4).
    #[serde(default = "default_max_arrays")]
    pub max_arrays: usize,
    /// Bytes of events a queue holds (64 KiB to 512 MiB, default 4 MiB).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
}

fn default_max_arrays() -> usize {
    4
}

/// The largest `max_bytes`: within a tokio semaphore's limit (`u32::MAX >> 3` permits).
const MAX_BYTES: u64 = 512 << 20;

fn default_max_bytes() -> u64 {
    4 * 1024 * 1024
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self { max_arrays: default_max_arrays(), max_bytes: default_max_bytes() }
    }
}

impl BufferConfig {
    /// Settings out of range, each tied to its key under `buffer`.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        check_range(&mut problems, "max_arrays", self.max_arrays, (1, 1024));
        check_range(&mut problems, "max_bytes", self.max_bytes, (64 * 1024, MAX_BYTES));
        problems
    }
}

/// An array with the bytes it holds in its queue.
#[derive(Debug)]
struct Queued {
    array: EventArray,
    _room: Option<OwnedSemaphorePermit>,
}

/// The byte budget of a queue, shared by its senders and its receiver.
#[derive(Clone, Debug)]
struct Room {
    bytes: Arc<Semaphore>,
    max: u32,
    fill: Fill,
    /// Batches being made for this queue (fetched, not yet sent): as many
    /// as it holds arrays, so many producers starting at once hold a few
    /// batches in memory, not one each.
    making: Arc<Semaphore>,
}

/// What a queue holds, shown as `sluice_component_buffer_events` and
/// `sluice_component_buffer_bytes` of its consumer (set as arrays go in and
/// out: a stuck consumer's queue shows full, not its last read).
#[derive(Clone)]
struct Fill {
    /// Signed: a receiver may count an array out before its sender counted it in.
    events: Arc<AtomicI64>,
    events_gauge: Gauge,
    bytes_gauge: Gauge,
}

impl std::fmt::Debug for Fill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fill").field("events", &self.events).finish_non_exhaustive()
    }
}

impl Room {
    /// Count `added` events in (or `taken` out) and show the fill.
    fn show(&self, added: usize, taken: usize) {
        let change = added as i64 - taken as i64;
        let events = self.fill.events.fetch_add(change, Ordering::Relaxed) + change;
        self.fill.events_gauge.set(events.max(0) as f64);
        let used = (self.max as usize).saturating_sub(self.bytes.available_permits());
        self.fill.bytes_gauge.set(used as f64);
    }
}

/// The sending end of a queue.
#[derive(Clone, Debug)]
pub struct QueueSender {
    tx: mpsc::Sender<Queued>,
    room: Room,
}

/// A sending end that does not keep the queue open.
#[derive(Clone, Debug)]
pub struct WeakQueueSender {
    tx: mpsc::WeakSender<Queued>,
    room: Room,
}

/// The receiving end of a queue.
#[derive(Debug)]
pub struct QueueReceiver {
    rx: mpsc::Receiver<Queued>,
    room: Room,
}

/// The receiver went away.
#[derive(Debug)]
pub struct QueueClosed;

/// A new queue with these bounds, in front of the component whose metric
/// `labels` it carries (its fill gauges, and `sluice_component_buffer_max_bytes`).
pub fn queue(config: BufferConfig, labels: Vec<Label>) -> (QueueSender, QueueReceiver) {
    let (tx, rx) = mpsc::channel(config.max_arrays.max(1));
    let max = config.max_bytes.clamp(1, MAX_BYTES) as u32;
    metrics::gauge!("sluice_component_buffer_max_bytes", labels.clone()).set(f64::from(max));
    let fill = Fill {
        events: Arc::default(),
        events_gauge: metrics::gauge!("sluice_component_buffer_events", labels.clone()),
        bytes_gauge: metrics::gauge!("sluice_component_buffer_bytes", labels),
    };
    let making = Arc::new(Semaphore::new(config.max_arrays.max(1)));
    let room = Room { bytes: Arc::new(Semaphore::new(max as usize)), max, fill, making };
    room.show(0, 0);
    (QueueSender { tx, room: room.clone() }, QueueReceiver { rx, room })
}

impl QueueSender {
    /// Send `events` once the queue has room for them (`bytes` is their
    /// size, [`size_of`]). If the queue is closed, the events are dropped
    /// (errored: their source does not commit them).
    pub async fn send(&self, events: Vec<Event>, bytes: usize) -> Result<(), QueueClosed> {
        let array = EventArray::new(events);
        let need = u32::try_from(bytes).unwrap_or(u32::MAX).clamp(1, self.room.max);
        let len = array.len();
        let room = self.room.bytes.clone().acquire_many_owned(need).await.ok();
        self.tx.send(Queued { array, _room: room }).await.map_err(|_| QueueClosed)?;
        self.room.show(len, 0);
        Ok(())
    }

    /// Wait until fewer batches are being made for this queue than it holds
    /// arrays; the permit says one more is, until it is dropped (after the
    /// batch was sent). `None` if the queue is gone.
    pub async fn reserve(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.room.making.clone().acquire_owned().await.ok()
    }

    /// An identity of the queue, to take reservations of several queues in
    /// one order (no two producers wait for each other).
    pub fn queue_id(&self) -> usize {
        Arc::as_ptr(&self.room.making) as usize
    }

    /// A handle that does not keep the queue open.
    pub fn downgrade(&self) -> WeakQueueSender {
        WeakQueueSender { tx: self.tx.downgrade(), room: self.room.clone() }
    }
}

impl WeakQueueSender {
    /// The sender, if the queue is still open.
    pub fn upgrade(&self) -> Option<QueueSender> {
        Some(QueueSender { tx: self.tx.upgrade()?, room: self.room.clone() })
    }
}

impl QueueReceiver {
    /// The next array, `None` once every sender is gone and the queue is
    /// empty. Its room is given back here.
    pub async fn recv(&mut self) -> Option<EventArray> {
        let array = self.rx.recv().await?.array;
        self.room.show(0, array.len());
        Some(array)
    }

    /// Whether nothing is waiting right now.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

/// The bytes `events` occupy, for the queues' bound.
pub fn size_of(events: &[Event]) -> usize {
    events.iter().map(Event::size_estimate).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vrl::value::Value;

    fn event(bytes: usize) -> Event {
        Event::new(Value::from("x".repeat(bytes)))
    }

    #[tokio::test]
    async fn a_sender_waits_for_bytes_and_goes_on_when_they_are_taken() {
        let config = BufferConfig { max_arrays: 100, max_bytes: 64 * 1024 };
        let (tx, mut rx) = queue(config, Vec::new());
        let one = vec![event(40 * 1024)];
        let size = size_of(&one);
        assert!(size >= 40 * 1024, "{size}");
        tx.send(one, size).await.expect("room for the first");
        let second = vec![event(40 * 1024)];
        let size = size_of(&second);
        let tx2 = tx.clone();
        let waiting = tokio::spawn(async move { tx2.send(second, size).await });
        // The queue has 100 arrays of room but not the bytes: the send waits
        // however long it is given.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished(), "the second send waits for bytes");
        assert_eq!(rx.recv().await.map(|a| a.len()), Some(1));
        // Taking the first out gave its bytes back; the second arrives.
        assert_eq!(rx.recv().await.map(|a| a.len()), Some(1));
        waiting.await.expect("joined").expect("sent");
    }

    #[tokio::test]
    async fn the_byte_bound_holds_while_the_consumer_is_slow() {
        let config = BufferConfig { max_arrays: 1000, max_bytes: 64 * 1024 };
        let (tx, mut rx) = queue(config, Vec::new());
        let sender = tokio::spawn(async move {
            for _ in 0..20 {
                let events = vec![event(10 * 1024)];
                let size = size_of(&events);
                tx.send(events, size).await.expect("open");
            }
        });
        // Until the consumer reads, at most 6 arrays of ~10 KiB fit in 64 KiB.
        let mut taken = 0;
        while !sender.is_finished() || taken < 20 {
            tokio::task::yield_now().await;
            let held = rx.rx.len();
            assert!(held <= 6, "{held} arrays of 10 KiB in a 64 KiB queue");
            if held >= 6 || sender.is_finished() {
                rx.recv().await.expect("an array");
                taken += 1;
            }
        }
        assert_eq!(taken, 20);
    }

    #[tokio::test]
    async fn an_array_larger_than_the_budget_passes_alone() {
        let config = BufferConfig { max_arrays: 4, max_bytes: 64 * 1024 };
        let (tx, mut rx) = queue(config, Vec::new());
        let big = vec![event(1024 * 1024)];
        let size = size_of(&big);
        tx.send(big, size).await.expect("sent although larger than the budget");
        assert_eq!(rx.recv().await.map(|a| a.len()), Some(1));
    }

    #[test]
    fn settings_out_of_range_are_named() {
        let bad = BufferConfig { max_arrays: 0, max_bytes: 10 };
        let keys: Vec<_> = bad.problems().into_iter().map(|e| e.field).collect();
        assert_eq!(keys, [Some("max_arrays"), Some("max_bytes")]);
        assert!(BufferConfig::default().problems().is_empty());
    }
}

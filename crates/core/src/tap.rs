//! Live copies of the events leaving an output, for `sluice tap` (as
//! `vector tap`): every source and transform output is a [`TapPoint`],
//! registered by name (`<component>` or `<component>.<port>`) in the
//! topology's [`Taps`]. With nobody watching, a tap costs one atomic load per
//! batch. A watcher gets each event as one JSON line through a bounded
//! channel; when it cannot keep up its copies are dropped and counted
//! (`sluice_tap_dropped_events_total`), so a tap never slows the pipeline.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::event::Event;

/// Event lines a watcher may lag behind before its copies are dropped.
pub const TAP_CAPACITY: usize = 1024;

#[derive(Debug)]
struct Watcher {
    tx: mpsc::Sender<Bytes>,
    dropped: Arc<AtomicU64>,
}

/// One output's watchers.
#[derive(Debug)]
pub struct TapPoint {
    name: String,
    watching: AtomicUsize,
    watchers: Mutex<Vec<Watcher>>,
}

impl TapPoint {
    fn lock(&self) -> MutexGuard<'_, Vec<Watcher>> {
        self.watchers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Offer copies of `events` to the watchers, if any; never waits.
    pub fn offer(&self, events: &[Event]) {
        if self.watching.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut watchers = self.lock();
        for event in events {
            let mut line = Vec::new();
            event.write_json(&mut line);
            line.push(b'\n');
            let line = Bytes::from(line);
            watchers.retain(|watcher| match watcher.tx.try_send(line.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    watcher.dropped.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("sluice_tap_dropped_events_total", "output" => self.name.clone())
                        .increment(1);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        }
        self.watching.store(watchers.len(), Ordering::Relaxed);
    }
}

/// A watcher's end: event lines, and how many it missed.
#[derive(Debug)]
pub struct Tap {
    /// One JSON document per message, newline-terminated.
    pub lines: mpsc::Receiver<Bytes>,
    /// Copies dropped because this watcher lagged.
    pub dropped: Arc<AtomicU64>,
}

/// The output names that can be tapped.
#[derive(Debug, thiserror::Error)]
#[error("no output `{name}` to tap; outputs: {}", known.join(", "))]
pub struct UnknownOutput {
    /// The name asked for.
    pub name: String,
    /// The outputs there are.
    pub known: Vec<String>,
}

/// Every tap point of a topology, by output name.
#[derive(Clone, Debug, Default)]
pub struct Taps {
    points: Arc<Mutex<BTreeMap<String, Arc<TapPoint>>>>,
}

impl Taps {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Arc<TapPoint>>> {
        self.points.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tap point of output `name`, created on first use.
    pub fn point(&self, name: &str) -> Arc<TapPoint> {
        self.lock()
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(TapPoint {
                    name: name.to_owned(),
                    watching: AtomicUsize::new(0),
                    watchers: Mutex::new(Vec::new()),
                })
            })
            .clone()
    }

    /// Start watching output `name`.
    pub fn watch(&self, name: &str) -> Result<Tap, UnknownOutput> {
        let points = self.lock();
        let Some(point) = points.get(name) else {
            return Err(UnknownOutput {
                name: name.to_owned(),
                known: points.keys().cloned().collect(),
            });
        };
        let (tx, lines) = mpsc::channel(TAP_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut watchers = point.lock();
        watchers.push(Watcher { tx, dropped: dropped.clone() });
        point.watching.store(watchers.len(), Ordering::Relaxed);
        Ok(Tap { lines, dropped })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(count: usize) -> Vec<Event> {
        (0..count)
            .map(|n| Event::new(vrl::value::Value::from(serde_json::json!({"n": n}))))
            .collect()
    }

    #[tokio::test]
    async fn a_watcher_gets_json_lines_and_a_slow_one_loses_only_its_copies() {
        let taps = Taps::default();
        let point = taps.point("ecs");
        point.offer(&events(3)); // nobody watching: nothing kept
        let mut tap = taps.watch("ecs").expect("known");
        point.offer(&events(2));
        assert_eq!(tap.lines.recv().await.as_deref(), Some(&b"{\"n\":0}\n"[..]));
        assert_eq!(tap.lines.recv().await.as_deref(), Some(&b"{\"n\":1}\n"[..]));
        point.offer(&events(TAP_CAPACITY + 5));
        assert_eq!(tap.dropped.load(Ordering::Relaxed), 5);
        drop(tap);
        point.offer(&events(1));
        assert_eq!(point.watching.load(Ordering::Relaxed), 0, "a gone watcher is forgotten");
    }

    #[test]
    fn an_unknown_output_lists_the_known_ones() {
        let taps = Taps::default();
        taps.point("op");
        taps.point("ecs.dropped");
        let error = taps.watch("es").expect_err("a sink has no output").to_string();
        assert_eq!(error, "no output `es` to tap; outputs: ecs.dropped, op");
    }
}

//! Replacing components while the rest runs: a config reload.
//!
//! A replaced or removed component stops the way the whole topology does on
//! SIGTERM (a source stops fetching and commits what was acknowledged; a
//! transform or sink finishes what its input holds), while its successor's
//! channel already receives and holds events (backpressure). The successor
//! starts when the instance it replaces has stopped, so two instances of one
//! component never run at once (one checkpoint file, one output file).
//! Components the reload does not name keep running; their outputs are
//! rewired to the new consumers.

use std::time::Duration;

use crate::config::ComponentKind;

use super::{RunningTopology, SinkPiece, SourcePiece, Task, TransformPiece};

/// What a reload changes: new or changed components (built from the new
/// config) and the ids of components the new config no longer has.
#[derive(Debug, Default)]
pub struct Changes {
    /// Sources to start, replacing any running one with the same id.
    pub sources: Vec<SourcePiece>,
    /// Transforms to start, likewise.
    pub transforms: Vec<TransformPiece>,
    /// Sinks to start, likewise.
    pub sinks: Vec<SinkPiece>,
    /// Components to stop for good.
    pub removed: Vec<String>,
}

impl RunningTopology {
    /// Apply `changes` (already checked against the rest of the graph).
    /// Instances that stop get at most `stop_timeout`; past it they are
    /// aborted (what they had not committed is read again at the next start).
    pub fn reload(&mut self, changes: Changes, stop_timeout: Duration) {
        let Changes { sources, transforms, sinks, removed } = changes;
        let replaced: Vec<String> = sources
            .iter()
            .map(|p| p.id.clone())
            .chain(transforms.iter().map(|p| p.id.clone()))
            .chain(sinks.iter().map(|p| p.id.clone()))
            .collect();
        // The last sender into an unchanged consumer's channel may be held by
        // a successor still waiting for its predecessor (which has ended, its
        // exit not yet seen), or by the running source itself. Neither lets
        // go before the rewire has handed that channel to the new instance:
        // superseded successors are dropped, and replaced sources told to
        // stop, only after it, so the consumer's input never closes under it.
        let mut superseded = Vec::new();
        let mut stops = Vec::new();
        for id in replaced.iter().chain(&removed) {
            superseded.extend(self.waiting.remove(id));
            stops.extend(self.source_stops.remove(id));
            if let Some(task) = self.running.get(id).and_then(|t| self.names.get_mut(t)) {
                task.retiring = true;
            }
        }
        for id in &removed {
            self.wiring.remove_consumer(id);
            self.wiring.remove_producer(id);
        }
        let ready = self.prepare(sources, transforms, sinks);
        self.rewire();
        drop(superseded);
        for stop in stops {
            stop.cancel();
        }
        for (id, ready) in ready {
            if self.running.contains_key(&id) {
                self.waiting.insert(id, ready);
            } else {
                self.options.health.forget(&id);
                self.spawn(id, ready);
            }
        }
        let handles: Vec<_> = self
            .names
            .values()
            .filter(|task| task.retiring)
            .map(|task| (task.abort.clone(), task.id.clone()))
            .collect();
        if handles.is_empty() {
            return;
        }
        tokio::spawn(async move {
            tokio::time::sleep(stop_timeout).await;
            for (handle, id) in handles {
                if !handle.is_finished() {
                    tracing::warn!(component = %id, timeout = ?stop_timeout, "the replaced component did not stop in time; stopped it. What it had not committed is read again at the next start");
                    handle.abort();
                }
            }
        });
    }

    /// Hand every output its consumers; a consumer whose input closed while
    /// the config still feeds it is reported unhealthy (what reaches it
    /// counts as errored and is read again), never wired to nothing in silence.
    pub(super) fn rewire(&mut self) {
        for (consumer, output) in self.wiring.rewire() {
            tracing::error!(component = %consumer, %output, "the component's input closed while its producers still run; their events are not acknowledged. Restart sluice");
            self.options.health.handle(&consumer).set_unhealthy(
                "input",
                format!("its input closed while `{output}` still sends to it; restart sluice"),
            );
        }
    }

    /// A replaced or removed instance has stopped: start its successor.
    pub(super) fn retired(&mut self, task: Task, result: Result<(), String>) {
        match result {
            Ok(()) => tracing::debug!(component = %task.id, "the previous instance stopped"),
            Err(error) => {
                tracing::error!(component = %task.id, %error, "the replaced component failed while stopping");
            }
        }
        self.options.health.forget(&task.id);
        let Some(ready) = self.waiting.remove(&task.id) else { return };
        // Stopping for good meanwhile: a source must not start again.
        if ready.kind == ComponentKind::Source && self.shutdown.is_cancelled() {
            return;
        }
        self.spawn(task.id, ready);
    }
}

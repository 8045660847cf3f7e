//! Wiring built components together and running them: one bounded channel
//! per transform and sink input, one task per component, drain on stop, and
//! components replaced while the rest runs (a config reload).

mod reload;
mod wiring;
mod workers;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use tokio::task::{AbortHandle, Id, JoinSet};

use crate::config::ComponentKind;
use sluice_core::component::{
    BoxError, ComponentFuture, EventReceiver, FunctionTransform, ShutdownSignal, Sink, SinkContext,
    Source, SourceContext,
};
use sluice_core::error::error_chain;
use sluice_core::health::Health;
use sluice_core::metrics::ComponentMetrics;
use sluice_core::tap::Taps;

pub use reload::Changes;
use wiring::Wiring;

/// A built source.
pub struct SourcePiece {
    /// Its id.
    pub id: String,
    /// Its `type`, for metrics.
    pub type_name: &'static str,
    /// Its named outputs.
    pub outputs: Vec<String>,
    /// The source itself.
    pub source: Box<dyn Source>,
}

/// A built transform.
pub struct TransformPiece {
    /// Its id.
    pub id: String,
    /// Its `type`, for metrics.
    pub type_name: &'static str,
    /// Its inputs (`id` or `id.port`).
    pub inputs: Vec<String>,
    /// Its named outputs.
    pub outputs: Vec<String>,
    /// The transform itself.
    pub transform: Box<dyn FunctionTransform>,
}

/// A built sink.
pub struct SinkPiece {
    /// Its id.
    pub id: String,
    /// Its `type`, for metrics.
    pub type_name: &'static str,
    /// Its inputs.
    pub inputs: Vec<String>,
    /// The sink itself.
    pub sink: Box<dyn Sink>,
}

macro_rules! debug_piece {
    ($($t:ty),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t)).field("id", &self.id).field("type", &self.type_name).finish()
            }
        }
    )*};
}
debug_piece!(SourcePiece, TransformPiece, SinkPiece);

/// Settings of a topology.
#[derive(Clone, Debug)]
pub struct TopologyOptions {
    /// Where sources keep checkpoints.
    pub data_dir: PathBuf,
    /// The bound of each component's input queue, in arrays and in bytes.
    pub buffer: sluice_core::queue::BufferConfig,
    /// The health registry.
    pub health: Health,
    /// Where every source and transform output registers its tap point.
    pub taps: Taps,
}

/// A component task that ended.
#[derive(Debug)]
pub struct ComponentExit {
    /// Its id.
    pub id: String,
    /// Its kind.
    pub kind: ComponentKind,
    /// `Err` with the reason if it failed or panicked.
    pub result: Result<(), String>,
}

/// What a stop left behind.
#[derive(Debug, Default)]
pub struct StopReport {
    /// Components that failed while draining.
    pub failed: Vec<ComponentExit>,
    /// Components still running at the deadline, then aborted.
    pub timed_out: Vec<String>,
}

/// A component task: which component, and whether a reload replaced or
/// removed it (it is stopping; its exit is not the topology's).
#[derive(Debug)]
struct Task {
    id: String,
    kind: ComponentKind,
    retiring: bool,
    abort: AbortHandle,
}

/// A component ready to run: its task, given the shutdown signal a source
/// stops on.
struct Ready {
    kind: ComponentKind,
    /// Started with its stop signal and, for a source, the sinks its
    /// events reach when it starts.
    start: Box<dyn FnOnce(ShutdownSignal, Vec<String>) -> ComponentFuture + Send>,
}

impl std::fmt::Debug for Ready {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ready").field("kind", &self.kind).finish()
    }
}

/// A running topology.
#[derive(Debug)]
pub struct RunningTopology {
    tasks: JoinSet<Result<(), BoxError>>,
    names: HashMap<Id, Task>,
    /// The task running each component now.
    running: BTreeMap<String, Id>,
    /// Each running source's own stop signal (a child of `shutdown`).
    source_stops: BTreeMap<String, ShutdownSignal>,
    /// Components that wait for the instance they replace to stop.
    waiting: BTreeMap<String, Ready>,
    shutdown: ShutdownSignal,
    wiring: Wiring,
    options: TopologyOptions,
}

/// Wire and start the components. The pieces must have passed the graph check.
pub fn start(
    sources: Vec<SourcePiece>,
    transforms: Vec<TransformPiece>,
    sinks: Vec<SinkPiece>,
    options: &TopologyOptions,
) -> RunningTopology {
    let mut running = RunningTopology::empty(options);
    let ready = running.prepare(sources, transforms, sinks);
    running.rewire();
    for (id, ready) in ready {
        running.spawn(id, ready);
    }
    running
}

impl RunningTopology {
    /// A topology with nothing wired or running yet.
    fn empty(options: &TopologyOptions) -> Self {
        Self {
            tasks: JoinSet::new(),
            names: HashMap::new(),
            running: BTreeMap::new(),
            source_stops: BTreeMap::new(),
            waiting: BTreeMap::new(),
            shutdown: ShutdownSignal::new(),
            wiring: Wiring::default(),
            options: options.clone(),
        }
    }

    /// Channels, outputs and contexts for `pieces`, registered in the wiring
    /// (a consumer's new channel and a producer's new outputs replace any it had).
    fn prepare(
        &mut self,
        sources: Vec<SourcePiece>,
        transforms: Vec<TransformPiece>,
        sinks: Vec<SinkPiece>,
    ) -> Vec<(String, Ready)> {
        let mut ready = Vec::new();
        for piece in sources {
            let options = self.options.clone();
            let metrics = ComponentMetrics::new(&piece.id, "source", piece.type_name);
            let out = self.wiring.producer(&piece.id, &piece.outputs, &options.taps, &metrics);
            let (id, source) = (piece.id.clone(), piece.source);
            let start = move |shutdown, consumers| {
                let cx = SourceContext {
                    out,
                    shutdown,
                    consumers,
                    data_dir: options.data_dir.clone(),
                    health: options.health.handle_labeled(&id, metrics.labels()),
                    metrics,
                    id,
                };
                source.run(cx)
            };
            ready.push((piece.id, Ready { kind: ComponentKind::Source, start: Box::new(start) }));
        }
        for piece in transforms {
            let options = &self.options;
            let metrics = ComponentMetrics::new(&piece.id, "transform", piece.type_name);
            let outputs = self.wiring.producer(&piece.id, &piece.outputs, &options.taps, &metrics);
            let rx = self.wiring.consumer(&piece.id, &piece.inputs, options.buffer, &metrics);
            let input = EventReceiver::new(rx, metrics.clone());
            let (id, transform) = (piece.id.clone(), piece.transform);
            let start = move |_, _| -> ComponentFuture {
                Box::pin(workers::run_transform(transform, input, outputs, metrics, id))
            };
            ready
                .push((piece.id, Ready { kind: ComponentKind::Transform, start: Box::new(start) }));
        }
        for piece in sinks {
            let options = self.options.clone();
            let metrics = ComponentMetrics::new(&piece.id, "sink", piece.type_name);
            let rx = self.wiring.consumer(&piece.id, &piece.inputs, options.buffer, &metrics);
            let (id, sink, health) = (piece.id.clone(), piece.sink, options.health.clone());
            let start = move |_, _| {
                let cx = SinkContext {
                    input: EventReceiver::new(rx, metrics.clone()),
                    data_dir: options.data_dir.clone(),
                    health: health.handle_labeled(&id, metrics.labels()),
                    metrics,
                    id,
                };
                sink.run(cx)
            };
            ready.push((piece.id, Ready { kind: ComponentKind::Sink, start: Box::new(start) }));
        }
        ready
    }

    fn spawn(&mut self, id: String, ready: Ready) {
        let stop = self.shutdown.child_token();
        let consumers = match ready.kind {
            ComponentKind::Source => self.wiring.sinks_reached_from(&id),
            _ => Vec::new(),
        };
        // Every log line of the component (and of the tasks it spawns in
        // its span) names it: `component{id=op7}: …`.
        let span = tracing::info_span!("component", id = %id);
        let task = tracing::Instrument::instrument((ready.start)(stop.clone(), consumers), span);
        let handle = self.tasks.spawn(task);
        if ready.kind == ComponentKind::Source {
            self.source_stops.insert(id.clone(), stop);
        }
        self.running.insert(id.clone(), handle.id());
        self.names
            .insert(handle.id(), Task { id, kind: ready.kind, retiring: false, abort: handle });
    }

    /// The next component to end; `None` once all have ended. Instances a
    /// reload replaced end here too, silently: their successors start then.
    pub async fn next_exit(&mut self) -> Option<ComponentExit> {
        loop {
            let joined = self.tasks.join_next_with_id().await?;
            let (task_id, result) = match joined {
                Ok((task_id, Ok(()))) => (task_id, Ok(())),
                Ok((task_id, Err(err))) => (task_id, Err(error_chain(err.as_ref()))),
                Err(join) if join.is_panic() => {
                    (join.id(), Err("the component panicked".to_owned()))
                }
                Err(join) => (join.id(), Err("the component was aborted".to_owned())),
            };
            let Some(task) = self.names.remove(&task_id) else { continue };
            if self.running.get(&task.id) == Some(&task_id) {
                self.running.remove(&task.id);
            }
            if !task.retiring {
                return Some(ComponentExit { id: task.id, kind: task.kind, result });
            }
            self.retired(task, result);
        }
    }

    /// How many sources are running now.
    pub fn sources_running(&self) -> usize {
        let is_source =
            |id: &Id| self.names.get(id).is_some_and(|t| t.kind == ComponentKind::Source);
        self.running.values().filter(|id| is_source(id)).count()
    }

    /// Tell the sources to stop fetching. Everything downstream drains and
    /// ends when its input closes.
    pub fn begin_stop(&self) {
        self.shutdown.cancel();
    }

    /// Wait until every component has ended, at most `timeout`. Past it,
    /// sources are aborted first (so none commits anything more), then the rest.
    pub async fn stop(mut self, timeout: Duration) -> StopReport {
        self.begin_stop();
        let mut report = StopReport::default();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.next_exit()).await {
                Ok(None) => return report,
                Ok(Some(exit)) if exit.result.is_err() => report.failed.push(exit),
                Ok(Some(_)) => {}
                Err(_elapsed) => break,
            }
        }
        report.timed_out = self.names.values().map(|t| t.id.clone()).collect();
        report.timed_out.sort();
        let sources: Vec<AbortHandle> = self
            .names
            .values()
            .filter(|t| t.kind == ComponentKind::Source)
            .map(|t| t.abort.clone())
            .collect();
        for source in &sources {
            source.abort();
        }
        while sources.iter().any(|s| !s.is_finished()) {
            tokio::task::yield_now().await;
        }
        self.tasks.shutdown().await;
        report
    }
}

#[cfg(test)]
mod tests;

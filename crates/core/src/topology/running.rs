//! Wiring built components together and running them: one bounded channel
//! per transform and sink input, one task per component, drain on stop.

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc};
use tokio::task::{AbortHandle, Id, JoinSet};

use crate::component::{
    BoxError, EventReceiver, Fanout, FunctionTransform, Outputs, ShutdownSignal, Sink, SinkContext,
    Source, SourceContext, TransformOutput,
};
use crate::config::ComponentKind;
use crate::error::error_chain;
use crate::event::Event;
use crate::health::Health;
use crate::metrics::{ComponentMetrics, Stage};
use crate::tap::Taps;

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
    /// Event arrays each component input holds before senders wait.
    pub channel_capacity: usize,
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

/// A running topology.
#[derive(Debug)]
pub struct RunningTopology {
    tasks: JoinSet<Result<(), BoxError>>,
    names: HashMap<Id, (String, ComponentKind)>,
    sources: Vec<AbortHandle>,
    shutdown: ShutdownSignal,
}

/// Wire and start the components. The pieces must have passed the graph check.
pub fn start(
    sources: Vec<SourcePiece>,
    transforms: Vec<TransformPiece>,
    sinks: Vec<SinkPiece>,
    options: &TopologyOptions,
) -> RunningTopology {
    // One channel per consumer; every upstream output it names gets a sender.
    let mut senders: BTreeMap<String, Vec<mpsc::Sender<_>>> = BTreeMap::new();
    let mut receivers = HashMap::new();
    let consumers = transforms
        .iter()
        .map(|t| (&t.id, &t.inputs))
        .chain(sinks.iter().map(|s| (&s.id, &s.inputs)));
    for (id, inputs) in consumers {
        let (tx, rx) = mpsc::channel(options.channel_capacity.max(1));
        receivers.insert(id.clone(), rx);
        for input in inputs {
            senders.entry(input.clone()).or_default().push(tx.clone());
        }
    }
    let mut outputs_of = |id: &str, ports: &[String], metrics: &ComponentMetrics| {
        let mut fanout = |name: &str| {
            let mut fanout = Fanout::default();
            fanout.set_tap(options.taps.point(name));
            senders.remove(name).into_iter().flatten().for_each(|tx| fanout.add(tx));
            fanout
        };
        let named = ports.iter().map(|p| (p.clone(), fanout(&format!("{id}.{p}")))).collect();
        Outputs::new(fanout(id), named, metrics.clone())
    };

    let shutdown = ShutdownSignal::new();
    let mut running = RunningTopology {
        tasks: JoinSet::new(),
        names: HashMap::new(),
        sources: Vec::new(),
        shutdown: shutdown.clone(),
    };
    for piece in sources {
        let metrics = ComponentMetrics::new(&piece.id, "source", piece.type_name);
        let cx = SourceContext {
            out: outputs_of(&piece.id, &piece.outputs, &metrics),
            shutdown: shutdown.clone(),
            data_dir: options.data_dir.clone(),
            health: options.health.handle(&piece.id),
            metrics,
            id: piece.id.clone(),
        };
        let handle = running.spawn(piece.id, ComponentKind::Source, piece.source.run(cx));
        running.sources.push(handle);
    }
    for piece in transforms {
        let metrics = ComponentMetrics::new(&piece.id, "transform", piece.type_name);
        let outputs = outputs_of(&piece.id, &piece.outputs, &metrics);
        let rx = receivers.remove(&piece.id).expect("every transform has a channel");
        let input = EventReceiver::new(rx, metrics.clone());
        let task = run_transform(piece.transform, input, outputs, metrics, piece.id.clone());
        running.spawn(piece.id, ComponentKind::Transform, Box::pin(task));
    }
    for piece in sinks {
        let metrics = ComponentMetrics::new(&piece.id, "sink", piece.type_name);
        let rx = receivers.remove(&piece.id).expect("every sink has a channel");
        let cx = SinkContext {
            input: EventReceiver::new(rx, metrics.clone()),
            data_dir: options.data_dir.clone(),
            health: options.health.handle(&piece.id),
            metrics,
            id: piece.id.clone(),
        };
        running.spawn(piece.id, ComponentKind::Sink, piece.sink.run(cx));
    }
    running
}

/// Run a transform on `concurrency()` workers (forks of it) that take whole
/// arrays from the one input in turn.
async fn run_transform(
    transform: Box<dyn FunctionTransform>,
    input: EventReceiver,
    outputs: Outputs,
    metrics: ComponentMetrics,
    id: String,
) -> Result<(), BoxError> {
    let mut workers = vec![];
    for _ in 1..transform.concurrency() {
        match transform.fork() {
            Some(fork) => workers.push(fork),
            None => break,
        }
    }
    workers.push(transform);
    let shared = Arc::new(Shared { input: Mutex::new(input), outputs, metrics, id });
    if workers.len() == 1 {
        return run_worker(workers.pop().expect("one worker"), shared).await;
    }
    let mut running = JoinSet::new();
    for worker in workers {
        running.spawn(run_worker(worker, shared.clone()));
    }
    // The first failure ends the component; dropping the set stops the others.
    while let Some(joined) = running.join_next().await {
        joined.map_err(|e| format!("a transform worker stopped: {e}"))??;
    }
    Ok(())
}

/// What the workers of one transform share.
struct Shared {
    input: Mutex<EventReceiver>,
    outputs: Outputs,
    metrics: ComponentMetrics,
    id: String,
}

async fn run_worker(
    mut transform: Box<dyn FunctionTransform>,
    shared: Arc<Shared>,
) -> Result<(), BoxError> {
    let Shared { input, outputs, metrics, id } = &*shared;
    let mut out = TransformOutput::default();
    loop {
        let Some(events) = input.lock().await.recv().await else { return Ok(()) };
        // Releasing the input may have woken the next worker into this
        // thread's LIFO slot, which other threads cannot steal: yield, so it
        // runs (and waits on the input) before this batch holds the thread.
        tokio::task::yield_now().await;
        for event in events {
            // A panic on one event (a bug, a value nobody expected) must not
            // become an outage: that event goes to the dead letter, the rest go on.
            let meta = event.meta.clone();
            let result =
                std::panic::catch_unwind(AssertUnwindSafe(|| transform.transform(event, &mut out)));
            if let Err(panic) = result {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|m| (*m).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                metrics.error(Stage::Processing, "panic");
                tracing::error!(component = %id, %message, "the transform panicked on an event; it goes to the dead letter as a pipeline_error");
                let failed = Event::pipeline_error(
                    meta,
                    "transform_panic",
                    format!("the transform panicked: {message}"),
                    id,
                );
                out.push_failed(failed);
            }
        }
        out.flush(outputs).await?;
    }
}

impl RunningTopology {
    fn spawn(
        &mut self,
        id: String,
        kind: ComponentKind,
        task: crate::component::ComponentFuture,
    ) -> AbortHandle {
        let handle = self.tasks.spawn(task);
        self.names.insert(handle.id(), (id, kind));
        handle
    }

    /// The next component to end; `None` once all have ended.
    pub async fn next_exit(&mut self) -> Option<ComponentExit> {
        let joined = self.tasks.join_next_with_id().await?;
        let (task_id, result) = match joined {
            Ok((task_id, Ok(()))) => (task_id, Ok(())),
            Ok((task_id, Err(err))) => (task_id, Err(error_chain(err.as_ref()))),
            Err(join) if join.is_panic() => (join.id(), Err("the component panicked".to_owned())),
            Err(join) => (join.id(), Err("the component was aborted".to_owned())),
        };
        let (id, kind) =
            self.names.remove(&task_id).unwrap_or_else(|| ("?".into(), ComponentKind::Source));
        Some(ComponentExit { id, kind, result })
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
        report.timed_out = self.names.values().map(|(id, _)| id.clone()).collect();
        report.timed_out.sort();
        for source in &self.sources {
            source.abort();
        }
        while self.sources.iter().any(|s| !s.is_finished()) {
            tokio::task::yield_now().await;
        }
        self.tasks.shutdown().await;
        report
    }
}

#[cfg(test)]
mod tests;

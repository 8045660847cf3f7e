//! A transform's workers: `concurrency()` forks of it taking whole arrays
//! from the one input in turn, a panic on one event sent to the dead letter.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio::task::JoinSet;

use sluice_core::component::{
    BoxError, EventReceiver, FunctionTransform, Outputs, TransformOutput,
};
use sluice_core::event::Event;
use sluice_core::metrics::{ComponentMetrics, Stage};

/// Run a transform on `concurrency()` workers (forks of it) that take whole
/// arrays from the one input in turn.
pub(super) async fn run_transform(
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
        running.spawn(tracing::Instrument::in_current_span(run_worker(worker, shared.clone())));
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

//! Running a compiled program on each event, within a time budget; events
//! it fails on become annotated `pipeline_error` documents on `<id>.dropped`.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::budget::Budget;
use bytes::Bytes;
use sluice_core::component::{FunctionTransform, TransformOutput};
use sluice_core::event::dataset_parts;
use sluice_core::metrics::{ComponentMetrics, Stage};
use sluice_core::{Event, EventMetadata};
use vrl::compiler::runtime::{Runtime, Terminate};
use vrl::compiler::{Program, TargetValue, TimeZone};
use vrl::value::{ObjectMap, Secrets, Value};

/// How often the budget is checked, in VRL execution checkpoints (one per
/// expression). The coarse clock costs a few nanoseconds; every fourth
/// checkpoint is about once per statement.
const BUDGET_CHECK_EVERY: u32 = 4;
/// At most one error log line per transform in this window.
const LOG_WINDOW: Duration = Duration::from_secs(10);

/// A compiled `vrl` transform.
pub struct VrlTransform {
    id: String,
    program: Program,
    runtime: Runtime,
    timezone: TimeZone,
    budget: Duration,
    concurrency: usize,
    metrics: Option<ComponentMetrics>,
    last_log: Option<Instant>,
    suppressed: u64,
    /// The last event's metadata value, refilled for the next one instead
    /// of building two maps and their keys per event.
    spare_metadata: Option<Value>,
    /// The last dataset's metadata values, kept for the events after it.
    datasets: DatasetValues,
}

/// `%sluice.dataset` and `%sluice.stream` of the last dataset seen, so an
/// event of the same dataset (nearly all of them) costs no allocation.
#[derive(Default)]
struct DatasetValues {
    last: Option<(Arc<str>, Bytes, Bytes)>,
}

impl DatasetValues {
    fn of(&mut self, dataset: &Arc<str>) -> (Bytes, Bytes) {
        match &self.last {
            Some((seen, full, stream)) if seen == dataset => (full.clone(), stream.clone()),
            _ => {
                let full = Bytes::copy_from_slice(dataset.as_bytes());
                let stream = Bytes::copy_from_slice(dataset_parts(dataset).1.as_bytes());
                self.last = Some((dataset.clone(), full.clone(), stream.clone()));
                (full, stream)
            }
        }
    }
}

impl std::fmt::Debug for VrlTransform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VrlTransform").field("id", &self.id).field("budget", &self.budget).finish()
    }
}

/// Why an event failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A runtime error (a fallible call that failed).
    Error,
    /// The program called `abort`.
    Abort,
    /// The program ran past its time budget.
    Budget,
}

impl Failure {
    fn error_type(self) -> &'static str {
        match self {
            Self::Error => "vrl_error",
            Self::Abort => "vrl_abort",
            Self::Budget => "vrl_budget",
        }
    }
}

/// The metadata a program sees: `%sluice.dataset` (`1password.audit_events`),
/// `%sluice.stream` (its part after the first dot, `audit_events`),
/// `%sluice.source_id`, `%sluice.original`.
pub fn metadata_of(meta: &EventMetadata) -> Value {
    let mut metadata = Value::Object(ObjectMap::new());
    fill_metadata(&mut metadata, meta, &mut DatasetValues::default());
    metadata
}

/// Make `metadata` what [`metadata_of`] returns for `meta`, reusing its
/// maps and keys (a program may have written to it: other keys go).
fn fill_metadata(metadata: &mut Value, meta: &EventMetadata, datasets: &mut DatasetValues) {
    if !matches!(metadata, Value::Object(_)) {
        *metadata = Value::Object(ObjectMap::new());
    }
    let Value::Object(root) = metadata else { unreachable!("made an object above") };
    root.retain(|key, value| key.as_str() == "sluice" && value.is_object());
    if !root.contains_key("sluice") {
        root.insert("sluice".into(), Value::Object(ObjectMap::new()));
    }
    let Some(Value::Object(sluice)) = root.get_mut("sluice") else {
        unreachable!("kept or inserted as an object")
    };
    sluice.retain(|key, _| matches!(key.as_str(), "dataset" | "stream" | "source_id" | "original"));
    let (dataset, stream) = match &meta.dataset {
        Some(dataset) => {
            let (full, stream) = datasets.of(dataset);
            (Some(Value::Bytes(full)), Some(Value::Bytes(stream)))
        }
        None => (None, None),
    };
    set(sluice, "dataset", dataset);
    set(sluice, "stream", stream);
    set(sluice, "source_id", meta.source_id.as_deref().map(Value::from));
    set(sluice, "original", meta.raw.clone().map(Value::Bytes));
}

/// Set or remove `key`, without a new key when it is there.
fn set(map: &mut ObjectMap, key: &str, value: Option<Value>) {
    match (map.get_mut(key), value) {
        (Some(slot), Some(value)) => *slot = value,
        (None, Some(value)) => {
            map.insert(key.into(), value);
        }
        (_, None) => {
            map.remove(key);
        }
    }
}

impl VrlTransform {
    pub(crate) fn new(id: &str, program: Program, budget: Duration) -> Self {
        Self {
            id: id.to_owned(),
            program,
            runtime: Runtime::default(),
            timezone: TimeZone::default(),
            budget,
            concurrency: 1,
            metrics: None,
            last_log: None,
            suppressed: 0,
            spare_metadata: None,
            datasets: DatasetValues::default(),
        }
    }

    pub(crate) fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Run the program on one value; the result or why it failed.
    pub fn run(
        &mut self,
        value: Value,
        metadata: Value,
    ) -> Result<Value, (Failure, String, Value)> {
        let mut target = TargetValue { value, metadata, secrets: Secrets::default() };
        let budget = self.budget;
        let mut spending = Budget::start(budget);
        let mut ticks = 0_u32;
        let mut control = || {
            ticks = ticks.wrapping_add(1);
            if ticks.is_multiple_of(BUDGET_CHECK_EVERY) && spending.spent() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        let result = self.runtime.resolve_with_control(
            &mut target,
            &self.program,
            &self.timezone,
            &mut control,
        );
        self.runtime.clear();
        self.spare_metadata = Some(target.metadata);
        match result {
            Ok(_) => Ok(target.value),
            Err(Terminate::Interrupted) => Err((
                Failure::Budget,
                format!("the program ran longer than its budget of {budget:?}"),
                target.value,
            )),
            Err(Terminate::Abort(error)) => Err((Failure::Abort, error.to_string(), target.value)),
            Err(Terminate::Error(error)) => Err((Failure::Error, error.to_string(), target.value)),
        }
    }

    fn log(&mut self, failure: Failure, message: &str) {
        let now = Instant::now();
        if self.last_log.is_some_and(|at| now.duration_since(at) < LOG_WINDOW) {
            self.suppressed += 1;
            return;
        }
        let suppressed = std::mem::take(&mut self.suppressed);
        self.last_log = Some(now);
        tracing::error!(component = %self.id, error_type = failure.error_type(), error = message, suppressed, "the VRL program failed on an event; it goes on as a pipeline_error event, to `{}.dropped` or, when nothing reads that, down the default output", self.id);
    }

    /// The document a failed event becomes: core's `pipeline_error`, with
    /// what the program made of it when there is no raw item to keep.
    fn failed_event(
        &self,
        meta: EventMetadata,
        partial: Value,
        failure: Failure,
        message: String,
    ) -> Event {
        let partial =
            meta.raw.is_none().then(|| serde_json::to_string(&partial).unwrap_or_default());
        let mut failed = Event::pipeline_error(meta, failure.error_type(), message, &self.id);
        if let (Some(original), Value::Object(root)) = (partial, &mut failed.value)
            && let Some(Value::Object(event)) = root.get_mut("event")
        {
            event.insert("original".into(), Value::from(original));
        }
        failed
    }
}

impl FunctionTransform for VrlTransform {
    fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The compiled program is shared by value (a clone of its expression
    /// tree); each worker gets its own runtime state.
    fn fork(&self) -> Option<Box<dyn FunctionTransform>> {
        Some(Box::new(Self::new(&self.id, self.program.clone(), self.budget)))
    }

    fn transform(&mut self, event: Event, out: &mut TransformOutput) {
        // An event that already failed upstream (a file source's invalid
        // line) keeps its own error: mapping it would replace that error
        // with "no timestamp".
        if already_failed(&event.value) {
            out.push_failed(event);
            return;
        }
        let Event { value, meta } = event;
        let mut metadata = self.spare_metadata.take().unwrap_or(Value::Null);
        fill_metadata(&mut metadata, &meta, &mut self.datasets);
        match self.run(value, metadata) {
            Ok(value) => out.push(Event { value, meta }),
            Err((failure, message, partial)) => {
                let id = self.id.clone();
                self.metrics
                    .get_or_insert_with(|| ComponentMetrics::new(&id, "transform", "vrl"))
                    .error(Stage::Processing, failure.error_type());
                self.log(failure, &message);
                out.push_failed(self.failed_event(meta, partial, failure, message));
            }
        }
    }
}

/// Whether `value` is a `pipeline_error` document.
fn already_failed(value: &Value) -> bool {
    let Value::Object(root) = value else { return false };
    let Some(Value::Object(event)) = root.get("event") else { return false };
    event.get("kind").and_then(Value::to_str_lossy).is_some_and(|kind| kind == "pipeline_error")
}

#[cfg(test)]
mod tests;

//! Loading a config into a plan and checking its components before a run
//! starts (or a reload applies it): what `sluice run`, `sluice validate
//! --network` and a reload share.

use std::path::PathBuf;

use futures_util::StreamExt;
use sluice_core::component::Unreachable;
use sluice_core::error::error_chain;
use sluice_topology::config::{ConfigError, load_files};

use crate::plan::{Files, Plan, plan};

/// Read and plan `configs`, reading the files components name.
pub fn load(configs: &[PathBuf]) -> Result<Plan, ConfigError> {
    plan(crate::shard::apply(load_files(configs)), Files::Read)
}

/// Log the plan's warnings.
pub fn warn_all(plan: &Plan) {
    for warning in &plan.warnings {
        tracing::warn!("{warning}");
    }
}

/// Source preflights run at once.
const PREFLIGHT_AT_ONCE: usize = 16;

/// What the preflight of every component found.
#[derive(Debug, Default)]
pub struct Preflight {
    /// Components whose checks passed.
    pub passed: Vec<String>,
    /// `component <id>: <why>` for destinations that could not be reached.
    pub unreachable: Vec<String>,
    /// `component <id>: <why>` for refusals and other failures.
    pub failed: Vec<String>,
    /// How many of `failed` are sources (they come first).
    pub failed_sources: usize,
}

/// Run every component's preflight; with `prepare` (a start, not a check),
/// then each sink's `prepare` once its preflight passed.
pub async fn preflight(plan: &mut Plan, prepare: bool) -> Preflight {
    let mut report = Preflight::default();
    // Sources check at once, a few at a time: 500 accounts each need a
    // connection and a round trip (their rate limiters still apply).
    let checks = plan.sources.iter_mut().map(|piece| async move {
        let span = tracing::info_span!("component", id = %piece.id);
        let result = tracing::Instrument::instrument(piece.source.preflight(), span).await;
        (piece.id.as_str(), result)
    });
    let results: Vec<_> =
        futures_util::stream::iter(checks).buffered(PREFLIGHT_AT_ONCE).collect().await;
    for (id, result) in results {
        report.record(id, result);
    }
    let failed_sources = report.failed.len();
    for piece in &mut plan.sinks {
        let span = tracing::info_span!("component", id = %piece.id);
        let mut result =
            tracing::Instrument::instrument(piece.sink.preflight(), span.clone()).await;
        if prepare && result.is_ok() {
            result = tracing::Instrument::instrument(piece.sink.prepare(), span).await;
        }
        report.record(&piece.id, result);
    }
    report.failed_sources = failed_sources;
    report
}

impl Preflight {
    fn record(&mut self, id: &str, result: Result<(), sluice_core::component::BoxError>) {
        match result {
            Ok(()) => self.passed.push(id.to_owned()),
            Err(err) if err.downcast_ref::<Unreachable>().is_some() => {
                self.unreachable.push(format!("component {id}: {}", error_chain(err.as_ref())));
            }
            Err(err) => self.failed.push(format!("component {id}: {}", error_chain(err.as_ref()))),
        }
    }
}

/// The problems a preflight found, as one message.
pub fn report(problems: &[String]) -> String {
    let mut text = format!(
        "preflight failed ({} problem{}):\n",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for problem in problems {
        text.push_str(&format!("  {problem}\n"));
    }
    text
}

//! `sluice run` and `sluice validate`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusBuilder;
use sluice_core::component::Unreachable;
use sluice_core::config::{ConfigError, load_files};
use sluice_core::error::error_chain;
use sluice_core::health::Health;
use sluice_core::tap::Taps;
use sluice_core::topology::{TopologyOptions, start};

use crate::error::{CliError, CliResult};
use crate::plan::{Files, Plan, plan};

/// Buckets of every `*_latency_seconds` histogram (delivery latency, HEC
/// acknowledgements): from a fast local sink to a stalled one.
const LATENCY_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0];

pub fn load(configs: &[PathBuf]) -> Result<Plan, ConfigError> {
    plan(load_files(configs), Files::Read)
}

pub fn warn_all(plan: &Plan) {
    for warning in &plan.warnings {
        tracing::warn!("{warning}");
    }
}

pub fn validate(configs: &[PathBuf], network: bool, skip_files: bool) -> CliResult {
    let files = if skip_files { Files::Skip } else { Files::Read };
    let mut plan = plan(load_files(configs), files)?;
    warn_all(&plan);
    if network {
        let report = block_on_value(preflight(&mut plan, false))?;
        let problems: Vec<String> = report.failed.into_iter().chain(report.unreachable).collect();
        if !problems.is_empty() {
            return Err(CliError::Invalid(preflight_report(&problems)));
        }
        for id in &report.passed {
            println!("component {id}: network checks passed");
        }
    }
    println!(
        "valid: {} source(s), {} transform(s), {} sink(s)",
        plan.sources.len(),
        plan.transforms.len(),
        plan.sinks.len()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn run(configs: &[PathBuf], shutdown_timeout: Duration, watch: bool) -> CliResult {
    let plan = load(configs)?;
    warn_all(&plan);
    block_on(run_plan(plan, shutdown_timeout, Some(Reloads { configs, watch })))
}

/// Where a reload reads the config again, and whether changes to the files
/// trigger one (`--watch-config`) besides SIGHUP.
#[derive(Clone, Copy, Debug)]
pub struct Reloads<'a> {
    pub configs: &'a [PathBuf],
    pub watch: bool,
}

/// How often `--watch-config` looks at the config files.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// How often `sluice run` checks that `<data_dir>/.lock` is still its own.
const LOCK_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The config files' sizes and modification times.
fn stamp(configs: &[PathBuf]) -> Vec<Option<(u64, std::time::SystemTime)>> {
    configs
        .iter()
        .map(|c| std::fs::metadata(c).ok().and_then(|m| Some((m.len(), m.modified().ok()?))))
        .collect()
}

/// Run `future` on a new multi-threaded runtime.
pub fn block_on(future: impl Future<Output = CliResult>) -> CliResult {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(future);
    // A sink stuck in a blocking write (a full stdout pipe) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// What the preflight of every component found.
#[derive(Debug, Default)]
pub struct Preflight {
    /// Components whose checks passed.
    pub passed: Vec<String>,
    /// `component <id>: <why>` for destinations that could not be reached.
    pub unreachable: Vec<String>,
    /// `component <id>: <why>` for refusals and other failures.
    pub failed: Vec<String>,
}

/// Run every component's preflight; with `prepare` (a start, not a check),
/// then each sink's `prepare` once its preflight passed.
pub async fn preflight(plan: &mut Plan, prepare: bool) -> Preflight {
    let mut report = Preflight::default();
    let mut record = |id: &str, result: Result<(), sluice_core::component::BoxError>| match result {
        Ok(()) => report.passed.push(id.to_owned()),
        Err(err) if err.downcast_ref::<Unreachable>().is_some() => {
            report.unreachable.push(format!("component {id}: {}", error_chain(err.as_ref())));
        }
        Err(err) => report.failed.push(format!("component {id}: {}", error_chain(err.as_ref()))),
    };
    for piece in &mut plan.sources {
        let result = piece.source.preflight().await;
        record(&piece.id, result);
    }
    for piece in &mut plan.sinks {
        let mut result = piece.sink.preflight().await;
        if prepare && result.is_ok() {
            result = piece.sink.prepare().await;
        }
        record(&piece.id, result);
    }
    report
}

fn preflight_report(problems: &[String]) -> String {
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

fn block_on_value<T>(future: impl Future<Output = T>) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    Ok(runtime.block_on(future))
}

/// Preflight, then run a plan until a signal or until every component ends;
/// SIGHUP loads `configs` again (when given) and applies what changed.
pub async fn run_plan(
    mut plan: Plan,
    shutdown_timeout: Duration,
    reloads: Option<Reloads<'_>>,
) -> CliResult {
    // Before anything answers: a SIGTERM from then on must drain, not kill.
    let mut signals = Signals::new()?;
    // One owner per data_dir, before anything else can touch it.
    let mut lock = crate::lock::lock(&plan.data_dir(), "`sluice run`")?;
    let report = preflight(&mut plan, true).await;
    if !report.failed.is_empty() {
        return Err(CliError::Invalid(preflight_report(&report.failed)));
    }
    for problem in &report.unreachable {
        tracing::warn!(
            "{problem}; starting anyway: events wait in the source and delivery is retried until it answers"
        );
    }
    let metrics = PrometheusBuilder::new()
        // Histograms, not summaries, so they add up across instances.
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Suffix("latency_seconds".into()),
            LATENCY_BUCKETS,
        )
        .context("cannot set the latency buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    crate::registry::describe_metrics();
    metrics::gauge!("sluice_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let health = Health::new();
    let taps = Taps::default();
    if plan.api.enabled {
        let api = crate::api::ApiState {
            metrics: metrics.clone(),
            health: health.clone(),
            taps: taps.clone(),
            tap_access: crate::api::TapAccess::of(&plan.api)?,
        };
        let address = crate::api::serve(plan.api.address, api).await?;
        let tap =
            match (plan.api.tap, plan.api.tap_token.is_some() || plan.api.tap_token_file.is_some())
            {
                (false, _) => "off",
                (true, true) => "on, with a bearer token",
                (true, false) => "on, loopback only",
            };
        tracing::info!(%address, tap, "serving /metrics, /health and /tap");
    }
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });

    let data_dir = plan.data_dir();
    if plan.data_dir.is_none() {
        tracing::info!(data_dir = %data_dir.display(), "data_dir not set; using ./data");
    }
    let options = TopologyOptions { data_dir, buffer: plan.buffer, health: health.clone(), taps };
    let counts = (plan.sources.len(), plan.transforms.len(), plan.sinks.len());
    let mut current = crate::reload::Current::of(&plan);
    let mut topology = start(plan.sources, plan.transforms, plan.sinks, &options);
    tracing::info!(sources = counts.0, transforms = counts.1, sinks = counts.2, "topology started");

    let mut failed = false;
    let watching = reloads.filter(|r| r.watch);
    let mut stamped = watching.map(|r| stamp(r.configs));
    let mut watch = tokio::time::interval(WATCH_EVERY);
    let mut lock_check = tokio::time::interval(LOCK_CHECK_EVERY);
    loop {
        tokio::select! {
            _ = lock_check.tick() => {
                if let Err(error) = lock.recheck() {
                    // Another process owns data_dir now: committing one more
                    // cursor would overwrite its checkpoints. No drain; what
                    // was not committed is read again by the owner.
                    let error = match error {
                        CliError::Invalid(text) => text.trim().to_owned(),
                        CliError::Failed(err) => format!("{err:#}"),
                    };
                    tracing::error!(%error, "data_dir was deleted and another process owns it now; exiting without committing more");
                    std::process::exit(2);
                }
            }
            _ = watch.tick(), if watching.is_some() => {
                let configs = watching.map(|r| r.configs).unwrap_or_default();
                let now = Some(stamp(configs));
                if now != stamped {
                    stamped = now;
                    crate::reload::reload("a config file changed", configs, &mut current, &mut topology, shutdown_timeout).await;
                }
            }
            name = signals.next() => {
                if name == "SIGHUP" {
                    match reloads {
                        Some(r) => crate::reload::reload("SIGHUP", r.configs, &mut current, &mut topology, shutdown_timeout).await,
                        None => tracing::warn!("SIGHUP: this config is embedded and cannot be reloaded; still running"),
                    }
                    continue;
                }
                tracing::info!(signal = name, timeout = ?shutdown_timeout, "draining: sources stop fetching, in-flight events finish");
                break;
            }
            exit = topology.next_exit() => match exit {
                None => {
                    tracing::info!("every component finished");
                    return Ok(ExitCode::SUCCESS);
                }
                Some(exit) => match exit.result {
                    Ok(()) => tracing::info!(component = %exit.id, "component finished"),
                    Err(error) => {
                        tracing::error!(component = %exit.id, kind = exit.kind.as_str(), %error, "component failed; stopping");
                        failed = true;
                        break;
                    }
                },
            },
        }
    }
    health.set_draining();
    // A second signal while draining stops at once; nothing uncommitted is lost,
    // it is read again at the next start.
    tokio::spawn(async move {
        loop {
            let name = signals.next().await;
            if name == "SIGHUP" {
                tracing::warn!("SIGHUP while draining: no reload");
                continue;
            }
            tracing::warn!(signal = name, "second signal: exiting without waiting for the drain");
            std::process::exit(1);
        }
    });
    let report = topology.stop(shutdown_timeout).await;
    for exit in &report.failed {
        if let Err(error) = &exit.result {
            tracing::error!(component = %exit.id, %error, "component failed while draining");
        }
    }
    if !report.timed_out.is_empty() {
        tracing::error!(components = ?report.timed_out, "drain did not finish within --shutdown-timeout; stopped them. Uncommitted events are read again at the next start");
    }
    if failed || !report.failed.is_empty() || !report.timed_out.is_empty() {
        return Ok(ExitCode::FAILURE);
    }
    tracing::info!("drained; checkpoints committed");
    Ok(ExitCode::SUCCESS)
}

/// SIGINT and SIGTERM (stop), SIGHUP (reload).
pub struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.hangup.recv() => "SIGHUP",
        }
    }
}

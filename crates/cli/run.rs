//! `sluice run` and `sluice validate`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusBuilder;
use metrics_exporter_prometheus::PrometheusHandle;
use sluice_core::health::Health;
use sluice_core::tap::Taps;
use sluice_topology::config::{ComponentKind, load_files};
use sluice_topology::{RunningTopology, TopologyOptions, start};

use crate::error::{CliError, CliResult};
use crate::plan::{Files, Plan, plan};
use crate::preflight::{load, preflight, warn_all};
use crate::reload::{Current, reload};
use crate::signals::{Signal, Signals};

/// Buckets of every `*_latency_seconds` histogram (delivery latency, HEC
/// acknowledgements): from a fast local sink to a stalled one.
const LATENCY_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0];

pub fn validate(configs: &[PathBuf], network: bool, skip_files: bool) -> CliResult {
    let files = if skip_files { Files::Skip } else { Files::Read };
    let mut plan = plan(crate::shard::apply(load_files(configs)), files)?;
    warn_all(&plan);
    if network {
        let report = block_on_value(preflight(&mut plan, false))?;
        let problems: Vec<String> = report.failed.into_iter().chain(report.unreachable).collect();
        if !problems.is_empty() {
            return Err(CliError::Invalid(crate::preflight::report(&problems)));
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

pub fn run(
    configs: &[PathBuf],
    shutdown_timeout: Duration,
    watch: bool,
    strict: bool,
) -> CliResult {
    let plan = load(configs)?;
    warn_all(&plan);
    block_on(run_plan(plan, shutdown_timeout, Some(Reloads { configs, watch }), strict))
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
    strict: bool,
) -> CliResult {
    // Before anything answers: a SIGTERM from then on must drain, not kill.
    let mut signals = Signals::new()?;
    // One owner per data_dir, before anything else can touch it.
    let lock = crate::lock::lock(&plan.data_dir(), "`sluice run`")?;
    crate::limits::raise_open_files(plan.sources.len());
    let report = preflight(&mut plan, true).await;
    // A sink refused stops everyone; a source (an account) fails alone
    // unless --strict.
    if (strict || report.failed.len() > report.failed_sources) && !report.failed.is_empty() {
        return Err(CliError::Invalid(crate::preflight::report(&report.failed)));
    }
    for problem in &report.failed {
        tracing::error!(
            "{problem}; starting the other sources anyway: this one shows on /health and retries (--strict refuses to start instead)"
        );
    }
    for problem in &report.unreachable {
        tracing::warn!(
            "{problem}; starting anyway: events wait in the source and delivery is retried until it answers"
        );
    }
    let health = Health::new();
    let taps = Taps::default();
    serve(&plan, &health, &taps).await?;
    let data_dir = plan.data_dir();
    if plan.data_dir.is_none() {
        tracing::info!(data_dir = %data_dir.display(), "data_dir not set; using ./data");
    }
    let options = TopologyOptions { data_dir, buffer: plan.buffer, health: health.clone(), taps };
    let counts = (plan.sources.len(), plan.transforms.len(), plan.sinks.len());
    let mut running = Running {
        current: Current::of(&plan),
        topology: start(plan.sources, plan.transforms, plan.sinks, &options),
        lock,
        shutdown_timeout,
        health: health.clone(),
        strict,
    };
    tracing::info!(sources = counts.0, transforms = counts.1, sinks = counts.2, "topology started");
    let failed = match supervise(&mut running, &mut signals, reloads).await {
        Stopped::AllFinished => return Ok(ExitCode::SUCCESS),
        Stopped::Signal => false,
        Stopped::Failed => true,
    };
    health.set_draining();
    drain(running.topology, signals, shutdown_timeout, failed).await
}

/// The metrics recorder, and `/metrics`, `/health` and `/tap` when the API is on.
async fn serve(plan: &Plan, health: &Health, taps: &Taps) -> anyhow::Result<PrometheusHandle> {
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
    Ok(metrics)
}

/// A started topology and what keeps it: what it was built from (for
/// reloads) and the data_dir's lock.
struct Running {
    current: Current,
    topology: RunningTopology,
    lock: crate::lock::DataDirLock,
    shutdown_timeout: Duration,
    health: Health,
    /// A failed source stops the process (else it fails alone, on /health).
    strict: bool,
}

/// Why [`supervise`] returned.
enum Stopped {
    /// Every component ended by itself.
    AllFinished,
    /// SIGINT or SIGTERM: drain.
    Signal,
    /// A component failed: drain, then exit 1.
    Failed,
}

/// Keep the topology running: reload on SIGHUP or a changed config file,
/// check the data_dir is still ours, and return on a stop signal or a
/// component's failure.
async fn supervise(
    running: &mut Running,
    signals: &mut Signals,
    reloads: Option<Reloads<'_>>,
) -> Stopped {
    let watching = reloads.filter(|r| r.watch);
    let mut stamped = watching.map(|r| stamp(r.configs));
    let mut watch = tokio::time::interval(WATCH_EVERY);
    let mut lock_check = tokio::time::interval(LOCK_CHECK_EVERY);
    let timeout = running.shutdown_timeout;
    loop {
        tokio::select! {
            _ = lock_check.tick() => {
                if let Err(error) = running.lock.recheck() {
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
                    reload("a config file changed", configs, &mut running.current, &mut running.topology, timeout).await;
                }
            }
            signal = signals.next() => {
                if signal == Signal::Hangup {
                    match reloads {
                        Some(r) => reload("SIGHUP", r.configs, &mut running.current, &mut running.topology, timeout).await,
                        None => tracing::warn!("SIGHUP: this config is embedded and cannot be reloaded; still running"),
                    }
                    continue;
                }
                tracing::info!(signal = signal.name(), timeout = ?timeout, "draining: sources stop fetching, in-flight events finish");
                return Stopped::Signal;
            }
            exit = running.topology.next_exit() => match exit {
                None => {
                    tracing::info!("every component finished");
                    return Stopped::AllFinished;
                }
                Some(exit) => match exit.result {
                    Ok(()) => tracing::info!(component = %exit.id, "component finished"),
                    Err(error) if exit.kind == ComponentKind::Source
                        && !running.strict
                        && running.topology.sources_running() > 0 =>
                    {
                        tracing::error!(component = %exit.id, %error, "source failed; the other components go on, /health names it until a restart (--strict stops instead)");
                        running.health.handle(&exit.id).set_unhealthy("", format!("failed: {error}"));
                    }
                    Err(error) => {
                        tracing::error!(component = %exit.id, kind = exit.kind.as_str(), %error, "component failed; stopping");
                        return Stopped::Failed;
                    }
                },
            },
        }
    }
}

/// Stop the sources, let in-flight events finish within `timeout`, and say
/// how it went; a second stop signal exits at once.
async fn drain(
    topology: RunningTopology,
    mut signals: Signals,
    timeout: Duration,
    failed: bool,
) -> CliResult {
    // Nothing uncommitted is lost by exiting early: it is read again at the
    // next start.
    tokio::spawn(async move {
        loop {
            let signal = signals.next().await;
            if signal == Signal::Hangup {
                tracing::warn!("SIGHUP while draining: no reload");
                continue;
            }
            tracing::warn!(
                signal = signal.name(),
                "second signal: exiting without waiting for the drain"
            );
            std::process::exit(1);
        }
    });
    let report = topology.stop(timeout).await;
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

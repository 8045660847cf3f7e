//! SIGHUP: load the config files again and apply what changed, as Vector
//! does. An invalid config, or one whose preflight fails, leaves the running
//! topology as it is, with an error in the log. Components whose settings
//! (and the files they name) did not change keep running; sources keep
//! their checkpoints either way, since a replaced source commits what was
//! acknowledged before its successor starts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use sluice_topology::config::ApiConfig;
use sluice_topology::{Changes, RunningTopology};

use crate::plan::Plan;
use crate::preflight::{load, preflight, warn_all};

/// What the running topology was built from.
#[derive(Debug)]
pub struct Current {
    data_dir: PathBuf,
    api: ApiConfig,
    buffer: sluice_core::queue::BufferConfig,
    fingerprints: BTreeMap<String, String>,
}

impl Current {
    pub fn of(plan: &Plan) -> Self {
        Self {
            data_dir: plan.data_dir(),
            api: plan.api.clone(),
            buffer: plan.buffer,
            fingerprints: plan.fingerprints.clone(),
        }
    }
}

/// Load `configs` and apply the difference to `topology`.
pub async fn reload(
    why: &str,
    configs: &[PathBuf],
    current: &mut Current,
    topology: &mut RunningTopology,
    stop_timeout: Duration,
) {
    tracing::info!(configs = ?configs.iter().map(|c| c.display().to_string()).collect::<Vec<_>>(), "{why}: reloading the config");
    let mut plan = match load(configs) {
        Ok(plan) => plan,
        Err(err) => {
            tracing::error!("the new config is invalid; still running the previous one:\n{err}");
            return;
        }
    };
    if plan.data_dir() != current.data_dir
        || plan.api != current.api
        || plan.buffer != current.buffer
    {
        tracing::error!(
            "data_dir, api and buffer take effect only at a restart; still running the previous config"
        );
        return;
    }
    let fingerprints = std::mem::take(&mut plan.fingerprints);
    let (mut replaced, mut added) = (Vec::new(), Vec::new());
    for (id, fingerprint) in &fingerprints {
        match current.fingerprints.get(id) {
            None => added.push(id.clone()),
            Some(old) if old != fingerprint => replaced.push(id.clone()),
            Some(_) => {}
        }
    }
    let removed: Vec<String> =
        current.fingerprints.keys().filter(|id| !fingerprints.contains_key(*id)).cloned().collect();
    // Only what is new or changed starts; the rest keeps running.
    let starts = |id: &String| replaced.contains(id) || added.contains(id);
    plan.sources.retain(|p| starts(&p.id));
    plan.transforms.retain(|p| starts(&p.id));
    plan.sinks.retain(|p| starts(&p.id));
    if replaced.is_empty() && added.is_empty() && removed.is_empty() {
        tracing::info!("the config is unchanged; nothing to reload");
        return;
    }
    warn_all(&plan);
    let report = preflight(&mut plan, true).await;
    if !report.failed.is_empty() {
        tracing::error!(
            "the new config's preflight failed; still running the previous one:\n  {}",
            report.failed.join("\n  ")
        );
        return;
    }
    for problem in &report.unreachable {
        tracing::warn!("{problem}; starting it anyway: delivery is retried until it answers");
    }
    let changes = Changes {
        sources: plan.sources,
        transforms: plan.transforms,
        sinks: plan.sinks,
        removed: removed.clone(),
    };
    topology.reload(changes, stop_timeout);
    current.fingerprints = fingerprints;
    tracing::info!(
        ?replaced,
        ?added,
        ?removed,
        "config reloaded; the other components kept running"
    );
}

//! What `/health` reports: whether the process is draining and which
//! components declared themselves unhealthy, and why.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use metrics::{Label, gauge};

#[derive(Debug, Default)]
struct State {
    draining: bool,
    unhealthy: BTreeMap<String, String>,
    /// Each running component's metric labels (`component_id`, `_kind`,
    /// `_type`), so `sluice_component_healthy` has the labels every other
    /// component series has.
    labels: BTreeMap<String, Vec<Label>>,
}

/// The process-wide health registry.
#[derive(Clone, Debug, Default)]
pub struct Health {
    state: Arc<Mutex<State>>,
}

/// A snapshot for `/health`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HealthReport {
    /// `ok`, `draining` or `unhealthy`.
    pub status: &'static str,
    /// Unhealthy components and why.
    pub unhealthy: BTreeMap<String, String>,
}

impl HealthReport {
    /// Whether everything is well (`/health` answers 200).
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}

impl Health {
    /// A new registry where all is well.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// The handle a component uses to report on itself.
    pub fn handle(&self, component_id: &str) -> HealthHandle {
        let handle = HealthHandle { health: self.clone(), id: component_id.to_owned() };
        handle.gauge(1.0);
        handle
    }

    /// The handle of a component the topology runs, with its metric labels.
    pub fn handle_labeled(&self, component_id: &str, labels: Vec<Label>) -> HealthHandle {
        self.lock().labels.insert(component_id.to_owned(), labels);
        self.handle(component_id)
    }

    /// The labels of `component_id`'s health series.
    fn labels(&self, component_id: &str) -> Vec<Label> {
        self.lock()
            .labels
            .get(component_id)
            .cloned()
            .unwrap_or_else(|| vec![Label::new("component_id", component_id.to_owned())])
    }

    /// Forget what a component reported (it was removed, or replaced by a
    /// config reload: the new instance reports for itself).
    pub fn forget(&self, component_id: &str) {
        let prefix = format!("{component_id}.");
        self.lock().unhealthy.retain(|k, _| k != component_id && !k.starts_with(&prefix));
        gauge!("sluice_component_healthy", self.labels(component_id)).set(1.0);
    }

    /// Mark the process as draining: `/health` answers 503 from now on.
    pub fn set_draining(&self) {
        self.lock().draining = true;
    }

    /// The current state.
    pub fn report(&self) -> HealthReport {
        let state = self.lock();
        let status = if state.draining {
            "draining"
        } else if state.unhealthy.is_empty() {
            "ok"
        } else {
            "unhealthy"
        };
        HealthReport { status, unhealthy: state.unhealthy.clone() }
    }
}

/// One component's health switch.
#[derive(Clone, Debug)]
pub struct HealthHandle {
    health: Health,
    id: String,
}

impl HealthHandle {
    /// The component's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn gauge(&self, value: f64) {
        gauge!("sluice_component_healthy", self.health.labels(&self.id)).set(value);
    }

    /// Report a problem (a revoked token, a sink refusing credentials).
    /// `key` tells apart several problems of one component (e.g. per stream).
    pub fn set_unhealthy(&self, key: &str, reason: impl Into<String>) {
        let name = if key.is_empty() { self.id.clone() } else { format!("{}.{key}", self.id) };
        self.health.lock().unhealthy.insert(name, reason.into());
        self.gauge(0.0);
    }

    /// Clear a problem reported with the same `key`.
    pub fn set_healthy(&self, key: &str) {
        let name = if key.is_empty() { self.id.clone() } else { format!("{}.{key}", self.id) };
        let mut state = self.health.lock();
        state.unhealthy.remove(&name);
        let prefix = format!("{}.", self.id);
        let still = state.unhealthy.keys().any(|k| *k == self.id || k.starts_with(&prefix));
        drop(state);
        if !still {
            self.gauge(1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_unhealthy_components_and_draining() {
        let health = Health::new();
        assert!(health.report().is_ok());
        let op = health.handle("op");
        op.set_unhealthy("events", "401 Unauthorized: the token was revoked");
        let report = health.report();
        assert_eq!(report.status, "unhealthy");
        assert_eq!(report.unhealthy["op.events"], "401 Unauthorized: the token was revoked");
        op.set_healthy("events");
        assert!(health.report().is_ok());
        health.set_draining();
        assert_eq!(health.report().status, "draining");
    }
}

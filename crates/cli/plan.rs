//! From config files to built components: load, deserialize each component
//! through the registry, validate it, check the graph. Everything that is
//! wrong is collected into one [`ConfigError`].

use std::path::PathBuf;

use sluice_core::config::{
    ApiConfig, ComponentKind, ConfigError, Diagnostic, FieldError, RawComponent, RawConfig,
};
use sluice_core::topology::{Node, SinkPiece, SourcePiece, TransformPiece, check};

use crate::registry::{SinkConfig, SourceConfig, TransformConfig};

/// A validated topology, ready to start.
pub struct Plan {
    pub data_dir: Option<PathBuf>,
    pub api: ApiConfig,
    pub sources: Vec<SourcePiece>,
    pub transforms: Vec<TransformPiece>,
    pub sinks: Vec<SinkPiece>,
    pub warnings: Vec<Diagnostic>,
}

impl Plan {
    /// `data_dir` as configured, or `./data` in the working directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from("data"))
    }
}

/// Build the plan from already loaded files.
pub fn plan(raw: RawConfig) -> Result<Plan, ConfigError> {
    let mut plan = Plan {
        data_dir: raw.data_dir,
        api: raw.api,
        sources: Vec::new(),
        transforms: Vec::new(),
        sinks: Vec::new(),
        warnings: Vec::new(),
    };
    let mut errors = raw.errors;
    let mut warnings = Vec::new();
    let mut nodes = Vec::new();
    for component in &raw.components {
        let inputs = || component.inputs.iter().map(|i| i.name.clone()).collect::<Vec<_>>();
        let outputs = match component.kind {
            ComponentKind::Source => add(component, &mut errors, |config: SourceConfig| {
                let (type_name, outputs) = (config.type_name(), config.outputs());
                let source = config.validate(component)?;
                plan.sources.push(SourcePiece {
                    id: component.id.clone(),
                    type_name,
                    outputs: outputs.clone(),
                    source,
                });
                Ok(outputs)
            }),
            ComponentKind::Transform => add(component, &mut errors, |config: TransformConfig| {
                let (type_name, outputs) = (config.type_name(), config.outputs());
                let transform = config.validate(component)?;
                plan.transforms.push(TransformPiece {
                    id: component.id.clone(),
                    type_name,
                    inputs: inputs(),
                    outputs: outputs.clone(),
                    transform,
                });
                Ok(outputs)
            }),
            ComponentKind::Sink => add(component, &mut errors, |config: SinkConfig| {
                let type_name = config.type_name();
                warnings.extend(config.warnings().into_iter().map(|w| component.report(w)));
                let sink = config.validate(component)?;
                plan.sinks.push(SinkPiece {
                    id: component.id.clone(),
                    type_name,
                    inputs: inputs(),
                    sink,
                });
                Ok(Vec::new())
            }),
        };
        nodes.push(Node {
            id: component.id.clone(),
            kind: component.kind,
            inputs: component.inputs.clone(),
            outputs,
            location: component.location.clone(),
        });
    }
    let graph = check(&nodes);
    errors.extend(graph.errors);
    plan.warnings = graph.warnings;
    plan.warnings.extend(warnings);
    if errors.is_empty() {
        Ok(plan)
    } else {
        // Component errors come first in file order, then graph errors; show them by position.
        errors.sort_by_key(position);
        Err(ConfigError::new(errors))
    }
}

fn position(d: &Diagnostic) -> (bool, String, usize, usize) {
    match &d.location {
        Some(l) => (true, l.file.display().to_string(), l.line, l.column),
        None => (false, String::new(), 0, 0),
    }
}

/// Deserialize and validate one component; its named outputs, or `None` if it is invalid.
fn add<T: serde::de::DeserializeOwned>(
    component: &RawComponent,
    errors: &mut Vec<Diagnostic>,
    build: impl FnOnce(T) -> Result<Vec<String>, Vec<FieldError>>,
) -> Option<Vec<String>> {
    let config = match component.deserialize::<T>() {
        Ok(config) if !component.has_errors => config,
        // An unset variable is reported already; report other problems, not
        // the ones its unsubstituted `${...}` text causes.
        Ok(_) => return None,
        Err(diagnostic) => {
            if !(component.has_errors && diagnostic.message.contains("${")) {
                errors.push(diagnostic);
            }
            return None;
        }
    };
    match build(config) {
        Ok(outputs) => Some(outputs),
        Err(problems) => {
            errors.extend(problems.into_iter().map(|p| component.report(p)));
            None
        }
    }
}

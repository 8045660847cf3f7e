//! From config files to built components: load, deserialize each component
//! through the registry, validate it, check the graph. Everything that is
//! wrong is collected into one [`ConfigError`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sluice_core::component::FileChecks;
use sluice_core::queue::BufferConfig;
use sluice_topology::config::{
    ApiConfig, ComponentKind, ConfigError, Diagnostic, FieldError, RawComponent, RawConfig,
};
use sluice_topology::{Node, SinkPiece, SourcePiece, TransformPiece, check};

use crate::registry::{SinkConfig, SourceConfig, TransformConfig};

/// A validated topology, ready to start.
pub struct Plan {
    pub data_dir: Option<PathBuf>,
    pub api: ApiConfig,
    pub buffer: BufferConfig,
    pub sources: Vec<SourcePiece>,
    pub transforms: Vec<TransformPiece>,
    pub sinks: Vec<SinkPiece>,
    pub warnings: Vec<Diagnostic>,
    /// What each component is made of, to tell at a reload which changed.
    pub fingerprints: BTreeMap<String, String>,
}

impl Plan {
    /// `data_dir` as configured, or `./data` in the working directory.
    pub fn data_dir(&self) -> PathBuf {
        data_dir_or_default(self.data_dir.clone())
    }
}

/// `data_dir` as configured, or `./data` in the working directory.
pub fn data_dir_or_default(configured: Option<PathBuf>) -> PathBuf {
    configured.unwrap_or_else(|| PathBuf::from("data"))
}

/// Whether building a plan reads the files components need (token files,
/// certificates) to report their problems at file:line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Files {
    /// `validate` and `run`: read them.
    Read,
    /// `sluice test` and `validate --skip-files`: settings only.
    Skip,
}

/// Build the plan from already loaded files.
pub fn plan(raw: RawConfig, files: Files) -> Result<Plan, ConfigError> {
    let mut plan = Plan {
        data_dir: raw.data_dir,
        api: raw.api,
        buffer: raw.buffer,
        sources: Vec::new(),
        transforms: Vec::new(),
        sinks: Vec::new(),
        warnings: Vec::new(),
        fingerprints: raw.components.iter().map(|c| (c.id.clone(), fingerprint(c))).collect(),
    };
    let mut errors = raw.errors;
    let mut warnings = Vec::new();
    let mut nodes = Vec::new();
    for component in &raw.components {
        let outputs = add_component(&mut plan, component, files, &mut errors, &mut warnings);
        nodes.push(Node {
            id: component.id.clone(),
            kind: component.kind,
            inputs: component.inputs.clone(),
            outputs,
            location: component.location.clone(),
        });
    }
    // Without a whole file, the graph's problems may be the missing file's.
    if !raw.incomplete {
        let graph = check(&nodes);
        errors.extend(graph.errors);
        plan.warnings = graph.warnings;
    }
    plan.warnings.extend(warnings);
    if errors.is_empty() {
        Ok(plan)
    } else {
        // Component errors come first in file order, then graph errors; show them by position.
        errors.sort_by_key(position);
        Err(ConfigError::new(errors))
    }
}

/// Deserialize, validate and (with [`Files::Read`]) check one component,
/// adding it to `plan`; its outputs, or `None` when it has errors.
fn add_component(
    plan: &mut Plan,
    component: &RawComponent,
    files: Files,
    errors: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) -> Option<Vec<String>> {
    let inputs = || component.inputs.iter().map(|i| i.name.clone()).collect::<Vec<_>>();
    match component.kind {
        ComponentKind::Source => add(component, errors, |config: SourceConfig| {
            let (type_name, outputs) = (config.type_name(), config.outputs());
            warnings.extend(config.warnings().into_iter().map(|w| component.report(w)));
            let source = config.validate(component)?;
            if files == Files::Read {
                accept(source.check_files(), component, warnings)?;
            }
            plan.sources.push(SourcePiece {
                id: component.id.clone(),
                type_name,
                outputs: outputs.clone(),
                source,
            });
            Ok(outputs)
        }),
        ComponentKind::Transform => add(component, errors, |config: TransformConfig| {
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
        ComponentKind::Sink => add(component, errors, |config: SinkConfig| {
            let type_name = config.type_name();
            warnings.extend(config.warnings().into_iter().map(|w| component.report(w)));
            let sink = config.validate(component)?;
            if files == Files::Read {
                accept(sink.check_files(), component, warnings)?;
            }
            plan.sinks.push(SinkPiece {
                id: component.id.clone(),
                type_name,
                inputs: inputs(),
                sink,
            });
            Ok(Vec::new())
        }),
    }
}

/// A component as written (section, type, inputs, settings, its folder)
/// plus the size and modification time of every file a setting names (a VRL
/// program, a GeoIP database, a token file): equal fingerprints mean a
/// reload can keep the running instance.
fn fingerprint(component: &RawComponent) -> String {
    let body = serde_yaml_ng::to_string(&component.body).unwrap_or_default();
    let inputs: Vec<&str> = component.inputs.iter().map(|i| i.name.as_str()).collect();
    let mut text = format!(
        "{}|{:?}|{inputs:?}|{}|{body}",
        component.kind.as_str(),
        component.type_name,
        component.dir().display()
    );
    let mut files = Vec::new();
    strings(&component.body, &mut files);
    for name in files {
        let path = component.dir().join(name);
        if let Some(meta) = std::fs::metadata(&path).ok().filter(|m| m.is_file()) {
            text.push_str(&format!(
                "|{}:{}:{:?}",
                path.display(),
                meta.len(),
                meta.modified().ok()
            ));
        }
    }
    text
}

fn strings<'a>(value: &'a serde_yaml_ng::Value, out: &mut Vec<&'a Path>) {
    match value {
        serde_yaml_ng::Value::String(text) if !text.contains('\n') => out.push(Path::new(text)),
        serde_yaml_ng::Value::Sequence(items) => items.iter().for_each(|v| strings(v, out)),
        serde_yaml_ng::Value::Mapping(map) => map.values().for_each(|v| strings(v, out)),
        serde_yaml_ng::Value::Tagged(tagged) => strings(&tagged.value, out),
        _ => {}
    }
}

/// A component's file checks: warnings kept, errors returned.
fn accept(
    checks: FileChecks,
    component: &RawComponent,
    warnings: &mut Vec<Diagnostic>,
) -> Result<(), Vec<FieldError>> {
    warnings.extend(checks.warnings.into_iter().map(|w| component.report(w)));
    if checks.errors.is_empty() { Ok(()) } else { Err(checks.errors) }
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

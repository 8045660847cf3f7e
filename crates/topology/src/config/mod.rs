//! Loading a topology from YAML files.
//!
//! [`load_files`] reads every file, substitutes environment variables in
//! scalar values (never in VRL programs), merges the files and splits them
//! into [`RawComponent`]s. It knows no component type: the binary
//! deserializes each `RawComponent` into its registered config with
//! [`RawComponent::deserialize`], then validates the graph. Every problem is
//! a [`Diagnostic`] that names its file, line, column and component, and all
//! of them are collected before anything is reported.

mod env;
mod load;
mod locate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;

pub use env::interpolate;
pub use load::{load_files, load_files_with, load_str};
use locate::{Locator, Seg};
pub use sluice_core::config::{FieldError, check_range};

/// A position in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file, as given on the command line.
    pub file: Arc<Path>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One problem in a config: `file:line:column: component <id>: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where it is, when known.
    pub location: Option<Location>,
    /// The component it belongs to, if any.
    pub component: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Diagnostic {
    /// A problem at `location`, outside any component.
    pub fn at(location: Location, message: impl Into<String>) -> Self {
        Self { location: Some(location), component: None, message: message.into() }
    }

    /// A problem of the whole config, with no position.
    pub fn global(message: impl Into<String>) -> Self {
        Self { location: None, component: None, message: message.into() }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        if let Some(component) = &self.component {
            write!(f, "component {component}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a config.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub struct ConfigError {
    /// The problems, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigError {
    /// An error holding `diagnostics`.
    pub fn new(diagnostics: Vec<Diagnostic>) -> Self {
        Self { diagnostics }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.diagnostics.len();
        writeln!(f, "invalid configuration ({count} error{}):", if count == 1 { "" } else { "s" })?;
        for diagnostic in &self.diagnostics {
            writeln!(f, "  {diagnostic}")?;
        }
        Ok(())
    }
}

/// The three kinds of component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ComponentKind {
    /// Produces events.
    Source,
    /// Maps events.
    Transform,
    /// Delivers events.
    Sink,
}

impl ComponentKind {
    /// The metric label value: `source`, `transform`, `sink`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Transform => "transform",
            Self::Sink => "sink",
        }
    }

    /// The top-level config key: `sources`, `transforms`, `sinks`.
    pub fn section(self) -> &'static str {
        match self {
            Self::Source => "sources",
            Self::Transform => "transforms",
            Self::Sink => "sinks",
        }
    }
}

/// The `api` section: where `/metrics`, `/health` and `/tap` are served.
///
/// `/tap` shows raw events (emails, IP addresses, names): it is off unless
/// `tap: true`, and beyond loopback it needs a bearer token
/// (`tap_token` or `tap_token_file`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Whether to serve the API at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Listen address.
    #[serde(default = "default_api_address")]
    pub address: SocketAddr,
    /// Whether `/tap/<output>` serves events (default off).
    #[serde(default)]
    pub tap: bool,
    /// The bearer token `/tap` requires (`Authorization: Bearer <token>`).
    #[serde(default)]
    pub tap_token: Option<sluice_core::Secret>,
    /// A file holding that token, read at start (relative to the config file).
    #[serde(default)]
    pub tap_token_file: Option<std::path::PathBuf>,
    /// How many `/tap` watchers may be connected at once.
    #[serde(default = "default_tap_watchers")]
    pub max_tap_watchers: usize,
}

fn default_true() -> bool {
    true
}

fn default_api_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9598))
}

fn default_tap_watchers() -> usize {
    4
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            address: default_api_address(),
            tap: false,
            tap_token: None,
            tap_token_file: None,
            max_tap_watchers: default_tap_watchers(),
        }
    }
}

impl ApiConfig {
    /// What is wrong with these settings, each with its key; `dir` is the
    /// folder of the file that set them (a relative `tap_token_file` is
    /// resolved against it).
    pub fn problems(&mut self, dir: &std::path::Path) -> Vec<FieldError> {
        let mut problems = Vec::new();
        if let Some(file) = &self.tap_token_file {
            self.tap_token_file = Some(dir.join(file));
        }
        if self.tap_token.is_some() && self.tap_token_file.is_some() {
            problems.push(FieldError::new(
                "tap_token_file",
                "set either `tap_token` or `tap_token_file`, not both",
            ));
        }
        if !(1..=1000).contains(&self.max_tap_watchers) {
            problems.push(FieldError::new(
                "max_tap_watchers",
                format!("must be from 1 to 1000, not {}", self.max_tap_watchers),
            ));
        }
        let tokened = self.tap_token.is_some() || self.tap_token_file.is_some();
        if self.enabled && self.tap && !tokened && !self.address.ip().is_loopback() {
            problems.push(FieldError::new(
                "tap",
                format!(
                    "the API listens on {}, beyond loopback, and /tap shows raw events: set `tap_token` or `tap_token_file`, or listen on 127.0.0.1",
                    self.address
                ),
            ));
        }
        problems
    }

    /// The `/tap` token, if one is set (a file is read now).
    pub fn tap_secret(
        &self,
    ) -> Result<Option<sluice_core::Secret>, sluice_core::secret::SecretFileError> {
        match (&self.tap_token, &self.tap_token_file) {
            (Some(token), _) => Ok(Some(token.clone())),
            (None, Some(file)) => sluice_core::Secret::from_file(file).map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// A named input of a transform or sink: `component` or `component.output`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// The name as written.
    pub name: String,
    /// Where it is written.
    pub location: Location,
}

/// The parts of one config file a component needs to report errors.
#[derive(Debug)]
struct FileContext {
    path: Arc<Path>,
    dir: PathBuf,
    locator: Locator,
}

impl FileContext {
    fn location(&self, path: &[Seg]) -> Location {
        let (line, column) = self.locator.find(path);
        Location { file: self.path.clone(), line, column }
    }
}

/// A component as written: its id, kind, inputs and its other keys, not yet
/// interpreted.
#[derive(Debug)]
pub struct RawComponent {
    /// The component id (the key under `sources`, `transforms`, `sinks`).
    pub id: String,
    /// Which section it is in.
    pub kind: ComponentKind,
    /// Its `type`, if it has a string one.
    pub type_name: Option<String>,
    /// Its inputs (empty for sources).
    pub inputs: Vec<Input>,
    /// Every key but `inputs`, environment variables substituted.
    pub body: Value,
    /// Where its id is written.
    pub location: Location,
    /// Whether loading already found a problem in it (an unset variable).
    pub has_errors: bool,
    file: Arc<FileContext>,
}

impl RawComponent {
    /// The folder of the file it is written in; relative paths resolve here.
    pub fn dir(&self) -> &Path {
        &self.file.dir
    }

    /// A problem with this component, reported at its id.
    pub fn error(&self, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            location: Some(self.location.clone()),
            component: Some(self.id.clone()),
            message: message.into(),
        }
    }

    /// A problem with one of its top-level keys, reported at that key.
    pub fn error_at(&self, key: &str, message: impl Into<String>) -> Diagnostic {
        // `batch.max_events` points at `max_events` under `batch`.
        let keys: Vec<Seg> = key.split('.').map(|k| Seg::Key(k.to_owned())).collect();
        let path = self.path_to(&keys);
        Diagnostic { location: Some(self.file.location(&path)), ..self.error(message) }
    }

    /// Deserialize the body (with `type`) into a registered config type.
    /// The error names the offending key's position when it can be found.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, Diagnostic> {
        serde_yaml_ng::from_value(self.body.clone()).map_err(|err| {
            let message = err.to_string();
            let path = locate_in_body(&self.body, &message).unwrap_or_default();
            let location = self.file.location(&self.path_to(&path));
            Diagnostic { location: Some(location), ..self.error(plain(&message)) }
        })
    }

    fn path_to(&self, rest: &[Seg]) -> Vec<Seg> {
        let mut path = vec![Seg::Key(self.kind.section().into()), Seg::Key(self.id.clone())];
        path.extend_from_slice(rest);
        path
    }
}

/// serde's wording in words an operator uses: `unknown variant` is an
/// unknown value, `u64` a whole number.
fn plain(message: &str) -> String {
    let mut text = message.replace("unknown variant ", "unknown value ");
    for (rust, words) in [
        ("expected u64", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected u16", "expected a whole number"),
        ("expected usize", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
    ] {
        text = text.replace(rust, words);
    }
    text
}

/// Guess where in `body` a serde error points, from the name or value its
/// message quotes (serde's messages carry no path).
fn locate_in_body(body: &Value, message: &str) -> Option<Vec<Seg>> {
    let quoted = |prefix: &str, open: char, close: char| {
        let start = message.find(prefix)? + prefix.len();
        let rest = message[start..].strip_prefix(open)?;
        Some(rest[..rest.find(close)?].to_owned())
    };
    if let Some(key) = quoted("unknown field ", '`', '`') {
        return find(body, &mut Vec::new(), &|k, _| k == Some(key.as_str()));
    }
    let value = quoted("unknown variant ", '`', '`')
        .or_else(|| quoted("string ", '"', '"'))
        .or_else(|| quoted("integer ", '`', '`'))?;
    find(body, &mut Vec::new(), &|_, v| match v {
        Value::String(s) => *s == value,
        Value::Number(n) => n.to_string() == value,
        _ => false,
    })
}

fn find(
    value: &Value,
    path: &mut Vec<Seg>,
    hit: &dyn Fn(Option<&str>, &Value) -> bool,
) -> Option<Vec<Seg>> {
    let children: Vec<(Seg, Option<&str>, &Value)> = match value {
        Value::Mapping(map) => map
            .iter()
            .filter_map(|(k, v)| k.as_str().map(|k| (Seg::Key(k.to_owned()), Some(k), v)))
            .collect(),
        Value::Sequence(items) => {
            items.iter().enumerate().map(|(i, v)| (Seg::Index(i), None, v)).collect()
        }
        _ => return None,
    };
    for (seg, key, child) in children {
        path.push(seg);
        if hit(key, child) {
            return Some(path.clone());
        }
        if let Some(found) = find(child, path, hit) {
            return Some(found);
        }
        path.pop();
    }
    None
}

/// A whole config: global options and every component, from all files.
#[derive(Debug, Default)]
pub struct RawConfig {
    /// Where checkpoints live (`data_dir`), resolved against its file's folder.
    pub data_dir: Option<PathBuf>,
    /// The API server settings.
    pub api: ApiConfig,
    /// The bound of every component's input queue.
    pub buffer: sluice_core::queue::BufferConfig,
    /// Every component, in file order.
    pub components: Vec<RawComponent>,
    /// The `tests:` entries, each with where its list starts.
    pub tests: Vec<(Value, Location)>,
    /// Problems found while loading, in file order.
    pub errors: Vec<Diagnostic>,
    /// A file could not be read or parsed, so its components are missing:
    /// checks of the whole graph (a source, a sink, inputs that exist)
    /// would report problems that are not there.
    pub incomplete: bool,
}

impl RawConfig {
    /// The config if loading found no problem.
    pub fn check(self) -> Result<Self, ConfigError> {
        if self.errors.is_empty() { Ok(self) } else { Err(ConfigError::new(self.errors)) }
    }
}

impl RawComponent {
    /// Turn a validation problem into a positioned diagnostic.
    pub fn report(&self, error: FieldError) -> Diagnostic {
        match error.field {
            Some(field) => self.error_at(field, error.message),
            None => self.error(error.message),
        }
    }
}

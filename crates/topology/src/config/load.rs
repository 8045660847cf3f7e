//! Reading, interpolating and merging config files into a [`RawConfig`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_yaml_ng::{Mapping, Value};

use super::env::interpolate_value;
use super::{
    ApiConfig, ComponentKind, Diagnostic, FileContext, Input, Locator, RawComponent, RawConfig, Seg,
};
use sluice_core::queue::BufferConfig;

/// Keys whose values are secrets or identifiers: a variable there stays
/// text (a client secret or an account ID may be all digits).
const SECRET_KEYS: [&str; 8] = [
    "token",
    "api_key",
    "password",
    "proxy",
    "tap_token",
    "client_secret",
    "client_id",
    "account_id",
];

const TOP_LEVEL_KEYS: &str = "data_dir, api, buffer, sources, transforms, sinks, tests";

/// Load and merge `paths`, substituting variables from the process environment.
pub fn load_files(paths: &[PathBuf]) -> RawConfig {
    load_files_with(paths, &|name| std::env::var(name).ok())
}

/// Load and merge `paths` with an explicit variable lookup. Problems are
/// collected in [`RawConfig::errors`]; loading goes on past them so that all
/// are reported at once.
pub fn load_files_with(paths: &[PathBuf], lookup: &dyn Fn(&str) -> Option<String>) -> RawConfig {
    let mut loader =
        Loader { config: RawConfig::default(), errors: Vec::new(), lookup, data_dir_at: None };
    if paths.is_empty() {
        loader.errors.push(Diagnostic::global("no config file given"));
    }
    for path in paths {
        match std::fs::read_to_string(path) {
            Ok(text) => loader.add_file(path, &text),
            Err(err) => {
                loader.config.incomplete = true;
                loader
                    .errors
                    .push(Diagnostic::global(format!("{}: cannot read: {err}", path.display())));
            }
        }
    }
    loader.finish()
}

/// Load one config from text, as if read from `path` (for tests and embedded configs).
pub fn load_str(path: &Path, text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> RawConfig {
    let mut loader =
        Loader { config: RawConfig::default(), errors: Vec::new(), lookup, data_dir_at: None };
    loader.add_file(path, text);
    loader.finish()
}

struct Loader<'a> {
    config: RawConfig,
    errors: Vec<Diagnostic>,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    data_dir_at: Option<super::Location>,
}

/// The deepest flow nesting (`[`, `{`) accepted: the YAML parser's own
/// recursion limit, found here in one pass instead of after tens of seconds
/// (a file nested 100,000 deep took 40 s to refuse; review L7, reliability 2026-12).
const MAX_FLOW_DEPTH: usize = 128;

/// Where `text` first nests brackets past [`MAX_FLOW_DEPTH`] (line, column),
/// skipping comments and quoted text; a line that starts a top-level key
/// ends any flow context before it.
fn too_deep(text: &str) -> Option<(usize, usize)> {
    let mut depth = 0_usize;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with(|c: char| !c.is_whitespace() && !"[]{}-#,".contains(c)) {
            depth = 0;
        }
        let mut quote = None;
        let mut previous = ' ';
        for (column, c) in line.chars().enumerate() {
            match quote {
                Some(q) if c == q && previous != '\\' => quote = None,
                Some(_) => {}
                None if c == '#' && previous.is_whitespace() => break,
                None if (c == '"' || c == '\'')
                    && (previous.is_whitespace() || "[{,:".contains(previous)) =>
                {
                    quote = Some(c);
                }
                None if c == '[' || c == '{' => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Some((n + 1, column + 1));
                    }
                }
                None if c == ']' || c == '}' => depth = depth.saturating_sub(1),
                None => {}
            }
            previous = c;
        }
    }
    None
}

impl Loader<'_> {
    fn finish(mut self) -> RawConfig {
        self.config.errors = self.errors;
        self.config
    }

    fn add_file(&mut self, path: &Path, text: &str) {
        let first_error = self.errors.len();
        self.add_file_unsorted(path, text);
        // Report a file's problems top to bottom, whichever pass found them.
        self.errors[first_error..].sort_by_key(|d| d.location.as_ref().map(|l| (l.line, l.column)));
    }

    fn add_file_unsorted(&mut self, path: &Path, text: &str) {
        let file_path: Arc<Path> = Arc::from(path);
        if let Some((line, column)) = too_deep(text) {
            // The YAML parser refuses this too, after tens of seconds.
            let location = super::Location { file: file_path, line, column };
            self.config.incomplete = true;
            self.errors.push(Diagnostic::at(
                location,
                format!("invalid YAML: brackets nest more than {MAX_FLOW_DEPTH} levels deep"),
            ));
            return;
        }
        let mut root: Value = match serde_yaml_ng::from_str(text) {
            Ok(value) => value,
            Err(err) => {
                let (line, column) = err.location().map_or((1, 1), |l| (l.line(), l.column()));
                let location = super::Location { file: file_path, line, column };
                self.config.incomplete = true;
                self.errors.push(Diagnostic::at(
                    location,
                    format!("invalid YAML: {}", strip_position(&err)),
                ));
                return;
            }
        };
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let file = Arc::new(FileContext { path: file_path, dir, locator: Locator::new(text) });
        self.interpolate(&file, &mut root, &mut Vec::new());
        let map = match root {
            Value::Null => return,
            Value::Mapping(map) => map,
            _ => {
                self.config.incomplete = true;
                self.errors
                    .push(Diagnostic::at(file.location(&[]), "a config file must be a mapping"));
                return;
            }
        };
        for (key, value) in map {
            let Some(key) = key.as_str() else {
                self.errors
                    .push(Diagnostic::at(file.location(&[]), "top-level keys must be strings"));
                continue;
            };
            self.add_top_level(&file, key, value);
        }
    }

    /// One top-level key of a file and its value.
    fn add_top_level(&mut self, file: &Arc<FileContext>, key: &str, value: Value) {
        let at = file.location(&[Seg::Key(key.to_owned())]);
        match key {
            "data_dir" => self.set_data_dir(file, value, at),
            "api" => match serde_yaml_ng::from_value::<ApiConfig>(value) {
                Ok(mut api) => {
                    for problem in api.problems(&file.dir) {
                        let field = problem.field.unwrap_or_default();
                        let at = file.location(&[Seg::Key(key.to_owned()), Seg::Key(field.into())]);
                        self.errors.push(Diagnostic::at(at, format!("api: {}", problem.message)));
                    }
                    self.config.api = api;
                }
                Err(err) => self.errors.push(Diagnostic::at(at, format!("api: {err}"))),
            },
            "buffer" => match serde_yaml_ng::from_value::<BufferConfig>(value) {
                Ok(buffer) => {
                    for problem in buffer.problems() {
                        let field = problem.field.unwrap_or_default();
                        let at = file.location(&[Seg::Key(key.to_owned()), Seg::Key(field.into())]);
                        let message = format!("buffer: {}", problem.message);
                        self.errors.push(Diagnostic::at(at, message));
                    }
                    self.config.buffer = buffer;
                }
                Err(err) => self.errors.push(Diagnostic::at(at, format!("buffer: {err}"))),
            },
            "sources" => self.add_components(file, ComponentKind::Source, value),
            "transforms" => self.add_components(file, ComponentKind::Transform, value),
            "sinks" => self.add_components(file, ComponentKind::Sink, value),
            "tests" => match value {
                Value::Sequence(tests) => {
                    self.config.tests.extend(tests.into_iter().map(|test| (test, at.clone())))
                }
                Value::Null => {}
                _ => self.errors.push(Diagnostic::at(at, "`tests` must be a list of tests")),
            },
            other => self.errors.push(Diagnostic::at(
                at,
                format!("unknown top-level key `{other}`, expected one of {TOP_LEVEL_KEYS}"),
            )),
        }
    }

    /// Substitute variables in every scalar but VRL programs.
    fn interpolate(&mut self, file: &FileContext, value: &mut Value, path: &mut Vec<Seg>) {
        if is_vrl_program(path) {
            return;
        }
        match value {
            Value::Mapping(map) => {
                for (key, child) in map.iter_mut() {
                    path.push(Seg::Key(key.as_str().unwrap_or("?").to_owned()));
                    self.interpolate(file, child, path);
                    path.pop();
                }
            }
            Value::Sequence(items) => {
                for (index, child) in items.iter_mut().enumerate() {
                    path.push(Seg::Index(index));
                    self.interpolate(file, child, path);
                    path.pop();
                }
            }
            Value::Tagged(tagged) => self.interpolate(file, &mut tagged.value, path),
            _ => {
                let key = match path.last() {
                    Some(Seg::Key(key)) => key.as_str(),
                    _ => "",
                };
                let secret = SECRET_KEYS.contains(&key);
                if let Err(mut message) = interpolate_value(value, self.lookup, !secret) {
                    // A secret has no sensible default: say to set it.
                    let advice = match key {
                        "token" => {
                            Some(" (export it, or give the token in a file with `token_file`)")
                        }
                        _ if secret => Some(" (export it before starting sluice)"),
                        _ => None,
                    };
                    if let (Some(advice), Some(hint)) = (advice, message.find(" (write ${")) {
                        message.truncate(hint);
                        message.push_str(advice);
                    }
                    let component = match path.as_slice() {
                        [Seg::Key(section), Seg::Key(id), ..]
                            if ["sources", "transforms", "sinks"].contains(&section.as_str()) =>
                        {
                            Some(id.clone())
                        }
                        _ => None,
                    };
                    self.errors.push(Diagnostic {
                        location: Some(file.location(path)),
                        component,
                        message,
                    });
                }
            }
        }
    }

    fn set_data_dir(&mut self, file: &FileContext, value: Value, at: super::Location) {
        let Value::String(dir) = value else {
            self.errors.push(Diagnostic::at(at, "data_dir must be a path"));
            return;
        };
        let resolved = file.dir.join(dir);
        match (&self.config.data_dir, &self.data_dir_at) {
            (Some(existing), Some(first)) if *existing != resolved => {
                self.errors.push(Diagnostic::at(
                    at,
                    format!("data_dir is already set to {} at {first}", existing.display()),
                ))
            }
            _ => {
                self.config.data_dir = Some(resolved);
                self.data_dir_at = Some(at);
            }
        }
    }

    fn add_components(&mut self, file: &Arc<FileContext>, kind: ComponentKind, section: Value) {
        let section_path = [Seg::Key(kind.section().into())];
        let map = match section {
            Value::Null => return,
            Value::Mapping(map) => map,
            _ => {
                let message = format!("`{}` must map component ids to components", kind.section());
                self.errors.push(Diagnostic::at(file.location(&section_path), message));
                return;
            }
        };
        for (key, body) in map {
            let id = key.as_str().map(str::to_owned).unwrap_or_else(|| format!("{key:?}"));
            let mut path = section_path.to_vec();
            path.push(Seg::Key(id.clone()));
            let location = file.location(&path);
            let error = |message: String| Diagnostic {
                location: Some(location.clone()),
                component: Some(id.clone()),
                message,
            };
            if let Err(message) = check_id(&id) {
                self.errors.push(error(message));
                continue;
            }
            if let Some(first) = self.config.components.iter().find(|c| c.id == id) {
                self.errors.push(error(format!(
                    "component id `{id}` is already used at {}",
                    first.location
                )));
                continue;
            }
            let Value::Mapping(mut body) = body else {
                self.errors
                    .push(error(format!("a {} must be a mapping with a `type`", kind.as_str())));
                continue;
            };
            let errors_before = self.errors.len();
            let inputs = self.take_inputs(file, kind, &mut body, &path, &error);
            let type_name = body.get("type").and_then(Value::as_str).map(str::to_owned);
            let has_errors = self.errors[..errors_before]
                .iter()
                .any(|e| e.component.as_deref() == Some(id.as_str()));
            self.config.components.push(RawComponent {
                id,
                kind,
                type_name,
                inputs,
                body: Value::Mapping(body),
                has_errors,
                location,
                file: file.clone(),
            });
        }
    }

    fn take_inputs(
        &mut self,
        file: &FileContext,
        kind: ComponentKind,
        body: &mut Mapping,
        path: &[Seg],
        error: &dyn Fn(String) -> Diagnostic,
    ) -> Vec<Input> {
        let raw = body.remove("inputs");
        let mut input_path = path.to_vec();
        input_path.push(Seg::Key("inputs".into()));
        let items = match (kind, raw) {
            (ComponentKind::Source, None) => return Vec::new(),
            (ComponentKind::Source, Some(_)) => {
                self.errors.push(Diagnostic {
                    location: Some(file.location(&input_path)),
                    ..error("a source takes no inputs".into())
                });
                return Vec::new();
            }
            (_, None) => {
                self.errors.push(error(format!("a {} needs `inputs`", kind.as_str())));
                return Vec::new();
            }
            (_, Some(Value::Sequence(items))) => items,
            (_, Some(_)) => {
                self.errors.push(Diagnostic {
                    location: Some(file.location(&input_path)),
                    ..error("`inputs` must be a list of component ids".into())
                });
                return Vec::new();
            }
        };
        if items.is_empty() {
            self.errors.push(Diagnostic {
                location: Some(file.location(&input_path)),
                ..error(format!("a {} needs at least one input", kind.as_str()))
            });
        }
        let mut inputs = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            let mut item_path = input_path.clone();
            item_path.push(Seg::Index(index));
            let location = file.location(&item_path);
            match item {
                Value::String(name) => {
                    if inputs.iter().any(|i: &Input| i.name == name) {
                        self.errors.push(Diagnostic {
                            location: Some(location),
                            ..error(format!("input `{name}` is listed twice"))
                        });
                    } else {
                        inputs.push(Input { name, location });
                    }
                }
                _ => self.errors.push(Diagnostic {
                    location: Some(location),
                    ..error("an input must be a component id".into())
                }),
            }
        }
        inputs
    }
}

/// VRL programs are never interpolated: `$` means something in them. They
/// are a transform's `source` and any `source` inside `tests`.
fn is_vrl_program(path: &[Seg]) -> bool {
    match path {
        [Seg::Key(section), Seg::Key(_), Seg::Key(key)] if section == "transforms" => {
            key == "source"
        }
        [Seg::Key(section), .., Seg::Key(key)] if section == "tests" => key == "source",
        _ => false,
    }
}

fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(format!(
            "component id `{id}` may contain only letters, digits, `_` and `-` (`.` names an output)"
        ));
    }
    Ok(())
}

/// serde_yaml appends " at line L column C"; the diagnostic shows it already.
fn strip_position(err: &serde_yaml_ng::Error) -> String {
    let message = err.to_string();
    match message.find(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    }
}

#[cfg(test)]
mod tests;

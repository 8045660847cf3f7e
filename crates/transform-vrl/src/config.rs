//! The `vrl` transform's settings; validation compiles the program.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sluice_core::config::FieldError;
use vrl::compiler::{CompileConfig, Function, TypeState};
use vrl::diagnostic::Formatter;

use crate::geoip::{GeoIpDatabases, GeoIpFunction};
use crate::transform::VrlTransform;

/// GeoIP databases for `geoip_city` and `geoip_asn`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoIpConfig {
    /// A GeoIP2/GeoLite2 City database (.mmdb).
    pub city_db: Option<PathBuf>,
    /// A GeoLite2 ASN database (.mmdb).
    pub asn_db: Option<PathBuf>,
}

/// `type: vrl` under `transforms`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrlTransformConfig {
    /// The program, inline. Never subject to `${VAR}` substitution.
    pub source: Option<String>,
    /// The program in a file, relative to the config file.
    pub file: Option<PathBuf>,
    /// The program in several files, joined in order.
    pub files: Option<Vec<PathBuf>>,
    /// GeoIP databases.
    #[serde(default)]
    pub geoip: GeoIpConfig,
    /// The most time the program may take for one event, in milliseconds
    /// (default 50); past it the event goes to `<id>.dropped`.
    #[serde(default = "default_budget")]
    pub event_budget_ms: u64,
    /// Workers running the program side by side, each on whole batches
    /// (1 to 256; default: the available cores). Order across batches is
    /// not kept; acknowledgements are.
    #[serde(default)]
    pub concurrency: Option<usize>,
}

/// The most workers a transform may have.
const MAX_CONCURRENCY: usize = 256;

fn default_budget() -> u64 {
    50
}

/// The named outputs of a `vrl` transform.
pub fn outputs() -> Vec<String> {
    vec![sluice_core::component::DROPPED.to_owned()]
}

/// Every function a program may call: vrl's stdlib-base plus sluice's own.
pub fn functions(geoip: Arc<GeoIpDatabases>) -> Vec<Box<dyn Function>> {
    let mut functions = vrl::stdlib::all();
    functions.extend(GeoIpFunction::all(geoip));
    functions.push(Box::new(crate::lookup::GetLookup));
    functions
}

/// A program and where it came from.
struct ProgramText {
    text: String,
    origin: String,
}

impl VrlTransformConfig {
    fn program(&self, dir: &Path) -> Result<ProgramText, FieldError> {
        let read = |field: &'static str, path: &PathBuf| {
            let path = dir.join(path);
            std::fs::read_to_string(&path)
                .map_err(|e| {
                    FieldError::new(
                        field,
                        format!("cannot read the VRL program {}: {e}", path.display()),
                    )
                })
                .map(|text| (text, path.display().to_string()))
        };
        match (&self.source, &self.file, &self.files) {
            (Some(source), None, None) => {
                Ok(ProgramText { text: source.clone(), origin: "the inline source".into() })
            }
            (None, Some(file), None) => {
                read("file", file).map(|(text, origin)| ProgramText { text, origin })
            }
            (None, None, Some(files)) if !files.is_empty() => {
                let mut text = String::new();
                let mut origins = Vec::new();
                for file in files {
                    let (part, origin) = read("files", file)?;
                    text.push_str(&part);
                    text.push('\n');
                    origins.push(origin);
                }
                Ok(ProgramText { text, origin: format!("{} (joined)", origins.join(" + ")) })
            }
            _ => Err(FieldError {
                field: None,
                message: "set exactly one of `source`, `file` or `files`".into(),
            }),
        }
    }

    /// Read and compile the program and open the GeoIP databases. This is
    /// what `sluice validate` checks; `id` names the transform in logs.
    pub fn validate(self, dir: &Path, id: &str) -> Result<VrlTransform, Vec<FieldError>> {
        let program = self.program(dir).map_err(|e| vec![e])?;
        let geoip = GeoIpDatabases::open(
            self.geoip.city_db.as_ref().map(|p| dir.join(p)).as_deref(),
            self.geoip.asn_db.as_ref().map(|p| dir.join(p)).as_deref(),
        )
        .map_err(|message| vec![FieldError::new("geoip", message)])?;
        let key = if self.source.is_some() {
            "source"
        } else if self.file.is_some() {
            "file"
        } else {
            "files"
        };
        if let Err((line, column, what)) = crate::nesting::check(&program.text) {
            return Err(vec![FieldError::new(
                key,
                format!(
                    "the VRL program in {} nests too deeply at {line}:{column}: {what}; split it into smaller expressions",
                    program.origin
                ),
            )]);
        }
        let functions = functions(Arc::new(geoip));
        let compiled = vrl::compiler::compile_with_state(
            &program.text,
            &functions,
            &TypeState::default(),
            CompileConfig::default(),
        )
        .map_err(|diagnostics| {
            // vrl renders `┌─ :line:col`; name the program there.
            let rendered = Formatter::new(&program.text, diagnostics)
                .to_string()
                .replace("┌─ :", &format!("┌─ {}:", program.origin));
            vec![FieldError::new(
                key,
                format!(
                    "the VRL program in {} does not compile:\n{}",
                    program.origin,
                    indent(&rendered)
                ),
            )]
        })?;
        if !compiled.warnings.is_empty() {
            let rendered = Formatter::new(&program.text, compiled.warnings).to_string();
            tracing::warn!(component = id, program = %program.origin, "VRL warnings:\n{rendered}");
        }
        if self.event_budget_ms == 0 {
            return Err(vec![FieldError::new(
                "event_budget_ms",
                "event_budget_ms must be at least 1",
            )]);
        }
        let concurrency = match self.concurrency {
            Some(n) if (1..=MAX_CONCURRENCY).contains(&n) => n,
            Some(_) => {
                return Err(vec![FieldError::new(
                    "concurrency",
                    format!("concurrency must be 1 to {MAX_CONCURRENCY}"),
                )]);
            }
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        Ok(VrlTransform::new(id, compiled.program, Duration::from_millis(self.event_budget_ms))
            .with_concurrency(concurrency))
    }
}

fn indent(text: &str) -> String {
    text.trim_end().lines().map(|line| format!("    {line}")).collect::<Vec<_>>().join("\n")
}

//! `sluice graph` and `sluice list`: the topology as DOT (as `vector graph`
//! prints it: sources as trapezia, transforms as diamonds, sinks as
//! inverted trapezia, named outputs as edge labels), and the component
//! types with their settings.

use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::error::CliResult;
use sluice_topology::config::load_files;

use crate::plan::{Files, Plan, plan};
use crate::registry::{TYPES, settings};

/// DOT text quoting.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The edge into `to` from the input `input` (`id` or `id.output`).
fn edge(plan_ids: &[String], input: &str, to: &str, out: &mut String) {
    let (from, output) = match input.rsplit_once('.') {
        Some((id, output)) if !plan_ids.iter().any(|known| known == input) => (id, Some(output)),
        _ => (input, None),
    };
    let _ = match output {
        Some(output) => {
            writeln!(out, "  {} -> {} [label={}]", quoted(from), quoted(to), quoted(output))
        }
        None => writeln!(out, "  {} -> {}", quoted(from), quoted(to)),
    };
}

/// The plan as a DOT digraph.
pub fn dot(plan: &Plan) -> String {
    let ids: Vec<String> = plan
        .sources
        .iter()
        .map(|p| p.id.clone())
        .chain(plan.transforms.iter().map(|p| p.id.clone()))
        .chain(plan.sinks.iter().map(|p| p.id.clone()))
        .collect();
    let nodes = plan
        .sources
        .iter()
        .map(|p| (&p.id, p.type_name, "trapezium"))
        .chain(plan.transforms.iter().map(|p| (&p.id, p.type_name, "diamond")))
        .chain(plan.sinks.iter().map(|p| (&p.id, p.type_name, "invtrapezium")));
    let mut out = String::from("digraph {\n");
    for (id, type_name, shape) in nodes {
        let _ = writeln!(out, "  {} [shape=\"{shape}\" comment={}]", quoted(id), quoted(type_name));
    }
    let consumers = plan
        .transforms
        .iter()
        .map(|p| (&p.id, &p.inputs))
        .chain(plan.sinks.iter().map(|p| (&p.id, &p.inputs)));
    for (id, inputs) in consumers {
        for input in inputs {
            edge(&ids, input, id, &mut out);
        }
    }
    out.push_str("}\n");
    out
}

/// `sluice graph CONFIG...`: the files are checked as `validate
/// --skip-files` checks them (no secrets needed), then printed as DOT.
pub fn graph(configs: &[PathBuf]) -> CliResult {
    let plan = plan(crate::shard::apply(load_files(configs)), Files::Skip)?;
    emit(&dot(&plan))
}

/// Write `text` to standard output; a reader that went away (`| head`) is
/// not an error.
fn emit(text: &str) -> CliResult {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// `sluice list`: every component type, what it does, and its settings.
pub fn list() -> CliResult {
    let mut out = String::new();
    let mut kind = "";
    for (this_kind, type_name, about) in TYPES {
        if *this_kind != kind {
            kind = this_kind;
            let _ = writeln!(out, "{kind}s:");
        }
        let _ = writeln!(out, "  {type_name:<14} {about}");
        let mut keys = settings(kind, type_name);
        if kind != "source" {
            keys.insert(0, "inputs".into());
        }
        let shown = if keys.is_empty() { "(none)".to_owned() } else { keys.join(", ") };
        let _ = writeln!(out, "  {:<14} settings: {shown}", "");
    }
    emit(&out)
}

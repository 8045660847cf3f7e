//! Pure checks of the component graph: unknown inputs, inputs from sinks,
//! unknown outputs, cycles, and outputs nobody consumes (a warning).

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{ComponentKind, Diagnostic, Input, Location};

/// One component as the graph sees it.
#[derive(Clone, Debug)]
pub struct Node {
    /// Its id.
    pub id: String,
    /// Source, transform or sink.
    pub kind: ComponentKind,
    /// What it reads from.
    pub inputs: Vec<Input>,
    /// Its named outputs besides the default one; `None` when unknown
    /// (the component's own config was invalid), which accepts any name.
    pub outputs: Option<Vec<String>>,
    /// Where it is defined.
    pub location: Location,
}

/// The outcome of [`check`].
#[derive(Debug, Default)]
pub struct GraphCheck {
    /// Problems that stop the config.
    pub errors: Vec<Diagnostic>,
    /// Problems worth a log line.
    pub warnings: Vec<Diagnostic>,
}

fn diagnostic(node: &Node, location: &Location, message: String) -> Diagnostic {
    Diagnostic { location: Some(location.clone()), component: Some(node.id.clone()), message }
}

/// Check the graph formed by `nodes`.
pub fn check(nodes: &[Node]) -> GraphCheck {
    let mut result = GraphCheck::default();
    if !nodes.iter().any(|n| n.kind == ComponentKind::Source) {
        result.errors.push(Diagnostic::global("the config has no source"));
    }
    if !nodes.iter().any(|n| n.kind == ComponentKind::Sink) {
        result.errors.push(Diagnostic::global("the config has no sink"));
    }
    let by_id: BTreeMap<&str, &Node> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut consumed: BTreeSet<(&str, Option<&str>)> = BTreeSet::new();
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for node in nodes {
        for input in &node.inputs {
            let (upstream, port) = match input.name.split_once('.') {
                Some((id, port)) => (id, Some(port)),
                None => (input.name.as_str(), None),
            };
            if let Err(message) = resolve_input(nodes, &by_id, node, &input.name, upstream, port) {
                result.errors.push(diagnostic(node, &input.location, message));
                continue;
            }
            consumed.insert((upstream, port));
            edges.entry(upstream).or_default().push(node.id.as_str());
        }
    }
    result.errors.extend(find_cycles(nodes, &edges));
    result.warnings.extend(unconsumed(nodes, &consumed));
    result
}

/// Why input `name` (`upstream`, or its output `port`) of `node` names
/// nothing it can read.
fn resolve_input(
    nodes: &[Node],
    by_id: &BTreeMap<&str, &Node>,
    node: &Node,
    name: &str,
    upstream: &str,
    port: Option<&str>,
) -> Result<(), String> {
    let Some(up) = by_id.get(upstream) else {
        let outputs: Vec<&str> = nodes
            .iter()
            .filter(|n| n.kind != ComponentKind::Sink && n.id != node.id)
            .map(|n| n.id.as_str())
            .collect();
        return Err(if outputs.is_empty() {
            format!("input `{name}` does not exist")
        } else {
            format!(
                "input `{name}` does not exist (sources and transforms: {})",
                outputs.join(", ")
            )
        });
    };
    if up.kind == ComponentKind::Sink {
        return Err(format!("input `{name}` is a sink, and sinks have no outputs"));
    }
    if let (Some(port), Some(outputs)) = (port, &up.outputs)
        && !outputs.iter().any(|o| o == port)
    {
        let known = if outputs.is_empty() {
            "it has only its default output".to_owned()
        } else {
            format!(
                "it has: {}",
                outputs.iter().map(|o| format!("{upstream}.{o}")).collect::<Vec<_>>().join(", ")
            )
        };
        return Err(format!(
            "input `{name}` does not exist: `{upstream}` has no output `{port}` ({known})"
        ));
    }
    Ok(())
}

/// A warning for each output nobody reads (but `<id>.dropped`).
fn unconsumed(nodes: &[Node], consumed: &BTreeSet<(&str, Option<&str>)>) -> Vec<Diagnostic> {
    let mut warnings = Vec::new();
    for node in nodes.iter().filter(|n| n.kind != ComponentKind::Sink) {
        let ports =
            std::iter::once(None).chain(node.outputs.iter().flatten().map(|p| Some(p.as_str())));
        for port in ports {
            // Nobody reading `<id>.dropped` is fine: failed events then go
            // down the default output, with their error, and are never lost.
            if port == Some(sluice_core::component::DROPPED) {
                continue;
            }
            if !consumed.contains(&(node.id.as_str(), port)) {
                let name = port.map_or(node.id.clone(), |p| format!("{}.{p}", node.id));
                let message = format!(
                    "output `{name}` is not consumed by any component; its events are discarded"
                );
                warnings.push(diagnostic(node, &node.location, message));
            }
        }
    }
    warnings
}

/// Each cycle once, reported at its first component in config order.
fn find_cycles(nodes: &[Node], edges: &BTreeMap<&str, Vec<&str>>) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    let mut reported: BTreeSet<&str> = BTreeSet::new();
    for node in nodes {
        if reported.contains(node.id.as_str()) {
            continue;
        }
        if let Some(cycle) = path_back(node.id.as_str(), edges) {
            reported.extend(cycle.iter().copied());
            let text = cycle
                .iter()
                .chain(std::iter::once(&cycle[0]))
                .copied()
                .collect::<Vec<_>>()
                .join(" -> ");
            errors.push(diagnostic(node, &node.location, format!("the graph has a cycle: {text}")));
        }
    }
    errors
}

/// A path from `start` back to itself, if there is one (depth first).
fn path_back<'a>(start: &'a str, edges: &BTreeMap<&'a str, Vec<&'a str>>) -> Option<Vec<&'a str>> {
    let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
    let mut visited: BTreeSet<&str> = BTreeSet::new();
    while let Some((node, next)) = stack.last_mut() {
        let children = edges.get(*node).map(Vec::as_slice).unwrap_or(&[]);
        let Some(&child) = children.get(*next) else {
            stack.pop();
            continue;
        };
        *next += 1;
        if child == start {
            return Some(stack.iter().map(|(n, _)| *n).collect());
        }
        if visited.insert(child) {
            stack.push((child, 0));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;

    fn at(line: usize) -> Location {
        Location { file: Arc::from(Path::new("t.yaml")), line, column: 3 }
    }

    fn node(id: &str, kind: ComponentKind, inputs: &[&str], outputs: &[&str], line: usize) -> Node {
        Node {
            id: id.into(),
            kind,
            inputs: inputs
                .iter()
                .map(|name| Input { name: (*name).into(), location: at(line + 1) })
                .collect(),
            outputs: Some(outputs.iter().map(|o| (*o).to_owned()).collect()),
            location: at(line),
        }
    }

    fn text(diagnostics: &[Diagnostic]) -> Vec<String> {
        diagnostics.iter().map(ToString::to_string).collect()
    }

    use ComponentKind::{Sink, Source, Transform};

    #[test]
    fn a_valid_graph_with_a_dead_letter_port() {
        let nodes = [
            node("op", Source, &[], &[], 1),
            node("ecs", Transform, &["op"], &["dropped"], 3),
            node("es", Sink, &["ecs"], &[], 5),
            node("dlq", Sink, &["ecs.dropped"], &[], 7),
        ];
        let result = check(&nodes);
        assert!(result.errors.is_empty(), "{:?}", result.errors);
        assert!(result.warnings.is_empty(), "{:?}", result.warnings);
    }

    #[test]
    fn reports_unknown_inputs_ports_sinks_and_cycles_together() {
        let nodes = [
            node("op", Source, &[], &[], 1),
            node("a", Transform, &["op", "b"], &["dropped"], 3),
            node("b", Transform, &["a"], &[], 5),
            node("es", Sink, &["a", "nope", "a.missing", "dlq"], &[], 7),
            node("dlq", Sink, &["op"], &[], 9),
        ];
        let result = check(&nodes);
        assert_eq!(
            text(&result.errors),
            [
                "t.yaml:8:3: component es: input `nope` does not exist (sources and transforms: op, a, b)",
                "t.yaml:8:3: component es: input `a.missing` does not exist: `a` has no output `missing` (it has: a.dropped)",
                "t.yaml:8:3: component es: input `dlq` is a sink, and sinks have no outputs",
                "t.yaml:3:3: component a: the graph has a cycle: a -> b -> a",
            ]
        );
        assert!(result.warnings.is_empty(), "{:?}", result.warnings);
    }

    #[test]
    fn an_unread_default_output_is_warned_about_an_unread_dropped_port_is_not() {
        let nodes = [
            node("op", Source, &[], &[], 1),
            node("ecs", Transform, &["op"], &["dropped"], 3),
            node("raw", Transform, &["op"], &[], 5),
            node("es", Sink, &["ecs"], &[], 7),
        ];
        let result = check(&nodes);
        assert!(result.errors.is_empty(), "{:?}", result.errors);
        assert_eq!(
            text(&result.warnings),
            [
                "t.yaml:5:3: component raw: output `raw` is not consumed by any component; its events are discarded"
            ]
        );
    }

    #[test]
    fn a_config_needs_a_source_and_a_sink() {
        let result = check(&[]);
        assert_eq!(text(&result.errors), ["the config has no source", "the config has no sink"]);
    }

    #[test]
    fn a_self_loop_is_a_cycle() {
        let nodes = [
            node("op", Source, &[], &[], 1),
            node("t", Transform, &["op", "t"], &[], 3),
            node("s", Sink, &["t"], &[], 5),
        ];
        assert_eq!(
            text(&check(&nodes).errors),
            ["t.yaml:3:3: component t: the graph has a cycle: t -> t"]
        );
    }
}

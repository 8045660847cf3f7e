//! `sluice test`: the `tests:` blocks of a config, as Vector's unit tests.
//! Raw events are inserted at a transform; what comes out of it (and of the
//! transforms downstream) is checked with VRL conditions or an expected
//! document, compared field by field.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Deserialize;
use sluice_core::Event;
use sluice_core::component::TransformOutput;
use sluice_source_onepassword::Stream;
use sluice_topology::TransformPiece;
use sluice_topology::config::{ConfigError, Diagnostic, load_files};
use sluice_topology::diff::json_diff;
use sluice_transform_vrl::condition::Condition;
use sluice_transform_vrl::transform::metadata_of;

use crate::error::{CliError, CliResult};
use crate::plan::plan;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestSpec {
    /// What the test shows.
    name: String,
    /// Events to insert.
    inputs: Vec<TestInput>,
    /// What must come out.
    #[serde(default)]
    outputs: Vec<TestOutput>,
    /// Outputs that must stay empty (e.g. `ecs.dropped`).
    #[serde(default)]
    no_outputs_from: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestInput {
    /// The transform that receives the event.
    insert_at: String,
    /// The dataset the event belongs to (`1password.audit_events`).
    dataset: Option<String>,
    /// A 1Password stream: the same as `dataset: 1password.<stream>`.
    stream: Option<Stream>,
    /// The raw item as YAML/JSON, or `raw` as its exact text.
    value: Option<serde_json::Value>,
    raw: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestOutput {
    /// `transform` or `transform.dropped`.
    extract_from: String,
    /// VRL programs that must return true for every extracted event.
    #[serde(default)]
    conditions: Vec<ConditionSpec>,
    /// The one extracted event, exactly (field by field).
    expected: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionSpec {
    #[serde(rename = "type")]
    kind: ConditionKind,
    source: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ConditionKind {
    Vrl,
}

pub fn run(configs: &[PathBuf]) -> CliResult {
    let mut raw = load_files(configs);
    let tests = std::mem::take(&mut raw.tests);
    let mut plan = plan(raw, crate::plan::Files::Skip)?;
    let mut specs = Vec::new();
    let mut problems = Vec::new();
    for (test, location) in tests {
        match serde_yaml_ng::from_value::<TestSpec>(test) {
            Ok(spec) => specs.push(spec),
            Err(err) => problems.push(Diagnostic::at(location, format!("tests: {err}"))),
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError::new(problems).into());
    }
    if specs.is_empty() {
        return Err(CliError::usage("no tests: the config has no `tests:` entries"));
    }
    println!("running {} test{}", specs.len(), if specs.len() == 1 { "" } else { "s" });
    let mut failed = 0;
    for spec in &specs {
        let failures = run_test(spec, &mut plan.transforms);
        if failures.is_empty() {
            println!("test {} ... ok", spec.name);
        } else {
            failed += 1;
            println!("test {} ... FAILED", spec.name);
            for failure in failures {
                for line in failure.lines() {
                    println!("    {line}");
                }
            }
        }
    }
    println!("\n{} passed, {failed} failed", specs.len() - failed);
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn input_event(input: &TestInput) -> Result<Event, String> {
    let text = match (&input.raw, &input.value) {
        (Some(raw), None) => raw.clone(),
        (None, Some(value)) => value.to_string(),
        _ => return Err("an input needs exactly one of `value` or `raw`".into()),
    };
    let mut event = Event::from_json(bytes::Bytes::from(text))
        .map_err(|e| format!("the input is not JSON: {e}"))?;
    event.meta.dataset = match (&input.dataset, input.stream) {
        (Some(_), Some(_)) => return Err("an input takes `dataset` or `stream`, not both".into()),
        (Some(dataset), None) => Some(dataset.as_str().into()),
        (None, Some(stream)) => Some(stream.dataset().into()),
        (None, None) => None,
    };
    event.meta.source_id = Some("test".into());
    Ok(event)
}

/// Run one test; its failures, empty when it passes.
fn run_test(spec: &TestSpec, transforms: &mut [TransformPiece]) -> Vec<String> {
    let mut failures = Vec::new();
    let outputs = run_inputs(spec, transforms, &mut failures);
    for expected in &spec.outputs {
        let events = outputs.get(&expected.extract_from).map(Vec::as_slice).unwrap_or_default();
        if events.is_empty() {
            failures.push(format!(
                "output {}: no event came out{}",
                expected.extract_from,
                describe(&outputs)
            ));
            continue;
        }
        check_output(expected, events, &mut failures);
    }
    for name in &spec.no_outputs_from {
        if let Some(events) = outputs.get(name).filter(|e| !e.is_empty()) {
            let first = serde_json::to_string(&events[0].value).unwrap_or_default();
            failures.push(format!(
                "output {name}: expected no event, {} came out, the first: {first}",
                events.len()
            ));
        }
    }
    failures
}

/// Insert the test's inputs and run them through the transforms (and those
/// downstream); what came out of each output.
fn run_inputs(
    spec: &TestSpec,
    transforms: &mut [TransformPiece],
    failures: &mut Vec<String>,
) -> BTreeMap<String, Vec<Event>> {
    let mut queue: VecDeque<(String, Event)> = VecDeque::new();
    for input in &spec.inputs {
        if !transforms.iter().any(|t| t.id == input.insert_at) {
            failures.push(format!(
                "insert_at: `{}` is not a transform of this config",
                input.insert_at
            ));
            continue;
        }
        match input_event(input) {
            Ok(event) => queue.push_back((input.insert_at.clone(), event)),
            Err(message) => failures.push(message),
        }
    }
    let mut outputs: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    while let Some((id, event)) = queue.pop_front() {
        let Some(piece) = transforms.iter_mut().find(|t| t.id == id) else { continue };
        let mut out = TransformOutput::default();
        piece.transform.transform(event, &mut out);
        let (emitted, failed) = out.take_for_test();
        let produced = emitted
            .into_iter()
            .map(|e| (id.clone(), e))
            .chain(failed.into_iter().map(|e| (format!("{id}.dropped"), e)));
        for (name, event) in produced.collect::<Vec<_>>() {
            for downstream in transforms.iter().filter(|t| t.inputs.contains(&name)) {
                queue.push_back((downstream.id.clone(), event.clone()));
            }
            outputs.entry(name).or_default().push(event);
        }
    }
    outputs
}

/// One expected output's conditions and document, held against `events`.
fn check_output(expected: &TestOutput, events: &[Event], failures: &mut Vec<String>) {
    for (index, condition) in expected.conditions.iter().enumerate() {
        let ConditionKind::Vrl = condition.kind;
        match Condition::compile(&condition.source) {
            Err(rendered) => failures.push(format!(
                "output {}: condition {} does not compile:\n{rendered}",
                expected.extract_from,
                index + 1
            )),
            Ok(compiled) => {
                for event in events {
                    if let Err(reason) = compiled.check(&event.value, metadata_of(&event.meta)) {
                        failures.push(format!(
                            "output {}: condition {} failed: {reason}",
                            expected.extract_from,
                            index + 1
                        ));
                    }
                }
            }
        }
    }
    let Some(document) = &expected.expected else { return };
    if events.len() != 1 {
        failures.push(format!(
            "output {}: `expected` needs exactly one event, {} came out",
            expected.extract_from,
            events.len()
        ));
        return;
    }
    let actual = serde_json::to_value(&events[0].value).unwrap_or_default();
    let differences = json_diff(document, &actual);
    if !differences.is_empty() {
        failures.push(format!(
            "output {}: the document differs:\n{}",
            expected.extract_from,
            differences.join("\n")
        ));
    }
}

fn describe(outputs: &BTreeMap<String, Vec<Event>>) -> String {
    if outputs.is_empty() {
        return String::new();
    }
    let seen: Vec<String> =
        outputs.iter().map(|(name, events)| format!("{name} ({})", events.len())).collect();
    format!(" (events came out of: {})", seen.join(", "))
}

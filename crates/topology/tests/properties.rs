//! Property tests: what operators write and what the outside world sends
//! must never panic. Arbitrary text and arbitrary YAML documents (built
//! from the config's own vocabulary, with `${VAR}` references whose values
//! are arbitrary too) go through the loader, the graph check and the error
//! rendering; arbitrary bytes go through the event parser. A bounded number
//! of cases runs in every `cargo test`.

use std::path::Path;

use proptest::prelude::*;
use serde_yaml_ng::{Mapping, Value};
use sluice_core::Event;
use sluice_topology::config::load_str;
use sluice_topology::{Node, check};

const CASES: u32 = 256;

/// Keys a config uses, plus a few it does not.
const KEYS: &[&str] = &[
    "data_dir",
    "api",
    "sources",
    "transforms",
    "sinks",
    "tests",
    "type",
    "inputs",
    "path",
    "token",
    "token_file",
    "url",
    "endpoints",
    "batch",
    "max_events",
    "source",
    "file",
    "address",
    "enabled",
    "op",
    "ecs",
    "out",
    "dropped",
    "ecs.dropped",
    "insert_at",
    "value",
    "outputs",
    "extract_from",
    "conditions",
    "name",
    "stream",
    "mode",
    "api_key",
    "password",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<f64>().prop_map(|f| Value::Number(f.into())),
        prop::sample::select(KEYS).prop_map(|k| Value::String(k.to_owned())),
        "\\PC{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("${A}"),
            Just("${B:-x}"),
            Just("$${A}"),
            Just("${"),
            Just("${A"),
            Just("$"),
            Just("pre ${A} post"),
            Just("${1BAD}"),
            Just("${A:-}"),
            Just("${UNSET}"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ]
}

fn document() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Sequence),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|pairs| {
                let mut map = Mapping::new();
                for (key, value) in pairs {
                    map.insert(Value::String(key.to_owned()), value);
                }
                Value::Mapping(map)
            }),
        ]
    })
}

/// Values a variable may hold: anything, including line breaks and YAML.
fn variable() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some(String::new())),
        Just(Some("0x1F".to_owned())),
        Just(Some("1e400".to_owned())),
        Just(Some("[a, b]".to_owned())),
        Just(Some("a\nb".to_owned())),
        "\\PC{0,16}".prop_map(Some),
    ]
}

/// Load `text` with `A` and `B` set to the given values, check the graph of
/// what loaded, and render every diagnostic.
fn exercise(text: &str, a: Option<String>, b: Option<String>) {
    let lookup = move |name: &str| match name {
        "A" => a.clone(),
        "B" => b.clone(),
        _ => None,
    };
    let raw = load_str(Path::new("conf/p.yaml"), text, &lookup);
    let nodes: Vec<Node> = raw
        .components
        .iter()
        .map(|c| Node {
            id: c.id.clone(),
            kind: c.kind,
            inputs: c.inputs.clone(),
            outputs: Some(vec!["dropped".to_owned()]),
            location: c.location.clone(),
        })
        .collect();
    let graph = check(&nodes);
    for diagnostic in graph.errors.iter().chain(&graph.warnings).chain(&raw.errors) {
        let _ = diagnostic.to_string();
    }
    for component in &raw.components {
        let _ = component.deserialize::<serde_yaml_ng::Value>();
        let _ = component.deserialize::<std::collections::BTreeMap<String, u64>>();
    }
    if let Err(error) = raw.check() {
        assert!(!error.to_string().is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn any_text_loads_or_is_refused_without_a_panic(text in "\\PC{0,300}", a in variable(), b in variable()) {
        exercise(&text, a, b);
    }

    #[test]
    fn any_yaml_document_loads_or_is_refused_without_a_panic(doc in document(), a in variable(), b in variable()) {
        let text = serde_yaml_ng::to_string(&doc).expect("a document serializes");
        exercise(&text, a, b);
    }

    #[test]
    fn any_bytes_parse_as_an_event_or_fail_without_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(event) = Event::from_json(bytes::Bytes::from(bytes)) {
            let mut out = Vec::new();
            event.write_json(&mut out);
        }
    }

    #[test]
    fn any_json_text_parses_as_an_event_or_fails_without_a_panic(text in r#"[\[\]{}",:0-9eE.+\-a-z\\ ]{0,80}"#) {
        let _ = Event::from_json(bytes::Bytes::from(text));
    }
}

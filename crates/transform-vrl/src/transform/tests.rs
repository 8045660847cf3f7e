use std::path::Path;

use sluice_core::Event;
use sluice_core::component::TransformOutput;

use super::*;
use crate::config::VrlTransformConfig;

fn transform(source: &str) -> VrlTransform {
    let config = VrlTransformConfig {
        source: Some(source.into()),
        file: None,
        files: None,
        geoip: Default::default(),
        event_budget_ms: 50,
        concurrency: None,
    };
    config.validate(Path::new("."), "t").expect("compiles")
}

fn event(json: &str, dataset: &str) -> Event {
    let mut event = Event::from_json(bytes::Bytes::copy_from_slice(json.as_bytes())).expect("json");
    event.meta.dataset = Some(dataset.into());
    event
}

fn json(value: &Value) -> serde_json::Value {
    serde_json::to_value(value).expect("json")
}

#[test]
fn metadata_reaches_the_program() {
    let mut t = transform(
        ".dataset = %sluice.dataset\n.stream = %sluice.stream\n.original = %sluice.original",
    );
    let mut out = TransformOutput::default();
    t.transform(event(r#"{"a":1}"#, "1password.audit_events"), &mut out);
    t.transform(event(r#"{"a":2}"#, "okta.system"), &mut out);
    let (events, _) = out.take_for_test();
    assert_eq!(
        json(&events[0].value),
        serde_json::json!({"a": 1, "dataset": "1password.audit_events", "stream": "audit_events", "original": "{\"a\":1}"})
    );
    assert_eq!(
        (&json(&events[1].value)["dataset"], &json(&events[1].value)["stream"]),
        (&"okta.system".into(), &"system".into())
    );
}

#[test]
fn each_event_sees_its_own_metadata_whatever_the_last_one_did_to_it() {
    // The transform refills one metadata value per event: what the program
    // wrote to it, and what the last event had, must not carry over.
    let mut t = transform(".before = %\n%sluice.stream = \"changed\"\n%other = 1");
    let mut out = TransformOutput::default();
    t.transform(event(r#"{"a":1}"#, "1password.audit_events"), &mut out);
    let mut second = Event::new(Value::from(serde_json::json!({"b": 2})));
    second.meta.source_id = Some("op".into());
    t.transform(second, &mut out);
    t.transform(event(r#"{"c":3}"#, "1password.item_usages"), &mut out);
    let (events, failed) = out.take_for_test();
    assert!(failed.is_empty());
    let before: Vec<_> = events.iter().map(|e| json(&e.value)["before"].clone()).collect();
    assert_eq!(
        before,
        [
            serde_json::json!({"sluice": {"dataset": "1password.audit_events", "stream": "audit_events", "original": "{\"a\":1}"}}),
            serde_json::json!({"sluice": {"source_id": "op"}}),
            serde_json::json!({"sluice": {"dataset": "1password.item_usages", "stream": "item_usages", "original": "{\"c\":3}"}}),
        ]
    );
}

#[test]
fn errors_and_aborts_become_pipeline_error_documents() {
    let mut t = transform("if .n == 2 { abort \"two is not allowed\" }\n.x = to_int!(.s)");
    let mut out = TransformOutput::default();
    t.transform(event(r#"{"n":1,"s":"5"}"#, "1password.item_usages"), &mut out);
    t.transform(event(r#"{"n":2,"s":"5"}"#, "1password.item_usages"), &mut out);
    t.transform(event(r#"{"n":3,"s":"five"}"#, "1password.item_usages"), &mut out);
    let (ok, failed) = out.take_for_test();
    assert_eq!(json(&ok[0].value)["x"], 5);
    assert_eq!(failed.len(), 2);
    let abort = json(&failed[0].value);
    assert_eq!(abort["event"]["kind"], "pipeline_error");
    assert_eq!(abort["event"]["original"], "{\"n\":2,\"s\":\"5\"}");
    assert_eq!(abort["event"]["dataset"], "1password.item_usages");
    assert_eq!(abort["error"]["type"], "vrl_abort");
    assert!(
        abort["error"]["message"][0].as_str().expect("message").contains("two is not allowed"),
        "{abort}"
    );
    assert_eq!(abort["sluice"]["component_id"], "t");
    let error = json(&failed[1].value);
    assert_eq!(error["error"]["type"], "vrl_error");
    assert!(error["error"]["message"][0].as_str().expect("message").contains("five"), "{error}");
}

#[test]
fn a_program_past_its_budget_is_interrupted() {
    let config = VrlTransformConfig {
        source: Some("x = 0\nfor_each(range!(0, 100000)) -> |_i, _v| { for_each(range!(0, 100000)) -> |_j, w| { x = x + w } }\n.x = x".into()),
        file: None,
        files: None,
        geoip: Default::default(),
        event_budget_ms: 5,
    concurrency: None,
    };
    let mut t = config.validate(Path::new("."), "slow").expect("compiles");
    let mut out = TransformOutput::default();
    let started = Instant::now();
    t.transform(event(r#"{"a":1}"#, "1password.audit_events"), &mut out);
    assert!(started.elapsed() < Duration::from_secs(2), "stopped early: {:?}", started.elapsed());
    let (ok, failed) = out.take_for_test();
    assert!(ok.is_empty());
    assert_eq!(json(&failed[0].value)["error"]["type"], "vrl_budget", "{}", json(&failed[0].value));
}

/// Review M5 (reliability 2026-12): a few statements that each double a
/// string passed 3 GiB before the budget was ever looked at. Forty
/// doublings of 1 KiB would be a terabyte: the budget stops it long before.
#[test]
fn a_program_that_allocates_in_few_statements_is_stopped_by_its_budget() {
    let program =
        format!("s = \"{}\"\n{}.n = strlen(s)", "x".repeat(1024), "s = s + s\n".repeat(40));
    let config = VrlTransformConfig {
        source: Some(program),
        file: None,
        files: None,
        geoip: Default::default(),
        event_budget_ms: 20,
        concurrency: None,
    };
    let mut t = config.validate(Path::new("."), "greedy").expect("compiles");
    let mut out = TransformOutput::default();
    t.transform(event(r#"{"a":1}"#, "1password.audit_events"), &mut out);
    let (ok, failed) = out.take_for_test();
    assert!(ok.is_empty());
    assert_eq!(json(&failed[0].value)["error"]["type"], "vrl_budget", "{}", json(&failed[0].value));
}

#[test]
fn a_compile_error_renders_the_diagnostic_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bad.vrl"), ".a = 1\n.b = no_such_function(.c)\n")
        .expect("write");
    let config = VrlTransformConfig {
        source: None,
        file: Some("bad.vrl".into()),
        files: None,
        geoip: Default::default(),
        event_budget_ms: 50,
        concurrency: None,
    };
    let errors = config.validate(dir.path(), "t").expect_err("syntax error");
    let message = &errors[0].message;
    assert_eq!(errors[0].field, Some("file"));
    assert!(
        message.starts_with(&format!(
            "the VRL program in {} does not compile:",
            dir.path().join("bad.vrl").display()
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!("┌─ {}:2:6", dir.path().join("bad.vrl").display())),
        "{message}"
    );
    assert!(message.contains("2 │ .b = no_such_function(.c)"), "{message}");
}

#[test]
fn an_event_that_failed_upstream_is_passed_on_with_its_own_error() {
    // A file source's invalid line: mapping it would say "no timestamp"
    // and lose "invalid JSON".
    let mut t = transform(".mapped = true");
    let mut out = TransformOutput::default();
    let failed = r#"{"event":{"kind":"pipeline_error"},"message":"{not json","error":{"message":"invalid JSON: key must be a string"}}"#;
    t.transform(event(failed, "1password.item_usages"), &mut out);
    t.transform(event(r#"{"event":{"kind":"event"}}"#, "1password.item_usages"), &mut out);
    let (ok, failed_out) = out.take_for_test();
    assert_eq!(failed_out.len(), 1);
    let passed = json(&failed_out[0].value);
    assert_eq!(passed["error"]["message"], "invalid JSON: key must be a string");
    assert!(passed.get("mapped").is_none(), "not run through the program");
    assert_eq!(ok.len(), 1);
    assert_eq!(json(&ok[0].value)["mapped"], true);
}

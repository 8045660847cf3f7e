use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::*;
use crate::config::ConfigError;

fn env(name: &str) -> Option<String> {
    (name == "OUT").then(|| "/tmp/out".to_owned())
}

fn load(text: &str) -> Result<RawConfig, ConfigError> {
    load_str(Path::new("conf/a.yaml"), text, &env).check()
}

fn messages(err: ConfigError) -> Vec<String> {
    err.diagnostics.iter().map(ToString::to_string).collect()
}

#[test]
fn a_yaml_syntax_error_names_file_and_line() {
    let err = load("sources:\n  in:\n    type: file\n   bad: [\n").expect_err("syntax");
    let lines = messages(err);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("conf/a.yaml:4:"), "{lines:?}");
    assert!(lines[0].contains("invalid YAML"), "{lines:?}");
}

#[test]
fn every_problem_is_collected_with_its_position() {
    let text = "\
data_dir: ./data
colour: blue
sources:
  in:
    type: file
    path: ${MISSING}
sinks:
  out:
    type: file
    path: ${OUT}/x.ndjson
  nowhere:
    type: blackhole
  bad.id:
    type: blackhole
    inputs: [in]
";
    let lines = messages(load(text).expect_err("invalid"));
    assert_eq!(
        lines,
        [
            "conf/a.yaml:2:1: unknown top-level key `colour`, expected one of data_dir, api, buffer, sources, transforms, sinks, tests",
            "conf/a.yaml:6:5: component in: environment variable MISSING is not set (write ${MISSING:-default} to give a default)",
            "conf/a.yaml:8:3: component out: a sink needs `inputs`",
            "conf/a.yaml:11:3: component nowhere: a sink needs `inputs`",
            "conf/a.yaml:13:3: component bad.id: component id `bad.id` may contain only letters, digits, `_` and `-` (`.` names an output)",
        ]
    );
}

#[test]
fn files_merge_and_ids_must_be_unique() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.yaml");
    let b = dir.path().join("sub/b.yaml");
    std::fs::create_dir_all(b.parent().expect("parent")).expect("mkdir");
    std::fs::write(&a, "data_dir: state\nsources:\n  in: {type: file, path: x}\n").expect("write");
    std::fs::write(
        &b,
        "sinks:\n  out: {type: blackhole, inputs: [in]}\n  in: {type: blackhole, inputs: [out]}\n",
    )
    .expect("write");
    let err = load_files_with(&[a.clone(), b.clone()], &env).check().expect_err("duplicate");
    let lines = messages(err);
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0],
        format!(
            "{}:3:3: component in: component id `in` is already used at {}:3:3",
            b.display(),
            a.display()
        )
    );

    std::fs::write(&b, "sinks:\n  out: {type: blackhole, inputs: [in]}\n").expect("write");
    let config = load_files_with(&[a, b], &env).check().expect("valid");
    assert_eq!(config.data_dir, Some(dir.path().join("state")));
    let ids: Vec<_> = config.components.iter().map(|c| (c.id.as_str(), c.kind)).collect();
    assert_eq!(ids, [("in", ComponentKind::Source), ("out", ComponentKind::Sink)]);
    assert_eq!(config.components[1].dir(), dir.path().join("sub"));
    assert_eq!(config.components[1].inputs[0].name, "in");
}

#[test]
fn vrl_programs_are_never_interpolated() {
    let text = "\
transforms:
  ecs:
    type: vrl
    inputs: [in]
    source: '.x = replace(.y, r''(a)'', \"$$1 ${NOT_A_VAR}\")'
    note: 'costs $$5'
";
    let config = load(text).expect("valid");
    let body = &config.components[0].body;
    assert_eq!(body["source"].as_str(), Some(".x = replace(.y, r'(a)', \"$$1 ${NOT_A_VAR}\")"));
    assert_eq!(body["note"].as_str(), Some("costs $5"));
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
#[serde(tag = "type", rename_all = "snake_case")]
enum TestSink {
    File(TestFile),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct TestFile {
    path: PathBuf,
    #[serde(default)]
    mode: Option<Mode>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Mode {
    Once,
}

#[test]
fn deserialize_errors_point_at_the_offending_key() {
    let text = "sinks:\n  out:\n    type: file\n    inputs: [in]\n    path: x\n    pth: y\n";
    let config = load(text).expect("loads");
    let err = config.components[0].deserialize::<TestSink>().expect_err("unknown field");
    assert!(
        err.to_string().starts_with("conf/a.yaml:6:5: component out: unknown field `pth`"),
        "{err}"
    );

    let text = "sinks:\n  out:\n    type: fiel\n    inputs: [in]\n";
    let config = load(text).expect("loads");
    let err = config.components[0].deserialize::<TestSink>().expect_err("unknown type");
    assert!(
        err.to_string().starts_with("conf/a.yaml:3:5: component out: unknown value `fiel`"),
        "{err}"
    );

    let text = "sinks:\n  out:\n    type: file\n    inputs: [in]\n    path: x\n    mode: twice\n";
    let config = load(text).expect("loads");
    let err = config.components[0].deserialize::<TestSink>().expect_err("unknown mode");
    assert!(
        err.to_string().starts_with("conf/a.yaml:6:5: component out: unknown value `twice`"),
        "{err}"
    );
}

#[test]
fn api_and_empty_files() {
    let config = load("").expect("empty is valid");
    assert_eq!(config.api, ApiConfig::default());
    let config = load("api:\n  address: 0.0.0.0:9600\n").expect("valid");
    assert_eq!(config.api.address.port(), 9600);
    let lines = messages(load("api:\n  adress: x\n").expect_err("typo"));
    assert!(lines[0].starts_with("conf/a.yaml:1:1: api: unknown field `adress`"), "{lines:?}");
}

#[test]
fn sources_take_no_inputs_and_inputs_must_be_names() {
    let text = "sources:\n  a: {type: file, inputs: [b]}\nsinks:\n  s: {type: blackhole, inputs: [a, a, 3]}\n";
    let lines = messages(load(text).expect_err("invalid"));
    assert_eq!(
        lines,
        [
            "conf/a.yaml:2:19: component a: a source takes no inputs",
            "conf/a.yaml:4:36: component s: input `a` is listed twice",
            "conf/a.yaml:4:39: component s: an input must be a component id",
        ]
    );
}

#[test]
fn an_unset_secret_is_not_given_a_default() {
    let text =
        "sources:\n  op:\n    type: onepassword\n    token: ${NO_TOKEN}\n    url: ${NO_URL}\n";
    let lines = messages(load(text).expect_err("unset"));
    assert_eq!(
        lines,
        [
            "conf/a.yaml:4:5: component op: environment variable NO_TOKEN is not set (export it, or give the token in a file with `token_file`)",
            "conf/a.yaml:5:5: component op: environment variable NO_URL is not set (write ${NO_URL:-default} to give a default)",
        ]
    );
}

/// Review L7 (reliability 2026-12): a file nested 100,000 deep took 40 s to
/// refuse; it is refused in one pass, at the bracket that goes too deep.
#[test]
fn deeply_nested_yaml_is_refused_at_once() {
    let text = format!("sources: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    // Found by the one-pass scan (the parser's own error would say "recursion limit").
    let lines = messages(load(&text).expect_err("too deep"));
    assert_eq!(
        lines,
        [format!(
            "conf/a.yaml:1:{}: invalid YAML: brackets nest more than 128 levels deep",
            10 + 128
        )]
    );
    // Brackets in quotes, comments and a block scalar's balanced text do not count.
    let fine = format!(
        "data_dir: '{}'\n# {}\ntransforms:\n  t:\n    source: |\n      .a = [[[1]]]\n      .b = \"{}\"\n",
        "[".repeat(300),
        "{".repeat(300),
        "[".repeat(300)
    );
    assert!(too_deep(&fine).is_none());
}

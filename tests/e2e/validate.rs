//! `sluice validate`: exit codes and positioned, collected errors.

use super::util::{have, repo, run};

fn validate(text: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("sluice.yaml"), text).expect("write");
    let mut command = super::util::sluice();
    command.arg("validate").arg("sluice.yaml").current_dir(dir.path());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("runs");
    (
        output.status.code().expect("exit code"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_yaml_syntax_error_exits_2_with_file_and_line() {
    let (code, _, stderr) = validate("sources:\n  in:\n    type: file\n  - oops\n", &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("sluice.yaml:4:3: invalid YAML"), "{stderr}");
}

#[test]
fn four_kinds_of_error_are_reported_in_one_run() {
    let text = "\
sources:
  in:
    type: file
    path: ${SLUICE_TEST_UNSET_VARIABLE}
    stream: item_usages
    colour: blue
transforms:
  a:
    type: vrl
    inputs: [in, b]
  b:
    type: vrl
    inputs: [a]
sinks:
  out:
    type: console
    inputs: [b, nowhere]
";
    let (code, stdout, stderr) = validate(text, &[]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    for expected in [
        "sluice.yaml:4:5: component in: environment variable SLUICE_TEST_UNSET_VARIABLE is not set",
        "sluice.yaml:6:5: component in: unknown field `colour`",
        "sluice.yaml:8:3: component a: the graph has a cycle: a -> b -> a",
        "sluice.yaml:17:17: component out: input `nowhere` does not exist",
    ] {
        assert!(stderr.contains(expected), "missing `{expected}` in:\n{stderr}");
    }
}

#[test]
fn a_valid_config_exits_0_and_variables_are_substituted() {
    let text = "\
sources:
  in: {type: file, path: '${INPUT}', stream: audit_events}
sinks:
  out: {type: blackhole, inputs: [in]}
  dlq: {type: file, path: '${OUT:-dead.ndjson}', inputs: [in.dropped]}
";
    let (code, stdout, stderr) = validate(text, &[("INPUT", "events.ndjson")]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "valid: 1 source(s), 0 transform(s), 2 sink(s)\n");
}

#[test]
fn an_unconsumed_output_is_a_warning_not_an_error() {
    let text = "sources:\n  in: {type: file, path: x, stream: audit_events}\n  other: {type: file, path: y, stream: audit_events}\nsinks:\n  out: {type: blackhole, inputs: [in]}\n";
    let (code, _, stderr) = validate(text, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("output `other` is not consumed by any component"), "{stderr}");
    // An unread `.dropped` port is no warning: its events go down the default output.
    assert!(!stderr.contains("in.dropped"), "{stderr}");
}

#[test]
fn a_missing_file_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run(&["validate", "nope.yaml"], dir.path());
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("nope.yaml: cannot read"));
}

#[test]
fn every_shipped_pipeline_validates() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo().join("pipelines")).expect("pipelines/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            // The token files they name are the user's (tests/e2e/operator.rs
            // covers reading them).
            let output = run(&["validate", "--skip-files", path.to_str().expect("utf-8")], &repo());
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(0), "{}: {stderr}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 1, "no pipeline found");
}

#[test]
fn an_absurd_shutdown_timeout_is_a_usage_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run(&["run", "--shutdown-timeout", "18446744073709551615", "x.yaml"], dir.path());
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is longer than a day"));
}

#[test]
fn help_documents_every_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let help = String::from_utf8(run(&["run", "--help"], dir.path()).stdout).expect("utf-8");
    for flag in ["--shutdown-timeout", "--log-format", "RUST_LOG"] {
        assert!(help.contains(flag), "`run --help` lacks {flag}:\n{help}");
    }
    let version = String::from_utf8(run(&["--version"], dir.path()).stdout).expect("utf-8");
    assert_eq!(version.trim(), format!("sluice {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "sources:\n  in: {type: file, path: x, stream: audit_events}\n  other: {type: file, path: y, stream: audit_events}\nsinks:\n  out: {type: blackhole, inputs: [in]}\n";
    std::fs::write(dir.path().join("sluice.yaml"), text).expect("write");
    let output = run(&["validate", "--log-format", "json", "sluice.yaml"], dir.path());
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8(output.stderr).expect("utf-8");
    let line = stderr.lines().next().expect("a warning is logged");
    let record: serde_json::Value = serde_json::from_str(line).expect("JSON log line");
    assert_eq!(record["level"], "WARN");
    assert!(record["message"].as_str().expect("message").contains("output `other`"), "{record}");
}

/// docker-compose.yml is valid Compose (checked offline, without an engine).
/// `.ci/run` installs docker-compose and makes the check required.
#[test]
fn docker_compose_file_is_valid() {
    if !have(
        "docker-compose",
        &["version"],
        "SLUICE_REQUIRE_DOCKER_COMPOSE",
        "apt-get install docker-compose",
    ) {
        return;
    }
    let output = std::process::Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config", "-q"])
        .current_dir(repo())
        .output()
        .expect("docker-compose runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let compose = std::fs::read_to_string(repo().join("docker-compose.yml")).expect("compose");
    for service in [
        "simulator:",
        "elasticsearch:",
        "kibana:",
        "sluice:",
        "prometheus:",
        "splunk:",
        "sluice-splunk:",
        "setup:",
        "grafana:",
    ] {
        assert!(compose.contains(service), "{service}");
    }
    assert!(!compose.lines().any(|l| l.starts_with("version:")), "the obsolete `version:` key");
    assert!(
        compose.contains("SPLUNK_GENERAL_TERMS=--accept-sgt-current-at-splunk-com"),
        "Splunk images from 9.4 on do not start without it"
    );
    assert!(
        compose.contains("SPLUNK_PASSWORD=${SPLUNK_PASSWORD:-"),
        "the header says it can be set"
    );
    assert!(
        compose
            .contains("./docker/splunk/sluice_onepassword:/opt/splunk/etc/apps/sluice_onepassword"),
        "the add-on's index macros and CIM tags"
    );
    assert!(compose.contains("/etc/sluice/elasticsearch.yaml"), "runs the shipped pipeline");
    assert!(compose.contains("/etc/sluice/splunk.yaml"), "runs the shipped Splunk pipeline");
    let published: Vec<&str> = compose
        .lines()
        .filter(|l| {
            l.trim_start().starts_with("- \"")
                && l.contains(':')
                && l.matches(':').count() >= 2
                && l.trim_start()[3..].starts_with(|c: char| c.is_ascii_digit())
        })
        .collect();
    assert!(!published.is_empty());
    for port in published {
        assert!(port.contains("\"127.0.0.1:"), "published on every interface: {port}");
    }
    // One `up` runs the whole stack; Splunk's HEC token app is mounted.
    let output = std::process::Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config", "--services"])
        .current_dir(repo())
        .output()
        .expect("docker-compose runs");
    let services = String::from_utf8_lossy(&output.stdout);
    for service in ["sluice", "sluice-splunk", "setup", "kibana", "grafana", "prometheus"] {
        assert!(services.lines().any(|s| s == service), "the stack lacks {service}: {services}");
    }
    // What the compose file mounts from the repository exists.
    for path in [
        "docker/elastic/setup.sh",
        "docker/splunk/sluice_onepassword/default/macros.conf",
        "deploy/prometheus/sluice-alerts.yml",
        "deploy/grafana/provisioning/datasources/prometheus.yml",
        "deploy/grafana/provisioning/dashboards/sluice.yml",
        "deploy/grafana/dashboards/sluice.json",
    ] {
        let mounted = compose
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- ./"))
            .any(|mount| path.starts_with(mount.split(':').next().unwrap_or_default()));
        assert!(mounted, "{path} is not mounted");
        assert!(repo().join(path).exists(), "{path}");
    }
    let syntax = std::process::Command::new("bash")
        .args(["-n", "docker/elastic/setup.sh", "deploy/kubernetes/add-account.sh"])
        .current_dir(repo())
        .output()
        .expect("bash");
    assert!(syntax.status.success(), "{}", String::from_utf8_lossy(&syntax.stderr));
    let prometheus =
        std::fs::read_to_string(repo().join("docker/prometheus.yml")).expect("prometheus.yml");
    assert!(prometheus.contains("/etc/prometheus/sluice-alerts.yml"), "the rules are loaded");
    let inputs = std::fs::read_to_string(repo().join("docker/splunk/sluice_hec/local/inputs.conf"))
        .expect("inputs.conf");
    let token = std::fs::read_to_string(repo().join("docker/splunk/secrets/splunk_hec_token"))
        .expect("token");
    assert!(
        inputs.contains(&format!("token = {}", token.trim())) && inputs.contains("useACK = true")
    );
    // The two tiers: an edge and an aggregator sharing one forward token.
    let output = std::process::Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "--profile", "tiers", "config", "--services"])
        .current_dir(repo())
        .output()
        .expect("docker-compose runs");
    let services = String::from_utf8_lossy(&output.stdout);
    for service in ["sluice-edge", "sluice-aggregator", "elasticsearch", "splunk"] {
        assert!(services.lines().any(|s| s == service), "tiers lacks {service}: {services}");
    }
    assert!(
        compose.contains("/etc/sluice/edge.yaml")
            && compose.contains("/etc/sluice/aggregator.yaml")
    );
    assert!(compose.contains("SLUICE_AGGREGATOR_URL=http://sluice-aggregator:6000"));
    assert!(repo().join("docker/tiers/sluice_forward_token").is_file());
}

/// `validate --network` fails when a destination cannot be reached, naming
/// the component; `run` starts anyway and says so once.
#[test]
fn validate_network_fails_on_unreachable_destinations_and_run_starts_anyway() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = super::util::start_sim(dir.path(), 10, &["--no-rate-limit"]);
    let closed = super::util::free_port();
    let config = |op_port: u16, es_port: u16, api_port: u16| {
        format!(
            "data_dir: state\napi: {{address: '127.0.0.1:{api_port}'}}\nsources:\n  op: {{type: onepassword, url: 'http://127.0.0.1:{op_port}', allow_custom_url: true, token_file: op_token, start_time: 1d}}\nsinks:\n  es: {{type: elasticsearch, inputs: [op], endpoints: ['http://127.0.0.1:{es_port}'], mode: index, index: '1password-{{stream}}', request: {{timeout_secs: 2}}}}\n"
        )
    };
    std::fs::write(dir.path().join("down.yaml"), config(closed, closed, super::util::free_port()))
        .expect("config");
    let output = run(&["validate", "--network", "down.yaml"], dir.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("preflight failed (2 problems)"), "{stderr}");
    assert!(
        stderr.contains(&format!("component op: http://127.0.0.1:{closed} cannot be reached")),
        "{stderr}"
    );
    assert!(
        stderr.contains("component es: Elasticsearch cannot be reached: transport: cannot connect"),
        "{stderr}"
    );

    // The 1Password side up, Elasticsearch still down: validate names only es;
    // run starts, says so once, and keeps running.
    let api_port = super::util::free_port();
    std::fs::write(dir.path().join("es-down.yaml"), config(sim.port, closed, api_port))
        .expect("config");
    let output = run(&["validate", "--network", "es-down.yaml"], dir.path());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.contains("preflight failed (1 problem)") && text.contains("component es:"),
        "{text}"
    );
    assert!(!text.contains("component op:"), "{text}");
    let mut child = super::util::spawn(std::path::Path::new("es-down.yaml"), dir.path(), &[]);
    // Running, and /health names the sink once its requests keep failing.
    let unhealthy = super::util::wait_for(std::time::Duration::from_secs(60), || {
        super::util::http_get(api_port, "/health")
            .filter(|(status, body)| *status == 503 && body.contains("\"es\""))
    });
    // Its events wait for Elasticsearch, so a drain would time out: stop it hard.
    child.kill().expect("kill");
    child.wait().expect("reaped");
    let logs = super::util::stderr_of(&mut child);
    assert!(unhealthy.is_some(), "run starts with Elasticsearch down: {logs}");
    assert_eq!(logs.matches("component es: Elasticsearch cannot be reached").count(), 1, "{logs}");
    assert!(logs.contains("starting anyway"), "{logs}");
    assert!(
        logs.matches("sink unhealthy").count() <= 2,
        "the unhealthy reason is logged once, not every second: {logs}"
    );
}

#[test]
fn tls_verify_false_is_valid_but_warned_about_at_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = "sources:\n  in: {type: file, path: in.ndjson, stream: audit_events}\nsinks:\n  es:\n    type: elasticsearch\n    inputs: [in]\n    endpoints: ['https://es:9200']\n    tls: {verify: false}\n";
    std::fs::write(dir.path().join("sluice.yaml"), config).expect("config");
    let output = run(&["validate", "sluice.yaml"], dir.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("sluice.yaml:8:5: component es: tls.verify is false: the server's certificate is not checked"),
        "{stderr}"
    );
}

/// Review M1 (reliability 2026-12): a VRL program nested thousands of
/// levels deep overflowed the stack and aborted `validate` (and a running
/// pipeline on reload); it is a diagnostic with its position.
#[test]
fn a_vrl_program_nested_too_deeply_is_an_error_not_a_crash() {
    for program in [
        format!(".x = {}1{}", "(".repeat(3000), ")".repeat(3000)),
        format!(".x = 1{}", " + 1".repeat(20_000)),
        format!("{}.x = 1{}", "if true { ".repeat(2000), " }".repeat(2000)),
    ] {
        let text = format!(
            "sources:\n  in: {{type: file, path: in.ndjson, stream: audit_events}}\ntransforms:\n  t:\n    type: vrl\n    inputs: [in]\n    source: '{program}'\nsinks:\n  out: {{type: blackhole, inputs: [t]}}\n"
        );
        let (code, _, stderr) = validate(&text, &[]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("nests too deeply at 1:"), "{stderr}");
    }
}

/// `sluice graph` prints the demo's topology as DOT, with the shipped
/// pipelines' edges (a named output labels its edge), needing no secrets.
#[test]
fn graph_prints_the_topology_as_dot() {
    let demo = run(&["graph", "pipelines/demo.yaml"], &repo());
    assert!(demo.status.success(), "{}", String::from_utf8_lossy(&demo.stderr));
    let dot = String::from_utf8_lossy(&demo.stdout);
    assert!(dot.starts_with("digraph {\n") && dot.trim_end().ends_with('}'), "{dot}");
    for line in [
        r#""op" [shape="trapezium" comment="onepassword"]"#,
        r#""people" [shape="trapezium" comment="onepassword_users"]"#,
        r#""ecs" [shape="diamond" comment="vrl"]"#,
        r#""console" [shape="invtrapezium" comment="console"]"#,
        r#""op" -> "ecs""#,
        r#""people" -> "ecs""#,
        r#""ecs" -> "console""#,
    ] {
        assert!(dot.lines().any(|l| l.trim() == line), "no {line} in {dot}");
    }
    assert_eq!(dot.matches("->").count(), 3, "{dot}");
    let aggregator = run(&["graph", "pipelines/aggregator.yaml"], &repo());
    let dot = String::from_utf8_lossy(&aggregator.stdout);
    assert!(dot.contains(r#""ecs" -> "mapping_failures" [label="dropped"]"#), "{dot}");
    // A config with an error is refused as validate refuses it.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.yaml"),
        "sinks:\n  out: {type: console, inputs: [nowhere]}\n",
    )
    .expect("write");
    let bad = run(&["graph", "bad.yaml"], dir.path());
    assert_eq!(bad.status.code(), Some(2), "{}", String::from_utf8_lossy(&bad.stderr));
}

/// `sluice list` names every component type with its settings, and a
/// reader that stops early (`| head`) is not a crash.
#[test]
fn list_names_every_component_type_and_its_settings() {
    let out = run(&["list"], &repo());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for kind in ["sources:", "transforms:", "sinks:"] {
        assert!(text.lines().any(|l| l == kind), "{text}");
    }
    assert!(text.contains("  elasticsearch "), "{text}");
    assert!(text.contains("settings: inputs, endpoints, auth"), "{text}");
    assert!(text.contains("settings: token, token_file, url"), "{text}");
    let mut child = super::util::sluice()
        .arg("list")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let status = child.wait().expect("wait");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(status.success(), "{stderr}");
}

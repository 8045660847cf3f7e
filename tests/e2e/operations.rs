//! What operators deploy beside sluice, checked against sluice itself: the
//! Prometheus alert rules (promtool, and a real Prometheus evaluating them on
//! a running sluice), the Grafana dashboard (every metric and label it
//! queries is exported), the Kubernetes manifests (rendered with kustomize
//! for three accounts and a fourth added by add-account.sh, validated
//! offline, their pipelines accepted by `sluice validate`).
//!
//! Tools: promtool and prometheus (Debian `prometheus`), kubectl (its
//! built-in kustomize) and the Python `kubernetes-validate`. `.ci/run`
//! installs them and sets SLUICE_REQUIRE_PROMETHEUS / SLUICE_REQUIRE_KUBERNETES;
//! elsewhere a missing tool skips its test with a printed notice.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use sluice_testkit::{EsEmulator, EsEmulatorConfig};

use super::elasticsearch::{holds_all, visible, write_config};
use super::util::{
    free_port, have, http_get, repo, signal, spawn, start_sim, stderr_of, wait_exit, wait_for,
};

pub(super) fn ok(output: &std::process::Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    text
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    if !have("promtool", &["--version"], "SLUICE_REQUIRE_PROMETHEUS", "apt-get install prometheus")
    {
        return;
    }
    let dir = repo().join("deploy/prometheus");
    for (command, said) in [
        ("check rules sluice-alerts.yml", "SUCCESS: 8 rules found"),
        ("test rules sluice-alerts.test.yml", "SUCCESS"),
    ] {
        let output = Command::new("promtool")
            .args(command.split(' '))
            .current_dir(&dir)
            .output()
            .expect("promtool");
        assert!(ok(&output).contains(said), "promtool {command}");
    }
}

/// Every PromQL expression of the dashboard and the rules.
fn queries() -> Vec<String> {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana/dashboards/sluice.json"))
            .expect("dashboard"),
    )
    .expect("dashboard JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    let rules: serde_json::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo().join("deploy/prometheus/sluice-alerts.yml"))
            .expect("rules"),
    )
    .expect("rules YAML");
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            exprs.push(rule["expr"].as_str().expect("expr").to_owned());
        }
    }
    assert!(exprs.len() > 20, "{exprs:?}");
    exprs
}

/// The metric names in `expr` (`sluice_*`) and the labels it groups by.
fn names_and_labels(expr: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let words = |text: &str| -> Vec<String> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let names = words(expr).into_iter().filter(|w| w.starts_with("sluice_")).collect();
    let mut labels = BTreeSet::new();
    for part in expr.split("by (").skip(1) {
        labels.extend(words(part.split(')').next().unwrap_or_default()));
    }
    (names, labels)
}

/// Dashboard variables replaced as Grafana does, for Prometheus's own API.
fn as_instant_query(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m").replace("$instance", ".*")
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn the_dashboard_and_the_alerts_query_only_metrics_a_running_sluice_exports() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let es = runtime.block_on(EsEmulator::start(EsEmulatorConfig::default()));
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), 200, &[]);
    let port = free_port();
    write_config(dir.path(), &sim, &es, port, "");
    let mut sluice = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    // Every stream delivered a page: the stream gauges and sink counters exist.
    let expected = visible(&sim);
    let metrics = wait_for(Duration::from_secs(120), || {
        http_get(port, "/metrics").map(|(_, body)| body).filter(|body| {
            holds_all(&es, &expected) && body.contains("sluice_onepassword_lag_seconds{")
        })
    });
    let Some(metrics) = metrics else {
        let (_, now) = http_get(port, "/metrics").unwrap_or_default();
        signal(&sluice, libc::SIGTERM);
        wait_exit(&mut sluice, Duration::from_secs(30));
        panic!(
            "sluice did not deliver the simulator's events ({} stored): {}\n{now}",
            es.document_count(),
            stderr_of(&mut sluice)
        );
    };
    let exported: BTreeSet<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let exprs = queries();
    for expr in &exprs {
        let (names, labels) = names_and_labels(expr);
        for name in &names {
            assert!(exported.contains(name.as_str()), "`{name}` (in `{expr}`) is not exported");
        }
        for label in labels {
            let used = names.iter().any(|name| {
                metrics.lines().any(|l| {
                    l.starts_with(&format!("{name}{{")) && l.contains(&format!("{label}=\""))
                })
            });
            assert!(used || label == "instance", "no series of `{expr}` has the label `{label}`");
        }
    }
    if have("prometheus", &["--version"], "SLUICE_REQUIRE_PROMETHEUS", "apt-get install prometheus")
    {
        evaluate_in_prometheus(dir.path(), port, &exprs);
    }
    signal(&sluice, libc::SIGTERM);
    let status = wait_exit(&mut sluice, Duration::from_secs(30));
    assert!(status.success(), "{}", stderr_of(&mut sluice));
}

/// A real Prometheus scrapes sluice with the alert rules loaded: every rule
/// evaluates without error and every dashboard query is valid PromQL.
fn evaluate_in_prometheus(dir: &Path, sluice_port: u16, exprs: &[String]) {
    let prom_port = free_port();
    let rules = repo().join("deploy/prometheus/sluice-alerts.yml");
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{}']\nscrape_configs:\n  - job_name: sluice\n    scrape_timeout: 1s\n    static_configs:\n      - targets: ['127.0.0.1:{sluice_port}']\n",
            rules.display()
        ),
    )
    .expect("prometheus config");
    let mut prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    // Every rule evaluated at least once, healthy.
    let evaluated = wait_for(Duration::from_secs(60), || {
        let (_, body) = http_get(prom_port, "/api/v1/rules").filter(|(s, _)| *s == 200)?;
        let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
        let rules: Vec<serde_json::Value> = answer["data"]["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        (rules.len() == 8
            && rules
                .iter()
                .all(|r| r["lastEvaluation"].as_str().is_some_and(|t| !t.starts_with("0001"))))
        .then_some(rules)
    });
    let results: Vec<(String, String)> = exprs
        .iter()
        .map(|expr| {
            let path = format!("/api/v1/query?query={}", url_encode(&as_instant_query(expr)));
            let (_, body) = http_get(prom_port, &path).unwrap_or_default();
            (expr.clone(), body)
        })
        .collect();
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    let rules = evaluated.expect("Prometheus evaluated the 8 rules");
    for rule in rules {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
    for (expr, body) in results {
        assert!(body.contains("\"status\":\"success\""), "`{expr}`: {body}");
    }
}

pub(super) fn render(dir: &Path) -> Vec<serde_json::Value> {
    let output = Command::new("kubectl")
        .args(["kustomize", "."])
        .current_dir(dir)
        .output()
        .expect("kubectl");
    let text = ok(&output);
    let rendered: String = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(!text.contains("Error"), "{text}");
    std::fs::write(dir.join("rendered.yaml"), &rendered).expect("write");
    serde_yaml_ng::Deserializer::from_str(&rendered)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("a YAML document"))
        .collect()
}

pub(super) fn named<'a>(docs: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

pub(super) fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Pinned images, spread aggregators, and the Prometheus Operator overlay:
/// a ServiceMonitor whose job label the alerts expect and a PrometheusRule
/// that holds sluice-alerts.yml unchanged; the overlay validates with the
/// Operator's two kinds (CRDs) left out.
fn kubernetes_as_operators_run_it(docs: &[serde_json::Value], dir: &Path) {
    let pods = named(docs, "StatefulSet").into_iter().chain(named(docs, "Deployment"));
    for workload in pods {
        let image =
            workload["spec"]["template"]["spec"]["containers"][0]["image"].as_str().expect("image");
        assert_eq!(
            image,
            format!("ghcr.io/sluice-dev/sluice:{}", env!("CARGO_PKG_VERSION")),
            "pinned to the release"
        );
    }
    let aggregator = named(docs, "Deployment")[0];
    let spread = aggregator["spec"]["template"]["spec"]["topologySpreadConstraints"]
        .as_array()
        .expect("topologySpreadConstraints");
    assert!(spread.iter().any(|c| c["topologyKey"] == "kubernetes.io/hostname"), "{spread:?}");

    copy_tree(
        &repo().join("deploy/kubernetes-prometheus-operator"),
        &dir.join("kubernetes-prometheus-operator"),
    );
    let with_operator = render(&dir.join("kubernetes-prometheus-operator"));
    let monitor = named(&with_operator, "ServiceMonitor");
    assert_eq!(monitor.len(), 1);
    let monitor = monitor[0];
    assert_eq!(monitor["metadata"]["namespace"], "sluice");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "api");
    let job_label = monitor["spec"]["jobLabel"].as_str().expect("jobLabel");
    for service in named(&with_operator, "Service") {
        let labels = &service["metadata"]["labels"];
        for (key, value) in monitor["spec"]["selector"]["matchLabels"].as_object().expect("labels")
        {
            assert_eq!(&labels[key], value, "the ServiceMonitor selects {service}");
        }
        assert_eq!(labels[job_label], "sluice", "SluiceDown watches job=\"sluice\"");
        assert!(
            service["spec"]["ports"].as_array().expect("ports").iter().any(|p| p["name"] == "api")
        );
    }
    let rule = named(&with_operator, "PrometheusRule");
    assert_eq!(rule.len(), 1);
    let alerts: serde_json::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo().join("deploy/prometheus/sluice-alerts.yml"))
            .expect("alerts"),
    )
    .expect("alerts YAML");
    assert_eq!(
        rule[0]["spec"]["groups"], alerts["groups"],
        "run deploy/kubernetes/monitoring/generate-rules.sh after editing the alerts"
    );
    let plain: Vec<&serde_json::Value> = with_operator
        .iter()
        .filter(|d| d["kind"] != "ServiceMonitor" && d["kind"] != "PrometheusRule")
        .collect();
    let text: String = plain
        .iter()
        .map(|d| format!("---\n{}", serde_yaml_ng::to_string(d).expect("YAML")))
        .collect();
    std::fs::write(dir.join("with-operator.yaml"), text).expect("write");
    let validate = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict", "with-operator.yaml"])
        .current_dir(dir)
        .output()
        .expect("kubernetes-validate");
    let report = ok(&validate);
    assert!(!report.contains("ERROR") && !report.contains("WARN"), "{report}");
}

#[test]
fn the_kubernetes_manifests_render_an_edge_per_account_and_validate_offline() {
    let required = "SLUICE_REQUIRE_KUBERNETES";
    if !have("kubectl", &["version", "--client"], required, "kubectl, for its kustomize")
        || !have(
            "python3",
            &["-c", "import kubernetes_validate"],
            required,
            "pip install kubernetes-validate",
        )
    {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let k8s = dir.path().join("kubernetes");
    copy_tree(&repo().join("deploy/kubernetes"), &k8s);
    let docs = render(&k8s);
    let edges = named(&docs, "StatefulSet");
    let names: Vec<&str> = edges.iter().filter_map(|s| s["metadata"]["name"].as_str()).collect();
    assert_eq!(names, ["sluice-edge-acme", "sluice-edge-globex", "sluice-edge-initech"]);
    for edge in &edges {
        let account =
            edge["metadata"]["name"].as_str().expect("name").trim_start_matches("sluice-edge-");
        let pod = &edge["spec"]["template"]["spec"];
        let token = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == "op-token")
            .expect("op-token volume");
        assert_eq!(token["secret"]["secretName"], format!("sluice-op-token-{account}"));
        assert_eq!(edge["spec"]["replicas"], 1, "one writer per stream");
        assert_eq!(edge["spec"]["selector"]["matchLabels"]["sluice.dev/account"], account);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(pod["containers"][0]["readinessProbe"]["httpGet"]["path"], "/health");
        assert!(edge["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data");
    }
    for kind in ["Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "Namespace"] {
        assert!(!named(&docs, kind).is_empty(), "no {kind}");
    }
    let validate = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict", "rendered.yaml"])
        .current_dir(&k8s)
        .output()
        .expect("kubernetes-validate");
    let report = ok(&validate);
    assert!(!report.contains("ERROR") && !report.contains("WARN"), "{report}");
    validate_pipelines(&docs, dir.path());
    kubernetes_as_operators_run_it(&docs, dir.path());

    // A fourth account, as the README says to add one.
    let added = Command::new("bash")
        .args(["add-account.sh", "hooli", "events.1password.ca"])
        .current_dir(&k8s)
        .output()
        .expect("add-account.sh");
    ok(&added);
    let docs = render(&k8s);
    let hooli = named(&docs, "StatefulSet")
        .into_iter()
        .find(|s| s["metadata"]["name"] == "sluice-edge-hooli")
        .expect("the added account's edge");
    let env = hooli["spec"]["template"]["spec"]["containers"][0]["env"].as_array().expect("env");
    assert!(
        env.iter()
            .any(|e| e["name"] == "OP_EVENTS_URL" && e["value"] == "https://events.1password.ca")
    );
    let again = Command::new("bash")
        .args(["add-account.sh", "hooli"])
        .current_dir(&k8s)
        .output()
        .expect("run");
    assert_eq!(again.status.code(), Some(2), "an existing account is refused");
    let bad = Command::new("bash")
        .args(["add-account.sh", "Bad_Name"])
        .current_dir(&k8s)
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2), "a name that is not a DNS label is refused");
}

/// The pipelines in the ConfigMaps pass `sluice validate` with the pods'
/// environment, laid out as in the image (/etc/sluice/vrl beside k8s/).
fn validate_pipelines(docs: &[serde_json::Value], dir: &Path) {
    let etc = dir.join("etc/sluice");
    copy_tree(&repo().join("pipelines/vrl"), &etc.join("vrl"));
    let k8s = etc.join("k8s");
    std::fs::create_dir_all(&k8s).expect("mkdir");
    let mut checked = 0;
    for map in named(docs, "ConfigMap") {
        for (file, text) in map["data"].as_object().expect("data") {
            std::fs::write(k8s.join(file), text.as_str().expect("text")).expect("write");
            let output = super::util::sluice()
                // The pods' secrets are not mounted here.
                .args(["validate", "--skip-files", &format!("k8s/{file}")])
                .current_dir(&etc)
                .env("SLUICE_DATA_DIR", dir.join("data"))
                .env("SLUICE_API_ADDRESS", "0.0.0.0:9598")
                .env("OP_EVENTS_TOKEN_FILE", "/run/secrets/op/token")
                .env("OP_EVENTS_URL", "https://events.1password.com")
                .env("SLUICE_AGGREGATOR_URL", "http://sluice-aggregator:6000")
                .env("SLUICE_FORWARD_TOKEN_FILE", "/run/secrets/forward/token")
                .env("ES_URL", "https://elasticsearch:9200")
                .env("ES_API_KEY", "a2V5OnNlY3JldA==")
                .output()
                .expect("sluice validate");
            ok(&output);
            checked += 1;
        }
    }
    assert_eq!(checked, 4, "the aggregator's pipeline and one per account");
}

/// scripts/image.sh builds the image under the tag the manifests pin, and
/// the `images:` block it prints, put in the kustomization as it says,
/// points every workload at the user's own registry.
#[test]
fn the_image_script_tags_the_release_and_its_kustomize_block_points_the_workloads_there() {
    let output = Command::new("bash")
        .args(["scripts/image.sh", "--dry-run", "--registry", "registry.example/sec", "--push"])
        .current_dir(repo())
        .output()
        .expect("image.sh");
    let printed = ok(&output);
    let image = format!("registry.example/sec/sluice:{}", env!("CARGO_PKG_VERSION"));
    let build = printed.lines().find(|l| l.starts_with("+ docker build")).expect("a build");
    assert!(build.ends_with(&format!("-t {image} .")), "{printed}");
    assert!(printed.lines().any(|l| l == format!("+ docker push {image}")), "{printed}");
    let block = &printed[printed.find("images:\n").expect("an images block")..];

    if !have(
        "kubectl",
        &["version", "--client"],
        "SLUICE_REQUIRE_KUBERNETES",
        "kubectl, for its kustomize",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let k8s = dir.path().join("kubernetes");
    copy_tree(&repo().join("deploy/kubernetes"), &k8s);
    let path = k8s.join("kustomization.yaml");
    let text = std::fs::read_to_string(&path).expect("kustomization");
    let start = text.find("images:\n").expect("images:");
    let end = start + text[start..].find("resources:").expect("resources:");
    std::fs::write(&path, format!("{}{block}{}", &text[..start], &text[end..])).expect("write");
    let docs = render(&k8s);
    let workloads: Vec<_> =
        named(&docs, "StatefulSet").into_iter().chain(named(&docs, "Deployment")).collect();
    assert!(!workloads.is_empty());
    for workload in workloads {
        assert_eq!(workload["spec"]["template"]["spec"]["containers"][0]["image"], image.as_str());
    }
}

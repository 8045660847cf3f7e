//! The onepassword_users source against the simulator's Users API, through
//! a real topology: a full inventory first, then only what changed; a
//! delivery that fails is sent again; refused credentials; no write call.

use std::time::Duration;

use serde_json::Value as Json;
use sluice_core::AckStatus;
use sluice_core::component::{Sink, Source};
use sluice_core::health::Health;
use sluice_core::test_util::{RecordingSink, wait_for};
use sluice_onepassword_sim::{SimConfig, Simulator};
use sluice_source_onepassword_users::{UsersSource, UsersSourceConfig};
use sluice_topology::{RunningTopology, SinkPiece, SourcePiece, TopologyOptions, start};
use vrl::value::Value;

const LONG: Duration = Duration::from_secs(60);

struct Harness {
    sim: Simulator,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Harness {
    async fn new(users: usize) -> Self {
        let config = SimConfig { users, ..SimConfig::default() };
        let sim =
            Simulator::start(config, "127.0.0.1:0".parse().expect("addr")).await.expect("sim");
        Self { sim, dir: tempfile::tempdir().expect("tempdir"), http: reqwest::Client::new() }
    }

    async fn directory(&self) -> Json {
        let url = format!("{}/_sim/users", self.sim.url());
        self.http.get(url).send().await.expect("sim").json().await.expect("json")
    }

    async fn source(&self, secret: Option<&str>) -> Box<dyn Source> {
        let directory = self.directory().await;
        let secret = secret.map_or_else(
            || directory["client_secret"].as_str().expect("secret").to_owned(),
            str::to_owned,
        );
        std::fs::write(self.dir.path().join("secret"), secret).expect("secret file");
        let yaml = format!(
            "url: {}\nallow_custom_url: true\naccount_id: {}\nclient_id: {}\nclient_secret_file: secret\ninterval_secs: 1\nrefused_retry_secs: 1\nmax_page_size: 500\n",
            self.sim.url(),
            directory["account_id"].as_str().expect("account"),
            directory["client_id"].as_str().expect("client"),
        );
        let config: UsersSourceConfig = serde_yaml_ng::from_str(&yaml).expect("config");
        Box::new(UsersSource::new(config.validate(self.dir.path()).expect("valid")))
    }

    fn start(
        &self,
        source: Box<dyn Source>,
        sink: Box<dyn Sink>,
        health: &Health,
    ) -> RunningTopology {
        let options = TopologyOptions {
            data_dir: self.dir.path().join("data"),
            buffer: Default::default(),
            health: health.clone(),
            taps: Default::default(),
        };
        start(
            vec![SourcePiece {
                id: "people".into(),
                type_name: "onepassword_users",
                outputs: vec![],
                source,
            }],
            vec![],
            vec![SinkPiece {
                id: "out".into(),
                type_name: "test",
                inputs: vec!["people".into()],
                sink,
            }],
            &options,
        )
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Option<Json>) {
        let mut request = self.http.request(method, format!("{}{path}", self.sim.url()));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let status = request.send().await.expect("sim").status();
        assert!(status.is_success(), "{path}: {status}");
    }
}

fn field(value: &Value, path: &[&str]) -> String {
    let mut at = value;
    for key in path {
        let Value::Object(map) = at else { return String::new() };
        let Some(next) = map.get(*key) else { return String::new() };
        at = next;
    }
    at.to_string_lossy().into_owned()
}

async fn stop(topology: RunningTopology) {
    let report = topology.stop(Duration::from_secs(10)).await;
    assert!(report.failed.is_empty() && report.timed_out.is_empty(), "{report:?}");
}

#[tokio::test]
async fn a_full_inventory_first_then_exactly_the_changes() {
    // 12 people the events name and 2,333 more: 2,345, five pages of 500.
    let harness = Harness::new(2333).await;
    let sink = RecordingSink::new(AckStatus::Delivered);
    let topology =
        harness.start(harness.source(None).await, Box::new(sink.clone()), &Health::new());
    assert!(wait_for(LONG, || sink.values().len() >= 2345).await, "{}", sink.values().len());
    let first = sink.values();
    assert!(first.iter().all(|v| field(v, &["change"]) == "snapshot"), "everyone discovered");
    let ids: std::collections::HashSet<_> =
        first.iter().map(|v| field(v, &["user", "id"])).collect();
    assert_eq!(ids.len(), 2345, "each user once");

    let directory = harness.directory().await;
    let user = directory["users"][3]["id"].as_str().expect("id").to_owned();
    let gone = directory["users"][4]["id"].as_str().expect("id").to_owned();
    harness
        .control(
            reqwest::Method::PUT,
            &format!("/_sim/users/{user}/state"),
            Some(serde_json::json!({"state": "SUSPENDED"})),
        )
        .await;
    assert!(wait_for(LONG, || sink.values().len() > 2345).await);
    harness.control(reqwest::Method::DELETE, &format!("/_sim/users/{gone}"), None).await;
    assert!(wait_for(LONG, || sink.values().len() > 2346).await);
    // A few more polls: nothing else is sent.
    let listings = harness.directory().await["listings"].as_u64().expect("count");
    wait_for_listings(&harness, listings, 3).await;
    stop(topology).await;
    let later: Vec<Value> = sink.values().split_off(2345);
    assert_eq!(later.len(), 2, "{later:?}");
    assert_eq!(
        (field(&later[0], &["change"]), field(&later[0], &["user", "id"])),
        ("modified".into(), user)
    );
    assert_eq!(field(&later[0], &["user", "state"]), "SUSPENDED");
    assert_eq!(field(&later[0], &["previous", "state"]), "ACTIVE");
    assert_eq!(
        (field(&later[1], &["change"]), field(&later[1], &["user", "id"])),
        ("removed".into(), gone)
    );
    assert_eq!(harness.directory().await["writes"], 0, "read-only: no suspend or reactivate call");
}

/// Wait until the simulator has answered `more` listings after `after`.
async fn wait_for_listings(harness: &Harness, after: u64, more: u64) {
    let deadline = tokio::time::Instant::now() + LONG;
    while harness.directory().await["listings"].as_u64().unwrap_or(0) < after + more {
        assert!(tokio::time::Instant::now() < deadline, "no more listings");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_change_the_sinks_did_not_take_is_sent_again_after_a_restart() {
    let harness = Harness::new(20).await;
    let sink = RecordingSink::new(AckStatus::Delivered);
    let topology =
        harness.start(harness.source(None).await, Box::new(sink.clone()), &Health::new());
    assert!(wait_for(LONG, || sink.values().len() >= 32).await);
    stop(topology).await;
    let user = harness.directory().await["users"][0]["id"].as_str().expect("id").to_owned();
    harness
        .control(
            reqwest::Method::PUT,
            &format!("/_sim/users/{user}/state"),
            Some(serde_json::json!({"state": "SUSPENDED"})),
        )
        .await;
    // The sinks fail the change: it is not committed.
    let failing = RecordingSink::new(AckStatus::Errored);
    let topology =
        harness.start(harness.source(None).await, Box::new(failing.clone()), &Health::new());
    assert!(wait_for(LONG, || !failing.values().is_empty()).await);
    stop(topology).await;
    let again = RecordingSink::new(AckStatus::Delivered);
    let topology =
        harness.start(harness.source(None).await, Box::new(again.clone()), &Health::new());
    assert!(wait_for(LONG, || !again.values().is_empty()).await);
    stop(topology).await;
    let change = &again.values()[0];
    assert_eq!(
        (field(change, &["change"]), field(change, &["user", "id"])),
        ("modified".into(), user)
    );
    assert_eq!(
        field(change, &["uuid"]),
        field(&failing.values()[0], &["uuid"]),
        "the same document"
    );
}

#[tokio::test]
async fn a_revoked_secret_turns_health_and_names_the_source() {
    let harness = Harness::new(0).await;
    let health = Health::new();
    let sink = RecordingSink::new(AckStatus::Delivered);
    let topology = harness.start(harness.source(None).await, Box::new(sink.clone()), &health);
    assert!(wait_for(LONG, || sink.values().len() >= 12).await);
    let secret = harness.directory().await["client_secret"].as_str().expect("secret").to_owned();
    harness.control(reqwest::Method::POST, "/_sim/users/rotate", None).await;
    let reason = || health.report().unhealthy.get("people.users").cloned().unwrap_or_default();
    assert!(
        wait_for(LONG, || reason().contains("refuses the client credentials")).await,
        "{:?}",
        health.report()
    );
    assert!(!reason().contains(&secret), "no secret in /health");
    stop(topology).await;
}

#[tokio::test]
async fn a_wrong_secret_stops_the_start_with_a_clear_error() {
    let harness = Harness::new(0).await;
    let mut source = harness.source(Some("not-the-secret")).await;
    let err = source.preflight().await.expect_err("refused").to_string();
    assert!(err.contains("refuses the client credentials (HTTP 401"), "{err}");
    assert!(!err.contains("not-the-secret"), "{err}");
}

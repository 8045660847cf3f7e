//! The onepassword source against the Events API simulator, through a real
//! topology: delivery, checkpoints, late arrivals, faults, refusals, backpressure.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_core::AckStatus;
use sluice_core::component::{ComponentFuture, Sink, SinkContext, Source};
use sluice_core::health::Health;
use sluice_core::test_util::{RecordingSink, wait_for};
use sluice_onepassword_sim::{Fault, SimConfig, SimStream, Simulator};
use sluice_source_onepassword::Stream;
use sluice_source_onepassword::{OnePasswordSource, OnePasswordSourceConfig};
use sluice_topology::{RunningTopology, SinkPiece, SourcePiece, TopologyOptions, start};
use vrl::value::Value;

const ALL: [&str; 3] = ["signinattempts", "itemusages", "auditevents"];

struct Harness {
    sim: Simulator,
    dir: tempfile::TempDir,
}

impl Harness {
    async fn new(events: usize) -> Self {
        let config = SimConfig { events_per_stream: events, ..SimConfig::default() };
        let sim =
            Simulator::start(config, "127.0.0.1:0".parse().expect("addr")).await.expect("sim");
        let harness = Self { sim, dir: tempfile::tempdir().expect("tempdir") };
        harness.write_token(&harness.sim.token());
        harness
    }

    fn token_file(&self) -> PathBuf {
        self.dir.path().join("token")
    }

    fn write_token(&self, token: &str) {
        std::fs::write(self.token_file(), token).expect("token file");
    }

    fn source(&self, extra: &str) -> Box<dyn Source> {
        let interval = if extra.contains("interval_secs") { "" } else { "interval_secs: 1\n" };
        let yaml = format!(
            "url: {}\nallow_custom_url: true\ntoken_file: {}\nstart_time: 2d\n{interval}{extra}",
            self.sim.url(),
            self.token_file().display()
        );
        let config: OnePasswordSourceConfig = serde_yaml_ng::from_str(&yaml).expect("config");
        Box::new(OnePasswordSource::new(config.validate(self.dir.path()).expect("valid")))
    }

    fn start(
        &self,
        source: Box<dyn Source>,
        sink: Box<dyn Sink>,
        health: &Health,
    ) -> RunningTopology {
        let options = TopologyOptions {
            data_dir: self.dir.path().join("data"),
            buffer: sluice_core::queue::BufferConfig { max_arrays: 2, ..Default::default() },
            health: health.clone(),
            taps: Default::default(),
        };
        start(
            vec![SourcePiece {
                id: "op".into(),
                type_name: "onepassword",
                outputs: vec![],
                source,
            }],
            vec![],
            vec![SinkPiece {
                id: "out".into(),
                type_name: "test",
                inputs: vec!["op".into()],
                sink,
            }],
            &options,
        )
    }

    fn visible(&self, streams: &[SimStream]) -> usize {
        streams.iter().map(|s| self.sim.visible_events(*s)).sum()
    }
}

fn uuids(values: &[Value]) -> Vec<String> {
    values
        .iter()
        .map(|v| match v {
            Value::Object(map) => {
                map.get("uuid").map(|u| u.to_string_lossy().into_owned()).unwrap_or_default()
            }
            _ => String::new(),
        })
        .collect()
}

fn assert_unique(values: &[Value]) -> HashSet<String> {
    let all = uuids(values);
    let set: HashSet<String> = all.iter().cloned().collect();
    assert_eq!(set.len(), all.len(), "no event twice");
    set
}

async fn stop(topology: RunningTopology) {
    let report = topology.stop(Duration::from_secs(10)).await;
    assert!(report.failed.is_empty() && report.timed_out.is_empty(), "{report:?}");
}

#[tokio::test]
async fn delivers_every_stream_once_and_resumes_from_the_checkpoint() {
    let harness = Harness::new(250).await;
    let total = harness.visible(&SimStream::ALL);
    let sink = RecordingSink::new(AckStatus::Delivered);
    let topology = harness.start(harness.source(""), Box::new(sink.clone()), &Health::new());
    assert!(
        wait_for(Duration::from_secs(30), || sink.values().len() >= total).await,
        "{} of {total}",
        sink.values().len()
    );
    stop(topology).await;
    assert_unique(&sink.values());
    assert_eq!(sink.values().len(), total);
    for stream in Stream::ALL {
        let path = harness.dir.path().join(format!("data/op/{}.json", stream.as_str()));
        let checkpoint: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("checkpoint")).expect("json");
        assert!(checkpoint["cursor"].is_string(), "{checkpoint}");
        assert_eq!(checkpoint["api_version"], "v2");
    }

    let fresh: Vec<String> = (0..3)
        .map(|_| {
            harness.sim.inject(SimStream::ItemUsages, sluice_onepassword_sim::now_nanos()).uuid
        })
        .collect();
    let second = RecordingSink::new(AckStatus::Delivered);
    let topology = harness.start(harness.source(""), Box::new(second.clone()), &Health::new());
    assert!(wait_for(Duration::from_secs(20), || second.values().len() >= 3).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop(topology).await;
    assert_eq!(uuids(&second.values()), fresh, "a restart continues after the committed cursors");
}

#[tokio::test]
async fn late_arrivals_are_delivered() {
    let harness = Harness::new(40).await;
    let sink = RecordingSink::new(AckStatus::Delivered);
    let topology = harness.start(
        harness.source("streams: [signin_attempts]\n"),
        Box::new(sink.clone()),
        &Health::new(),
    );
    let initial = harness.visible(&[SimStream::SigninAttempts]);
    assert!(wait_for(Duration::from_secs(20), || sink.values().len() >= initial).await);
    // It happened an hour ago, long before events already delivered, and arrives now.
    let late = harness
        .sim
        .inject(SimStream::SigninAttempts, sluice_onepassword_sim::now_nanos() - 3_600_000_000_000);
    assert!(
        wait_for(Duration::from_secs(20), || uuids(&sink.values()).contains(&late.uuid)).await,
        "the late event arrives"
    );
    stop(topology).await;
    assert_unique(&sink.values());
}

#[tokio::test]
async fn rate_limits_and_server_errors_lose_nothing_and_retry_after_is_honoured() {
    let harness = Harness::new(120).await;
    for fault in [
        Fault::Status { status: 429 },
        Fault::Status { status: 503 },
        Fault::Status { status: 429 },
        Fault::Status { status: 500 },
        Fault::Malformed,
        Fault::Status { status: 429 },
        Fault::Reset,
        Fault::Status { status: 502 },
        Fault::Status { status: 429 },
    ] {
        harness.sim.push_fault(fault);
    }
    let sink = RecordingSink::new(AckStatus::Delivered);
    let source = harness.source("streams: [audit_events]\nlimit: 20\nretry_max_backoff_secs: 1\n");
    let topology = harness.start(source, Box::new(sink.clone()), &Health::new());
    let total = harness.visible(&[SimStream::AuditEvents]);
    assert!(
        wait_for(Duration::from_secs(60), || sink.values().len() >= total).await,
        "{} of {total}",
        sink.values().len()
    );
    stop(topology).await;
    assert_eq!(assert_unique(&sink.values()).len(), total, "nothing lost, nothing doubled");

    let log: Vec<_> = harness
        .sim
        .request_log()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/v2/auditevents"))
        .collect();
    let limited: Vec<_> = log.iter().enumerate().filter(|(_, r)| r.status == 429).collect();
    assert_eq!(limited.len(), 4, "{log:#?}");
    for (index, record) in limited {
        let retry = Duration::from_secs(record.retry_after.expect("Retry-After"));
        let next = &log[index + 1];
        assert!(
            next.at.duration_since(record.at) >= retry,
            "a request came {:?} after a 429 that said {retry:?}",
            next.at.duration_since(record.at)
        );
    }
}

#[tokio::test]
async fn a_stream_failing_longer_than_unhealthy_after_is_reported_until_it_recovers() {
    let harness = Harness::new(20).await;
    // Twenty 503s in a row: with backoff waits of up to 1 s, seconds of failure.
    for _ in 0..20 {
        harness.sim.push_fault(Fault::Status { status: 503 });
    }
    let health = Health::new();
    let sink = RecordingSink::new(AckStatus::Delivered);
    let source = harness
        .source("streams: [audit_events]\nunhealthy_after_secs: 1\nretry_max_backoff_secs: 1\n");
    let topology = harness.start(source, Box::new(sink.clone()), &health);
    assert!(
        wait_for(Duration::from_secs(60), || health
            .report()
            .unhealthy
            .contains_key("op.audit_events"))
        .await,
        "{:?}",
        health.report()
    );
    let reason = health.report().unhealthy["op.audit_events"].clone();
    assert!(reason.starts_with("requests have failed for "), "{reason}");
    assert!(reason.contains("503"), "{reason}");
    assert!(sink.values().is_empty(), "nothing was fetched yet");

    // The faults run out: the stream delivers and is healthy again.
    let total = harness.visible(&[SimStream::AuditEvents]);
    assert!(
        wait_for(Duration::from_secs(60), || sink.values().len() >= total
            && health.report().is_ok())
        .await,
        "{} of {total} delivered; {:?}",
        sink.values().len(),
        health.report()
    );
    stop(topology).await;
    assert_eq!(assert_unique(&sink.values()).len(), total);
}

#[tokio::test]
async fn a_refused_stream_stops_alone_and_health_names_it() {
    let harness = Harness::new(20).await;
    let health = Health::new();
    let sink = RecordingSink::new(AckStatus::Delivered);
    let topology =
        harness.start(harness.source("refused_retry_secs: 1\n"), Box::new(sink.clone()), &health);
    let initial = harness.visible(&SimStream::ALL);
    assert!(wait_for(Duration::from_secs(20), || sink.values().len() >= initial).await);

    // The token in the file is replaced by one without `itemusages`.
    harness.write_token(&harness.sim.mint_token(&["signinattempts", "auditevents"], None));
    assert!(
        wait_for(Duration::from_secs(20), || health
            .report()
            .unhealthy
            .contains_key("op.item_usages"))
        .await,
        "{:?}",
        health.report()
    );
    let report = health.report();
    assert_eq!(report.status, "unhealthy");
    assert!(report.unhealthy["op.item_usages"].contains("401 Unauthorized"), "{report:?}");
    assert_eq!(report.unhealthy.len(), 1, "only item usages is refused");

    let signin =
        harness.sim.inject(SimStream::SigninAttempts, sluice_onepassword_sim::now_nanos()).uuid;
    let audit =
        harness.sim.inject(SimStream::AuditEvents, sluice_onepassword_sim::now_nanos()).uuid;
    let item = harness.sim.inject(SimStream::ItemUsages, sluice_onepassword_sim::now_nanos()).uuid;
    assert!(
        wait_for(Duration::from_secs(20), || {
            let got = uuids(&sink.values());
            got.contains(&signin) && got.contains(&audit)
        })
        .await,
        "the other streams go on"
    );
    assert!(!uuids(&sink.values()).contains(&item));

    harness.write_token(&harness.sim.mint_token(&ALL, None));
    assert!(
        wait_for(Duration::from_secs(20), || uuids(&sink.values()).contains(&item)).await,
        "a fixed token file is picked up"
    );
    assert!(health.report().is_ok(), "{:?}", health.report());
    stop(topology).await;
}

#[tokio::test]
async fn preflight_names_what_is_wrong_without_the_token() {
    let harness = Harness::new(0).await;
    let lacking = harness.sim.mint_token(&["signinattempts"], None);
    harness.write_token(&lacking);
    let mut source = harness.source("streams: [signin_attempts, item_usages]\n");
    let error = source.preflight().await.expect_err("lacks itemusages").to_string();
    assert_eq!(
        error,
        "the token does not permit stream item_usages (needs the `itemusages` feature); it has: signinattempts"
    );

    let expired = harness.sim.mint_token(&ALL, Some(-10));
    harness.write_token(&expired);
    let error = harness.source("").preflight().await.expect_err("expired").to_string();
    assert!(error.starts_with("the token expired at "), "{error}");
    assert!(!error.contains(&expired));

    let foreign = Simulator::start(
        SimConfig { seed: 42, ..SimConfig::default() },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("sim");
    let wrong = foreign.token();
    harness.write_token(&wrong);
    let error = harness.source("").preflight().await.expect_err("refused").to_string();
    // A token of another host says so: the audience is the likely cause.
    let expected = format!(
        "refused the token (401 Unauthorized): it is wrong, revoked or expired (it was issued for `{}`)",
        foreign.audience()
    );
    assert!(error.ends_with(&expected), "{error}");
    assert!(!error.contains(&wrong));

    harness.write_token(&harness.sim.mint_token(&["auditevents", "itemusages"], None));
    harness.source("").preflight().await.expect("by default the permitted streams run");
}

/// Errors the first `failures` arrays, then delivers.
#[derive(Clone)]
struct FlakySink {
    failures: Arc<Mutex<usize>>,
    delivered: RecordingSink,
}

impl Sink for FlakySink {
    fn run(self: Box<Self>, mut cx: SinkContext) -> ComponentFuture {
        Box::pin(async move {
            while let Some(mut events) = cx.input.recv().await {
                let fail = {
                    let mut left = self.failures.lock().expect("lock");
                    let fail = *left > 0;
                    *left = left.saturating_sub(1);
                    fail
                };
                for event in &mut events {
                    if fail {
                        event.take_finalizers().finish(AckStatus::Errored);
                    } else {
                        event.take_finalizers().finish(AckStatus::Delivered);
                        self.delivered.received.lock().expect("lock").push(event.value.clone());
                    }
                }
            }
            Ok(())
        })
    }
}

#[tokio::test]
async fn an_errored_page_is_fetched_again_never_skipped() {
    let harness = Harness::new(100).await;
    let delivered = RecordingSink::new(AckStatus::Delivered);
    let sink = FlakySink { failures: Arc::new(Mutex::new(2)), delivered: delivered.clone() };
    let source = harness.source("streams: [item_usages]\nlimit: 10\nretry_max_backoff_secs: 1\n");
    let topology = harness.start(source, Box::new(sink), &Health::new());
    let total = harness.visible(&[SimStream::ItemUsages]);
    let all_there =
        || uuids(&delivered.values()).into_iter().collect::<HashSet<_>>().len() >= total;
    assert!(wait_for(Duration::from_secs(30), all_there).await);
    stop(topology).await;
    let set: HashSet<_> = uuids(&delivered.values()).into_iter().collect();
    assert_eq!(set.len(), total, "every event delivered despite two failed pages");
}

/// After a page that was not delivered the stream reads again from its
/// last committed cursor: the cursors it is handed again are not a cycle
/// (review M3's cycle check), so the re-read goes at full speed, not one
/// page per interval.
#[tokio::test]
async fn reading_again_after_a_failed_page_is_not_taken_for_a_cursor_cycle() {
    let harness = Harness::new(100).await;
    let delivered = RecordingSink::new(AckStatus::Delivered);
    let sink = FlakySink { failures: Arc::new(Mutex::new(1)), delivered: delivered.clone() };
    let source = harness.source(
        "streams: [item_usages]\nlimit: 10\nmax_pages_in_flight: 4\ninterval_secs: 600\nretry_max_backoff_secs: 1\n",
    );
    let topology = harness.start(source, Box::new(sink), &Health::new());
    let total = harness.visible(&[SimStream::ItemUsages]);
    let all_there =
        || uuids(&delivered.values()).into_iter().collect::<HashSet<_>>().len() >= total;
    assert!(
        wait_for(Duration::from_secs(60), all_there).await,
        "{} of {total}: the re-read waited out the 600 s interval",
        uuids(&delivered.values()).into_iter().collect::<HashSet<_>>().len()
    );
    stop(topology).await;
}

#[tokio::test]
async fn a_blocked_sink_stops_fetching() {
    let harness = Harness::new(400).await;
    let (sink, gate) = RecordingSink::gated(AckStatus::Delivered);
    let source = harness.source("streams: [item_usages]\nlimit: 10\nmax_pages_in_flight: 2\n");
    let topology = harness.start(source, Box::new(sink.clone()), &Health::new());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = harness.sim.requests();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(harness.sim.requests(), before, "no request while the sink holds every page");
    assert!(before <= 8, "only a bounded number of pages is fetched ahead: {before} requests");
    gate.add_permits(1000);
    let total = harness.visible(&[SimStream::ItemUsages]);
    assert!(wait_for(Duration::from_secs(30), || sink.values().len() >= total).await);
    stop(topology).await;
}

#[test]
fn checkpoint_path_is_per_source_and_stream() {
    let path = sluice_source_onepassword::checkpoint::path(
        Path::new("/var/lib/sluice"),
        "op",
        Stream::AuditEvents,
    );
    assert_eq!(path, Path::new("/var/lib/sluice/op/audit_events.json"));
}

/// Review C4 (reliability 2026-12): a checkpoint that cannot be written (a
/// full or read-only disk) must not end the source: the stream shows on
/// `/health`, fetches nothing new, and commits once the disk accepts writes.
#[tokio::test]
async fn a_checkpoint_that_cannot_be_written_holds_the_stream_until_it_can() {
    let harness = Harness::new(100).await;
    let health = Health::new();
    let (sink, gate) = RecordingSink::gated(AckStatus::Delivered);
    let source = harness.source("streams: [audit_events]\nlimit: 10\nmax_pages_in_flight: 2\n");
    let topology = harness.start(source, Box::new(sink.clone()), &health);
    let folder = harness.dir.path().join("data/op");
    let file = folder.join("audit_events.json");
    let committed = |file: &Path| {
        std::fs::read(file)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["events"].as_u64())
            .unwrap_or(0)
    };
    gate.add_permits(2);
    assert!(wait_for(Duration::from_secs(30), || committed(&file) >= 10).await);
    // The folder becomes a file: every write of the checkpoint now fails.
    let aside = harness.dir.path().join("data/op.aside");
    std::fs::rename(&folder, &aside).expect("move the folder aside");
    std::fs::write(&folder, b"not a folder").expect("block the path");
    gate.add_permits(1000);
    let key = "op.audit_events.checkpoint";
    assert!(
        wait_for(Duration::from_secs(30), || health.report().unhealthy.contains_key(key)).await,
        "{:?}",
        health.report()
    );
    // Nothing new is fetched while the cursor cannot be kept.
    let requests = harness.sim.requests();
    let held = sink.values().len();
    assert!(
        !wait_for(Duration::from_secs(3), || harness.sim.requests() > requests + 1).await,
        "the stream went on fetching: {requests} → {}",
        harness.sim.requests()
    );
    assert!(sink.values().len() <= held + 20, "at most the pages in flight arrive");
    // The disk accepts writes again: the stream commits and catches up.
    std::fs::remove_file(&folder).expect("unblock");
    std::fs::rename(&aside, &folder).expect("move the folder back");
    let total = harness.visible(&[SimStream::AuditEvents]);
    assert!(
        wait_for(Duration::from_secs(60), || committed(&file) >= total as u64
            && health.report().is_ok())
        .await,
        "{} of {total} committed; {:?}",
        committed(&file),
        health.report()
    );
    stop(topology).await;
    assert_eq!(assert_unique(&sink.values()).len(), total);
}

//! The `sluice` sink and source against each other in one process: answers
//! only after downstream acknowledgement, resends joined, backpressure,
//! rejections into the edge's dead letter, tokens, mutual TLS, splitting.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use sluice_core::BatchStatus;
use sluice_core::ack::AckStatus;
use sluice_core::component::{ComponentFuture, DEFAULT_OUTPUT, Sink, SinkContext, Source};
use sluice_core::health::Health;
use sluice_core::test_util::{RawSource, RecordingSink, Statuses, wait_for};
use sluice_grpc::proto::forward_client::ForwardClient;
use sluice_grpc::proto::{Event, PushRequest, push_response};
use sluice_grpc::{SluiceSink, SluiceSinkConfig, SluiceSource, SluiceSourceConfig};
use sluice_topology::{RunningTopology, SinkPiece, SourcePiece, TopologyOptions, start};
use tokio::sync::Semaphore;
use vrl::value::Value;

const LONG: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Records each array, then holds its acknowledgement until `release` gives a permit.
#[derive(Clone)]
struct HoldingSink {
    received: Arc<Mutex<Vec<Value>>>,
    release: Arc<Semaphore>,
}

impl HoldingSink {
    fn new() -> Self {
        Self { received: Arc::default(), release: Arc::new(Semaphore::new(0)) }
    }
    fn count(&self) -> usize {
        self.received.lock().expect("lock").len()
    }
}

impl Sink for HoldingSink {
    fn run(self: Box<Self>, mut cx: SinkContext) -> ComponentFuture {
        Box::pin(async move {
            while let Some(mut events) = cx.input.recv().await {
                self.received.lock().expect("lock").extend(events.iter().map(|e| e.value.clone()));
                self.release.acquire().await.expect("open").forget();
                for event in &mut events {
                    event.take_finalizers().finish(AckStatus::Delivered);
                }
                cx.metrics.sent(events.len(), DEFAULT_OUTPUT);
            }
            Ok(())
        })
    }
}

fn topology(
    dir: &Path,
    health: &Health,
    source: Box<dyn Source>,
    sink: Box<dyn Sink>,
) -> RunningTopology {
    let options = TopologyOptions {
        data_dir: dir.to_owned(),
        buffer: sluice_core::queue::BufferConfig { max_arrays: 2, ..Default::default() },
        health: health.clone(),
        taps: Default::default(),
    };
    start(
        vec![SourcePiece { id: "in".into(), type_name: "test", outputs: vec![], source }],
        vec![],
        vec![SinkPiece { id: "out".into(), type_name: "test", inputs: vec!["in".into()], sink }],
        &options,
    )
}

fn aggregator_source(port: u16, extra: &str, dir: &Path) -> Box<dyn Source> {
    let yaml = format!("address: 127.0.0.1:{port}\n{extra}");
    let config: SluiceSourceConfig = serde_yaml_ng::from_str(&yaml).expect("yaml");
    Box::new(SluiceSource::new(config.validate(dir).expect("valid")))
}

fn edge_sink(endpoint: &str, extra: &str, dir: &Path) -> Box<dyn Sink> {
    let yaml = format!(
        "endpoints: ['{endpoint}']\nbatch: {{max_events: 50, timeout_secs: 0.05}}\nrequest: {{retry_max_backoff_secs: 1, refused_retry_secs: 1}}\n{extra}"
    );
    let config: SluiceSinkConfig = serde_yaml_ng::from_str(&yaml).expect("yaml");
    Box::new(SluiceSink::new(config.validate(dir).expect("valid")))
}

fn raw_batches(batches: usize, per_batch: usize, padding: usize) -> Vec<Vec<Bytes>> {
    (0..batches)
        .map(|b| {
            (0..per_batch)
                .map(|i| {
                    let n = b * per_batch + i;
                    Bytes::from(format!(
                        r#"{{"uuid":"U{n:08}","n":{n},"pad":"{}"}}"#,
                        "x".repeat(padding)
                    ))
                })
                .collect()
        })
        .collect()
}

async fn client(port: u16) -> ForwardClient<tonic::transport::Channel> {
    for _ in 0..500 {
        if let Ok(client) = ForwardClient::connect(format!("http://127.0.0.1:{port}")).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the aggregator never listened on {port}");
}

fn push(id: &'static [u8], count: usize) -> PushRequest {
    PushRequest {
        events: (0..count)
            .map(|n| Event {
                stream: "item_usages".into(),
                source_id: "op".into(),
                raw: Bytes::from(format!(r#"{{"uuid":"R{n}"}}"#)),
                document: Bytes::from(format!(r#"{{"uuid":"R{n}","n":{n}}}"#)),
                // As a sender from before datasets: the stream alone.
                dataset: String::new(),
            })
            .collect(),
        batch_id: Bytes::from_static(id),
        sender: "test".into(),
    }
}

#[tokio::test]
async fn a_push_is_answered_only_after_downstream_acknowledgement_and_resends_join_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let sink = HoldingSink::new();
    let mut aggregator = topology(
        dir.path(),
        &Health::new(),
        aggregator_source(port, "max_in_flight: 1", dir.path()),
        Box::new(sink.clone()),
    );
    let mut first = client(port).await;
    let mut resend = first.clone();
    let mut other = first.clone();
    let answer = tokio::spawn(async move { first.push(push(b"batch-1", 3)).await });
    assert!(wait_for(LONG, || sink.count() == 3).await, "the events reached the sink");
    assert!(!answer.is_finished(), "no answer while the sink holds the events");

    // The same batch again (an edge whose push timed out) joins the first delivery.
    let joined = tokio::spawn(async move { resend.push(push(b"batch-1", 3)).await });
    // Another batch past max_in_flight is pushed back.
    let refused = other.push(push(b"batch-2", 1)).await.expect_err("over the bound");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused:?}");
    assert!(!answer.is_finished() && !joined.is_finished());

    sink.release.add_permits(1);
    for handle in [answer, joined] {
        let response = handle.await.expect("task").expect("answered").into_inner();
        assert_eq!(response.status, push_response::Status::Delivered as i32);
    }
    assert_eq!(sink.count(), 3, "the resend was not injected a second time");

    // Now there is room again, and an empty push (a preflight) answers at once.
    let mut again = client(port).await;
    sink.release.add_permits(1);
    let response = again.push(push(b"batch-2", 1)).await.expect("answered").into_inner();
    assert_eq!(response.status, push_response::Status::Delivered as i32);
    let response = again.push(PushRequest::default()).await.expect("answered").into_inner();
    assert_eq!(response.status, push_response::Status::Delivered as i32);
    aggregator.begin_stop();
    drop(again);
    while let Some(exit) = aggregator.next_exit().await {
        assert!(exit.result.is_ok(), "{exit:?}");
    }
}

/// Edge (RawSource → sluice sink) → aggregator (sluice source → `sink`):
/// the edge's batch statuses and its health.
async fn forward(
    dir: &Path,
    sink_extra: &str,
    source_extra: &str,
    batches: Vec<Vec<Bytes>>,
    downstream: Box<dyn Sink>,
    endpoint_scheme: &str,
) -> (Statuses, Health, RunningTopology, RunningTopology) {
    let port = free_port();
    let aggregator = topology(
        &dir.join("aggregator"),
        &Health::new(),
        aggregator_source(port, source_extra, dir),
        downstream,
    );
    let (source, statuses) = RawSource::new(batches, "1password.item_usages");
    let health = Health::new();
    let edge = topology(
        &dir.join("edge"),
        &health,
        Box::new(source),
        edge_sink(&format!("{endpoint_scheme}://localhost:{port}"), sink_extra, dir),
    );
    (statuses, health, edge, aggregator)
}

async fn finish(mut topology: RunningTopology) {
    while let Some(exit) = topology.next_exit().await {
        assert!(exit.result.is_ok(), "{exit:?}");
    }
}

#[tokio::test]
async fn events_arrive_with_stream_and_raw_and_rejections_reach_the_edges_dead_letter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recording = RecordingSink::new(AckStatus::Delivered);
    let (statuses, _, edge, aggregator) =
        forward(dir.path(), "", "", raw_batches(4, 30, 10), Box::new(recording.clone()), "http")
            .await;
    finish(edge).await;
    assert_eq!(
        *statuses.lock().expect("lock"),
        (0..4).map(|i| (i, BatchStatus::Delivered)).collect::<Vec<_>>()
    );
    assert_eq!(recording.values().len(), 120);
    drop(aggregator);

    // A destination behind the aggregator rejects every document: final for
    // the edge, and each event is in the edge's dead letter with the reason.
    let dir = tempfile::tempdir().expect("tempdir");
    let (statuses, _, edge, _aggregator) = forward(
        dir.path(),
        "",
        "",
        raw_batches(2, 5, 10),
        Box::new(RecordingSink::new(AckStatus::Rejected)),
        "http",
    )
    .await;
    finish(edge).await;
    assert!(statuses.lock().expect("lock").iter().all(|(_, s)| *s == BatchStatus::Rejected));
    let dead = std::fs::read_to_string(dir.path().join("edge/out/dead-letter.ndjson"))
        .expect("dead letter");
    let records: Vec<serde_json::Value> =
        dead.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(records.len(), 10);
    assert_eq!(records[0]["error"]["type"], "rejected_downstream");
    assert_eq!(records[0]["document"]["uuid"], "U00000000", "{}", records[0]);
}

#[tokio::test]
async fn a_wrong_token_is_refused_shown_on_health_and_never_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recording = RecordingSink::new(AckStatus::Delivered);
    let (statuses, health, edge, _aggregator) = forward(
        dir.path(),
        "token: edge-has-the-wrong-token-123",
        "token: aggregator-token-456",
        raw_batches(1, 5, 10),
        Box::new(recording.clone()),
        "http",
    )
    .await;
    assert!(wait_for(LONG, || !health.report().is_ok()).await, "the refusal shows on /health");
    let report = health.report();
    let reason = report.unhealthy.get("out").expect("the sink is unhealthy");
    assert!(reason.contains("UNAUTHENTICATED"), "{reason}");
    assert!(!reason.contains("wrong-token-123") && !reason.contains("token-456"), "{reason}");
    assert!(recording.values().is_empty() && statuses.lock().expect("lock").is_empty());
    edge.stop(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_batch_larger_than_the_aggregator_accepts_is_split_not_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recording = RecordingSink::new(AckStatus::Delivered);
    // 50 events of about 5 KiB per request; the aggregator takes 64 KiB.
    let (statuses, _, edge, _aggregator) = forward(
        dir.path(),
        "compression: none",
        "max_message_bytes: 65536",
        raw_batches(2, 50, 2500),
        Box::new(recording.clone()),
        "http",
    )
    .await;
    finish(edge).await;
    assert!(statuses.lock().expect("lock").iter().all(|(_, s)| *s == BatchStatus::Delivered));
    assert_eq!(recording.values().len(), 100);
    assert!(!dir.path().join("edge/out/dead-letter.ndjson").exists());
}

#[tokio::test]
async fn mutual_tls_admits_the_edge_with_a_trusted_certificate_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = sluice_testkit::pki::write(dir.path());
    let server = format!(
        "tls: {{crt_file: '{}', key_file: '{}', client_ca_file: '{}'}}",
        pki.server_crt.display(),
        pki.server_key.display(),
        pki.ca.display()
    );
    let trusted = |crt: &Path, key: &Path| {
        format!(
            "tls: {{ca_file: '{}', crt_file: '{}', key_file: '{}'}}",
            pki.ca.display(),
            crt.display(),
            key.display()
        )
    };
    for (edge_tls, admitted) in [
        (format!("tls: {{ca_file: '{}'}}", pki.ca.display()), false),
        (trusted(&pki.stranger_crt, &pki.stranger_key), false),
        (trusted(&pki.client_crt, &pki.client_key), true),
    ] {
        let recording = RecordingSink::new(AckStatus::Delivered);
        let run = tempfile::tempdir().expect("tempdir");
        let (statuses, health, edge, _aggregator) = forward(
            run.path(),
            &edge_tls,
            &server,
            raw_batches(1, 5, 10),
            Box::new(recording.clone()),
            "https",
        )
        .await;
        if admitted {
            finish(edge).await;
            assert_eq!(*statuses.lock().expect("lock"), [(0, BatchStatus::Delivered)]);
            assert_eq!(recording.values().len(), 5);
        } else {
            assert!(wait_for(LONG, || !health.report().is_ok()).await, "{edge_tls}: refused");
            let report = health.report();
            let reason = report.unhealthy.get("out").expect("unhealthy sink");
            eprintln!("refused as expected: {reason}");
            assert!(
                reason.contains("TLS: ") && reason.contains("client certificate"),
                "{edge_tls}: {reason}"
            );
            assert!(recording.values().is_empty());
            edge.stop(Duration::from_secs(1)).await;
        }
    }
}

#[tokio::test]
async fn the_standard_health_service_says_serving() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _aggregator = topology(
        dir.path(),
        &Health::new(),
        aggregator_source(port, "", dir.path()),
        Box::new(RecordingSink::new(AckStatus::Delivered)),
    );
    drop(client(port).await);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    let mut health = HealthClient::new(channel);
    for service in ["", "sluice.v1.Forward"] {
        let answer = health
            .check(HealthCheckRequest { service: service.into() })
            .await
            .expect("answers")
            .into_inner();
        assert_eq!(answer.status, ServingStatus::Serving as i32, "{service:?}");
    }
}

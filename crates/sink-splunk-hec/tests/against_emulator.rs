//! The splunk_hec sink against the strict HEC emulator, through a topology:
//! raw items byte for byte, indexer acks (late, lost, behind a sticky load
//! balancer, turned off), partial answers, refusals, and the token kept secret.

use std::time::Duration;

use bytes::Bytes;
use sluice_core::BatchStatus;
use sluice_core::component::Sink;
use sluice_core::health::Health;
use sluice_core::test_util::{RawSource, Statuses, wait_for};
use sluice_sink_splunk_hec::{SplunkHecSink, SplunkHecSinkConfig};
use sluice_testkit::{HecEmulator, HecEmulatorConfig, HecFault, HecToken};
use sluice_topology::{SinkPiece, SourcePiece, TopologyOptions, start};

const TOKEN: &str = "8f3c1b52-6a1e-4d8c-9a9b-0c1d2e3f4a5b";

/// Raw audit items, `per_batch` to a batch, the uuid numbering them.
fn items(batches: usize, per_batch: usize) -> Vec<Vec<Bytes>> {
    (0..batches)
        .map(|b| {
            (0..per_batch)
                .map(|i| {
                    let n = b * per_batch + i;
                    Bytes::from(format!(
                        r#"{{"uuid":"AUDIT{n:021}","timestamp":"2026-11-29T10:{:02}:{:02}.{n:03}+01:00","action":"join","v2_only":{{"n":{n}}}}}"#,
                        (n / 60) % 60,
                        n % 60
                    ))
                })
                .collect()
        })
        .collect()
}

fn sink(hec: &HecEmulator, extra: &str) -> Box<dyn Sink> {
    sink_at(&hec.url(), extra)
}

fn sink_at(url: &str, extra: &str) -> Box<dyn Sink> {
    let yaml = format!(
        "endpoint: '{url}'\ntoken: '{TOKEN}'\nbatch: {{max_events: 10, timeout_secs: 0.02}}\nrequest: {{retry_max_backoff_secs: 1, refused_retry_secs: 1}}\n{extra}"
    );
    let config: SplunkHecSinkConfig = serde_yaml_ng::from_str(&yaml).expect("config");
    Box::new(SplunkHecSink::new(
        config.validate(std::path::Path::new("/")).expect("valid"),
        "splunk",
    ))
}

const FAST_ACKS: &str = "acknowledgements: {poll_interval_secs: 0.02, timeout_secs: 2}\n";

struct Run {
    statuses: Statuses,
    task: tokio::task::JoinHandle<()>,
}

fn run(
    data_dir: &std::path::Path,
    sink: Box<dyn Sink>,
    batches: Vec<Vec<Bytes>>,
    health: &Health,
) -> Run {
    let (source, statuses) = RawSource::new(batches, "1password.audit_events");
    let options = TopologyOptions {
        data_dir: data_dir.to_owned(),
        buffer: sluice_core::queue::BufferConfig { max_arrays: 2, ..Default::default() },
        health: health.clone(),
        taps: Default::default(),
    };
    let mut topology = start(
        vec![SourcePiece {
            id: "op".into(),
            type_name: "raw",
            outputs: vec![],
            source: Box::new(source),
        }],
        vec![],
        vec![SinkPiece {
            id: "splunk".into(),
            type_name: "splunk_hec",
            inputs: vec!["op".into()],
            sink,
        }],
        &options,
    );
    let task = tokio::spawn(async move {
        while let Some(exit) = topology.next_exit().await {
            assert!(exit.result.is_ok(), "{exit:?}");
        }
    });
    Run { statuses, task }
}

impl Run {
    async fn finish(self) -> Vec<(usize, BatchStatus)> {
        tokio::time::timeout(Duration::from_secs(120), self.task)
            .await
            .expect("finishes")
            .expect("task");
        self.statuses.lock().expect("lock").clone()
    }
}

fn uuids(hec: &HecEmulator) -> Vec<String> {
    hec.events()
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.event).expect("json")["uuid"]
                .as_str()
                .expect("uuid")
                .to_owned()
        })
        .collect()
}

fn distinct(list: &[String]) -> usize {
    list.iter().collect::<std::collections::HashSet<_>>().len()
}

#[tokio::test]
async fn raw_items_are_indexed_byte_for_byte_once_acked() {
    let hec = HecEmulator::start(HecEmulatorConfig {
        tokens: vec![HecToken::with_acks(TOKEN)],
        ack_delay: Duration::from_millis(100),
        ..HecEmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let batches = items(3, 10);
    let sent: Vec<Bytes> = batches.iter().flatten().cloned().collect();
    let statuses = run(dir.path(), sink(&hec, FAST_ACKS), batches, &Health::new()).finish().await;
    assert_eq!(
        statuses,
        [(0, BatchStatus::Delivered), (1, BatchStatus::Delivered), (2, BatchStatus::Delivered)]
    );
    let events = hec.events();
    assert_eq!(events.len(), 30);
    for (event, raw) in events.iter().zip(&sent) {
        assert_eq!(event.event.as_bytes(), &raw[..], "the raw item, byte for byte");
        assert_eq!(event.sourcetype.as_deref(), Some("1password:insights:audit_events"));
        let item: serde_json::Value = serde_json::from_slice(raw).expect("json");
        let at =
            chrono::DateTime::parse_from_rfc3339(item["timestamp"].as_str().expect("timestamp"))
                .expect("time");
        let time: f64 = event.time.as_deref().expect("time").parse().expect("a number");
        assert!((time - at.timestamp_millis() as f64 / 1000.0).abs() < 1e-6, "{time} for {at}");
        assert!(!event.time.as_deref().expect("time").contains('e'), "no exponent");
    }
    assert_eq!(hec.acks_true(), 3, "one ack per request");
}

#[tokio::test]
async fn lost_and_late_acks_are_sent_again_and_nothing_is_lost() {
    let hec = HecEmulator::start(HecEmulatorConfig {
        tokens: vec![HecToken::with_acks(TOKEN)],
        ack_delay: Duration::from_millis(300),
        lose_every_nth_ack: Some(10),
        ..HecEmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let health = Health::new();
    let run = run(dir.path(), sink(&hec, FAST_ACKS), items(40, 10), &health);
    let statuses = run.finish().await;
    assert_eq!(statuses.len(), 40);
    assert!(statuses.iter().all(|(_, s)| *s == BatchStatus::Delivered), "{statuses:?}");
    let indexed = uuids(&hec);
    assert_eq!(distinct(&indexed), 400, "every event indexed at least once");
    assert!(hec.acks_lost() >= 4, "{} acks lost", hec.acks_lost());
    assert_eq!(
        indexed.len() as u64 - 400,
        hec.acks_lost() * 10,
        "exactly the batches whose ack was lost were sent again"
    );
}

#[tokio::test]
async fn checkpoints_wait_for_a_late_ack() {
    let hec = HecEmulator::start(HecEmulatorConfig {
        tokens: vec![HecToken::with_acks(TOKEN)],
        ack_delay: Duration::from_millis(1500),
        ..HecEmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run(
        dir.path(),
        sink(&hec, "acknowledgements: {poll_interval_secs: 0.02, timeout_secs: 30}\n"),
        items(1, 10),
        &Health::new(),
    );
    // The POST was answered and its ack asked about, still `false`.
    assert!(wait_for(Duration::from_secs(30), || hec.ack_queries() >= 3).await);
    assert!(
        run.statuses.lock().expect("lock").is_empty(),
        "received but not yet acknowledged: nothing committed"
    );
    assert_eq!(run.finish().await, [(0, BatchStatus::Delivered)]);
}

#[tokio::test]
async fn two_indexers_behind_a_sticky_load_balancer_lose_nothing_and_do_not_loop() {
    let hec = HecEmulator::start(HecEmulatorConfig {
        tokens: vec![HecToken::with_acks(TOKEN)],
        indexers: 2,
        channel_cookie: Some("splunk_channel".into()),
        ack_delay: Duration::from_millis(50),
        ..HecEmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let statuses = run(
        dir.path(),
        sink(&hec, &format!("channels: 4\n{FAST_ACKS}")),
        items(30, 10),
        &Health::new(),
    )
    .finish()
    .await;
    assert!(statuses.iter().all(|(_, s)| *s == BatchStatus::Delivered), "{statuses:?}");
    let indexed = uuids(&hec);
    assert_eq!(indexed.len(), 300, "no resend: every ack was asked of the indexer that had it");
    assert_eq!(distinct(&indexed), 300);
    let indexers: std::collections::HashSet<usize> =
        hec.events().iter().map(|e| e.indexer).collect();
    assert_eq!(indexers.len(), 2, "both indexers took events");
}

#[tokio::test]
async fn a_token_with_acks_off_keeps_delivering() {
    let hec = HecEmulator::start(HecEmulatorConfig {
        tokens: vec![HecToken { use_ack: false, ..HecToken::with_acks(TOKEN) }],
        ..HecEmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut checked = sink(&hec, FAST_ACKS);
    checked.preflight().await.expect("the token is accepted; acks off is a warning");
    let statuses = run(dir.path(), checked, items(5, 10), &Health::new()).finish().await;
    assert!(statuses.iter().all(|(_, s)| *s == BatchStatus::Delivered), "{statuses:?}");
    assert_eq!(hec.event_count(), 50, "the preflight said acks are off: a 200 delivers");
    assert_eq!(hec.ack_queries(), 3, "only the preflight asked /ack");
}

/// Without a preflight that could tell (Splunk was down at start), acks are
/// taken to be off only after several answers in a row without `ackId`;
/// until then such a batch is resent (duplicates, never a loss).
#[tokio::test]
async fn acks_off_is_learnt_from_consistent_answers_not_from_one() {
    let hec = HecEmulator::start(HecEmulatorConfig {
        tokens: vec![HecToken { use_ack: false, ..HecToken::with_acks(TOKEN) }],
        ..HecEmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let statuses =
        run(dir.path(), sink(&hec, FAST_ACKS), items(8, 10), &Health::new()).finish().await;
    assert!(statuses.iter().all(|(_, s)| *s == BatchStatus::Delivered), "{statuses:?}");
    let indexed = uuids(&hec);
    assert_eq!(distinct(&indexed), 80, "every event indexed");
    assert!(indexed.len() > 80, "the first answers without ackId were resent");
    assert!(indexed.len() <= 80 + 4 * 10, "acks were taken to be off after 5 answers");
}

#[tokio::test]
async fn an_invalid_event_number_delivers_the_prefix_dead_letters_one_and_resends_the_rest() {
    let hec = HecEmulator::start(HecEmulatorConfig {
        tokens: vec![HecToken::with_acks(TOKEN)],
        ..HecEmulatorConfig::default()
    })
    .await;
    hec.push_fault(HecFault::RejectEvent { at: 5, code: 6 });
    let dir = tempfile::tempdir().expect("tempdir");
    let statuses =
        run(dir.path(), sink(&hec, FAST_ACKS), items(1, 10), &Health::new()).finish().await;
    assert_eq!(statuses, [(0, BatchStatus::Rejected)]);
    let indexed = uuids(&hec);
    assert_eq!(indexed.len(), 9, "5 before it once, the 4 after it sent again once: {indexed:?}");
    assert_eq!(distinct(&indexed), 9);
    let dead =
        std::fs::read_to_string(dir.path().join("splunk/dead-letter.ndjson")).expect("dead letter");
    let record: serde_json::Value = serde_json::from_str(dead.trim_end()).expect("one record");
    assert_eq!(record["error"]["type"], "invalid_data_format");
    assert_eq!(record["status"], 400);
    assert_eq!(record["document"]["event"]["uuid"], "AUDIT000000000000000000005");
    assert_eq!(record["destination"], "1password:insights:audit_events");
}

#[tokio::test]
async fn busy_and_failing_indexers_are_retried() {
    let hec = HecEmulator::start(HecEmulatorConfig {
        tokens: vec![HecToken::with_acks(TOKEN)],
        ..HecEmulatorConfig::default()
    })
    .await;
    for fault in [HecFault::Busy, HecFault::Internal, HecFault::Busy] {
        hec.push_fault(fault);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let statuses =
        run(dir.path(), sink(&hec, FAST_ACKS), items(2, 10), &Health::new()).finish().await;
    assert!(statuses.iter().all(|(_, s)| *s == BatchStatus::Delivered), "{statuses:?}");
    assert_eq!(distinct(&uuids(&hec)), 20);
    assert_eq!(hec.event_count(), 20, "a busy answer indexed nothing, so nothing doubled");
}

#[tokio::test]
async fn a_refused_token_waits_on_health_and_never_leaks() {
    let hec = HecEmulator::start(HecEmulatorConfig {
        tokens: vec![HecToken::with_acks("another-token")],
        ..HecEmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let health = Health::new();
    let run = run(dir.path(), sink(&hec, FAST_ACKS), items(1, 5), &health);
    assert!(
        wait_for(Duration::from_secs(30), || health.report().unhealthy.contains_key("splunk"))
            .await
    );
    let reason = health.report().unhealthy["splunk"].clone();
    assert!(
        reason.starts_with("Splunk HEC refuses: 403 invalid_token: Invalid token (code 4)"),
        "{reason}"
    );
    assert!(run.statuses.lock().expect("lock").is_empty());
    assert_eq!(hec.event_count(), 0);
    run.task.abort();

    let mut refused = sink(&hec, FAST_ACKS);
    let error = refused.preflight().await.expect_err("refused").to_string();
    assert_eq!(error, "Splunk refused the HEC token: 403 invalid_token: Invalid token (code 4)");
    let config: SplunkHecSinkConfig =
        serde_yaml_ng::from_str(&format!("endpoint: '{}'\ntoken: '{TOKEN}'\n", hec.url()))
            .expect("config");
    let settings = config.clone().validate(std::path::Path::new("/")).expect("valid");
    for text in [error, reason, format!("{config:?}"), format!("{settings:?}")] {
        assert!(!text.contains(TOKEN), "{text}");
    }
}

/// Review C2 (reliability 2026-12): an indexer restart forgets pending acks
/// and counts ids from 0 again; the batches it lost must be resent, never
/// taken as indexed because a new batch got the same id.
#[tokio::test]
async fn indexer_restarts_lose_nothing() {
    let hec = HecEmulator::start(HecEmulatorConfig {
        tokens: vec![HecToken::with_acks(TOKEN)],
        ack_delay: Duration::from_millis(300),
        ..HecEmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let run = run(dir.path(), sink(&hec, FAST_ACKS), items(30, 10), &Health::new());
    for after in [8, 20] {
        assert!(wait_for(Duration::from_secs(60), || hec.requests() >= after).await);
        hec.restart();
    }
    let statuses = run.finish().await;
    assert!(statuses.iter().all(|(_, s)| *s == BatchStatus::Delivered), "{statuses:?}");
    assert!(hec.events_lost() > 0, "the restarts lost batches in flight (the test bites)");
    assert_eq!(distinct(&uuids(&hec)), 300, "every event indexed after the restarts");
}

/// Review C3: a 200 that is not HEC's answer (a proxy's maintenance page)
/// is retried; nothing in it is taken as delivered.
#[tokio::test]
async fn a_200_html_page_is_retried() {
    let hec = HecEmulator::start(HecEmulatorConfig {
        tokens: vec![HecToken::with_acks(TOKEN)],
        ..HecEmulatorConfig::default()
    })
    .await;
    for _ in 0..3 {
        hec.push_fault(HecFault::ProxyHtml);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let statuses =
        run(dir.path(), sink(&hec, FAST_ACKS), items(5, 10), &Health::new()).finish().await;
    assert!(statuses.iter().all(|(_, s)| *s == BatchStatus::Delivered), "{statuses:?}");
    assert_eq!(distinct(&uuids(&hec)), 50);
}

/// Review C3: one node with useACK off among nodes with it on, and `/ack`
/// answering code 14 now and then: acks stay on, a batch without an ackId
/// is resent until an indexer confirms it, nothing is lost.
#[tokio::test]
async fn a_node_with_acks_off_and_ack_code_14_keep_acks_on_and_lose_nothing() {
    let hec = HecEmulator::start(HecEmulatorConfig {
        tokens: vec![HecToken::with_acks(TOKEN)],
        indexers: 3,
        no_ack_indexers: vec![1],
        ack_delay: Duration::from_millis(50),
        ..HecEmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut checked = sink(&hec, FAST_ACKS);
    checked.preflight().await.expect("the token is accepted");
    hec.refuse_acks(5);
    let statuses = run(dir.path(), checked, items(20, 10), &Health::new()).finish().await;
    assert!(statuses.iter().all(|(_, s)| *s == BatchStatus::Delivered), "{statuses:?}");
    let indexed = uuids(&hec);
    assert_eq!(distinct(&indexed), 200, "every event indexed");
    let by_ack_nodes: std::collections::HashSet<&str> = hec
        .events()
        .iter()
        .zip(&indexed)
        .filter(|(e, _)| e.indexer != 1)
        .map(|(_, u)| u.as_str())
        .collect::<Vec<_>>()
        .into_iter()
        .collect();
    assert_eq!(by_ack_nodes.len(), 200, "each event was confirmed by a node with acks on");
}

/// Review L2 (reliability 2026-12): a wait that times out before the poller
/// asked again (a process paused past the timeout) asks `/ack` once more
/// before it resends: what Splunk indexed is not indexed twice.
#[tokio::test]
async fn a_timed_out_ack_is_asked_once_more_before_the_batch_is_resent() {
    let hec = HecEmulator::start(HecEmulatorConfig {
        tokens: vec![HecToken::with_acks(TOKEN)],
        ..HecEmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    // The poller asks every 60 s; every wait times out after 1 s first.
    let slow_poll = "acknowledgements: {poll_interval_secs: 60, timeout_secs: 1}\n";
    let statuses =
        run(dir.path(), sink(&hec, slow_poll), items(3, 10), &Health::new()).finish().await;
    assert!(statuses.iter().all(|(_, s)| *s == BatchStatus::Delivered), "{statuses:?}");
    let indexed = uuids(&hec);
    assert_eq!(indexed.len(), 30, "each batch indexed once: the last ask found it");
    assert_eq!(distinct(&indexed), 30);
}

/// Newcomer review row 40: Splunk's default certificate names no host (a
/// subject CN, no subjectAltName), and a certificate may name a host other
/// than the address in `endpoint`. `tls.verify_hostname: false` checks the
/// chain against `ca_file` but not the name; `tls.server_name` checks
/// against that name. Without them both are refused, and said to be.
#[tokio::test]
async fn certificates_that_do_not_name_the_address_are_checked_as_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = sluice_testkit::pki::write(dir.path());
    let hec = HecEmulator::start(HecEmulatorConfig {
        tokens: vec![HecToken::with_acks(TOKEN)],
        ..HecEmulatorConfig::default()
    })
    .await;
    let backend = hec.url().trim_start_matches("http://").parse().expect("address");
    let splunk_default =
        sluice_testkit::pki::tls_proxy(&pki.splunk_default_crt, &pki.splunk_default_key, backend)
            .await;
    let named = sluice_testkit::pki::tls_proxy(&pki.named_crt, &pki.named_key, backend).await;
    let ca = pki.ca.display().to_string();
    let refused = |address: std::net::SocketAddr, tls: String| {
        let dir = dir.path().to_owned();
        async move {
            let health = Health::new();
            let url = format!("https://127.0.0.1:{}", address.port());
            let running = run(&dir, sink_at(&url, &tls), items(1, 3), &health);
            let named = wait_for(Duration::from_secs(30), || {
                health.report().unhealthy.values().any(|reason| reason.contains("tls_certificate"))
            })
            .await;
            running.task.abort();
            named
        }
    };
    let delivered = |address: std::net::SocketAddr, tls: String| {
        let dir = dir.path().to_owned();
        async move {
            let url = format!("https://127.0.0.1:{}", address.port());
            run(&dir, sink_at(&url, &format!("{tls}{FAST_ACKS}")), items(1, 3), &Health::new())
                .finish()
                .await
        }
    };
    assert!(refused(splunk_default, format!("tls: {{ca_file: '{ca}'}}\n")).await);
    // At start, the check says it is the certificate, and what to set.
    let url = format!("https://127.0.0.1:{}", splunk_default.port());
    let error = sink_at(&url, &format!("tls: {{ca_file: '{ca}'}}\n"))
        .preflight()
        .await
        .expect_err("refused")
        .to_string();
    assert!(error.starts_with("sluice refused Splunk HEC's TLS certificate"), "{error}");
    assert!(error.contains("tls.verify_hostname: false") && !error.contains("cannot be reached"));
    assert_eq!(
        delivered(splunk_default, format!("tls: {{ca_file: '{ca}', verify_hostname: false}}\n"))
            .await,
        [(0, BatchStatus::Delivered)]
    );
    assert!(refused(named, format!("tls: {{ca_file: '{ca}'}}\n")).await);
    assert!(
        refused(named, format!("tls: {{ca_file: '{ca}', server_name: other.internal}}\n")).await
    );
    assert_eq!(
        delivered(named, format!("tls: {{ca_file: '{ca}', server_name: hec.internal}}\n")).await,
        [(0, BatchStatus::Delivered)]
    );
    assert_eq!(hec.event_count(), 6, "both deliveries indexed, nothing from the refused ones");
}

//! Adaptive request concurrency against the emulator, through a topology: a
//! cluster that slows down (10 ms → 2 s a bulk, then 503s) makes the sink
//! lower its requests in flight, a recovered one raises them again, and
//! nothing is lost or doubled. A binary of its own: it reads the
//! process-wide `sluice_sink_concurrency_limit` gauge.

use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use sluice_core::BatchStatus;
use sluice_core::health::Health;
use sluice_core::test_util::{VecSource, wait_for};
use sluice_sink_elasticsearch::{ElasticsearchSink, ElasticsearchSinkConfig};
use sluice_testkit::{EsEmulator, EsEmulatorConfig, Latency};
use sluice_topology::{SinkPiece, SourcePiece, TopologyOptions, start};

const BATCHES: usize = 3000;
const PER_BATCH: usize = 10;

fn limit(metrics: &PrometheusHandle) -> Option<f64> {
    metrics
        .render()
        .lines()
        .find(|line| line.starts_with("sluice_sink_concurrency_limit{"))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

fn latency(ms: u64) -> Latency {
    Latency { base: Duration::from_millis(ms), jitter: Duration::ZERO }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowing_cluster_lowers_concurrency_and_a_recovered_one_raises_it_losing_nothing() {
    let metrics = PrometheusBuilder::new().install_recorder().expect("the only recorder");
    let es = EsEmulator::start(EsEmulatorConfig::default()).await;
    es.set_latency(latency(10));
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "endpoints: ['{}']\nbatch: {{max_events: {PER_BATCH}, timeout_secs: 0.05}}\nrequest: {{max_concurrency: 16, retry_max_backoff_secs: 1, refused_retry_secs: 1}}\n",
        es.url()
    );
    let config: ElasticsearchSinkConfig = serde_yaml_ng::from_str(&yaml).expect("config");
    let sink = Box::new(ElasticsearchSink::new(config.validate(dir.path()).expect("valid")));
    let batches: Vec<Vec<vrl::value::Value>> = (0..BATCHES)
        .map(|b| {
            (0..PER_BATCH)
                .map(|i| {
                    let n = b * PER_BATCH + i;
                    vrl::value::Value::from(json!({
                        "@timestamp": "2026-11-20T08:14:03.250Z",
                        "event": {"kind": "event", "dataset": "1password.item_usages"},
                        "onepassword": {"uuid": format!("UUID{n:022}")},
                    }))
                })
                .collect()
        })
        .collect();
    let (source, statuses) = VecSource::new(batches);
    let options = TopologyOptions {
        data_dir: dir.path().to_owned(),
        buffer: sluice_core::queue::BufferConfig { max_arrays: 4, ..Default::default() },
        health: Health::new(),
        taps: Default::default(),
    };
    let mut topology = start(
        vec![SourcePiece {
            id: "in".into(),
            type_name: "test",
            outputs: vec![],
            source: Box::new(source),
        }],
        vec![],
        vec![SinkPiece {
            id: "es".into(),
            type_name: "elasticsearch",
            inputs: vec!["in".into()],
            sink,
        }],
        &options,
    );
    let reaches = |what: &str, check: &dyn Fn(f64) -> bool| {
        let seen = limit(&metrics);
        assert!(
            seen.is_some_and(check),
            "{what}: the limit is {seen:?}; {} of {} documents stored",
            es.document_count(),
            BATCHES * PER_BATCH
        );
    };
    let until = async |check: &dyn Fn(f64) -> bool| {
        wait_for(Duration::from_secs(120), || limit(&metrics).is_some_and(check)).await
    };

    // A quick cluster: from 1 up to the ceiling. (Taking the limit while
    // slow start still doubles it, at 8, made the next step flaky: a slow
    // cluster takes it from 16 to 14, never below 8.)
    until(&|l| l >= 16.0).await;
    reaches("quick answers raise it to the ceiling", &|l| l >= 16.0);
    let high = limit(&metrics).expect("a limit");
    // Each bulk now takes 2 s: a round trip far above the average lowers it.
    es.set_latency(latency(2000));
    until(&|l| l < high).await;
    reaches("a round trip 200 times longer lowers it", &|l| l < high);
    // Then the cluster pushes back: 503 at once to every bulk.
    es.set_latency(latency(10));
    es.fail_requests(Some(503));
    until(&|l| l <= 2.0).await;
    reaches("503s bring it down to 2 or less", &|l| l <= 2.0);
    // Recovered: it climbs again.
    es.fail_requests(None);
    until(&|l| l >= 8.0).await;
    reaches("a recovered cluster raises it again", &|l| l >= 8.0);

    while let Some(exit) = topology.next_exit().await {
        assert!(exit.result.is_ok(), "{exit:?}");
    }
    let statuses = statuses.lock().expect("lock").clone();
    assert_eq!(statuses.len(), BATCHES);
    assert!(statuses.iter().all(|(_, s)| *s == BatchStatus::Delivered), "every batch delivered");
    assert_eq!(es.document_count(), BATCHES * PER_BATCH, "nothing lost, nothing doubled");
}

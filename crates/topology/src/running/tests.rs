use std::sync::Arc;
use std::time::Duration;

use vrl::value::Value;

use super::*;
use sluice_core::ack::{AckStatus, BatchStatus};
use sluice_core::component::TransformOutput;
use sluice_core::event::Event;
use sluice_core::test_util::{RecordingSink, VecSource, wait_for};

fn options() -> TopologyOptions {
    TopologyOptions {
        data_dir: std::env::temp_dir(),
        buffer: sluice_core::queue::BufferConfig { max_arrays: 2, ..Default::default() },
        health: Health::new(),
        taps: Default::default(),
    }
}

fn source(id: &str, source: VecSource) -> SourcePiece {
    SourcePiece { id: id.into(), type_name: "vec", outputs: vec![], source: Box::new(source) }
}

fn sink(id: &str, inputs: &[&str], sink: RecordingSink) -> SinkPiece {
    SinkPiece {
        id: id.into(),
        type_name: "recording",
        inputs: inputs.iter().map(|i| (*i).to_owned()).collect(),
        sink: Box::new(sink),
    }
}

fn values(range: std::ops::Range<i64>) -> Vec<Value> {
    range.map(Value::from).collect()
}

async fn run_to_end(mut topology: RunningTopology) {
    while let Some(exit) = topology.next_exit().await {
        assert!(exit.result.is_ok(), "{exit:?}");
    }
}

#[tokio::test]
async fn fan_out_resolves_a_batch_only_after_both_sinks() {
    let (vec_source, statuses) = VecSource::new(vec![values(0..3)]);
    let fast = RecordingSink::new(AckStatus::Delivered);
    let (slow, gate) = RecordingSink::gated(AckStatus::Delivered);
    let topology = start(
        vec![source("in", vec_source)],
        vec![],
        vec![sink("fast", &["in"], fast.clone()), sink("slow", &["in"], slow.clone())],
        &options(),
    );
    assert!(wait_for(Duration::from_secs(5), || fast.values().len() == 3).await);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(statuses.lock().expect("lock").is_empty(), "the slow sink has not delivered yet");
    gate.add_permits(1);
    run_to_end(topology).await;
    assert_eq!(*statuses.lock().expect("lock"), [(0, BatchStatus::Delivered)]);
    assert_eq!(slow.values(), values(0..3));
}

#[tokio::test]
async fn the_worst_sink_status_reaches_the_source() {
    let (vec_source, statuses) = VecSource::new(vec![values(0..2), values(2..4)]);
    let topology = start(
        vec![source("in", vec_source)],
        vec![],
        vec![
            sink("ok", &["in"], RecordingSink::new(AckStatus::Delivered)),
            sink("err", &["in"], RecordingSink::new(AckStatus::Errored)),
            sink("dlq", &["in"], RecordingSink::new(AckStatus::Rejected)),
        ],
        &options(),
    );
    run_to_end(topology).await;
    assert_eq!(
        *statuses.lock().expect("lock"),
        [(0, BatchStatus::Rejected), (1, BatchStatus::Rejected)]
    );
}

/// Sends odd numbers to its `dropped` output and drops 0.
struct SplitOdd;

impl FunctionTransform for SplitOdd {
    fn transform(&mut self, event: Event, out: &mut TransformOutput) {
        match &event.value {
            Value::Integer(0) => {}
            Value::Integer(n) if n % 2 == 1 => out.push_to("dropped", event),
            _ => out.push(event),
        }
    }
}

#[tokio::test]
async fn transforms_route_to_named_outputs() {
    let (vec_source, statuses) = VecSource::new(vec![values(0..6)]);
    let even = RecordingSink::new(AckStatus::Delivered);
    let odd = RecordingSink::new(AckStatus::Delivered);
    let transform = TransformPiece {
        id: "split".into(),
        type_name: "split_odd",
        inputs: vec!["in".into()],
        outputs: vec!["dropped".into()],
        transform: Box::new(SplitOdd),
    };
    let topology = start(
        vec![source("in", vec_source)],
        vec![transform],
        vec![sink("even", &["split"], even.clone()), sink("odd", &["split.dropped"], odd.clone())],
        &options(),
    );
    run_to_end(topology).await;
    assert_eq!(even.values(), [Value::from(2), Value::from(4)]);
    assert_eq!(odd.values(), values(1..6).into_iter().step_by(2).collect::<Vec<_>>());
    assert_eq!(
        *statuses.lock().expect("lock"),
        [(0, BatchStatus::Delivered)],
        "the dropped 0 counts as delivered"
    );
}

/// Panics on the value 1, passes the others through.
struct PanicsOnOne;

impl FunctionTransform for PanicsOnOne {
    fn transform(&mut self, event: Event, out: &mut TransformOutput) {
        assert!(event.value != Value::from(1), "boom on 1");
        out.push(event);
    }
}

#[tokio::test]
async fn a_panic_on_one_event_dead_letters_it_and_the_rest_go_on() {
    let (vec_source, statuses) = VecSource::new(vec![values(0..3), values(3..5)]);
    let transform = TransformPiece {
        id: "bad".into(),
        type_name: "panics",
        inputs: vec!["in".into()],
        outputs: vec!["dropped".into()],
        transform: Box::new(PanicsOnOne),
    };
    let out = RecordingSink::new(AckStatus::Delivered);
    let dead = RecordingSink::new(AckStatus::Rejected);
    let topology = start(
        vec![source("in", vec_source)],
        vec![transform],
        vec![sink("out", &["bad"], out.clone()), sink("dead", &["bad.dropped"], dead.clone())],
        &options(),
    );
    run_to_end(topology).await;
    assert_eq!(out.values(), [Value::from(0), Value::from(2), Value::from(3), Value::from(4)]);
    let dead = serde_json::to_value(&dead.values()[0]).expect("json");
    assert_eq!(dead["event"]["kind"], "pipeline_error");
    assert_eq!(dead["error"]["type"], "transform_panic");
    assert!(dead["error"]["message"][0].as_str().expect("message").contains("boom on 1"), "{dead}");
    assert_eq!(dead["sluice"]["component_id"], "bad");
    assert_eq!(
        *statuses.lock().expect("lock"),
        [(0, BatchStatus::Rejected), (1, BatchStatus::Delivered)]
    );
}

#[tokio::test]
async fn stop_aborts_what_outlives_the_deadline() {
    let (vec_source, statuses) = VecSource::new(vec![values(0..1)]);
    let (stuck, _gate) = RecordingSink::gated(AckStatus::Delivered);
    let topology = start(
        vec![source("in", vec_source)],
        vec![],
        vec![sink("stuck", &["in"], stuck)],
        &options(),
    );
    let report = topology.stop(Duration::from_millis(100)).await;
    assert_eq!(report.timed_out, ["in", "stuck"]);
    assert!(statuses.lock().expect("lock").is_empty(), "an aborted source records no status");
}

/// Two workers that each wait, on their first event, until the other one
/// has started too (or 10 s): proof that they run side by side.
struct Rendezvous {
    arrived: Arc<(std::sync::Mutex<usize>, std::sync::Condvar)>,
    met: Arc<std::sync::atomic::AtomicUsize>,
    started: bool,
}

impl FunctionTransform for Rendezvous {
    fn transform(&mut self, event: Event, out: &mut TransformOutput) {
        if !std::mem::replace(&mut self.started, true) {
            let (lock, condvar) = &*self.arrived;
            let mut arrived = lock.lock().expect("lock");
            *arrived += 1;
            condvar.notify_all();
            let (arrived, _) = condvar
                .wait_timeout_while(arrived, Duration::from_secs(10), |n| *n < 2)
                .expect("lock");
            if *arrived >= 2 {
                self.met.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        out.push(event);
    }

    fn concurrency(&self) -> usize {
        2
    }

    fn fork(&self) -> Option<Box<dyn FunctionTransform>> {
        Some(Box::new(Rendezvous {
            arrived: self.arrived.clone(),
            met: self.met.clone(),
            started: false,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_transform_runs_on_its_workers_side_by_side_and_every_batch_is_acknowledged() {
    let (vec_source, statuses) =
        VecSource::new((0..6).map(|b| values(b * 10..b * 10 + 10)).collect());
    let met = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let transform = TransformPiece {
        id: "map".into(),
        type_name: "rendezvous",
        inputs: vec!["in".into()],
        outputs: vec![],
        transform: Box::new(Rendezvous {
            arrived: Arc::default(),
            met: met.clone(),
            started: false,
        }),
    };
    let out = RecordingSink::new(AckStatus::Delivered);
    let topology = start(
        vec![source("in", vec_source)],
        vec![transform],
        vec![sink("out", &["map"], out.clone())],
        &options(),
    );
    run_to_end(topology).await;
    assert_eq!(
        met.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "both workers ran at the same time"
    );
    let mut seen: Vec<i64> =
        out.values().iter().map(|v| v.as_integer().expect("integer")).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..60).collect::<Vec<_>>(), "every event once");
    assert_eq!(
        *statuses.lock().expect("lock"),
        (0..6).map(|b| (b, BatchStatus::Delivered)).collect::<Vec<_>>(),
        "acknowledged in source order"
    );
}

#[tokio::test]
async fn a_reload_replaces_a_sink_without_losing_or_repeating_an_event() {
    let batches: Vec<_> = (0..5).map(|b| values(b * 3..b * 3 + 3)).collect();
    let (vec_source, statuses) = VecSource::new(batches);
    let (old, gate) = RecordingSink::gated(AckStatus::Delivered);
    let mut topology = start(
        vec![source("in", vec_source)],
        vec![],
        vec![sink("out", &["in"], old.clone())],
        &options(),
    );
    // The old instance holds at most what its channel (2 arrays) and its
    // loop (1) took; the rest goes to the new one.
    let new = RecordingSink::new(AckStatus::Delivered);
    let changes = Changes { sinks: vec![sink("out", &["in"], new.clone())], ..Changes::default() };
    topology.reload(changes, Duration::from_secs(30));
    gate.add_permits(100);
    run_to_end(topology).await;
    let mut all: Vec<i64> =
        old.values().iter().chain(new.values().iter()).filter_map(Value::as_integer).collect();
    all.sort_unstable();
    assert_eq!(all, (0..15).collect::<Vec<_>>(), "each event delivered once");
    assert!(new.values().len() >= 6, "the new instance took over: {:?}", new.values());
    let expected: Vec<_> = (0..5).map(|i| (i, BatchStatus::Delivered)).collect();
    assert_eq!(*statuses.lock().expect("lock"), expected, "the source ran once and saw every ack");
}

#[tokio::test]
async fn a_reload_removes_a_sink_and_adds_another() {
    let (vec_source, statuses) = VecSource::new(vec![values(0..2), values(2..4), values(4..6)]);
    let (kept, gate) = RecordingSink::gated(AckStatus::Delivered);
    let removed = RecordingSink::new(AckStatus::Delivered);
    let mut topology = start(
        vec![source("in", vec_source)],
        vec![],
        vec![sink("kept", &["in"], kept.clone()), sink("gone", &["in"], removed.clone())],
        &options(),
    );
    let added = RecordingSink::new(AckStatus::Delivered);
    let changes = Changes {
        sinks: vec![sink("added", &["in"], added.clone())],
        removed: vec!["gone".into()],
        ..Changes::default()
    };
    topology.reload(changes, Duration::from_secs(30));
    gate.add_permits(100);
    run_to_end(topology).await;
    assert_eq!(kept.values(), values(0..6), "an unchanged sink keeps running");
    assert_eq!(removed.values().len() + added.values().len(), 6, "{removed:?} {added:?}");
    assert_eq!(statuses.lock().expect("lock").len(), 3);
}

/// Passes every event through.
struct Pass;

impl FunctionTransform for Pass {
    fn transform(&mut self, event: Event, out: &mut TransformOutput) {
        out.push(event);
    }
}

/// Review C1 (reliability 2026-12): a second reload of a source while the
/// first replaced instance has ended but its exit is not yet handled. The
/// waiting successor held the last sender into the unchanged transform's
/// channel; dropping it closed the transform, and the newest source was
/// wired to nothing, its events counted delivered.
#[tokio::test]
async fn two_reloads_while_the_replaced_source_drains_keep_the_unchanged_transform() {
    let (first, first_statuses) = VecSource::new(vec![values(0..3)]);
    let out = RecordingSink::new(AckStatus::Delivered);
    let transform = TransformPiece {
        id: "t".into(),
        type_name: "pass",
        inputs: vec!["in".into()],
        outputs: vec![],
        transform: Box::new(Pass),
    };
    let mut topology = start(
        vec![source("in", first)],
        vec![transform],
        vec![sink("out", &["t"], out.clone())],
        &options(),
    );
    let (second, second_statuses) = VecSource::new(vec![values(10..13)]);
    topology.reload(
        Changes { sources: vec![source("in", second)], ..Changes::default() },
        Duration::from_secs(30),
    );
    // The first instance delivers and ends; nobody handles its exit yet.
    let first_task = topology.running["in"];
    let abort = topology.names[&first_task].abort.clone();
    assert!(wait_for(Duration::from_secs(10), || abort.is_finished()).await);
    assert_eq!(*first_statuses.lock().expect("lock"), [(0, BatchStatus::Delivered)]);
    let (third, third_statuses) = VecSource::new(vec![values(20..23), values(23..26)]);
    topology.reload(
        Changes { sources: vec![source("in", third)], ..Changes::default() },
        Duration::from_secs(30),
    );
    assert!(options().health.report().unhealthy.is_empty());
    run_to_end(topology).await;
    assert!(second_statuses.lock().expect("lock").is_empty(), "the superseded successor never ran");
    assert_eq!(
        *third_statuses.lock().expect("lock"),
        [(0, BatchStatus::Delivered), (1, BatchStatus::Delivered)]
    );
    let mut seen: Vec<i64> = out.values().iter().filter_map(Value::as_integer).collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        [0, 1, 2, 20, 21, 22, 23, 24, 25],
        "every acknowledged event reached the sink"
    );
}

/// When a consumer's input is gone anyway, a producer wired to it sends
/// nothing that counts as delivered, and the consumer shows on /health.
#[tokio::test]
async fn an_output_whose_consumer_is_gone_errors_its_events_and_reports_it() {
    let (vec_source, statuses) = VecSource::new(vec![values(0..2)]);
    let opts = options();
    let mut topology = RunningTopology::empty(&opts);
    let ready = topology.prepare(
        vec![source("in", vec_source)],
        vec![],
        vec![sink("out", &["in"], RecordingSink::new(AckStatus::Delivered))],
    );
    // The sink's channel closes before anything is wired to it.
    let mut ready: BTreeMap<String, Ready> = ready.into_iter().collect();
    drop(ready.remove("out"));
    topology.wiring.pending.clear();
    topology.rewire();
    let report = opts.health.report();
    assert!(report.unhealthy.keys().any(|k| k.starts_with("out")), "{:?}", report.unhealthy);
    topology.spawn("in".into(), ready.remove("in").expect("source"));
    run_to_end(topology).await;
    assert_eq!(*statuses.lock().expect("lock"), [(0, BatchStatus::Errored)]);
}

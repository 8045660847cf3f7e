use std::io::Write;
use std::path::Path;
use std::time::Duration;

use vrl::value::Value;

use super::*;
use sluice_core::ack::AckStatus;
use sluice_core::health::Health;
use sluice_core::test_util::{RecordingSink, wait_for};
use sluice_topology::{SinkPiece, SourcePiece, TopologyOptions, start};

fn config(path: &Path, mode: ReadMode, batch: usize) -> FileSourceConfig {
    FileSourceConfig {
        path: path.to_owned(),
        dataset: None,
        stream: Some("item_usages".into()),
        format: LineFormat::Ndjson,
        mode,
        batch_max_events: batch,
        max_pending_batches: 2,
        max_pending_bytes: 1 << 20,
        poll_interval_ms: 10,
        max_line_bytes: 1024,
    }
}

fn lines(range: std::ops::Range<usize>) -> String {
    range.map(|n| format!("{{\"uuid\":\"{n}\"}}\n")).collect()
}

fn uuids(sink: &RecordingSink) -> Vec<String> {
    sink.values()
        .iter()
        .map(|v| match v {
            Value::Object(map) => {
                map.get("uuid").map_or_else(|| "?".into(), |u| u.to_string_lossy().into_owned())
            }
            _ => "?".into(),
        })
        .collect()
}

fn checkpoint(data_dir: &Path) -> u64 {
    let bytes = std::fs::read(data_dir.join("in/checkpoint.json")).expect("checkpoint exists");
    serde_json::from_slice::<Checkpoint>(&bytes).expect("valid checkpoint").offset
}

struct Run {
    sink: RecordingSink,
    dropped: RecordingSink,
    topology: sluice_topology::RunningTopology,
}

fn run(config: FileSourceConfig, data_dir: &Path, sink: RecordingSink) -> Run {
    let dropped = RecordingSink::new(AckStatus::Delivered);
    let source = config.validate(Path::new("/")).expect("valid");
    let options = TopologyOptions {
        data_dir: data_dir.to_owned(),
        buffer: sluice_core::queue::BufferConfig { max_arrays: 4, ..Default::default() },
        health: Health::new(),
        taps: Default::default(),
    };
    let topology = start(
        vec![SourcePiece {
            id: "in".into(),
            type_name: "file",
            outputs: FileSourceConfig::outputs(),
            source: Box::new(source),
        }],
        vec![],
        vec![
            SinkPiece {
                id: "out".into(),
                type_name: "recording",
                inputs: vec!["in".into()],
                sink: Box::new(sink.clone()),
            },
            SinkPiece {
                id: "dlq".into(),
                type_name: "recording",
                inputs: vec!["in.dropped".into()],
                sink: Box::new(dropped.clone()),
            },
        ],
        &options,
    );
    Run { sink, dropped, topology }
}

async fn finish(mut run: Run) -> Run {
    while let Some(exit) = run.topology.next_exit().await {
        assert!(exit.result.is_ok(), "{exit:?}");
    }
    run
}

#[tokio::test]
async fn once_reads_everything_commits_the_end_and_resumes_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.ndjson");
    // The last line has no newline, and a blank line sits in the middle.
    let text = format!("{}\n{}{{\"uuid\":\"last\"}}", lines(0..5), lines(5..10));
    std::fs::write(&input, &text).expect("write");
    let first = finish(run(
        config(&input, ReadMode::Once, 3),
        dir.path(),
        RecordingSink::new(AckStatus::Delivered),
    ))
    .await;
    let mut expected: Vec<String> = (0..10).map(|n| n.to_string()).collect();
    expected.push("last".into());
    assert_eq!(uuids(&first.sink), expected);
    assert_eq!(checkpoint(dir.path()), text.len() as u64);

    let mut file = std::fs::OpenOptions::new().append(true).open(&input).expect("open");
    file.write_all(b"\n{\"uuid\":\"new\"}\n").expect("append");
    let second = finish(run(
        config(&input, ReadMode::Once, 3),
        dir.path(),
        RecordingSink::new(AckStatus::Delivered),
    ))
    .await;
    assert_eq!(uuids(&second.sink), ["new"], "nothing committed is read again");
}

#[tokio::test]
async fn once_ends_its_output_when_it_has_read_everything_not_when_it_is_acknowledged() {
    // A sink that acknowledges only at the end of its input (a batch that
    // waits for more events): the source must let its output end once it
    // has read the file, or both would wait for each other. Two batches:
    // as many as the source keeps unacknowledged.
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.ndjson");
    let text = lines(0..7);
    std::fs::write(&input, &text).expect("write");
    let run = run(
        config(&input, ReadMode::Once, 5),
        dir.path(),
        RecordingSink::until_end(AckStatus::Delivered),
    );
    let done = tokio::time::timeout(Duration::from_secs(60), finish(run))
        .await
        .expect("the source ended its output after reading everything");
    assert_eq!(uuids(&done.sink), (0..7).map(|n| n.to_string()).collect::<Vec<_>>());
    assert_eq!(checkpoint(dir.path()), text.len() as u64, "committed once acknowledged");
}

#[tokio::test]
async fn invalid_lines_go_to_the_dropped_output_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, "{\"uuid\":\"a\"}\n{not json\n{\"uuid\":\"b\"}\n").expect("write");
    let done = finish(run(
        config(&input, ReadMode::Once, 10),
        dir.path(),
        RecordingSink::new(AckStatus::Delivered),
    ))
    .await;
    assert_eq!(uuids(&done.sink), ["a", "b"]);
    let dropped = done.dropped.values();
    assert_eq!(dropped.len(), 1);
    let Value::Object(event) = &dropped[0] else { panic!("object") };
    assert_eq!(event["message"], Value::from("{not json"));
    let Value::Object(error) = &event["error"] else { panic!("error object") };
    assert!(
        error["message"].to_string_lossy().starts_with("invalid JSON: key must be a string"),
        "{error:?}"
    );
    assert_eq!(error["component_id"], Value::from("in"));
    let Value::Object(file) = &event["file"] else { panic!("file object") };
    assert_eq!(file["offset"], Value::from(13));
}

#[tokio::test]
async fn a_line_longer_than_max_line_bytes_is_one_dropped_event_and_reading_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.ndjson");
    let long = format!("{{\"uuid\":\"long\",\"pad\":\"{}\"}}\n", "x".repeat(5000));
    let text = format!("{{\"uuid\":\"a\"}}\n{long}{{\"uuid\":\"b\"}}\n");
    std::fs::write(&input, &text).expect("write");
    // Batches of one: the long line is read across several buffer fills.
    let done = finish(run(
        config(&input, ReadMode::Once, 1),
        dir.path(),
        RecordingSink::new(AckStatus::Delivered),
    ))
    .await;
    assert_eq!(uuids(&done.sink), ["a", "b"]);
    let dropped = done.dropped.values();
    assert_eq!(dropped.len(), 1);
    let Value::Object(event) = &dropped[0] else { panic!("object") };
    assert_eq!(event["message"].to_string_lossy().len(), 1024, "its first bytes are kept");
    let Value::Object(error) = &event["error"] else { panic!("error object") };
    assert_eq!(
        error["message"].to_string_lossy(),
        format!(
            "the line is {} bytes, longer than max_line_bytes (1024); its first 1024 bytes are kept",
            long.len()
        )
    );
    assert_eq!(checkpoint(dir.path()), text.len() as u64, "committed past it");
}

#[tokio::test]
async fn invalid_lines_go_down_the_default_output_when_nothing_reads_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, "{\"uuid\":\"a\"}\n{not json\n").expect("write");
    let sink = RecordingSink::new(AckStatus::Delivered);
    let options = TopologyOptions {
        data_dir: dir.path().to_owned(),
        buffer: sluice_core::queue::BufferConfig { max_arrays: 4, ..Default::default() },
        health: Health::new(),
        taps: Default::default(),
    };
    let mut topology = start(
        vec![SourcePiece {
            id: "in".into(),
            type_name: "file",
            outputs: FileSourceConfig::outputs(),
            source: Box::new(
                config(&input, ReadMode::Once, 10).validate(Path::new("/")).expect("valid"),
            ),
        }],
        vec![],
        vec![SinkPiece {
            id: "out".into(),
            type_name: "recording",
            inputs: vec!["in".into()],
            sink: Box::new(sink.clone()),
        }],
        &options,
    );
    while let Some(exit) = topology.next_exit().await {
        assert!(exit.result.is_ok(), "{exit:?}");
    }
    let values = sink.values();
    assert_eq!(values.len(), 2, "the unreadable line is not discarded: {values:?}");
    let Value::Object(failed) = &values[1] else { panic!("object") };
    assert_eq!(failed["message"], Value::from("{not json"));
    // Marked as failed, so a vrl transform downstream keeps its error.
    let Value::Object(event) = &failed["event"] else { panic!("event") };
    assert_eq!(event["kind"], Value::from("pipeline_error"));
}

#[tokio::test]
async fn an_errored_batch_is_read_again_and_never_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, lines(0..4)).expect("write");
    // The sink errors every batch until the test lets it deliver.
    let failing = RecordingSink::new(AckStatus::Errored);
    let running = run(config(&input, ReadMode::Follow, 2), dir.path(), failing.clone());
    assert!(wait_for(Duration::from_secs(5), || failing.values().len() >= 4).await);
    let committed =
        sluice_core::checkpoint::read(&dir.path().join("in/checkpoint.json")).expect("read");
    assert!(committed.is_none(), "nothing may be committed while every batch errors");
    running.topology.stop(Duration::from_secs(5)).await;

    let healthy = finish(run(
        config(&input, ReadMode::Once, 2),
        dir.path(),
        RecordingSink::new(AckStatus::Delivered),
    ))
    .await;
    assert_eq!(uuids(&healthy.sink), ["0", "1", "2", "3"]);
    assert_eq!(checkpoint(dir.path()), lines(0..4).len() as u64);
}

#[tokio::test]
async fn follow_picks_up_appended_and_completed_lines_and_commits_on_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, lines(0..2)).expect("write");
    let running = run(
        config(&input, ReadMode::Follow, 100),
        dir.path(),
        RecordingSink::new(AckStatus::Delivered),
    );
    assert!(wait_for(Duration::from_secs(5), || running.sink.values().len() == 2).await);
    let mut file = std::fs::OpenOptions::new().append(true).open(&input).expect("open");
    file.write_all(b"{\"uuid\":\"half").expect("append");
    file.flush().expect("flush");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(running.sink.values().len(), 2, "an unfinished line waits for its newline");
    file.write_all(b"-done\"}\n").expect("append");
    assert!(wait_for(Duration::from_secs(5), || running.sink.values().len() == 3).await);
    let sink = running.sink.clone();
    let report = running.topology.stop(Duration::from_secs(5)).await;
    assert!(report.timed_out.is_empty() && report.failed.is_empty(), "{report:?}");
    assert_eq!(uuids(&sink), ["0", "1", "half-done"]);
    assert_eq!(checkpoint(dir.path()), std::fs::metadata(&input).expect("stat").len());
}

#[test]
fn validate_checks_ranges_and_resolves_the_path() {
    let mut bad = config(Path::new("in.ndjson"), ReadMode::Once, 0);
    bad.max_pending_batches = 0;
    bad.max_pending_bytes = 1000;
    let errors = bad.validate(Path::new("/etc/sluice")).expect_err("invalid");
    let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
    assert_eq!(
        fields,
        [Some("batch_max_events"), Some("max_pending_batches"), Some("max_pending_bytes")]
    );
    let good = config(Path::new("in.ndjson"), ReadMode::Once, 10)
        .validate(Path::new("/etc/sluice"))
        .expect("valid");
    assert_eq!(good.config.path, Path::new("/etc/sluice/in.ndjson"));
}

#[tokio::test]
async fn a_dead_letter_is_read_back_as_the_raw_items_it_was_made_from() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("dead-letter.ndjson");
    let record = |document: serde_json::Value| {
        serde_json::json!({"@timestamp": "2026-12-03T10:00:00Z", "destination": "d",
            "error": {"type": "mapper_parsing_exception", "reason": "x"},
            "sluice": {"component_id": "es"}, "document": document})
        .to_string()
    };
    let text = [
        record(serde_json::json!({"event": {"original": "{\"uuid\":\"a\"}",
            "dataset": "1password.audit_events"}})),
        record(serde_json::json!({"event": {"dataset": "1password.audit_events"},
            "data_stream": {"dataset": "1password.audit_events"}})),
        record(serde_json::json!({"sourcetype": "1password:insights:item_usages",
            "event": {"uuid": "b"}})),
    ]
    .join("\n");
    std::fs::write(&input, text).expect("write");
    let mut config = config(&input, ReadMode::Once, 10);
    config.format = LineFormat::DeadLetter;
    config.stream = None;
    let done = finish(run(config, dir.path(), RecordingSink::new(AckStatus::Delivered))).await;
    assert_eq!(uuids(&done.sink), ["a", "b"], "the raw items, not the records");
    let dropped = done.dropped.values();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    let Value::Object(map) = &dropped[0] else { panic!("an object: {dropped:?}") };
    let error = map.get("error").expect("error").to_string();
    assert!(error.contains("event_original: drop"), "{error}");
}

#[test]
fn raw_items_need_their_stream_and_a_dead_letter_does_not() {
    let mut raw = config(Path::new("in.ndjson"), ReadMode::Once, 10);
    raw.stream = None;
    let errors = raw.clone().validate(Path::new("/")).expect_err("no stream");
    assert_eq!(errors[0].field, Some("dataset"));
    assert!(errors[0].message.contains("format: dead_letter"), "{}", errors[0].message);
    let mut any = raw.clone();
    any.dataset = Some("okta.system".into());
    assert_eq!(
        any.clone().validate(Path::new("/")).expect("valid").dataset.as_deref(),
        Some("okta.system")
    );
    any.stream = Some("audit_events".into());
    assert!(any.validate(Path::new("/")).expect_err("both")[0].message.contains("not both"));
    raw.stream = Some("signins".into());
    let unknown = raw.clone().validate(Path::new("/")).expect_err("unknown");
    assert!(unknown[0].message.contains("unknown stream `signins`"), "{}", unknown[0].message);
    raw.stream = None;
    raw.format = LineFormat::DeadLetter;
    assert!(raw.validate(Path::new("/")).is_ok());
}

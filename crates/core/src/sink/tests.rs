//! The delivery layer tested on its own, against a scripted destination in
//! paused time: one test per class of answer (see the table in `mod.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use vrl::value::Value;

use crate::BatchStatus::{Delivered, Rejected};
use crate::sink::{Failure, ItemOutcome, RequestError};
use crate::test_util::{Answer, ScriptedService, default_delivery, start_batch_sink, wait_for};

/// `count` events `{"n": first..}`, one batch.
fn batch(first: usize, count: usize) -> Vec<Value> {
    (first..first + count).map(|n| Value::from(json!({"n": n}))).collect()
}

fn holds(item: &crate::sink::Encoded, text: &str) -> bool {
    String::from_utf8_lossy(&item.payload).contains(text)
}

fn dead_letter(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("sink/dead-letter.ndjson"))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON record"))
        .collect()
}

fn retry(status: u16) -> Failure {
    Failure::new(status, "unavailable", "try later")
}

const WAIT: Duration = Duration::from_secs(600);

#[tokio::test(start_paused = true)]
async fn delivered_and_duplicate_items_are_acknowledged_as_delivered() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Every other item is already there (a replay): 409 on `create`.
    let service = ScriptedService::new(|items| {
        Answer::Items(
            (0..items.len())
                .map(|i| if i % 2 == 1 { ItemOutcome::Duplicate } else { ItemOutcome::Delivered })
                .collect(),
        )
    });
    let run = start_batch_sink(
        service.clone(),
        default_delivery(dir.path()),
        dir.path(),
        vec![batch(0, 3), batch(3, 3)],
    );
    assert_eq!(run.finish().await, [(0, Delivered), (1, Delivered)]);
    assert_eq!(service.request_sizes().iter().sum::<usize>(), 6, "each item sent once");
    assert!(dead_letter(dir.path()).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failed_request_and_retried_items_are_sent_again_until_delivered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = ScriptedService::queue([
        Answer::Request(RequestError::Retry(retry(503))),
        Answer::Request(RequestError::Retry(Failure::without_status("transport", "reset"))),
        Answer::Items(vec![
            ItemOutcome::Delivered,
            ItemOutcome::Retry(retry(429)),
            ItemOutcome::Delivered,
        ]),
    ]);
    let run = start_batch_sink(
        service.clone(),
        default_delivery(dir.path()),
        dir.path(),
        vec![batch(0, 3)],
    );
    assert_eq!(run.finish().await, [(0, Delivered)]);
    // Three whole requests, then the retried item alone.
    assert_eq!(service.request_sizes(), [3, 3, 3, 1]);
    assert!(String::from_utf8_lossy(&service.requests()[3][0]).contains("\"n\":1"));
}

#[tokio::test(start_paused = true)]
async fn a_retry_mix_delivers_rejects_and_resends_each_item_by_its_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rejected = Failure::new(400, "mapper_parsing_exception", "failed to parse field [n]");
    let service = ScriptedService::queue([Answer::Items(vec![
        ItemOutcome::Delivered,
        ItemOutcome::Retry(retry(429)),
        ItemOutcome::Rejected(rejected),
        ItemOutcome::Duplicate,
    ])]);
    let run = start_batch_sink(
        service.clone(),
        default_delivery(dir.path()),
        dir.path(),
        vec![batch(0, 4)],
    );
    assert_eq!(run.finish().await, [(0, Rejected)]);
    assert_eq!(service.request_sizes(), [4, 1]);
    let records = dead_letter(dir.path());
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["document"], json!({"n": 2}));
    assert_eq!(records[0]["status"], 400);
    assert_eq!(records[0]["error"]["type"], "mapper_parsing_exception");
}

#[tokio::test(start_paused = true)]
async fn a_refused_request_holds_the_batch_and_shows_on_health_until_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let accept = Arc::new(AtomicBool::new(false));
    let open = accept.clone();
    let service = ScriptedService::new(move |_| {
        if open.load(Ordering::SeqCst) {
            Answer::Each(ItemOutcome::Delivered)
        } else {
            Answer::Request(RequestError::Refused(Failure::new(403, "security_exception", "no")))
        }
    });
    let run = start_batch_sink(
        service.clone(),
        default_delivery(dir.path()),
        dir.path(),
        vec![batch(0, 2)],
    );
    assert!(wait_for(WAIT, || run.unhealthy().is_some_and(|r| r.contains("403"))).await);
    // Sent again every refused_retry_secs (60 s by default), never acknowledged.
    assert!(wait_for(WAIT, || service.request_sizes().len() >= 3).await);
    assert!(run.statuses().is_empty(), "nothing is final while refused");
    accept.store(true, Ordering::SeqCst);
    assert!(wait_for(WAIT, || run.unhealthy().is_none()).await, "{:?}", run.unhealthy());
    assert_eq!(run.finish().await, [(0, Delivered)]);
    assert!(dead_letter(dir.path()).is_empty(), "a refusal is not a rejection");
}

#[tokio::test(start_paused = true)]
async fn a_request_too_large_is_split_in_halves_and_a_single_item_too_large_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = ScriptedService::new(|items| {
        if items.len() > 1 || holds(&items[0], "\"n\":2") {
            Answer::Request(RequestError::TooLarge(Failure::new(413, "too_large", "413")))
        } else {
            Answer::Each(ItemOutcome::Delivered)
        }
    });
    let run = start_batch_sink(
        service.clone(),
        default_delivery(dir.path()),
        dir.path(),
        vec![batch(0, 4)],
    );
    assert_eq!(run.finish().await, [(0, Rejected)]);
    assert_eq!(service.request_sizes(), [4, 2, 1, 1, 2, 1, 1]);
    let records = dead_letter(dir.path());
    assert_eq!((records.len(), &records[0]["document"]), (1, &json!({"n": 2})));
    assert_eq!(records[0]["status"], 413);
}

#[tokio::test(start_paused = true)]
async fn an_invalid_request_is_split_until_the_bad_document_is_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = ScriptedService::new(|items| {
        if items.iter().any(|item| holds(item, "\"n\":5")) {
            Answer::Request(RequestError::Invalid(Failure::new(400, "parse_exception", "bad")))
        } else {
            Answer::Each(ItemOutcome::Delivered)
        }
    });
    let run = start_batch_sink(
        service.clone(),
        default_delivery(dir.path()),
        dir.path(),
        vec![batch(0, 8)],
    );
    assert_eq!(run.finish().await, [(0, Rejected)]);
    let sent: usize = service.request_sizes().iter().sum();
    assert!(sent < 8 * 4, "halving, not one request per item and round: {sent}");
    let records = dead_letter(dir.path());
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["document"], json!({"n": 5}));
}

#[tokio::test(start_paused = true)]
async fn a_short_answer_is_a_retry_of_the_whole_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = ScriptedService::queue([Answer::Items(vec![ItemOutcome::Delivered])]);
    let run = start_batch_sink(
        service.clone(),
        default_delivery(dir.path()),
        dir.path(),
        vec![batch(0, 3)],
    );
    assert_eq!(run.finish().await, [(0, Delivered)]);
    // The one answer for three items is not taken for the first item.
    assert_eq!(service.request_sizes(), [3, 3]);
}

#[tokio::test(start_paused = true)]
async fn an_event_that_cannot_be_encoded_goes_to_the_dead_letter_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = ScriptedService::queue([]);
    let mut events = batch(0, 2);
    events.push(Value::from(json!({"unencodable": true})));
    let run =
        start_batch_sink(service.clone(), default_delivery(dir.path()), dir.path(), vec![events]);
    assert_eq!(run.finish().await, [(0, Rejected)]);
    assert_eq!(service.request_sizes(), [2]);
    let records = dead_letter(dir.path());
    assert_eq!(records[0]["error"]["type"], "encode_failed");
    assert_eq!(records[0]["error"]["reason"], "the event says it cannot be encoded");
}

#[tokio::test(start_paused = true)]
async fn an_unwritable_dead_letter_holds_the_rejection_until_it_can_be_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The dead letter's folder is a file: every write fails.
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, b"not a folder").expect("write");
    let mut settings = default_delivery(dir.path());
    settings.dead_letter_path = Some(blocked.join("dead-letter.ndjson"));
    let rejected = Failure::new(400, "mapper_parsing_exception", "bad");
    let service = ScriptedService::queue([Answer::Each(ItemOutcome::Rejected(rejected))]);
    let run = start_batch_sink(service, settings, dir.path(), vec![batch(0, 2)]);
    assert!(
        wait_for(WAIT, || run.unhealthy().is_some_and(|r| r.contains("dead_letter_unwritable")))
            .await,
        "{:?}",
        run.unhealthy()
    );
    assert!(run.statuses().is_empty(), "not acknowledged before it is written");
    std::fs::remove_file(&blocked).expect("remove");
    std::fs::create_dir(&blocked).expect("folder");
    assert_eq!(run.finish().await, [(0, Rejected)]);
    let written = std::fs::read_to_string(blocked.join("dead-letter.ndjson")).expect("written");
    assert_eq!(written.lines().count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_full_dead_letter_holds_the_sink_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = default_delivery(dir.path());
    settings.dead_letter_max_bytes = 16;
    let rejected = Failure::new(400, "mapper_parsing_exception", "bad");
    let service = ScriptedService::queue([Answer::Each(ItemOutcome::Rejected(rejected))]);
    let run = start_batch_sink(service, settings, dir.path(), vec![batch(0, 1)]);
    assert!(
        wait_for(WAIT, || run.unhealthy().is_some_and(|r| r.contains("dead_letter_unwritable")))
            .await,
        "{:?}",
        run.unhealthy()
    );
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(run.statuses().is_empty(), "a rejection that could not be kept is not acknowledged");
    assert!(dead_letter(dir.path()).is_empty());
    run.abort();
}

//! The kit on a scripted target, in paused time: commits in order, rewinds
//! after a failed delivery, health on refusals and long failures, a
//! checkpoint that cannot be written, backpressure and the drain.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::AckStatus;
use crate::component::{Fanout, Outputs, ShutdownSignal};
use crate::health::Health;
use crate::metrics::ComponentMetrics;
use crate::queue::{BufferConfig, QueueReceiver, queue};
use crate::test_util::wait_for;

/// What the scripted target saw, shared with the test.
#[derive(Default)]
struct Seen {
    fetches: AtomicUsize,
    commits: Mutex<Vec<u64>>,
    rewinds: AtomicUsize,
    saves: AtomicUsize,
    /// Writes of the checkpoint fail while set (a full disk).
    disk_full: std::sync::atomic::AtomicBool,
}

struct Scripted {
    answers: VecDeque<Result<Fetched<u64>, FetchError>>,
    seen: Arc<Seen>,
}

impl PollTarget for Scripted {
    type Position = u64;

    fn label(&self) -> &str {
        "things"
    }

    fn api(&self) -> &str {
        "the Things API"
    }

    fn refused_hint(&self) -> &str {
        "the Things API refuses"
    }

    async fn fetch(&mut self, _: &PollMetrics) -> Result<Fetched<u64>, FetchError> {
        self.seen.fetches.fetch_add(1, Ordering::SeqCst);
        self.answers.pop_front().unwrap_or(Ok(Fetched {
            events: Vec::new(),
            position: None,
            more: false,
        }))
    }

    fn commit(&mut self, position: u64) -> bool {
        self.seen.commits.lock().expect("lock").push(position);
        true
    }

    fn save(&mut self) -> Result<(), String> {
        self.seen.saves.fetch_add(1, Ordering::SeqCst);
        if self.seen.disk_full.load(Ordering::SeqCst) {
            return Err("disk full".into());
        }
        Ok(())
    }

    fn checkpoint_path(&self) -> &Path {
        Path::new("things.json")
    }

    fn rewind(&mut self) {
        self.seen.rewinds.fetch_add(1, Ordering::SeqCst);
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(60)
    }
}

fn batch(position: u64, events: usize, more: bool) -> Result<Fetched<u64>, FetchError> {
    let events =
        (0..events).map(|n| crate::Event::new(vrl::value::Value::from(n as i64))).collect();
    Ok(Fetched { events, position: Some(position), more })
}

fn failed() -> Result<Fetched<u64>, FetchError> {
    Err(FetchError::Failed { reason: "server_error", message: "HTTP 503".into() })
}

struct Run {
    seen: Arc<Seen>,
    health: Health,
    shutdown: ShutdownSignal,
    rx: QueueReceiver,
    task: tokio::task::JoinHandle<Result<(), crate::component::BoxError>>,
}

fn start(answers: Vec<Result<Fetched<u64>, FetchError>>, max_in_flight: usize) -> Run {
    let (tx, rx) = queue(BufferConfig::default(), Vec::new());
    let default = Fanout::default();
    default.set_consumers(vec![tx]);
    let component = ComponentMetrics::new("src", "source", "test");
    let out = Arc::new(Outputs::new(default, BTreeMap::new(), component.clone()));
    let health = Health::new();
    let shutdown = ShutdownSignal::new();
    let poller = Poller {
        out,
        shutdown: shutdown.clone(),
        health: health.handle("src"),
        metrics: PollMetrics::new(&component, "sluice_test", "things"),
        settings: PollSettings {
            max_in_flight,
            retry_max_backoff: Duration::from_secs(4),
            refused_retry: Duration::from_secs(30),
            unhealthy_after: Duration::from_secs(60),
        },
    };
    let seen = Arc::new(Seen::default());
    let mut target = Scripted { answers: answers.into(), seen: seen.clone() };
    let task = tokio::spawn(async move { poller.run(&mut target, false).await });
    Run { seen, health, shutdown, rx, task }
}

impl Run {
    /// The next batch sent, as its events.
    async fn next_batch(&mut self) -> Vec<crate::Event> {
        self.rx.recv().await.expect("a batch").into_events()
    }

    fn commits(&self) -> Vec<u64> {
        self.seen.commits.lock().expect("lock").clone()
    }

    fn unhealthy(&self) -> BTreeMap<String, String> {
        self.health.report().unhealthy
    }
}

fn finish(events: Vec<crate::Event>, status: AckStatus) {
    for mut event in events {
        std::mem::take(&mut event.meta.finalizers).finish(status);
    }
}

const LONG: Duration = Duration::from_secs(600);

#[tokio::test(start_paused = true)]
async fn batches_commit_in_order_whatever_order_the_sinks_finish_them() {
    let mut run = start(vec![batch(1, 2, true), batch(2, 3, true), batch(3, 1, false)], 8);
    let (one, two, three) =
        (run.next_batch().await, run.next_batch().await, run.next_batch().await);
    assert_eq!((one.len(), two.len(), three.len()), (2, 3, 1), "one batch per fetch");
    finish(three, AckStatus::Delivered);
    finish(two, AckStatus::Delivered);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(run.commits(), Vec::<u64>::new(), "nothing commits before the first batch");
    finish(one, AckStatus::Delivered);
    assert!(wait_for(LONG, || run.commits() == [1, 2, 3]).await, "{:?}", run.commits());
    run.shutdown.cancel();
    run.task.await.expect("joined").expect("ran");
}

#[tokio::test(start_paused = true)]
async fn a_batch_the_sinks_gave_up_on_rewinds_to_the_last_commit() {
    let mut run = start(vec![batch(1, 1, true), batch(2, 1, false), batch(3, 1, false)], 8);
    finish(run.next_batch().await, AckStatus::Delivered);
    assert!(wait_for(LONG, || run.commits() == [1]).await);
    finish(run.next_batch().await, AckStatus::Errored);
    assert!(wait_for(LONG, || run.seen.rewinds.load(Ordering::SeqCst) == 1).await);
    // Fetched again from the last commit: the next batch is delivered and commits.
    finish(run.next_batch().await, AckStatus::Delivered);
    assert!(wait_for(LONG, || run.commits() == [1, 3]).await, "{:?}", run.commits());
    run.shutdown.cancel();
    run.task.await.expect("joined").expect("ran");
}

#[tokio::test(start_paused = true)]
async fn a_refusal_is_down_at_once_and_up_again_when_the_api_accepts() {
    let refused = Err(FetchError::Refused { reason: "unauthorized", message: "401".into() });
    let mut run = start(vec![refused, batch(1, 1, false)], 8);
    assert!(wait_for(LONG, || run.unhealthy().get("src.things").is_some_and(|r| r == "401")).await);
    // Tried again after refused_retry; the answer turns it healthy.
    finish(run.next_batch().await, AckStatus::Delivered);
    assert!(wait_for(LONG, || run.unhealthy().is_empty()).await, "{:?}", run.unhealthy());
    run.shutdown.cancel();
    run.task.await.expect("joined").expect("ran");
}

#[tokio::test(start_paused = true)]
async fn failures_are_retried_and_reported_only_after_unhealthy_after() {
    let mut answers: Vec<_> = (0..40).map(|_| failed()).collect();
    answers.push(batch(1, 1, false));
    let started = tokio::time::Instant::now();
    let mut run = start(answers, 8);
    assert!(wait_for(LONG, || run.seen.fetches.load(Ordering::SeqCst) >= 3).await);
    assert!(run.unhealthy().is_empty(), "retried quietly at first");
    let reported = || run.unhealthy().get("src.things").cloned().unwrap_or_default();
    assert!(wait_for(LONG, || reported().starts_with("requests have failed for ")).await);
    assert!(started.elapsed() >= Duration::from_secs(60), "{:?}", started.elapsed());
    assert!(reported().ends_with(": HTTP 503"), "{}", reported());
    finish(run.next_batch().await, AckStatus::Delivered);
    assert!(wait_for(LONG, || run.unhealthy().is_empty()).await);
    assert_eq!(run.seen.fetches.load(Ordering::SeqCst), 41, "every failure retried");
    run.shutdown.cancel();
    run.task.await.expect("joined").expect("ran");
}

#[tokio::test(start_paused = true)]
async fn an_unwritable_checkpoint_holds_fetching_until_a_write_succeeds() {
    let mut run = start(vec![batch(1, 1, true), batch(2, 1, false)], 8);
    run.seen.disk_full.store(true, Ordering::SeqCst);
    finish(run.next_batch().await, AckStatus::Delivered);
    let key = "src.things.checkpoint";
    assert!(wait_for(LONG, || run.unhealthy().contains_key(key)).await);
    assert_eq!(run.unhealthy()[key], "disk full; retrying");
    let (fetches, saves) =
        (run.seen.fetches.load(Ordering::SeqCst), run.seen.saves.load(Ordering::SeqCst));
    // Past the interval the poller was idling out when the write failed.
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(run.seen.fetches.load(Ordering::SeqCst), fetches, "nothing fetched meanwhile");
    assert!(run.seen.saves.load(Ordering::SeqCst) > saves + 3, "the write is retried");
    // The disk accepts it again: healthy, and the next batch comes.
    run.seen.disk_full.store(false, Ordering::SeqCst);
    assert!(wait_for(LONG, || !run.unhealthy().contains_key(key)).await);
    finish(run.next_batch().await, AckStatus::Delivered);
    assert!(wait_for(LONG, || run.commits() == [1, 2]).await);
    run.shutdown.cancel();
    run.task.await.expect("joined").expect("ran");
}

#[tokio::test(start_paused = true)]
async fn no_more_than_max_in_flight_batches_wait_for_the_sinks() {
    let answers = (1..=4).map(|n| batch(n, 1, true)).collect();
    let mut run = start(answers, 2);
    let (one, two) = (run.next_batch().await, run.next_batch().await);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(run.seen.fetches.load(Ordering::SeqCst), 2, "held back at two in flight");
    finish(one, AckStatus::Delivered);
    let three = run.next_batch().await;
    assert_eq!(run.seen.fetches.load(Ordering::SeqCst), 3, "room for one more");
    run.shutdown.cancel();
    finish(two, AckStatus::Delivered);
    finish(three, AckStatus::Delivered);
    run.task.await.expect("joined").expect("ran");
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_what_the_sinks_still_acknowledge() {
    let mut run = start(vec![batch(1, 1, true), batch(2, 1, false)], 8);
    let (one, two) = (run.next_batch().await, run.next_batch().await);
    run.shutdown.cancel();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!run.task.is_finished(), "waits for the batches in flight");
    finish(one, AckStatus::Delivered);
    finish(two, AckStatus::Delivered);
    run.task.await.expect("joined").expect("ran");
    assert_eq!(run.seen.commits.lock().expect("lock").clone(), [1, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_the_target_does_not_handle_is_waited_out() {
    let limited = Err(FetchError::RateLimited { retry_after: Some(Duration::from_secs(20)) });
    let started = tokio::time::Instant::now();
    let mut run = start(vec![limited, batch(1, 1, false)], 8);
    finish(run.next_batch().await, AckStatus::Delivered);
    assert!(started.elapsed() >= Duration::from_secs(20), "{:?}", started.elapsed());
    assert!(run.unhealthy().is_empty(), "a 429 is no outage");
    run.shutdown.cancel();
    run.task.await.expect("joined").expect("ran");
}

/// The store round-trips a serde position and names its file in errors.
#[test]
fn the_store_keeps_a_position_and_says_which_file_is_broken() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path: PathBuf = dir.path().join("src/users.json");
    let store = CheckpointStore::<BTreeMap<String, u32>>::new(path.clone());
    assert_eq!(store.load().expect("load"), None);
    store.save(&BTreeMap::from([("a".to_owned(), 1)])).expect("save");
    assert_eq!(store.load().expect("load"), Some(BTreeMap::from([("a".to_owned(), 1)])));
    std::fs::write(&path, "{not json").expect("write");
    let err = store.load().expect_err("broken").to_string();
    assert!(err.starts_with(&format!("checkpoint {}: not a checkpoint", path.display())), "{err}");
}

//! Indexer acknowledgement: batches that got an `ackId` wait here until a
//! query to `/services/collector/ack` answers `true` for them.
//!
//! Pending ids are keyed by (channel, cookies, ackId): an id exists only on
//! the indexer that took the POST, and the cookies the answer set (Splunk's
//! `channel_cookie`, a load balancer's stickiness cookie) are what route the
//! query back to that indexer. An id not answered `true` within the timeout
//! counts as lost and its batch is sent again (a duplicate is possible, a
//! loss is not). Only an explicit `true` releases a batch as indexed: a wait
//! that ends any other way (its id handed out again by an indexer that
//! restarted, acks switched off, the tracker gone) is lost and resent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

/// Where an id lives: a channel and the cookies that reach its indexer.
pub(crate) type AckKey = (usize, String);

/// Why a wait ended without `true`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AckWait {
    /// Indexed.
    Indexed,
    /// The HEC lost the id: it handed the same id out again while this one
    /// was pending (an indexer restarted, or another indexer behind a load
    /// balancer counts from 0 too), or acks were switched off.
    Lost,
    /// No `true` within the timeout.
    TimedOut,
}

/// The pending ids of one sink.
#[derive(Debug)]
pub(crate) struct AckTracker {
    pending: Mutex<HashMap<AckKey, HashMap<u64, oneshot::Sender<AckWait>>>>,
    enabled: AtomicBool,
}

impl AckTracker {
    pub(crate) fn new(enabled: bool) -> Self {
        Self { pending: Mutex::new(HashMap::new()), enabled: AtomicBool::new(enabled) }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<AckKey, HashMap<u64, oneshot::Sender<AckWait>>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether acks are (still) expected.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// How many ids wait.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().values().map(HashMap::len).sum()
    }

    /// Wait for `id` under `key`, at most `timeout`. An id still pending
    /// under the same key means the HEC forgot it: the older wait ends as
    /// [`AckWait::Lost`] (its batch is resent), never as indexed.
    pub(crate) async fn wait(&self, key: AckKey, id: u64, timeout: Duration) -> AckWait {
        let (tx, rx) = oneshot::channel();
        let older = self.lock().entry(key.clone()).or_default().insert(id, tx);
        if let Some(older) = older {
            let _ = older.send(AckWait::Lost);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => AckWait::Lost,
            Err(_elapsed) => {
                let mut pending = self.lock();
                if let Some(ids) = pending.get_mut(&key) {
                    // Only this wait's own entry: a newer wait may hold the id now.
                    if ids.get(&id).is_some_and(oneshot::Sender::is_closed) {
                        ids.remove(&id);
                    }
                    if ids.is_empty() {
                        pending.remove(&key);
                    }
                }
                AckWait::TimedOut
            }
        }
    }

    /// What to ask: every key with its pending ids.
    pub(crate) fn snapshot(&self) -> Vec<(AckKey, Vec<u64>)> {
        self.lock().iter().map(|(key, ids)| (key.clone(), ids.keys().copied().collect())).collect()
    }

    /// Release the ids answered `true`.
    pub(crate) fn indexed(&self, key: &AckKey, ids: &[u64]) {
        let mut pending = self.lock();
        if let Some(waiting) = pending.get_mut(key) {
            for id in ids {
                if let Some(tx) = waiting.remove(id) {
                    let _ = tx.send(AckWait::Indexed);
                }
            }
            if waiting.is_empty() {
                pending.remove(key);
            }
        }
    }

    /// The token has acks off: expect no more acks. What still waits was
    /// never confirmed, so it is lost and resent (a 200 then delivers it).
    pub(crate) fn disable(&self) {
        self.enabled.store(false, Ordering::Relaxed);
        for (_, ids) in self.lock().drain() {
            for (_, tx) in ids {
                let _ = tx.send(AckWait::Lost);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ids_resolve_by_key_or_time_out() {
        let tracker = Arc::new(AckTracker::new(true));
        let key: AckKey = (0, "splunk_channel=a; AWSALBAPP-0=1".into());
        let waiting = tokio::spawn({
            let tracker = tracker.clone();
            let key = key.clone();
            async move { tracker.wait(key, 7, Duration::from_secs(300)).await }
        });
        let lost = tokio::spawn({
            let tracker = tracker.clone();
            async move { tracker.wait((0, String::new()), 7, Duration::from_secs(300)).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(tracker.len(), 2);
        tracker.indexed(&key, &[7]);
        assert_eq!(waiting.await.expect("task"), AckWait::Indexed);
        tokio::time::advance(Duration::from_secs(301)).await;
        assert_eq!(
            lost.await.expect("task"),
            AckWait::TimedOut,
            "the same id under other cookies is another ack"
        );
        assert_eq!(tracker.len(), 0);
    }

    /// Review C2 (reliability 2026-12): after a restart an indexer counts ack
    /// ids from 0 again on the channel; the second wait on one (key, id) must
    /// end the first as lost, never as delivered.
    #[tokio::test(start_paused = true)]
    async fn a_reused_id_ends_the_older_wait_as_lost() {
        let tracker = Arc::new(AckTracker::new(true));
        let key: AckKey = (0, String::new());
        let first = tokio::spawn({
            let (tracker, key) = (tracker.clone(), key.clone());
            async move { tracker.wait(key, 0, Duration::from_secs(300)).await }
        });
        while tracker.len() == 0 {
            tokio::task::yield_now().await;
        }
        let second = tokio::spawn({
            let (tracker, key) = (tracker.clone(), key.clone());
            async move { tracker.wait(key, 0, Duration::from_secs(300)).await }
        });
        assert_eq!(first.await.expect("task"), AckWait::Lost);
        assert_eq!(tracker.len(), 1, "the newer wait holds the id");
        tracker.indexed(&key, &[0]);
        assert_eq!(second.await.expect("task"), AckWait::Indexed);
    }

    #[tokio::test]
    async fn disabling_ends_every_wait_as_lost() {
        let tracker = Arc::new(AckTracker::new(true));
        let waiting = tokio::spawn({
            let tracker = tracker.clone();
            async move { tracker.wait((0, String::new()), 0, Duration::from_secs(300)).await }
        });
        while tracker.len() == 0 {
            tokio::task::yield_now().await;
        }
        tracker.disable();
        assert_eq!(waiting.await.expect("task"), AckWait::Lost, "never confirmed: resent");
        assert!(!tracker.enabled());
    }
}

//! Indexer acknowledgement: batches that got an `ackId` wait here until a
//! query to `/services/collector/ack` answers `true` for them.
//!
//! Pending ids are keyed by (channel, cookies, ackId): an id exists only on
//! the indexer that took the POST, and the cookies the answer set (Splunk's
//! `channel_cookie`, a load balancer's stickiness cookie) are what route the
//! query back to that indexer. An id not answered `true` within the timeout
//! counts as lost and its batch is sent again (a duplicate is possible, a
//! loss is not). An `/ack` answer of code 14 (acks disabled for the token)
//! falls back to "200 means received", loudly; any other unexpected answer is
//! simply asked again, never taken as "delivered".

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
    /// The token has acks off: the 200 is all there is.
    Disabled,
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

    /// Wait for `id` under `key`, at most `timeout`.
    pub(crate) async fn wait(&self, key: AckKey, id: u64, timeout: Duration) -> AckWait {
        let (tx, rx) = oneshot::channel();
        self.lock().entry(key.clone()).or_default().insert(id, tx);
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => AckWait::Disabled,
            Err(_elapsed) => {
                let mut pending = self.lock();
                if let Some(ids) = pending.get_mut(&key) {
                    ids.remove(&id);
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

    /// The token has acks off: release everything and expect no more acks.
    pub(crate) fn disable(&self) {
        self.enabled.store(false, Ordering::Relaxed);
        for (_, ids) in self.lock().drain() {
            for (_, tx) in ids {
                let _ = tx.send(AckWait::Disabled);
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

    #[tokio::test]
    async fn disabling_releases_every_wait() {
        let tracker = Arc::new(AckTracker::new(true));
        let waiting = tokio::spawn({
            let tracker = tracker.clone();
            async move { tracker.wait((0, String::new()), 0, Duration::from_secs(300)).await }
        });
        while tracker.len() == 0 {
            tokio::task::yield_now().await;
        }
        tracker.disable();
        assert_eq!(waiting.await.expect("task"), AckWait::Disabled);
        assert!(!tracker.enabled());
    }
}

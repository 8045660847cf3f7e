//! The loop: wait for room and the rate limiter, fetch, send the batch with
//! one finalizer, commit acknowledged batches in order, idle an interval
//! when caught up, back off on failures, drain on shutdown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::metrics::PollMetrics;
use super::{
    FetchError, Fetched, GAUGES_EVERY, MAX_WAIT, PROGRESS_EVERY, PollSettings, PollTarget,
};
use crate::Event;
use crate::ack::{BatchNotifier, BatchStatus, EventFinalizers, OrderedAcks};
use crate::backoff::{Backoff, jitter};
use crate::component::{BoxError, Outputs, Reservation, ShutdownSignal};
use crate::health::HealthHandle;
use crate::metrics::Stage;

/// Runs one [`PollTarget`] until shutdown.
#[derive(Debug)]
pub struct Poller {
    /// Where batches go.
    pub out: Arc<Outputs>,
    /// Stop signal.
    pub shutdown: ShutdownSignal,
    /// The source's health switch.
    pub health: HealthHandle,
    /// The target's metrics.
    pub metrics: PollMetrics,
    /// Timings and limits.
    pub settings: PollSettings,
}

/// Where the loop stands.
pub(super) struct State<P> {
    pub(super) committed_at: Instant,
    acks: OrderedAcks<P>,
    backoff: Backoff,
    /// Reported on `/health` and `stream_up` 0: refused, or failing too long.
    pub(super) down: bool,
    /// Since when requests fail, and the last error: checked on every
    /// failure and on the gauge timer, so `/health` turns within seconds of
    /// `unhealthy_after` and its "for N" stays current between retries.
    pub(super) failing: Option<(Instant, String)>,
    /// When the last progress line was logged (behind a lock: the rate
    /// limiter's wait logs it through a shared borrow).
    progress_at: Mutex<Instant>,
    /// Whether the last fetch said more is waiting (a backfill under way).
    backfilling: bool,
    events_this_run: u64,
    /// The checkpoint file is behind the target's checkpoint (a write
    /// failed: a full or read-only disk). Nothing is fetched until a write
    /// succeeds; it is retried with `save_backoff`, and shown on `/health`.
    pub(super) unsaved: bool,
    /// The last write failed (logged once, on `/health` until one succeeds).
    pub(super) save_failed: bool,
    pub(super) save_backoff: Backoff,
}

impl Poller {
    /// Poll `target` until shutdown, then commit what the sinks still
    /// acknowledge. `unsaved`: the target's checkpoint must be written
    /// before the first fetch.
    pub async fn run<T: PollTarget>(&self, target: &mut T, unsaved: bool) -> Result<(), BoxError> {
        self.metrics.up.set(1.0);
        let mut state = State {
            committed_at: Instant::now(),
            acks: OrderedAcks::new(),
            backoff: Backoff::new(
                Duration::from_secs(1),
                self.settings.retry_max_backoff.max(Duration::from_secs(1)),
            ),
            down: false,
            failing: None,
            progress_at: Mutex::new(Instant::now()),
            backfilling: false,
            events_this_run: 0,
            unsaved,
            save_failed: false,
            save_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(5)),
        };
        self.save(&mut state, target);
        let result = self.poll(&mut state, target).await;
        while !state.acks.is_empty() {
            let (position, status) = state.acks.next().await;
            if !status.is_final() {
                tracing::warn!(stream = %target.label(), "a batch failed while draining; it is fetched again at the next start");
                break;
            }
            self.commit(&mut state, target, position);
        }
        if state.unsaved {
            tracing::error!(stream = %target.label(), path = %target.checkpoint_path().display(), "stopping with a checkpoint that could not be written; what it held is fetched again at the next start");
        }
        result
    }

    async fn poll<T: PollTarget>(
        &self,
        state: &mut State<T::Position>,
        target: &mut T,
    ) -> Result<(), BoxError> {
        loop {
            while let Some((position, status)) = state.acks.try_next() {
                self.on_ack(state, target, position, status).await;
            }
            self.update_gauges(state, target);
            if self.shutdown.is_cancelled() {
                return Ok(());
            }
            if state.unsaved && !self.save(state, target) {
                let wait = state.save_backoff.next_delay();
                self.idle(state, target, wait).await;
                continue;
            }
            if state.acks.len() >= self.settings.max_in_flight {
                if self.wait_for_room(state, target).await {
                    return Ok(());
                }
                continue;
            }
            if !self.wait_until_ready(state, target).await {
                return Ok(());
            }
            let Some(room) = self.reserve(state, target).await else { return Ok(()) };
            let result = tokio::select! {
                answer = target.fetch(&self.metrics) => answer,
                () = self.shutdown.cancelled() => return Ok(()),
            };
            match result {
                Ok(fetched) => self.on_answer(state, target, fetched, room).await?,
                Err(err) => {
                    drop(room);
                    self.on_error(state, target, err).await;
                }
            }
        }
    }

    /// Wait for the target's rate limiter, the gauges moving meanwhile (a
    /// backfill paused by the limit still logs its progress); whether it
    /// is ready (false: shutdown came first).
    async fn wait_until_ready<T: PollTarget>(
        &self,
        state: &State<T::Position>,
        target: &T,
    ) -> bool {
        self.until_shutdown(state, target, target.ready()).await.is_some()
    }

    /// Room in the queues behind the source to make a batch, the gauges
    /// moving while other producers hold it; `None` when shutdown came first.
    async fn reserve<T: PollTarget>(
        &self,
        state: &State<T::Position>,
        target: &T,
    ) -> Option<Reservation> {
        self.until_shutdown(state, target, self.out.reserve()).await
    }

    /// `wait`'s output, the gauges moving every few seconds meanwhile;
    /// `None` when shutdown came first.
    async fn until_shutdown<T: PollTarget, O>(
        &self,
        state: &State<T::Position>,
        target: &T,
        wait: impl std::future::Future<Output = O>,
    ) -> Option<O> {
        tokio::pin!(wait);
        let mut gauges = tokio::time::interval_at(Instant::now() + GAUGES_EVERY, GAUGES_EVERY);
        loop {
            tokio::select! {
                out = &mut wait => return Some(out),
                _ = gauges.tick() => self.update_gauges(state, target),
                () = self.shutdown.cancelled() => return None,
            }
        }
    }

    /// Wait until a batch in flight is final (the sinks hold the target
    /// back); whether shutdown came first. The gauges keep moving meanwhile,
    /// or the stale and lagging alerts could never fire during an outage.
    async fn wait_for_room<T: PollTarget>(
        &self,
        state: &mut State<T::Position>,
        target: &mut T,
    ) -> bool {
        let mut gauges = tokio::time::interval(GAUGES_EVERY);
        loop {
            tokio::select! {
                (position, status) = state.acks.next() => {
                    self.on_ack(state, target, position, status).await;
                    return false;
                }
                _ = gauges.tick() => self.update_gauges(state, target),
                () = self.shutdown.cancelled() => return true,
            }
        }
    }

    /// A batch came: the target is up again; send it, then fetch again at
    /// once during a backfill, or wait an interval.
    async fn on_answer<T: PollTarget>(
        &self,
        state: &mut State<T::Position>,
        target: &mut T,
        fetched: Fetched<T::Position>,
        room: Reservation,
    ) -> Result<(), BoxError> {
        state.failing = None;
        if state.down {
            state.down = false;
            self.metrics.up.set(1.0);
            self.health.set_healthy(target.label());
            tracing::info!(stream = %target.label(), "the API accepts the stream again");
        }
        state.backoff.reset();
        let Fetched { mut events, position, more } = fetched;
        self.metrics.events.increment(events.len() as u64);
        state.events_this_run += events.len() as u64;
        if let Some(position) = position {
            let (notifier, receiver) = BatchNotifier::new_with_receiver();
            for event in &mut events {
                event.meta.finalizers = EventFinalizers::new(notifier.finalizer());
            }
            drop(notifier);
            state.acks.push(position, receiver);
        }
        if !events.is_empty() {
            self.send(state, target, events).await?;
        }
        // The batch is queued: its memory is the queue's now.
        drop(room);
        // The loop's next turn logs the progress (update_gauges).
        state.backfilling = more;
        if !more {
            self.idle(state, target, jitter(target.interval())).await;
        }
        Ok(())
    }

    /// Send a batch. Not cancelled by shutdown: a batch half sent would
    /// count as delivered. A full channel (the sinks held back) can take
    /// long: the gauges keep moving meanwhile.
    async fn send<T: PollTarget>(
        &self,
        state: &State<T::Position>,
        target: &T,
        events: Vec<Event>,
    ) -> Result<(), BoxError> {
        let send = self.out.send(events);
        tokio::pin!(send);
        let mut gauges = tokio::time::interval_at(Instant::now() + GAUGES_EVERY, GAUGES_EVERY);
        loop {
            tokio::select! {
                sent = &mut send => return Ok(sent?),
                _ = gauges.tick() => self.update_gauges(state, target),
            }
        }
    }

    async fn on_error<T: PollTarget>(
        &self,
        state: &mut State<T::Position>,
        target: &mut T,
        err: FetchError,
    ) {
        match err {
            FetchError::RateLimited { retry_after } => {
                let wait = retry_after
                    .unwrap_or_else(|| state.backoff.next_delay())
                    .max(Duration::from_millis(100));
                self.metrics.retry("rate_limited");
                if !target.rate_limited(wait) {
                    tracing::info!(stream = %target.label(), ?wait, "429 Too Many Requests; waiting");
                    self.idle(state, target, wait).await;
                }
            }
            FetchError::Refused { reason, message } => {
                self.metrics.component.error(Stage::Receiving, reason);
                self.refuse(state, target, &message);
                self.idle(state, target, self.settings.refused_retry).await;
            }
            FetchError::Failed { reason, message } => {
                self.metrics.retry(reason);
                self.metrics.component.error(Stage::Receiving, reason);
                let wait = state.backoff.next_delay();
                tracing::warn!(stream = %target.label(), error = %message, retry_in = ?wait, "request failed; retrying");
                let since = state.failing.as_ref().map_or_else(Instant::now, |(since, _)| *since);
                state.failing = Some((since, message));
                self.check_failing(state, target);
                self.idle(state, target, wait).await;
            }
        }
    }

    /// Wait `duration`, committing acknowledgements as they come.
    pub(super) async fn idle<T: PollTarget>(
        &self,
        state: &mut State<T::Position>,
        target: &mut T,
        duration: Duration,
    ) {
        let now = Instant::now();
        let deadline = now.checked_add(duration).unwrap_or(now + MAX_WAIT);
        let mut gauges = tokio::time::interval_at(now + GAUGES_EVERY, GAUGES_EVERY);
        loop {
            tokio::select! {
                (position, status) = state.acks.next() => self.on_ack(state, target, position, status).await,
                _ = gauges.tick() => {
                    self.update_gauges(state, target);
                    self.check_failing(state, target);
                }
                () = tokio::time::sleep_until(deadline) => return,
                () = self.shutdown.cancelled() => return,
            }
        }
    }

    async fn on_ack<T: PollTarget>(
        &self,
        state: &mut State<T::Position>,
        target: &mut T,
        position: T::Position,
        status: BatchStatus,
    ) {
        if status.is_final() {
            self.commit(state, target, position);
            return;
        }
        // A sink gave up on a batch: fetch again from the last commit
        // rather than skip it. Later batches are fetched again too.
        let wait = state.backoff.next_delay();
        tracing::warn!(stream = %target.label(), retry_in = ?wait, "a batch was not delivered; fetching again from the last commit");
        self.metrics.retry("delivery_failed");
        state.acks.clear();
        target.rewind();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = self.shutdown.cancelled() => {}
        }
    }

    /// Take a final batch's position into the checkpoint and write it.
    fn commit<T: PollTarget>(
        &self,
        state: &mut State<T::Position>,
        target: &mut T,
        position: T::Position,
    ) {
        if target.commit(position) {
            state.unsaved = true;
            self.save(state, target);
        }
    }

    /// Checkpoint age and the target's gauges now, and the backfill's
    /// progress line (at most every [`PROGRESS_EVERY`]).
    pub(super) fn update_gauges<T: PollTarget>(&self, state: &State<T::Position>, target: &T) {
        self.metrics.checkpoint_age.set(state.committed_at.elapsed().as_secs_f64());
        target.gauges();
        // A backfill waiting (a rate-limit pause, retries) still says where it stands.
        if state.backfilling {
            let mut at = state.progress_at.lock().unwrap_or_else(|p| p.into_inner());
            if at.elapsed() >= PROGRESS_EVERY {
                *at = Instant::now();
                drop(at);
                target.log_progress(state.events_this_run);
            }
        }
    }
}

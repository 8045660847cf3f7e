//! The HTTP side: POSTs to `/services/collector/event` on one of the sink's
//! channels (each with the cookies Splunk or a load balancer set on it), the
//! ack query loop, and the delivery layer's [`BatchService`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use metrics::{Counter, Gauge, Histogram, Label, counter, gauge, histogram};
use reqwest::header::{
    AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, COOKIE, HeaderMap, HeaderValue, SET_COOKIE,
};
use sluice_core::Secret;
use sluice_core::http::{
    ClientSettings, HttpError, build_client, describe, read_body, sensitive_header,
};
use sluice_core::sink::{BatchService, Encoded, Failure, ItemOutcome, RequestError};
use tokio::sync::Semaphore;

use crate::acks::{AckKey, AckTracker, AckWait};
use crate::classify::{self, Answer};
use sluice_core::http::Compression;

use crate::config::Settings;

mod check;
pub(crate) use check::CheckError;

/// The largest answer read (HEC answers are a few bytes).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Answers without `ackId` in a row, with acks never seen on, after which
/// the token is taken to have acks off (a 200 then means "received"). Before
/// that, and always once acks were seen on, such a batch is sent again.
const NO_ACK_ID_ANSWERS_FOR_OFF: u32 = 5;

/// One channel: its GUID and the cookies its answers set.
#[derive(Debug)]
struct Channel {
    id: String,
    cookies: Mutex<BTreeMap<String, String>>,
    /// Whether a request on it was answered (and its cookies are known).
    established: AtomicBool,
    /// Held by the one request that opens the channel: behind a load
    /// balancer sticky on a cookie, requests sent before the first answer
    /// would go to any indexer, and their ack ids be asked of another.
    opening: tokio::sync::Mutex<()>,
}

impl Channel {
    fn new() -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            cookies: Mutex::new(BTreeMap::new()),
            established: AtomicBool::new(false),
            opening: tokio::sync::Mutex::new(()),
        }
    }

    /// Wait while another request opens the channel; the guard to hold if
    /// this request opens it.
    async fn open(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if self.established.load(Ordering::Acquire) {
            return None;
        }
        let guard = self.opening.lock().await;
        (!self.established.load(Ordering::Acquire)).then_some(guard)
    }

    fn cookie_header(&self) -> String {
        let cookies = self.cookies.lock().unwrap_or_else(|p| p.into_inner());
        cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    /// Keep what `Set-Cookie` says, for the next requests on this channel.
    fn remember(&self, headers: &HeaderMap) {
        let mut cookies = self.cookies.lock().unwrap_or_else(|p| p.into_inner());
        for value in headers.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()) {
            let pair = value.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.trim().split_once('=') {
                cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }
}

/// The sink's own metrics.
#[derive(Debug)]
struct HecMetrics {
    labels: Vec<Label>,
    pending: Gauge,
    latency: Histogram,
    timeouts: Counter,
    risked: Counter,
    acks_enabled: Gauge,
}

impl HecMetrics {
    fn new(labels: Vec<Label>) -> Self {
        Self {
            pending: gauge!("sluice_splunk_hec_pending_acks", labels.clone()),
            latency: histogram!("sluice_splunk_hec_ack_latency_seconds", labels.clone()),
            timeouts: counter!("sluice_splunk_hec_ack_timeouts_total", labels.clone()),
            risked: counter!("sluice_splunk_hec_duplicates_risked_events_total", labels.clone()),
            acks_enabled: gauge!("sluice_splunk_hec_acks_enabled", labels.clone()),
            labels,
        }
    }

    fn request(&self, status: u16, code: Option<u16>) {
        let mut labels = self.labels.clone();
        labels.push(Label::new("status", status.to_string()));
        labels.push(Label::new("code", code.map_or_else(|| "none".to_owned(), |c| c.to_string())));
        counter!("sluice_splunk_hec_requests_total", labels).increment(1);
    }
}

/// HELP text and units of the sink's own families (call once, after the
/// recorder is installed).
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!("sluice_splunk_hec_pending_acks", "Batches waiting for their indexer ack.");
    describe_histogram!(
        "sluice_splunk_hec_ack_latency_seconds",
        Unit::Seconds,
        "From a batch's POST to its ack `true`."
    );
    describe_counter!(
        "sluice_splunk_hec_ack_timeouts_total",
        "Acks that did not come within the timeout (their batch is sent again)."
    );
    describe_counter!(
        "sluice_splunk_hec_duplicates_risked_events_total",
        "Events sent again whose first copy may have been indexed."
    );
    describe_gauge!("sluice_splunk_hec_acks_enabled", "1 while indexer acknowledgement is on.");
    describe_counter!(
        "sluice_splunk_hec_requests_total",
        "HEC requests, by HTTP status and HEC code."
    );
}

/// A client for one sink.
#[derive(Debug)]
pub(crate) struct HecClient {
    http: reqwest::Client,
    event_url: String,
    ack_url: String,
    auth: HeaderValue,
    compression: Compression,
    channels: Vec<Channel>,
    next: AtomicUsize,
    posts: Semaphore,
    acks: AckTracker,
    /// Acks are known to be on: the preflight's `/ack` query answered 200,
    /// or a POST answer carried an `ackId`. From then on a 200 without one
    /// (a node with useACK off, a proxy) is resent, never taken as delivered.
    acks_confirmed: AtomicBool,
    /// Successive 200 answers without `ackId` while acks were never confirmed.
    no_ack_id: AtomicU32,
    /// An `/ack` code 14 was logged once.
    ack_14_logged: AtomicBool,
    settings: Settings,
    metrics: HecMetrics,
    id: String,
}

/// The delivery layer's handle on the client.
#[derive(Debug, Clone)]
pub(crate) struct HecService(pub(crate) Arc<HecClient>);

fn transport(err: &reqwest::Error) -> RequestError {
    if sluice_core::http::certificate_refused(err) {
        // A setting (an untrusted or misnamed certificate): wait for the operator.
        return RequestError::Refused(Failure::without_status("tls_certificate", describe(err)));
    }
    RequestError::Retry(Failure::without_status("transport", describe(err)))
}

impl HecClient {
    pub(crate) fn new(
        settings: &Settings,
        token: &Secret,
        component: &str,
        labels: Vec<Label>,
    ) -> Result<Self, HttpError> {
        let http = build_client(&ClientSettings {
            timeout: settings.delivery.request_timeout,
            tls: settings.tls.clone(),
            proxy: None,
        })?;
        let base = settings.endpoint.as_str().trim_end_matches('/').to_owned();
        let metrics = HecMetrics::new(labels);
        metrics.acks_enabled.set(if settings.acks { 1.0 } else { 0.0 });
        Ok(Self {
            http,
            event_url: format!("{base}/services/collector/event"),
            ack_url: format!("{base}/services/collector/ack"),
            auth: sensitive_header(&format!("Splunk {}", token.expose().trim())),
            compression: settings.compression,
            channels: (0..settings.channels).map(|_| Channel::new()).collect(),
            next: AtomicUsize::new(0),
            posts: Semaphore::new(settings.requests_in_flight),
            acks: AckTracker::new(settings.acks),
            acks_confirmed: AtomicBool::new(false),
            no_ack_id: AtomicU32::new(0),
            ack_14_logged: AtomicBool::new(false),
            settings: settings.clone(),
            metrics,
            id: component.to_owned(),
        })
    }

    /// POST `body` to `url` on `channel`; the status and the parsed answer.
    async fn post(
        &self,
        url: &str,
        channel: &Channel,
        body: Vec<u8>,
        encoding: Option<&'static str>,
    ) -> Result<(u16, Answer, Bytes), RequestError> {
        let mut request = self
            .http
            .post(url)
            .header(AUTHORIZATION, self.auth.clone())
            .header("X-Splunk-Request-Channel", channel.id.as_str())
            .header(CONTENT_TYPE, "application/json");
        let cookies = channel.cookie_header();
        if !cookies.is_empty() {
            request = request.header(COOKIE, cookies);
        }
        if let Some(encoding) = encoding {
            request = request.header(CONTENT_ENCODING, encoding);
        }
        let opening = channel.open().await;
        let response = request.body(body).send().await.map_err(|e| transport(&e))?;
        channel.remember(response.headers());
        channel.established.store(true, Ordering::Release);
        drop(opening);
        let status = response.status().as_u16();
        let bytes = read_body(response, MAX_ANSWER_BYTES).await.map_err(|e| {
            RequestError::Retry(Failure::without_status("transport", e.to_string()))
        })?;
        let answer = serde_json::from_slice::<Answer>(&bytes).unwrap_or_else(|_| Answer {
            text: sluice_core::http::excerpt(&bytes),
            ..Answer::default()
        });
        Ok((status, answer, bytes))
    }

    /// What the preflight found out about acks: `Some(true)` on, `Some(false)`
    /// off (a 200 then means received from the start), `None` unknown.
    pub(crate) fn acks_known(&self, on: Option<bool>) {
        match on {
            Some(true) => self.acks_confirmed.store(true, Ordering::Relaxed),
            Some(false) => self.acks_off("the preflight's /ack query answered code 14"),
            None => {}
        }
    }

    /// The token has acks off: say so once, then 200 means received.
    fn acks_off(&self, why: &str) {
        if self.acks.enabled() {
            tracing::warn!(component = %self.id, why, "the HEC token has indexer acknowledgement off: a 200 now means \"received\", not \"indexed\"; turn useACK on for the token to be safe against indexer crashes");
            self.acks.disable();
            self.metrics.acks_enabled.set(0.0);
        }
    }

    async fn send_batch(&self, items: &[Encoded]) -> Result<Vec<ItemOutcome>, RequestError> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.channels.len();
        let channel = &self.channels[index];
        let size = items.iter().map(|i| i.payload.len()).sum();
        let (body, encoding) =
            self.compression.body(items.iter().map(|i| &i.payload[..]), size).map_err(|e| {
                RequestError::Retry(Failure::without_status("compression_failed", e.to_string()))
            })?;
        let (status, answer, key) = {
            let _permit = self
                .posts
                .acquire()
                .await
                .map_err(|_| RequestError::Retry(Failure::without_status("closed", "")))?;
            let (status, answer, _) = self.post(&self.event_url, channel, body, encoding).await?;
            // The cookies the answer set route this ack's query to its indexer.
            (status, answer, (index, channel.cookie_header()))
        };
        self.metrics.request(status, answer.code);
        if status != 200 {
            return classify::failed(status, &answer, items.len());
        }
        if answer.code != Some(0) {
            // HEC's success is `{"text":"Success","code":0}`: anything else
            // under a 200 (a proxy's HTML page) says nothing about the events.
            return Err(RequestError::Retry(Failure::new(
                200,
                "malformed_answer",
                format!("a 200 that is not HEC's success answer: {}", answer.text),
            )));
        }
        let delivered = || Ok(vec![ItemOutcome::Delivered; items.len()]);
        if !self.acks.enabled() {
            return delivered();
        }
        match answer.ack_id {
            Some(id) => {
                self.acks_confirmed.store(true, Ordering::Relaxed);
                self.no_ack_id.store(0, Ordering::Relaxed);
                self.await_ack(key, id, items.len()).await.map_or_else(Err, |()| delivered())
            }
            None if self.acks_confirmed.load(Ordering::Relaxed) => {
                Err(RequestError::Retry(Failure::new(
                    200,
                    "no_ack_id",
                    "a 200 without ackId although the token has acks on (a node with useACK off, or a proxy answered); sent again",
                )))
            }
            None => {
                let streak = self.no_ack_id.fetch_add(1, Ordering::Relaxed) + 1;
                if streak < NO_ACK_ID_ANSWERS_FOR_OFF {
                    return Err(RequestError::Retry(Failure::new(
                        200,
                        "no_ack_id",
                        format!(
                            "a 200 without ackId ({streak} in a row); sent again until acks are known to be off"
                        ),
                    )));
                }
                self.acks_off(&format!("{streak} answers in a row carry no ackId"));
                delivered()
            }
        }
    }

    async fn await_ack(&self, key: AckKey, id: u64, events: usize) -> Result<(), RequestError> {
        let started = Instant::now();
        self.metrics.pending.increment(1.0);
        let answer = self.acks.wait(key.clone(), id, self.settings.ack_timeout).await;
        self.metrics.pending.decrement(1.0);
        match answer {
            AckWait::Indexed => {
                self.metrics.latency.record(started.elapsed().as_secs_f64());
                Ok(())
            }
            AckWait::Lost => {
                self.metrics.risked.increment(events as u64);
                tracing::warn!(component = %self.id, ack_id = id, events, "the HEC handed this ack id out again while it was pending (an indexer restarted or lost its state); the batch is sent again");
                Err(RequestError::Retry(Failure::without_status(
                    "ack_lost",
                    format!("ack {id} was forgotten by the HEC before it was confirmed"),
                )))
            }
            AckWait::TimedOut if self.ask_once_more(&key, id).await => {
                self.metrics.latency.record(started.elapsed().as_secs_f64());
                Ok(())
            }
            AckWait::TimedOut => {
                self.metrics.timeouts.increment(1);
                self.metrics.risked.increment(events as u64);
                tracing::warn!(component = %self.id, ack_id = id, events, timeout = ?self.settings.ack_timeout, "no indexer acknowledgement in time; the batch is sent again (it may be indexed twice, it is never lost)");
                Err(RequestError::Retry(Failure::without_status(
                    "ack_timeout",
                    format!("ack {id} not confirmed within {:?}", self.settings.ack_timeout),
                )))
            }
        }
    }

    /// Ask `/ack` about every pending id, every `poll` interval, until dropped.
    pub(crate) async fn poll_acks(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.settings.ack_poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for ((index, cookies), ids) in self.acks.snapshot() {
                let done = self.query(index, &cookies, &ids).await;
                self.acks.indexed(&(index, cookies), &done);
            }
        }
    }

    /// A wait timed out: ask `/ack` about its id one last time, so that a
    /// process paused past the timeout (a VM pause) does not resend a batch
    /// Splunk already indexed.
    async fn ask_once_more(&self, key: &AckKey, id: u64) -> bool {
        self.query(key.0, &key.1, &[id]).await.contains(&id)
    }

    /// Ask `/ack` about `ids`; the ids it answered `true`.
    async fn query(&self, index: usize, cookies: &str, ids: &[u64]) -> Vec<u64> {
        #[derive(serde::Deserialize)]
        struct Acks {
            acks: BTreeMap<String, bool>,
        }
        let body = serde_json::json!({ "acks": ids }).to_string().into_bytes();
        let channel = &self.channels[index];
        let mut request = self
            .http
            .post(&self.ack_url)
            .header(AUTHORIZATION, self.auth.clone())
            .header("X-Splunk-Request-Channel", channel.id.as_str())
            .header(CONTENT_TYPE, "application/json");
        if !cookies.is_empty() {
            request = request.header(COOKIE, cookies);
        }
        let result = async {
            let response = request.body(body).send().await.map_err(|e| describe(&e))?;
            let status = response.status().as_u16();
            let bytes = read_body(response, MAX_ANSWER_BYTES).await.map_err(|e| e.to_string())?;
            Ok::<_, String>((status, bytes))
        }
        .await;
        match result {
            Ok((200, bytes)) => match serde_json::from_slice::<Acks>(&bytes) {
                Ok(acks) => {
                    return acks
                        .acks
                        .iter()
                        .filter(|(_, ok)| **ok)
                        .filter_map(|(id, _)| id.parse().ok())
                        .collect();
                }
                Err(err) => {
                    tracing::debug!(component = %self.id, error = %err, "an /ack answer sluice does not understand; asking again")
                }
            },
            Ok((status, bytes)) => {
                let answer = serde_json::from_slice::<Answer>(&bytes).unwrap_or_default();
                self.metrics.request(status, answer.code);
                // Code 14 while POSTs hand out ackIds: this query reached a node
                // with acks off. The ids stay pending (asked again, resent at
                // their timeout); acks are never switched off by it.
                if answer.code == Some(14) && !self.ack_14_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(component = %self.id, "/services/collector/ack answered code 14 (ACK is disabled) for ids a POST handed out; asking again, and resending what is not confirmed in time");
                } else {
                    tracing::debug!(component = %self.id, status, code = ?answer.code, "an /ack query failed; asking again");
                }
            }
            Err(error) => {
                tracing::debug!(component = %self.id, %error, "an /ack query failed; asking again")
            }
        }
        Vec::new()
    }
}

impl BatchService for HecService {
    fn send(
        &self,
        items: &[Encoded],
    ) -> impl Future<Output = Result<Vec<ItemOutcome>, RequestError>> + Send {
        self.0.send_batch(items)
    }
}

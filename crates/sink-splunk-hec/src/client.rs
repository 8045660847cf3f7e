//! The HTTP side: POSTs to `/services/collector/event` on one of the sink's
//! channels (each with the cookies Splunk or a load balancer set on it), the
//! ack query loop, and the delivery layer's [`BatchService`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// The largest answer read (HEC answers are a few bytes).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// One channel: its GUID and the cookies its answers set.
#[derive(Debug)]
struct Channel {
    id: String,
    cookies: Mutex<BTreeMap<String, String>>,
}

impl Channel {
    fn new() -> Self {
        Self { id: uuid::Uuid::new_v4().to_string(), cookies: Mutex::new(BTreeMap::new()) }
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
    settings: Settings,
    metrics: HecMetrics,
    id: String,
}

/// The delivery layer's handle on the client.
#[derive(Debug, Clone)]
pub(crate) struct HecService(pub(crate) Arc<HecClient>);

fn transport(err: &reqwest::Error) -> RequestError {
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
        let response = request.body(body).send().await.map_err(|e| transport(&e))?;
        channel.remember(response.headers());
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
        let delivered = || Ok(vec![ItemOutcome::Delivered; items.len()]);
        match answer.ack_id {
            Some(id) if self.acks.enabled() => {
                self.await_ack(key, id, items.len()).await.map_or_else(Err, |()| delivered())
            }
            None if self.acks.enabled() => {
                self.acks_off("the answer carries no ackId");
                delivered()
            }
            _ => delivered(),
        }
    }

    async fn await_ack(&self, key: AckKey, id: u64, events: usize) -> Result<(), RequestError> {
        let started = Instant::now();
        self.metrics.pending.increment(1.0);
        let answer = self.acks.wait(key, id, self.settings.ack_timeout).await;
        self.metrics.pending.decrement(1.0);
        match answer {
            AckWait::Indexed => {
                self.metrics.latency.record(started.elapsed().as_secs_f64());
                Ok(())
            }
            AckWait::Disabled => Ok(()),
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
                self.query(index, &cookies, &ids).await;
            }
        }
    }

    async fn query(&self, index: usize, cookies: &str, ids: &[u64]) {
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
                    let done: Vec<u64> = acks
                        .acks
                        .iter()
                        .filter(|(_, ok)| **ok)
                        .filter_map(|(id, _)| id.parse().ok())
                        .collect();
                    self.acks.indexed(&(index, cookies.to_owned()), &done);
                }
                Err(err) => {
                    tracing::debug!(component = %self.id, error = %err, "an /ack answer sluice does not understand; asking again")
                }
            },
            Ok((status, bytes)) => {
                let answer = serde_json::from_slice::<Answer>(&bytes).unwrap_or_default();
                self.metrics.request(status, answer.code);
                if answer.code == Some(14) {
                    self.acks_off("/services/collector/ack answered code 14 (ACK is disabled)");
                } else {
                    tracing::debug!(component = %self.id, status, code = ?answer.code, "an /ack query failed; asking again");
                }
            }
            Err(error) => {
                tracing::debug!(component = %self.id, %error, "an /ack query failed; asking again")
            }
        }
    }

    /// Preflight: an empty POST answers code 5 ("No data") once the token is
    /// accepted; an `/ack` query tells whether acks are on.
    pub(crate) async fn check(&self) -> Result<&'static str, String> {
        let channel = &self.channels[0];
        let (status, answer, _) = self
            .post(&self.event_url, channel, Vec::new(), None)
            .await
            .map_err(|e| e.failure().to_string())?;
        match (status, answer.code) {
            (400, Some(5)) => {}
            (401 | 403, _) | (400, Some(1..=4 | 16)) => {
                return Err(format!(
                    "Splunk refused the HEC token: {}",
                    classify::failed(status, &answer, 1)
                        .err()
                        .map(|e| e.failure().to_string())
                        .unwrap_or_default()
                ));
            }
            (status, code) => {
                return Err(format!(
                    "Splunk HEC answered {status} ({}) to a token check; is `endpoint` the HEC port (8088)?",
                    classify::kind_of(code)
                ));
            }
        }
        let body = br#"{"acks":[]}"#.to_vec();
        let (status, answer, _) = self
            .post(&self.ack_url, channel, body, None)
            .await
            .map_err(|e| e.failure().to_string())?;
        Ok(match (status, answer.code) {
            (400, Some(14)) => "off",
            (200, _) => "on",
            _ => "unknown",
        })
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

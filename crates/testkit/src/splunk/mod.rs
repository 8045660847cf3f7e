//! A Splunk HTTP Event Collector emulator, written from Splunk's documented
//! behaviour (see the crate docs): `/services/collector/event` with
//! concatenated envelopes, `/services/collector/ack`, `/services/collector/health`,
//! `Authorization: Splunk <token>` with Splunk's reply codes, tokens with and
//! without indexer acknowledgement, channels, per-channel ack ids from 0
//! answered `true` once and then forgotten, and, on demand, several indexers
//! behind a load balancer that is sticky on an application cookie (an ack id
//! is known only to the indexer that took the POST).
//!
//! It also fails the way production does (reliability review 2026-12, C2/C3):
//! - an indexer **restart** forgets every channel's pending acks and counts
//!   ids from 0 again, and the events it had not yet indexed are gone.
//!   Indexer acknowledgement exists for exactly that: a 200 is sent "before
//!   the event data enters the processing pipeline", where "because of an
//!   outage or a system failure, events can be lost"
//!   (https://docs.splunk.com/Documentation/Splunk/8.2.5/Data/AboutHECIDXAck);
//!   Splunk's own Kafka connector meets ids handed out again while pending
//!   ("ackId={} already exists for channel={} ... possible duplication of
//!   data", splunk/kafka-connect-splunk#162, `HecAckPoller.java`), and
//!   `ackIdleCleanup` drops idle channels with their pending ids (same page,
//!   "Channel limits and indexing status expiration");
//! - a **proxy's maintenance page**: 200 with an HTML body, nothing indexed;
//! - **mixed useACK**: `useACK` is a setting of the token on each instance
//!   (`inputs.conf [http://<name>] useACK`), so one node of a cluster can
//!   have it off: its answers carry no `ackId` and its `/ack` says code 14;
//! - an `/ack` answering `400 {"text":"ACK is disabled","code":14}`.

pub mod addon;
mod collector;
mod routes;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::time::Instant;

/// The load balancer's stickiness cookie (as AWS ALB's application-cookie stickiness names it).
pub const LB_COOKIE: &str = "AWSALBAPP-0";

/// A HEC token and its settings (`inputs.conf [http://<name>]`).
#[derive(Clone, Debug)]
pub struct HecToken {
    /// The token value.
    pub token: String,
    /// `useACK`: indexer acknowledgement on.
    pub use_ack: bool,
    /// `indexes`: the allowed indexes (`None`: any).
    pub indexes: Option<Vec<String>>,
    /// `disabled`.
    pub disabled: bool,
}

impl HecToken {
    /// An enabled token with acks on and any index.
    pub fn with_acks(token: &str) -> Self {
        Self { token: token.into(), use_ack: true, indexes: None, disabled: false }
    }
}

/// How the emulator behaves.
#[derive(Clone, Debug)]
pub struct HecEmulatorConfig {
    /// The tokens it knows.
    pub tokens: Vec<HecToken>,
    /// Indexers behind the load balancer (1: no load balancer).
    pub indexers: usize,
    /// `channel_cookie`: the cookie (named so) each answer sets to the
    /// channel; a sticky load balancer keys on it.
    pub channel_cookie: Option<String>,
    /// How long after the POST an ack turns `true`.
    pub ack_delay: Duration,
    /// Every n-th ack id of a channel is lost: `false` forever.
    pub lose_every_nth_ack: Option<u64>,
    /// `max_content_length`: larger bodies answer 413.
    pub max_content_length: usize,
    /// Indexers whose copy of the token has `useACK` off (a misconfigured node).
    pub no_ack_indexers: Vec<usize>,
}

impl Default for HecEmulatorConfig {
    fn default() -> Self {
        Self {
            tokens: vec![HecToken::with_acks("00000000-0000-0000-0000-000000000000")],
            indexers: 1,
            channel_cookie: None,
            ack_delay: Duration::ZERO,
            lose_every_nth_ack: None,
            max_content_length: 838_860_800,
            no_ack_indexers: Vec::new(),
        }
    }
}

/// A fault for the next `/event` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HecFault {
    /// 503 `{"text":"Server is busy","code":9,"invalid-event-number":0}`.
    Busy,
    /// 500 code 8.
    Internal,
    /// Index events before `at`, then refuse event `at` with `code`.
    RejectEvent {
        /// The event's position in the request, from 0.
        at: usize,
        /// Its code (6 invalid data format, 12, 13, 15, 7, ...).
        code: u16,
    },
    /// A proxy in front answers 200 with its HTML maintenance page; the
    /// request never reaches an indexer.
    ProxyHtml,
}

/// An indexed event, as the emulator keeps it for assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedEvent {
    /// The envelope's `event`, as the JSON text it was sent as.
    pub event: String,
    /// The envelope's `time`, as the JSON text it was sent as.
    pub time: Option<String>,
    /// `sourcetype`.
    pub sourcetype: Option<String>,
    /// `source`.
    pub source: Option<String>,
    /// `index`.
    pub index: Option<String>,
    /// `host`.
    pub host: Option<String>,
    /// The request's channel.
    pub channel: Option<String>,
    /// The indexer that took it.
    pub indexer: usize,
}

#[derive(Debug)]
struct PendingAck {
    ready_at: Instant,
    lost: bool,
    /// The request's events, until `ready_at` (indexed then): a restart
    /// before that loses them.
    held: Vec<IndexedEvent>,
    /// The order requests came in, kept when held events are indexed.
    seq: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Channel {
    next_id: u64,
    pending: HashMap<u64, PendingAck>,
}

/// What the emulator holds.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub(crate) events: Vec<IndexedEvent>,
    /// Per indexer: channel → acks.
    pub(crate) indexers: Vec<HashMap<String, Channel>>,
    pub(crate) faults: VecDeque<HecFault>,
    /// `/ack` requests still to answer with code 14.
    pub(crate) ack_disabled_answers: usize,
    pub(crate) restarts: u64,
    next_seq: u64,
    /// Events lost in restarts (received, never indexed).
    pub(crate) events_lost: u64,
    pub(crate) acks_lost: u64,
    pub(crate) acks_true: u64,
    pub(crate) ack_queries: u64,
}

impl Store {
    /// A new ack id on `channel` of `indexer` for `events`, which are
    /// indexed once the ack is ready (at once without an ack delay).
    pub(crate) fn new_ack(
        &mut self,
        config: &HecEmulatorConfig,
        indexer: usize,
        channel: &str,
        events: Vec<IndexedEvent>,
    ) -> u64 {
        let channel = self.indexers[indexer].entry(channel.to_owned()).or_default();
        let id = channel.next_id;
        channel.next_id += 1;
        let lost = config.lose_every_nth_ack.is_some_and(|n| n > 0 && (id + 1).is_multiple_of(n));
        let ready_at = Instant::now() + config.ack_delay;
        let held = if config.ack_delay.is_zero() || lost {
            self.events.extend(events);
            Vec::new()
        } else {
            events
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        channel.pending.insert(id, PendingAck { ready_at, lost, held, seq });
        if lost {
            self.acks_lost += 1;
        }
        id
    }

    /// Index what waited for its ack delay to pass.
    pub(crate) fn settle(&mut self) {
        let now = Instant::now();
        let mut ready = Vec::new();
        for channels in &mut self.indexers {
            for channel in channels.values_mut() {
                for pending in channel.pending.values_mut() {
                    if now >= pending.ready_at && !pending.held.is_empty() {
                        ready.push((pending.seq, std::mem::take(&mut pending.held)));
                    }
                }
            }
        }
        ready.sort_by_key(|(seq, _)| *seq);
        self.events.extend(ready.into_iter().flat_map(|(_, events)| events));
    }

    /// Every indexer restarts: pending acks are forgotten, ids count from 0
    /// again on every channel, and what was not indexed yet is lost.
    pub(crate) fn restart(&mut self) {
        self.settle();
        for channels in &mut self.indexers {
            for channel in channels.values() {
                self.events_lost +=
                    channel.pending.values().map(|p| p.held.len() as u64).sum::<u64>();
            }
            channels.clear();
        }
        self.restarts += 1;
    }

    /// `true` for an id that is ready (then forgotten), `false` otherwise.
    pub(crate) fn query_ack(&mut self, indexer: usize, channel: &str, id: u64) -> bool {
        self.settle();
        let Some(channel) = self.indexers[indexer].get_mut(channel) else { return false };
        let ready =
            channel.pending.get(&id).is_some_and(|p| !p.lost && Instant::now() >= p.ready_at);
        if ready {
            // The delay may have passed between `settle` and now: an ack is
            // `true` only with its events indexed (they were dropped with the
            // pending entry, a race CI hit once under load).
            if let Some(pending) = channel.pending.remove(&id) {
                self.events.extend(pending.held);
            }
            self.acks_true += 1;
        }
        ready
    }
}

/// Shared state.
#[derive(Debug)]
pub(crate) struct HecState {
    pub(crate) config: HecEmulatorConfig,
    pub(crate) store: Mutex<Store>,
    pub(crate) requests: AtomicU64,
    round_robin: AtomicUsize,
}

/// Why a request was refused before its body was looked at.
pub(crate) fn reply(status: StatusCode, text: &str, code: u16) -> Response {
    (status, axum::Json(json!({"text": text, "code": code}))).into_response()
}

impl HecState {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The token of the request, checked as Splunk does (codes 2, 3, 4, 1).
    pub(crate) fn authorize(&self, headers: &HeaderMap) -> Result<&HecToken, Response> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(reply(StatusCode::UNAUTHORIZED, "Token is required", 2));
        };
        let Some(given) = value.to_str().ok().and_then(|v| v.strip_prefix("Splunk ")) else {
            return Err(reply(StatusCode::UNAUTHORIZED, "Invalid authorization", 3));
        };
        let Some(token) = self.config.tokens.iter().find(|t| t.token == given.trim()) else {
            return Err(reply(StatusCode::FORBIDDEN, "Invalid token", 4));
        };
        if token.disabled {
            return Err(reply(StatusCode::FORBIDDEN, "Token disabled", 1));
        }
        Ok(token)
    }

    /// The indexer a request goes to: the one its stickiness cookie names,
    /// else the next in turn.
    pub(crate) fn route(&self, headers: &HeaderMap) -> usize {
        let count = self.config.indexers.max(1);
        let sticky = cookies(headers)
            .into_iter()
            .find(|(name, _)| name == LB_COOKIE)
            .and_then(|(_, value)| value.parse::<usize>().ok())
            .filter(|i| *i < count);
        sticky.unwrap_or_else(|| self.round_robin.fetch_add(1, Ordering::Relaxed) % count)
    }

    /// Add the channel cookie and, behind a load balancer, its stickiness cookie.
    pub(crate) fn set_cookies(
        &self,
        response: &mut Response,
        indexer: usize,
        channel: Option<&str>,
    ) {
        let (Some(name), Some(channel)) = (&self.config.channel_cookie, channel) else { return };
        let mut add = |text: String| {
            if let Ok(value) = text.parse() {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        };
        add(format!("{name}={channel}; Path=/"));
        if self.config.indexers > 1 {
            add(format!("{LB_COOKIE}={indexer}; Path=/"));
        }
    }
}

/// The request's cookies, as (name, value).
pub(crate) fn cookies(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// A running emulator.
#[derive(Debug)]
pub struct HecEmulator {
    addr: SocketAddr,
    state: Arc<HecState>,
}

impl HecEmulator {
    /// Start on a free loopback port.
    pub async fn start(config: HecEmulatorConfig) -> Self {
        Self::start_on(config, "127.0.0.1:0".parse().expect("an address")).await
    }

    /// Start on `addr`.
    pub async fn start_on(config: HecEmulatorConfig, addr: SocketAddr) -> Self {
        let listener =
            tokio::net::TcpListener::bind(addr).await.expect("bind the emulator's address");
        let addr = listener.local_addr().expect("local address");
        let store = Store {
            indexers: (0..config.indexers.max(1)).map(|_| HashMap::new()).collect(),
            ..Store::default()
        };
        let state = Arc::new(HecState {
            config,
            store: Mutex::new(store),
            requests: AtomicU64::new(0),
            round_robin: AtomicUsize::new(0),
        });
        let app = routes::router(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queue a fault for the next `/event` request.
    pub fn push_fault(&self, fault: HecFault) {
        self.state.lock().faults.push_back(fault);
    }

    /// Every indexed event, in the order they were indexed.
    pub fn events(&self) -> Vec<IndexedEvent> {
        let mut store = self.state.lock();
        store.settle();
        store.events.clone()
    }

    /// How many events are indexed.
    pub fn event_count(&self) -> usize {
        let mut store = self.state.lock();
        store.settle();
        store.events.len()
    }

    /// Restart every indexer (see the module docs).
    pub fn restart(&self) {
        self.state.lock().restart();
    }

    /// Answer the next `count` `/ack` requests with code 14.
    pub fn refuse_acks(&self, count: usize) {
        self.state.lock().ack_disabled_answers += count;
    }

    /// Events received and lost in restarts.
    pub fn events_lost(&self) -> u64 {
        self.state.lock().events_lost
    }

    /// Ack ids that were lost (never `true`).
    pub fn acks_lost(&self) -> u64 {
        self.state.lock().acks_lost
    }

    /// Ack ids answered `true`.
    pub fn acks_true(&self) -> u64 {
        self.state.lock().acks_true
    }

    /// `/ack` requests received.
    pub fn ack_queries(&self) -> u64 {
        self.state.lock().ack_queries
    }

    /// Requests received on every route.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }
}

//! An Elasticsearch emulator: the parts of the REST API a log shipper uses,
//! validated as strictly as Elasticsearch does (NDJSON framing, final newline,
//! `Content-Type: application/x-ndjson`, gzip, authentication, index names,
//! data stream rules, `create` conflicts), answering in Elasticsearch's
//! shapes, keeping the documents for assertions, with faults on demand.

mod answer_only;
mod bulk;
mod condition;
mod document;
pub mod fleet;
mod ingest;
mod processors;
mod routes;
mod security;
mod templates;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Credentials the emulator accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EsAuth {
    /// No authentication (security disabled).
    None,
    /// `Authorization: Basic base64(user:password)`.
    Basic {
        /// User.
        user: String,
        /// Password.
        password: String,
    },
    /// `Authorization: ApiKey <encoded>` (the base64 of `id:api_key` Elasticsearch returns).
    ApiKey(String),
    /// `Authorization: Bearer <token>`.
    Bearer(String),
}

/// How an emulator behaves.
#[derive(Clone, Debug)]
pub struct EsEmulatorConfig {
    /// Accepted credentials.
    pub auth: EsAuth,
    /// The version `GET /` reports.
    pub version: String,
    /// `http.max_content_length`: larger bodies answer 413.
    pub max_content_length: usize,
    /// Answer every `_bulk` item at once without storing documents (for
    /// benchmarks; see `answer_only.rs`).
    pub answer_only: bool,
}

impl Default for EsEmulatorConfig {
    fn default() -> Self {
        Self {
            auth: EsAuth::None,
            version: "8.15.0".into(),
            max_content_length: 100 * 1024 * 1024,
            answer_only: false,
        }
    }
}

/// A fault for the next `_bulk` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EsFault {
    /// Answer the whole request with this status (429, 503, ...).
    Status(u16),
    /// Answer after a delay.
    Slow(Duration),
    /// Store the documents, then answer after a delay: a client that gives
    /// up or dies meanwhile does not know they are stored.
    SlowAnswer(Duration),
    /// Break the connection instead of answering.
    Reset,
    /// Store the documents, then answer with the items in reverse order: a
    /// proxy or a bug that reorders them. Elasticsearch itself answers "the
    /// individual results of each operation in the request, returned in the
    /// order submitted" (the bulk API reference,
    /// https://www.elastic.co/guide/en/elasticsearch/reference/current/docs-bulk.html),
    /// so only a client that checks each item's `_id` notices.
    Reordered,
}

/// A persistent failure of every bulk item, in Elasticsearch's own words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemFailure {
    /// An API key without the `create_doc` privilege: 403 `security_exception`.
    Unauthorized,
    /// The target does not exist and may not be created: 404 `index_not_found_exception`.
    IndexNotFound,
    /// The flood-stage disk watermark made the index read-only: 429 `cluster_block_exception`.
    ReadOnly,
}

impl ItemFailure {
    /// The item answer for `index` and `id`.
    pub(crate) fn answer(self, index: &str, id: &str) -> (u16, serde_json::Map<String, Value>) {
        let (status, kind, reason) = match self {
            Self::Unauthorized => (
                403,
                "security_exception",
                format!(
                    "action [indices:data/write/bulk[s]] is unauthorized for API key id [VuaCfGcBCdbkQm-e5aOx] of user [sluice] on indices [{index}], this action is granted by the index privileges [create_doc,create,index,write,all]"
                ),
            ),
            Self::IndexNotFound => {
                (404, "index_not_found_exception", format!("no such index [{index}]"))
            }
            Self::ReadOnly => (
                429,
                "cluster_block_exception",
                format!(
                    "index [{index}] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block];"
                ),
            ),
        };
        (status, bulk::item_error(index, id, kind, reason))
    }
}

/// One document rejection rule: documents whose JSON pointer equals the value
/// get an item-level 400 `mapper_parsing_exception`.
#[derive(Clone, Debug)]
pub(crate) struct RejectRule {
    pub(crate) pointer: String,
    pub(crate) value: Value,
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    /// Index (or data stream) name → `_id` → document.
    pub(crate) indices: BTreeMap<String, BTreeMap<String, Value>>,
    pub(crate) templates: BTreeMap<String, Value>,
    /// `PUT /_ingest/pipeline` answers 403 (no `manage_pipeline`).
    pub(crate) pipeline_writes_forbidden: bool,
    /// Component templates by name.
    pub(crate) component_templates: BTreeMap<String, Value>,
    /// Ingest pipelines by id (run on each document by `processors.rs`).
    pub(crate) pipelines: BTreeMap<String, Value>,
    /// The `pipeline` parameter of every `_bulk` request, in order.
    pub(crate) bulk_pipeline_params: Vec<Option<String>>,
    /// The actions of each well-formed bulk request, in arrival order.
    pub(crate) bulk_sizes: Vec<usize>,
    /// Documents stored per ingest pipeline that ran on them.
    pub(crate) pipeline_runs: BTreeMap<String, u64>,
    pub(crate) faults: VecDeque<EsFault>,
    pub(crate) rejects: Vec<RejectRule>,
    /// Items still to answer with 429 `es_rejected_execution_exception`.
    pub(crate) throttle_items: usize,
    pub(crate) seq_no: u64,
    /// Every item fails this way until cleared.
    pub(crate) item_failure: Option<ItemFailure>,
    /// Every request answers this status until cleared.
    pub(crate) request_failure: Option<u16>,
    /// `create`s answered 409 (the document existed).
    pub(crate) conflicts: u64,
    /// How long every `_bulk` takes before it answers, as a cluster that
    /// indexes, replicates and runs pipelines does (tens to hundreds of ms).
    pub(crate) latency: Latency,
    /// Privileges the API key lacks (`monitor` also refuses `GET /`).
    pub(crate) denied_privileges: std::collections::BTreeSet<String>,
}

/// A per-request delay: `base` plus a uniform share of `jitter`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// Every request waits at least this long.
    pub base: Duration,
    /// Plus up to this much more, spread evenly.
    pub jitter: Duration,
}

impl Latency {
    /// The delay of request number `n` (jitter spread by a hash of `n`).
    pub(crate) fn of(self, n: u64) -> Duration {
        if self.jitter.is_zero() {
            return self.base;
        }
        let spread = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), n);
        self.base + self.jitter.mul_f64((spread % 10_000) as f64 / 10_000.0)
    }
}

/// Shared state.
#[derive(Debug)]
pub(crate) struct EsState {
    pub(crate) config: EsEmulatorConfig,
    pub(crate) store: Mutex<Store>,
    pub(crate) bulk_requests: AtomicU64,
    pub(crate) seen: answer_only::Seen,
}

impl EsState {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the request carries the configured credentials.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let given =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
        match &self.config.auth {
            EsAuth::None => true,
            EsAuth::Basic { user, password } => {
                given == format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
            }
            EsAuth::ApiKey(key) => given == format!("ApiKey {key}"),
            EsAuth::Bearer(token) => given == format!("Bearer {token}"),
        }
    }
}

/// Elasticsearch's error body.
pub(crate) fn es_error(status: StatusCode, kind: &str, reason: &str) -> Response {
    let body = json!({
        "error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason},
        "status": status.as_u16(),
    });
    (status, axum::Json(body)).into_response()
}

/// 400 `illegal_argument_exception`, Elasticsearch's answer to a malformed request.
pub(crate) fn bad_request(reason: &str) -> Response {
    es_error(StatusCode::BAD_REQUEST, "illegal_argument_exception", reason)
}

pub(crate) fn unauthorized(path: &str) -> Response {
    let mut response = es_error(
        StatusCode::UNAUTHORIZED,
        "security_exception",
        &format!(
            "unable to authenticate with provided credentials and anonymous access is not allowed for this request [{path}]"
        ),
    );
    let challenge =
        "Basic realm=\"security\", charset=\"UTF-8\", Bearer realm=\"security\", ApiKey";
    response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge.parse().expect("ascii"));
    response
}

/// A running emulator.
#[derive(Debug)]
pub struct EsEmulator {
    addr: SocketAddr,
    state: Arc<EsState>,
    server: Mutex<Option<CancellationToken>>,
}

impl EsEmulator {
    /// Start on a free loopback port.
    pub async fn start(config: EsEmulatorConfig) -> Self {
        Self::start_on(config, "127.0.0.1:0".parse().expect("an address")).await
    }

    /// Start on `addr`.
    pub async fn start_on(config: EsEmulatorConfig, addr: SocketAddr) -> Self {
        let listener =
            tokio::net::TcpListener::bind(addr).await.expect("bind the emulator's address");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(EsState {
            config,
            store: Mutex::new(Store::default()),
            bulk_requests: AtomicU64::new(0),
            seen: answer_only::Seen::default(),
        });
        let emulator = Self { addr, state, server: Mutex::new(None) };
        emulator.serve(listener);
        emulator
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let token = CancellationToken::new();
        let app = routes::router(self.state.clone());
        let stop = token.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
        });
        *self.server.lock().unwrap_or_else(|p| p.into_inner()) = Some(token);
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop listening: connections are refused until [`EsEmulator::resume`].
    pub async fn refuse_connections(&self) {
        if let Some(token) = self.server.lock().unwrap_or_else(|p| p.into_inner()).take() {
            token.cancel();
        }
        // Let the listener close before anyone connects again.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// Listen again on the same port.
    pub async fn resume(&self) {
        let listener =
            tokio::net::TcpListener::bind(self.addr).await.expect("rebind the same port");
        self.serve(listener);
    }

    /// Queue a fault for the next `_bulk` request.
    pub fn push_fault(&self, fault: EsFault) {
        self.state.lock().faults.push_back(fault);
    }

    /// Make every `_bulk` wait `latency` before it answers (from now on).
    pub fn set_latency(&self, latency: Latency) {
        self.state.lock().latency = latency;
    }

    /// Answer the next `count` bulk items with 429 `es_rejected_execution_exception`.
    pub fn throttle_items(&self, count: usize) {
        self.state.lock().throttle_items += count;
    }

    /// Reject documents whose JSON `pointer` (e.g. `/onepassword/uuid`) equals
    /// `value` with an item-level 400 `mapper_parsing_exception`.
    pub fn reject_documents(&self, pointer: &str, value: Value) {
        self.state.lock().rejects.push(RejectRule { pointer: pointer.into(), value });
    }

    /// The API key lacks these privileges (`monitor`, `create_doc`, ...):
    /// the has-privileges API says so, and without `monitor` `GET /`
    /// answers 403. Bulk items are not affected (see `fail_items`).
    pub fn deny_privileges(&self, privileges: &[&str]) {
        self.state.lock().denied_privileges = privileges.iter().map(|p| (*p).to_owned()).collect();
    }

    /// Forget every `reject_documents` rule (the cause was fixed).
    pub fn accept_all_documents(&self) {
        self.state.lock().rejects.clear();
    }

    /// Fail every bulk item this way (`None`: stop). Models an API key
    /// without `create_doc`, a missing index, a read-only block.
    pub fn fail_items(&self, failure: Option<ItemFailure>) {
        self.state.lock().item_failure = failure;
    }

    /// Answer every `_bulk` request with this status (`None`: stop):
    /// 404 and 408 as a proxy or a wrong path would, others as Elasticsearch.
    pub fn fail_requests(&self, status: Option<u16>) {
        self.state.lock().request_failure = status;
    }

    /// The documents of an index or data stream, by `_id`.
    pub fn documents(&self, index: &str) -> BTreeMap<String, Value> {
        self.state.lock().indices.get(index).cloned().unwrap_or_default()
    }

    /// The `_id`s of an index or data stream.
    pub fn ids(&self, index: &str) -> std::collections::BTreeSet<String> {
        self.state
            .lock()
            .indices
            .get(index)
            .map(|docs| docs.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Every index or data stream name that holds documents.
    pub fn indices(&self) -> Vec<String> {
        self.state.lock().indices.keys().cloned().collect()
    }

    /// Documents stored in all indices.
    pub fn document_count(&self) -> usize {
        self.state.lock().indices.values().map(BTreeMap::len).sum()
    }

    /// `create`s answered 409 because the document existed (replays).
    pub fn conflicts(&self) -> u64 {
        self.state.lock().conflicts
    }

    /// The `pipeline` query parameter of every `_bulk` request, in order.
    pub fn bulk_pipeline_params(&self) -> Vec<Option<String>> {
        self.state.lock().bulk_pipeline_params.clone()
    }

    /// Documents stored per ingest pipeline that ran on them (the request's
    /// `pipeline`, else the index's `default_pipeline`, plus its
    /// `final_pipeline`, and the pipelines their `pipeline` processors ran).
    pub fn pipeline_runs(&self) -> BTreeMap<String, u64> {
        self.state.lock().pipeline_runs.clone()
    }

    /// Install an index template (as `PUT /_index_template/<name>` does).
    pub fn put_index_template(&self, name: &str, template: Value) {
        self.state.lock().templates.insert(name.into(), template);
    }

    /// Install a component template (as `PUT /_component_template/<name>` does).
    pub fn put_component_template(&self, name: &str, template: Value) {
        self.state.lock().component_templates.insert(name.into(), template);
    }

    /// Delete a component template (as `DELETE /_component_template/<name>` does).
    pub fn remove_component_template(&self, name: &str) {
        self.state.lock().component_templates.remove(name);
    }

    /// Delete an ingest pipeline (as `DELETE /_ingest/pipeline/<id>` does).
    pub fn remove_pipeline(&self, id: &str) {
        self.state.lock().pipelines.remove(id);
    }

    /// Answer `PUT /_ingest/pipeline/<id>` with 403, as Elasticsearch does
    /// for an API key without the `manage_pipeline` cluster privilege.
    pub fn forbid_pipeline_writes(&self) {
        self.state.lock().pipeline_writes_forbidden = true;
    }

    /// Install an ingest pipeline (as `PUT /_ingest/pipeline/<id>` does).
    pub fn put_pipeline(&self, id: &str, pipeline: Value) {
        self.state.lock().pipelines.insert(id.into(), pipeline);
    }

    /// How many actions each well-formed bulk request carried, in order.
    pub fn bulk_sizes(&self) -> Vec<usize> {
        self.state.lock().bulk_sizes.clone()
    }

    /// Bulk requests received, well-formed or not.
    pub fn bulk_requests(&self) -> u64 {
        self.state.bulk_requests.load(Ordering::Relaxed)
    }
}

//! The simulator's shared state and its in-process handle.

use std::collections::{HashSet, VecDeque};

/// The most requests the log keeps (the older half goes when it is full),
/// and the most scripted faults queued.
const MAX_KEPT: usize = 100_000;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::auth::{Claims, ISSUER, Keys};
use crate::cursor::CursorCodec;
use crate::generate::{Generator, base32_id};
use crate::ratelimit::RateLimiter;
use crate::store::Store;
use crate::{Fault, Faults, SimConfig, SimEvent, SimStream, now_nanos};

/// Why the simulator cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The listen address is unusable.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A fixture file is unreadable or holds something that is not an event.
    #[error("fixture {}:{line}: {message}", path.display())]
    Fixture {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when the file cannot be read).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug)]
struct FaultState {
    rates: Faults,
    script: VecDeque<Fault>,
    rng: ChaCha8Rng,
}

/// Everything the routes share.
#[derive(Debug)]
pub struct SimState {
    pub(crate) config: SimConfig,
    pub(crate) audience: String,
    pub(crate) account_uuid: String,
    pub(crate) keys: Keys,
    pub(crate) cursors: CursorCodec,
    pub(crate) store: Store,
    pub(crate) limiter: Option<RateLimiter>,
    generator: Mutex<Generator>,
    faults: Mutex<FaultState>,
    revoked: Mutex<HashSet<String>>,
    ids: Mutex<ChaCha8Rng>,
    requests: AtomicU64,
    log: Mutex<Vec<RequestRecord>>,
}

/// One answered request, for tests that check a client's timing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// When the answer was sent.
    pub at: std::time::Instant,
    /// The request path.
    pub path: String,
    /// The answer's status.
    pub status: u16,
    /// Its `Retry-After`, in seconds.
    pub retry_after: Option<u64>,
}

impl SimState {
    fn new(config: SimConfig, audience: String) -> Self {
        let mut ids = ChaCha8Rng::seed_from_u64(config.seed ^ 0x05ee_d1d5);
        let account_uuid = base32_id(&mut ids, false);
        let cursor_key = match &config.cursor_key {
            Some(key) => key.as_bytes().to_vec(),
            None => {
                Sha256::digest(format!("sluice-sim-cursor-{}", config.seed).as_bytes()).to_vec()
            }
        };
        Self {
            keys: Keys::from_seed(config.seed),
            cursors: CursorCodec::new(&cursor_key),
            store: Store::default(),
            limiter: config.rate_limits.map(RateLimiter::new),
            generator: Mutex::new(Generator::new(config.seed, &account_uuid)),
            faults: Mutex::new(FaultState {
                rates: config.faults.clone(),
                script: VecDeque::new(),
                rng: ChaCha8Rng::seed_from_u64(config.seed ^ 0xfa17),
            }),
            revoked: Mutex::new(HashSet::new()),
            ids: Mutex::new(ids),
            requests: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            account_uuid,
            audience,
            config,
        }
    }

    pub(crate) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub(crate) fn record(&self, record: RequestRecord) {
        let mut log = lock(&self.log);
        // The newest requests only: a long run must not grow without bound.
        if log.len() >= MAX_KEPT {
            log.drain(..MAX_KEPT / 2);
        }
        log.push(record);
    }

    pub(crate) fn is_revoked(&self, sub: &str) -> bool {
        lock(&self.revoked).contains(sub)
    }

    pub(crate) fn revoke(&self, sub: &str) {
        lock(&self.revoked).insert(sub.to_owned());
    }

    pub(crate) fn set_faults(&self, faults: Faults) {
        lock(&self.faults).rates = faults;
    }

    pub(crate) fn push_fault(&self, fault: Fault) {
        let mut faults = lock(&self.faults);
        if faults.script.len() < MAX_KEPT {
            faults.script.push_back(fault);
        }
    }

    /// The fault for the next event request: scripted ones first, then random ones.
    pub(crate) fn next_fault(&self) -> Option<Fault> {
        let mut state = lock(&self.faults);
        if let Some(fault) = state.script.pop_front() {
            return Some(fault);
        }
        let rates = state.rates.clone();
        let rng = &mut state.rng;
        let mut roll = |p: f64| p > 0.0 && rng.random_bool(p.min(1.0));
        if roll(rates.error_rate) {
            let status = [500, 502, 503][rng.random_range(0..3)];
            return Some(Fault::Status { status });
        }
        let mut roll = |p: f64| p > 0.0 && rng.random_bool(p.min(1.0));
        if roll(rates.slow_rate) {
            return Some(Fault::Slow { ms: rates.slow_ms });
        }
        if roll(rates.reset_rate) {
            return Some(Fault::Reset);
        }
        if roll(rates.malformed_rate) {
            return Some(Fault::Malformed);
        }
        roll(rates.empty_page_rate).then_some(Fault::EmptyPage)
    }

    /// A token for `features`, valid `expires_in` from now if given.
    pub(crate) fn mint(
        &self,
        features: &[&str],
        expires_in: Option<i64>,
        audience: Option<&str>,
    ) -> (String, Claims) {
        let now = now_nanos() / 1_000_000_000;
        let (sub, jti) = {
            let mut ids = lock(&self.ids);
            (base32_id(&mut *ids, false), base32_id(&mut *ids, false))
        };
        let claims = Claims {
            iss: ISSUER.into(),
            sub,
            aud: vec![audience.unwrap_or(&self.audience).to_owned()],
            iat: now,
            exp: expires_in.map(|secs| now + secs),
            jti,
            account_uuid: self.account_uuid.clone(),
            features: features.iter().map(|f| (*f).to_owned()).collect(),
        };
        (self.keys.mint(&claims), claims)
    }

    /// Generate one event of `stream` that happened at `occurred` and is ingested now.
    pub(crate) fn ingest_new(&self, stream: SimStream, occurred: i64) -> SimEvent {
        let now = now_nanos();
        let mut event = lock(&self.generator).event(stream, occurred, now);
        event.ingested = self.store.ingest(event.clone(), now);
        event
    }

    /// Events spread over the window before the current minute: a restart
    /// within the same minute with the same seed makes the very same events,
    /// so cursors issued before the restart continue exactly.
    fn backfill(&self) {
        let minute = 60 * 1_000_000_000;
        let now = self.config.backfill_until.unwrap_or(now_nanos() / minute * minute);
        let window = i64::try_from(self.config.backfill_window.as_nanos()).unwrap_or(i64::MAX);
        let mut generator = lock(&self.generator);
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed ^ 0xbac4);
        for stream in SimStream::ALL {
            let events = (0..self.config.events_per_stream)
                .map(|_| {
                    let occurred = now - rng.random_range(0..window.max(1));
                    let lag = generator.lag_nanos(stream);
                    // Events ingested after now are late arrivals: they appear later.
                    generator.event(stream, occurred, occurred + lag)
                })
                .collect();
            self.store.extend(stream, events);
        }
    }

    fn load_fixture(&self, stream: SimStream, path: &Path) -> Result<(), SimError> {
        let error =
            |line, message: String| SimError::Fixture { path: path.to_owned(), line, message };
        let text = std::fs::read_to_string(path).map_err(|e| error(0, e.to_string()))?;
        let mut events = Vec::new();
        for (index, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let body: serde_json::Value =
                serde_json::from_str(line).map_err(|e| error(index + 1, e.to_string()))?;
            let timestamp = body["timestamp"]
                .as_str()
                .ok_or_else(|| error(index + 1, "no `timestamp`".into()))?;
            let occurred = chrono::DateTime::parse_from_rfc3339(timestamp)
                .ok()
                .and_then(|t| t.timestamp_nanos_opt())
                .ok_or_else(|| error(index + 1, format!("`{timestamp}` is not RFC 3339")))?;
            let uuid =
                body["uuid"].as_str().map_or_else(|| format!("FIXTURE{index:019}"), str::to_owned);
            events.push(SimEvent { uuid, stream, occurred, ingested: occurred, body, raw: true });
        }
        self.store.extend(stream, events);
        Ok(())
    }
}

/// A running simulator.
#[derive(Debug)]
pub struct Simulator {
    state: Arc<SimState>,
    addr: SocketAddr,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

impl Simulator {
    /// Bind `listen` (port 0 picks a free port), load or generate events, serve.
    pub async fn start(config: SimConfig, listen: SocketAddr) -> Result<Self, SimError> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| SimError::Bind { address: listen, source })?;
        let addr =
            listener.local_addr().map_err(|source| SimError::Bind { address: listen, source })?;
        let audience = config.audience.clone().unwrap_or_else(|| addr.to_string());
        let state = Arc::new(SimState::new(config, audience));
        if state.config.fixtures.is_empty() {
            state.backfill();
        }
        for (stream, path) in &state.config.fixtures {
            state.load_fixture(*stream, path)?;
        }
        let shutdown = CancellationToken::new();
        if state.config.rate_per_sec > 0.0 {
            tokio::spawn(live_events(state.clone(), shutdown.clone()));
        }
        let app = crate::server::router(state.clone());
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
            if let Err(err) = serve.await {
                tracing::error!(error = %err, "simulator server stopped");
            }
        });
        Ok(Self { state, addr, shutdown, server })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The audience its tokens carry.
    pub fn audience(&self) -> &str {
        &self.state.audience
    }

    /// A token with all three features and no expiry.
    pub fn token(&self) -> String {
        self.mint_token(&["signinattempts", "itemusages", "auditevents"], None)
    }

    /// A token for `features`, expiring `expires_in` from now (negative: already expired).
    pub fn mint_token(&self, features: &[&str], expires_in: Option<i64>) -> String {
        self.state.mint(features, expires_in, None).0
    }

    /// Revoke the token whose `sub` is `sub`: it answers 401 from now on.
    pub fn revoke(&self, sub: &str) {
        self.state.revoke(sub);
    }

    /// Replace the random fault rates.
    pub fn set_faults(&self, faults: Faults) {
        self.state.set_faults(faults);
    }

    /// Queue a fault for the next event request.
    pub fn push_fault(&self, fault: Fault) {
        self.state.push_fault(fault);
    }

    /// Ingest, now, an event that happened at `occurred_nanos` (a late arrival
    /// if that is in the past). Returns it as stored.
    pub fn inject(&self, stream: SimStream, occurred_nanos: i64) -> SimEvent {
        self.state.ingest_new(stream, occurred_nanos)
    }

    /// Events of `stream` a client can see now.
    pub fn visible_events(&self, stream: SimStream) -> usize {
        self.state.store.visible(stream, now_nanos())
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.state.requests()
    }

    /// Every answered request, in order.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        lock(&self.state.log).clone()
    }

    /// Stop serving and wait for open connections to finish.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
    }
}

async fn live_events(state: Arc<SimState>, shutdown: CancellationToken) {
    let tick = Duration::from_millis(100);
    let mut owed = [0.0_f64; 3];
    let mut interval = tokio::time::interval(tick);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = shutdown.cancelled() => return,
        }
        for stream in SimStream::ALL {
            owed[stream.index()] += state.config.rate_per_sec * tick.as_secs_f64();
            while owed[stream.index()] >= 1.0 {
                owed[stream.index()] -= 1.0;
                let lag = lock(&state.generator).lag_nanos(stream);
                state.ingest_new(stream, now_nanos() - lag);
            }
        }
    }
}

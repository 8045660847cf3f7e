//! What the routes share: the simulator's configuration, keys, cursors,
//! stored events, rate limits, faults and the log of answered requests.

use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::auth::{Claims, ISSUER, Keys};
use crate::cursor::CursorCodec;
use crate::generate::{Generator, base32_id};
use crate::ratelimit::RateLimiter;
use crate::store::Store;
use crate::{Fault, Faults, SimConfig, SimEvent, SimStream, now_nanos};

use crate::error::SimError;

/// The most requests the log keeps (the older half goes when it is full),
/// and the most scripted faults queued.
const MAX_KEPT: usize = 100_000;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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
    pub(crate) generator: Mutex<Generator>,
    faults: Mutex<FaultState>,
    revoked: Mutex<HashSet<String>>,
    ids: Mutex<ChaCha8Rng>,
    requests: AtomicU64,
    pub(crate) log: Mutex<Vec<RequestRecord>>,
    /// The Users API's directory.
    pub(crate) users: Mutex<crate::users::directory::Directory>,
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
    pub(crate) fn new(config: SimConfig, audience: String) -> Self {
        let mut ids = ChaCha8Rng::seed_from_u64(config.seed ^ 0x05ee_d1d5);
        let account_uuid = base32_id(&mut ids, false);
        let cursor_key = match &config.cursor_key {
            Some(key) => key.as_bytes().to_vec(),
            None => {
                Sha256::digest(format!("sluice-sim-cursor-{}", config.seed).as_bytes()).to_vec()
            }
        };
        let generator = Generator::new(config.seed, &account_uuid);
        let users = Mutex::new(crate::users::directory::Directory::new(
            config.seed,
            directory_people(&generator, &mut ids, &account_uuid, config.users),
        ));
        Self {
            users,
            keys: Keys::from_seed(config.seed),
            cursors: CursorCodec::new(&cursor_key),
            store: Store::default(),
            limiter: config.rate_limits.map(RateLimiter::new),
            generator: Mutex::new(generator),
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

    /// A fresh user UUID.
    pub(crate) fn new_user_id(&self) -> String {
        base32_id(&mut *lock(&self.ids), false)
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
    pub(crate) fn backfill(&self) {
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

    pub(crate) fn load_fixture(&self, stream: SimStream, path: &Path) -> Result<(), SimError> {
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

/// The generator's people (guests not yet accepted: `STATE_UNSPECIFIED`),
/// then `extra` generated ones, created a day apart in the past.
fn directory_people(
    generator: &Generator,
    ids: &mut ChaCha8Rng,
    account: &str,
    extra: usize,
) -> Vec<crate::users::directory::SimUser> {
    let start = chrono::DateTime::parse_from_rfc3339("2021-03-01T09:00:00Z")
        .map(|t| t.timestamp())
        .unwrap_or_default();
    let mut people: Vec<(String, String, String, bool)> = generator.people();
    people.extend((0..extra).map(|n| {
        (
            base32_id(&mut *ids, false),
            format!("user{n:05}@example.com"),
            format!("User {n:05}"),
            false,
        )
    }));
    people
        .into_iter()
        .enumerate()
        .map(|(n, (id, email, name, guest))| crate::users::directory::SimUser {
            path: format!("accounts/{account}/users/{id}"),
            id,
            email,
            display_name: name,
            state: if guest { "STATE_UNSPECIFIED" } else { "ACTIVE" }.into(),
            create_time: chrono::DateTime::from_timestamp(start + n as i64 * 600, 0)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default(),
        })
        .collect()
}

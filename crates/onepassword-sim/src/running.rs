//! The simulator's in-process handle: start, control, shut down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::SimError;
use crate::state::{RequestRecord, SimState, lock};
use crate::{Fault, Faults, SimConfig, SimEvent, SimStream, now_nanos};

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

    /// The account's ID, as the Users API's paths name it.
    pub fn account_id(&self) -> &str {
        &self.state.account_uuid
    }

    /// The Users API's OAuth client ID and its current secret.
    pub fn users_client(&self) -> (&'static str, String) {
        let secret = crate::state::lock(&self.state.users).client_secret.clone();
        (crate::users::CLIENT_ID, secret)
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

//! sluice-onepassword-sim: a faithful simulator of the 1Password Events API.
//!
//! sluice's tests, benchmarks and `sluice demo` cannot reach the real API, so
//! this crate stands in for it, built from the published contract (OpenAPI
//! 1.2.0, the API reference and changelog, real responses), not from sluice's
//! own source, with which it shares no types:
//!
//! - [`server`]: the routes, request validation, errors and faults;
//! - [`auth`]: ES256 JWTs it mints and verifies (`aud`, `1password.com/fts`, `exp`);
//! - [`cursor`]: stateless, HMAC-signed cursors over (ingestion time, uuid);
//! - [`store`]: events per stream, paged in ingestion order;
//! - [`generate`], [`vocab`]: a deterministic generator with the documented vocabularies;
//! - [`ratelimit`]: per-account sliding windows (600/min, 30,000/h);
//! - [`control`]: a `/_sim/` control plane for tests (tokens, revocation, faults, late events);
//! - [`users`]: the Users API (OAuth client credentials, the paged list of people) and `/_sim/users`.
//!
//! [`Simulator::start`] runs it in-process on any address (port 0 in tests).
#![deny(missing_docs)]

pub mod auth;
mod config;
pub mod control;
pub mod cursor;
mod error;
pub mod generate;
pub mod ratelimit;
mod running;
pub mod server;
mod state;
pub mod store;
pub mod users;
pub mod vocab;

pub use config::{Fault, Faults, RateLimits, SimConfig};
pub use error::SimError;
pub use running::Simulator;
pub use state::RequestRecord;

/// The three event streams, with their API paths and token features.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum SimStream {
    /// `signinattempts`.
    SigninAttempts,
    /// `itemusages`.
    ItemUsages,
    /// `auditevents`.
    AuditEvents,
}

impl SimStream {
    /// All three, in a fixed order.
    pub const ALL: [SimStream; 3] = [Self::SigninAttempts, Self::ItemUsages, Self::AuditEvents];

    /// The path segment and token feature: `signinattempts`, `itemusages`, `auditevents`.
    pub fn feature(self) -> &'static str {
        match self {
            Self::SigninAttempts => "signinattempts",
            Self::ItemUsages => "itemusages",
            Self::AuditEvents => "auditevents",
        }
    }

    /// The snake_case name used by fixture files and the control plane.
    pub fn name(self) -> &'static str {
        match self {
            Self::SigninAttempts => "signin_attempts",
            Self::ItemUsages => "item_usages",
            Self::AuditEvents => "audit_events",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// API versions with event routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ApiVersion {
    /// `/api/v1/...`
    V1,
    /// `/api/v2/...`: adds `account_uuid`, `user_type`, `actor_type`, ...
    V2,
}

/// One stored event.
#[derive(Clone, Debug)]
pub struct SimEvent {
    /// Its uuid (the paging tie-breaker).
    pub uuid: String,
    /// Its stream.
    pub stream: SimStream,
    /// When it happened (its `timestamp`), in Unix nanoseconds.
    pub occurred: i64,
    /// When the API ingested it (hidden; paging order), in Unix nanoseconds.
    pub ingested: i64,
    /// The v2 body.
    pub body: serde_json::Value,
    /// A fixture served exactly as given, whatever the version.
    pub raw: bool,
}

impl SimEvent {
    /// The item as the API returns it on `version`.
    pub fn render(&self, version: ApiVersion) -> serde_json::Value {
        if self.raw || version == ApiVersion::V2 {
            return self.body.clone();
        }
        let mut body = self.body.clone();
        if let Some(map) = body.as_object_mut() {
            for key in ["account_uuid", "actor_type", "actor_account_uuid"] {
                map.remove(key);
            }
            for user in ["user", "target_user"] {
                if let Some(user) = map.get_mut(user).and_then(|u| u.as_object_mut()) {
                    user.remove("user_type");
                    user.remove("user_account_uuid");
                }
            }
            // v1 predates federated sign-ins.
            if map.get("type").and_then(|t| t.as_str()) == Some("federated") {
                map.insert("type".into(), "credentials_ok".into());
            }
        }
        body
    }
}

/// Now, in Unix nanoseconds.
pub fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

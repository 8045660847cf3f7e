//! The Users API's data: the account's people, the OAuth application's
//! secret, the tokens it issued, and the counts tests read.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

/// An access token's lifetime.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);
/// The client ID of the simulated OAuth application.
pub const CLIENT_ID: &str = "5ab87915-2deb-429c-a1e2-8b0495900f45";

/// A user as the API answers it: exactly six fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SimUser {
    /// 26-character base32 UUID.
    pub id: String,
    /// Email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// `ACTIVE`, `SUSPENDED` or `STATE_UNSPECIFIED`.
    pub state: String,
    /// RFC 3339.
    pub create_time: String,
    /// `accounts/<account>/users/<id>`.
    pub path: String,
}

/// The account's people, the OAuth application and its tokens.
#[derive(Debug)]
pub struct Directory {
    pub(crate) users: Vec<SimUser>,
    pub(crate) client_secret: String,
    pub(crate) tokens: HashMap<String, Instant>,
    pub(crate) writes: u64,
    pub(crate) listings: u64,
    pub(crate) revocations: u64,
    pub(crate) issued: u64,
}

impl Directory {
    /// `people` first (the event generator's), in creation order.
    pub(crate) fn new(seed: u64, people: Vec<SimUser>) -> Self {
        Self {
            users: people,
            client_secret: format!("sim-users-secret-{seed:x}"),
            tokens: HashMap::new(),
            writes: 0,
            listings: 0,
            revocations: 0,
            issued: 0,
        }
    }

    /// A new secret: tokens issued before stop working (a revoked app).
    pub(crate) fn rotate(&mut self) -> String {
        self.client_secret = format!("{}-r", self.client_secret);
        self.tokens.clear();
        self.client_secret.clone()
    }
}

//! The users inventory on the polling kit ([`sluice_core::poll`]): each
//! poll lists every user, compares the list with what was last sent, and
//! sends what changed (everyone on the first poll and every
//! `snapshot_interval`). The inventory the comparison needs is committed to
//! the checkpoint only once the sinks acknowledged the poll's documents, so
//! a crash sends them again, never skips them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sluice_core::Event;
use sluice_core::metrics::{ComponentMetrics, Stage};
use sluice_core::poll::{CheckpointStore, FetchError, Fetched, PollMetrics, PollTarget};

use crate::client::{UsersClient, UsersError};
use crate::config::Settings;
use crate::inventory::{Users, changes, document};

/// The dataset of the documents (`logs-1password.users-<namespace>`).
pub const DATASET: &str = "1password.users";
/// The lookup table the inventory fills ([`sluice_core::lookup`]): users by
/// id, for `get_lookup("1password.users", uuid)` in `ecs.vrl`.
pub const LOOKUP_TABLE: &str = "1password.users";
/// More pages than this in one listing is a loop, not an account.
const MAX_PAGES: usize = 10_000;

/// The inventory last delivered, as the checkpoint keeps it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersCheckpoint {
    /// The account listed.
    pub account_id: String,
    /// The API's base URL.
    pub url: String,
    /// Polls that sent documents, counted from the first.
    pub generation: u64,
    /// When the last full inventory was taken (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_at: Option<String>,
    /// When this inventory was listed (RFC 3339).
    #[serde(default)]
    pub listed_at: String,
    /// The users, by id.
    #[serde(default)]
    pub users: Users,
}

/// The inventory as the polling kit sees it.
pub(crate) struct Target {
    pub(crate) client: UsersClient,
    pub(crate) settings: Arc<Settings>,
    pub(crate) store: CheckpointStore<UsersCheckpoint>,
    /// What the sinks acknowledged.
    pub(crate) committed: Arc<UsersCheckpoint>,
    /// What was last sent (the comparison's base).
    pub(crate) emitted: Arc<UsersCheckpoint>,
    pub(crate) source_id: Arc<str>,
    pub(crate) component: ComponentMetrics,
}

impl PollTarget for Target {
    type Position = Arc<UsersCheckpoint>;

    fn label(&self) -> &str {
        "users"
    }

    fn api(&self) -> &str {
        "the Users API"
    }

    fn refused_hint(&self) -> &str {
        "the Users API refuses this source; fix client_id or client_secret (a client_secret_file is read again at each token), account_id, or the OAuth application's permissions (list users)"
    }

    async fn fetch(
        &mut self,
        metrics: &PollMetrics,
    ) -> Result<Fetched<Self::Position>, FetchError> {
        let users = self.list(metrics).await?;
        publish(&self.source_id, &users);
        let now = Utc::now();
        let snapshot = self.snapshot_due(now);
        // The first inventory: everyone is discovered, nobody "added".
        let first = self.emitted.snapshot_at.is_none();
        let base = if first { &users } else { &self.emitted.users };
        let entries = changes(base, &users, snapshot);
        if entries.is_empty() && !snapshot {
            return Ok(Fetched { events: Vec::new(), position: None, more: false });
        }
        let generation = self.emitted.generation + 1;
        let listed_at = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        let dataset: Arc<str> = DATASET.into();
        let mut events = Vec::with_capacity(entries.len());
        let mut bytes = 0;
        for entry in &entries {
            let raw =
                Bytes::from(document(entry, &self.settings.account_id, &listed_at, generation));
            bytes += raw.len();
            let mut event = Event::from_json(raw).map_err(|e| FetchError::Failed {
                reason: "malformed",
                message: format!("a user document: {e}"),
            })?;
            event.meta.dataset = Some(dataset.clone());
            event.meta.source_id = Some(self.source_id.clone());
            events.push(event);
        }
        self.component.received(events.len(), bytes);
        let counts = count(&entries);
        tracing::info!(
            stream = %"users",
            users = users.len(),
            added = counts[0],
            modified = counts[1],
            removed = counts[2],
            snapshot,
            "the inventory was listed"
        );
        let next = UsersCheckpoint {
            account_id: self.settings.account_id.clone(),
            url: self.settings.base.as_str().to_owned(),
            generation,
            snapshot_at: if snapshot {
                Some(listed_at.clone())
            } else {
                self.emitted.snapshot_at.clone()
            },
            listed_at,
            users,
        };
        self.emitted = Arc::new(next);
        Ok(Fetched { events, position: Some(self.emitted.clone()), more: false })
    }

    fn commit(&mut self, position: Self::Position) -> bool {
        self.committed = position;
        true
    }

    fn save(&mut self) -> Result<(), String> {
        self.store.save(&self.committed).map_err(|e| e.to_string())
    }

    fn checkpoint_path(&self) -> &Path {
        self.store.path()
    }

    /// Compare the next listing with what the sinks acknowledged, so the
    /// changes they did not take are sent again.
    fn rewind(&mut self) {
        self.emitted = self.committed.clone();
    }

    fn interval(&self) -> Duration {
        self.settings.interval
    }
}

impl Target {
    /// Every user, page after page.
    async fn list(&mut self, metrics: &PollMetrics) -> Result<Users, FetchError> {
        let mut users = Users::new();
        let mut token: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..MAX_PAGES {
            let page = match self.client.list_page(token.as_deref()).await {
                Ok(page) => page,
                Err(err) => {
                    metrics.request(err.status_label());
                    return Err(fetch_error(err));
                }
            };
            metrics.request("200".into());
            users.extend(page.results.into_iter().map(|u| (u.id.clone(), u)));
            match page.next_page_token.filter(|t| !t.is_empty()) {
                None => return Ok(users),
                Some(next) if !seen.insert(next.clone()) => {
                    return Err(malformed(
                        "a listing: the API handed out a page token it gave before (a cycle)",
                    ));
                }
                Some(next) => token = Some(next),
            }
        }
        Err(malformed("a listing: more than 10,000 pages"))
    }

    /// A full inventory on the first poll, and once `snapshot_interval`
    /// has passed since the last one.
    fn snapshot_due(&self, now: DateTime<Utc>) -> bool {
        let Some(at) = self.emitted.snapshot_at.as_deref() else { return true };
        let Ok(at) = DateTime::parse_from_rfc3339(at) else { return true };
        (now - at.with_timezone(&Utc))
            .to_std()
            .is_ok_and(|age| age >= self.settings.snapshot_interval)
    }
}

/// Make `users` what `get_lookup("1password.users", id)` answers for
/// `source`'s account: each user's state, email and name.
pub(crate) fn publish(source: &str, users: &Users) {
    let rows = users
        .values()
        .map(|user| {
            let mut row = vrl::value::ObjectMap::new();
            row.insert("state".into(), user.state.as_str().into());
            row.insert("email".into(), user.email.as_str().into());
            row.insert("display_name".into(), user.display_name.as_str().into());
            (user.id.clone(), vrl::value::Value::Object(row))
        })
        .collect();
    sluice_core::lookup::publish(LOOKUP_TABLE, source, rows);
}

/// Added, modified and removed users among `entries`.
fn count(entries: &[crate::inventory::Entry<'_>]) -> [usize; 3] {
    use crate::inventory::Change;
    let of = |kind| entries.iter().filter(|e| e.change == kind).count();
    [of(Change::Added), of(Change::Modified), of(Change::Removed)]
}

fn malformed(message: &str) -> FetchError {
    FetchError::Failed { reason: "malformed", message: format!("the answer is not {message}") }
}

/// How the kit handles a Users API error: refusals wait for the operator,
/// 429 waits, the rest retry.
pub(crate) fn fetch_error(err: UsersError) -> FetchError {
    let refused = |reason| FetchError::Refused { reason, message: err.to_string() };
    match &err {
        UsersError::RateLimited { retry_after } => {
            FetchError::RateLimited { retry_after: *retry_after }
        }
        UsersError::CredentialsRefused { .. } | UsersError::Unauthorized(_) => {
            refused("unauthorized")
        }
        UsersError::Secret(_) => refused("secret_unreadable"),
        UsersError::Forbidden(_) => refused("forbidden"),
        UsersError::NotFound(_) => refused("not_found"),
        UsersError::BadRequest(_) => refused("bad_request"),
        UsersError::Status(..) => {
            FetchError::Failed { reason: "server_error", message: err.to_string() }
        }
        UsersError::Transport(_) => {
            FetchError::Failed { reason: "transport", message: err.to_string() }
        }
        UsersError::Malformed(_) => {
            FetchError::Failed { reason: "malformed", message: err.to_string() }
        }
    }
}

/// The checkpoint to start from: an inventory of another account is refused.
pub(crate) fn load_checkpoint(
    store: &CheckpointStore<UsersCheckpoint>,
    settings: &Settings,
    source_id: &str,
    component: &ComponentMetrics,
) -> Result<UsersCheckpoint, String> {
    let checkpoint = store.load().map_err(|e| {
        component.error(Stage::Receiving, "checkpoint_read");
        e.to_string()
    })?;
    let Some(checkpoint) = checkpoint else { return Ok(UsersCheckpoint::default()) };
    if checkpoint.account_id != settings.account_id {
        return Err(format!(
            "source {source_id}: the checkpoint {} holds the inventory of account {}, and account_id is {}; point data_dir elsewhere, or remove {} to start this source afresh (its next poll sends a full inventory)",
            store.path().display(),
            checkpoint.account_id,
            settings.account_id,
            store.path().display(),
        ));
    }
    Ok(checkpoint)
}

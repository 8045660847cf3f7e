//! The account's users as an inventory, what changed between two of them,
//! and the raw document of each change (mapped onto ECS by `ecs.vrl`).
//!
//! A document's `uuid` is stable for one change of one inventory
//! generation, so a poll sent again after a crash names the same
//! documents and an Elasticsearch sink answers its replays as duplicates.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A user as the API lists it (exactly its six fields; unknown ones ignored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user's UUID.
    pub id: String,
    /// The email address.
    #[serde(default)]
    pub email: String,
    /// The name shown.
    #[serde(default, alias = "displayName")]
    pub display_name: String,
    /// `ACTIVE`, `SUSPENDED` or `STATE_UNSPECIFIED` (absent reads as the last).
    #[serde(default = "unspecified")]
    pub state: String,
    /// When the user was created (RFC 3339).
    #[serde(default, alias = "createTime", skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    /// `accounts/<account>/users/<user>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

fn unspecified() -> String {
    "STATE_UNSPECIFIED".into()
}

/// Users by id.
pub type Users = BTreeMap<String, User>;

/// How a user appears in a poll's documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Unchanged, listed by a full inventory.
    Snapshot,
    /// New since the last poll.
    Added,
    /// State, email or name changed.
    Modified,
    /// Gone since the last poll.
    Removed,
}

impl Change {
    /// `change` in the raw document.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot",
            Self::Added => "added",
            Self::Modified => "modified",
            Self::Removed => "removed",
        }
    }
}

/// One user's document of a poll.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// How it appears.
    pub change: Change,
    /// The user now (for a removal: as last seen).
    pub user: &'a User,
    /// The user before a modification.
    pub previous: Option<&'a User>,
}

/// What changed from `old` to `new`; with `snapshot`, every unchanged
/// user too. Ordered by user id.
pub fn changes<'a>(old: &'a Users, new: &'a Users, snapshot: bool) -> Vec<Entry<'a>> {
    let mut entries = Vec::new();
    for (id, user) in new {
        let entry = match old.get(id) {
            None => Entry { change: Change::Added, user, previous: None },
            Some(before) if before != user => {
                Entry { change: Change::Modified, user, previous: Some(before) }
            }
            Some(_) if snapshot => Entry { change: Change::Snapshot, user, previous: None },
            Some(_) => continue,
        };
        entries.push(entry);
    }
    for (id, user) in old {
        if !new.contains_key(id) {
            entries.push(Entry { change: Change::Removed, user, previous: None });
        }
    }
    entries.sort_by(|a, b| a.user.id.cmp(&b.user.id));
    entries
}

/// The raw document of `entry`, observed at `observed_at` (RFC 3339) in
/// inventory `generation` of `account_id`.
pub fn document(
    entry: &Entry<'_>,
    account_id: &str,
    observed_at: &str,
    generation: u64,
) -> Vec<u8> {
    let mut doc = serde_json::Map::new();
    let id_of = |entry: &Entry<'_>| {
        let key = format!("{account_id}/{}/{generation}/{}", entry.user.id, entry.change.as_str());
        format!("{}-{:016x}", entry.user.id, fnv1a(key.as_bytes()))
    };
    doc.insert("uuid".into(), id_of(entry).into());
    doc.insert("timestamp".into(), observed_at.into());
    doc.insert("change".into(), entry.change.as_str().into());
    doc.insert("account_id".into(), account_id.into());
    doc.insert("user".into(), serde_json::to_value(entry.user).unwrap_or_default());
    if let Some(previous) = entry.previous {
        doc.insert("previous".into(), serde_json::to_value(previous).unwrap_or_default());
    }
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// FNV-1a, 64 bits: a stable id, not a secret.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, state: &str) -> User {
        User {
            id: id.into(),
            email: format!("{}@example.com", id.to_lowercase()),
            display_name: format!("User {id}"),
            state: state.into(),
            create_time: Some("2024-01-15T10:30:00Z".into()),
            path: Some(format!("accounts/ACCT/users/{id}")),
        }
    }

    fn users(list: &[User]) -> Users {
        list.iter().map(|u| (u.id.clone(), u.clone())).collect()
    }

    #[test]
    fn only_what_changed_between_polls_and_everyone_in_a_snapshot() {
        let old = users(&[user("A", "ACTIVE"), user("B", "ACTIVE"), user("C", "ACTIVE")]);
        let new = users(&[user("A", "ACTIVE"), user("B", "SUSPENDED"), user("D", "ACTIVE")]);
        let kinds = |snapshot| {
            changes(&old, &new, snapshot)
                .iter()
                .map(|e| (e.user.id.clone(), e.change))
                .collect::<Vec<_>>()
        };
        let b = |c| ("B".to_owned(), c);
        assert_eq!(
            kinds(false),
            [b(Change::Modified), ("C".into(), Change::Removed), ("D".into(), Change::Added)]
        );
        assert_eq!(kinds(true)[0], ("A".into(), Change::Snapshot));
        assert_eq!(kinds(true).len(), 4);
        let modified = &changes(&old, &new, false)[0];
        assert_eq!(modified.previous.map(|p| p.state.as_str()), Some("ACTIVE"));
        assert!(changes(&new, &new, false).is_empty(), "nothing changed, nothing sent");
    }

    #[test]
    fn a_document_keeps_its_id_within_a_generation_only() {
        let (old, new) = (users(&[user("B", "ACTIVE")]), users(&[user("B", "SUSPENDED")]));
        let entry = &changes(&old, &new, false)[0];
        let doc = |generation, at| {
            serde_json::from_slice::<serde_json::Value>(&document(entry, "ACCT", at, generation))
                .expect("json")
        };
        let first = doc(7, "2026-12-08T00:00:00Z");
        assert_eq!(
            first["uuid"],
            doc(7, "2026-12-08T00:15:00Z")["uuid"],
            "sent again after a crash"
        );
        assert_ne!(first["uuid"], doc(8, "2026-12-08T00:00:00Z")["uuid"], "a later change");
        assert_eq!(first["change"], "modified");
        assert_eq!(first["user"]["state"], "SUSPENDED");
        assert_eq!(first["previous"]["state"], "ACTIVE");
        assert_eq!(first["account_id"], "ACCT");
    }

    #[test]
    fn users_read_both_spellings_and_a_missing_state() {
        let snake: User = serde_json::from_str(r#"{"id":"U","email":"u@x","display_name":"U X","create_time":"2024-01-15T10:30:00Z","extra":1}"#).expect("user");
        let camel: User = serde_json::from_str(
            r#"{"id":"U","email":"u@x","displayName":"U X","createTime":"2024-01-15T10:30:00Z"}"#,
        )
        .expect("user");
        assert_eq!(snake, camel);
        assert_eq!(snake.state, "STATE_UNSPECIFIED");
    }
}

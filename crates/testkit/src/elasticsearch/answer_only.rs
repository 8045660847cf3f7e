//! `answer_only`: a `_bulk` endpoint that answers at once, for benchmarks.
//!
//! The strict emulator parses and stores every document, which costs it
//! more CPU than sluice spends producing them; a benchmark against it
//! measures the emulator. In this mode each action line is read for its
//! `_index` and `_id`, the document line is skipped unread, and each item is
//! answered `201 created`, or `409` for a `create` whose `_id` was seen
//! before (so a replayed event still shows as a conflict). Only a hash of
//! each `(_index, _id)` is kept, to count documents.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::Mutex;

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// What answer-only mode remembers: one hash per document.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    ids: Mutex<HashSet<u64>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Seen {
    /// How many distinct documents were answered `created`.
    pub(crate) fn documents(&self) -> usize {
        self.ids.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn key(&self, index: &str, id: &str) -> u64 {
        self.hasher.hash_one((index, id))
    }
}

/// One action line: `{"create": {"_index": ..., "_id": ...}}`.
#[derive(serde::Deserialize)]
struct Meta<'a> {
    #[serde(borrow, default)]
    _index: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    _id: Option<std::borrow::Cow<'a, str>>,
}

/// Answer a newline-terminated NDJSON body.
pub(crate) fn answer(seen: &Seen, text: &[u8], default_index: Option<&str>) -> Response {
    let mut lines = text[..text.len() - 1].split(|b| *b == b'\n');
    let mut keys = Vec::new();
    while let Some(line) = lines.next() {
        let Ok(action) = serde_json::from_slice::<std::collections::BTreeMap<&str, Meta>>(line)
        else {
            return super::bulk::bad_request(
                "Malformed action/metadata line, expected START_OBJECT",
            );
        };
        let Some((op, meta)) = action.into_iter().next() else {
            return super::bulk::bad_request("Malformed action/metadata line, expected an action");
        };
        if op != "delete" && lines.next().is_none() {
            return super::bulk::bad_request("Malformed action/metadata line, no document");
        }
        let index = meta._index.as_deref().or(default_index).unwrap_or_default().to_owned();
        let id = meta._id.as_deref().unwrap_or_default().to_owned();
        keys.push((op.to_owned(), index, id));
    }
    let mut items = Vec::with_capacity(keys.len());
    let mut errors = false;
    {
        let mut ids = seen.ids.lock().unwrap_or_else(|p| p.into_inner());
        for (op, index, id) in keys {
            let fresh = ids.insert(seen.key(&index, &id));
            let item = if fresh || op != "create" {
                json!({"_index": index, "_id": id, "result": "created", "status": 201})
            } else {
                errors = true;
                json!({"_index": index, "_id": id, "status": 409, "error": {
                    "type": "version_conflict_engine_exception",
                    "reason": format!("[{id}]: version conflict, document already exists (current version [1])")}})
            };
            items.push(json!({ op: item }));
        }
    }
    axum::Json(json!({"took": 0, "errors": errors, "items": Value::Array(items)})).into_response()
}

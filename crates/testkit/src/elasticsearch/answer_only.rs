//! `answer_only`: a `_bulk` endpoint that answers at once, for benchmarks.
//!
//! The strict emulator parses and stores every document, which costs it
//! more CPU than sluice spends producing them; a benchmark against it
//! measures the emulator. In this mode each action line is read for its
//! `_index` and `_id`, the document line is skipped unread (found with
//! `memchr`), and each item is answered `201 created`, or `409` for a
//! `create` whose `_id` was seen before (so a replayed event still shows as
//! a conflict); the answer is written straight into one buffer. Only a hash
//! of each `(_index, _id)` is kept, to count documents.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::Mutex;

use axum::http::header;
use axum::response::{IntoResponse, Response};

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

/// The lines of a newline-terminated body.
fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', text).map(move |end| {
        let line = &text[start..end];
        start = end + 1;
        line
    })
}

/// Answer a newline-terminated NDJSON body.
pub(crate) fn answer(seen: &Seen, text: &[u8], default_index: Option<&str>) -> Response {
    let mut lines = lines(text);
    let mut items = Vec::new();
    while let Some(line) = lines.next() {
        let Ok(action) = serde_json::from_slice::<std::collections::BTreeMap<&str, Meta>>(line)
        else {
            return super::bad_request("Malformed action/metadata line, expected START_OBJECT");
        };
        let Some((op, meta)) = action.into_iter().next() else {
            return super::bad_request("Malformed action/metadata line, expected an action");
        };
        if op != "delete" && lines.next().is_none() {
            return super::bad_request("Malformed action/metadata line, no document");
        }
        let index = meta._index.or(default_index.map(Into::into)).unwrap_or_default();
        items.push((op, index, meta._id.unwrap_or_default()));
    }
    let mut answered = Vec::with_capacity(items.len() * 96);
    let mut errors = false;
    {
        let mut ids = seen.ids.lock().unwrap_or_else(|p| p.into_inner());
        for (n, (op, index, id)) in items.iter().enumerate() {
            let fresh = ids.insert(seen.key(index, id));
            if n > 0 {
                answered.push(b',');
            }
            answered.push(b'{');
            string(&mut answered, op);
            answered.extend_from_slice(br#":{"_index":"#);
            string(&mut answered, index);
            answered.extend_from_slice(br#","_id":"#);
            string(&mut answered, id);
            if fresh || *op != "create" {
                answered.extend_from_slice(br#","result":"created","status":201}}"#);
            } else {
                errors = true;
                answered.extend_from_slice(br#","status":409,"error":{"type":"version_conflict_engine_exception","reason":"#);
                let reason = format!(
                    "[{id}]: version conflict, document already exists (current version [1])"
                );
                string(&mut answered, &reason);
                answered.extend_from_slice(b"}}}");
            }
        }
    }
    let mut out = format!(r#"{{"took":0,"errors":{errors},"items":["#).into_bytes();
    out.extend_from_slice(&answered);
    out.extend_from_slice(b"]}");
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

/// `value` as a JSON string.
fn string(out: &mut Vec<u8>, value: &str) {
    serde_json::to_writer(&mut *out, value).expect("a string serializes into a Vec");
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        serde_json::from_slice(&bytes).expect("the answer is JSON")
    }

    #[tokio::test]
    async fn answers_created_then_conflict_for_the_same_id() {
        let seen = Seen::default();
        let text = b"{\"create\":{\"_index\":\"logs-a\",\"_id\":\"x\\\"1\"}}\n{\"a\":1}\n{\"create\":{\"_id\":\"y\"}}\n{\"b\":\"\\n\"}\n";
        let first = body(answer(&seen, text, Some("fallback"))).await;
        assert_eq!(first["errors"], false);
        assert_eq!(first["items"][0]["create"]["_id"], "x\"1");
        assert_eq!(first["items"][0]["create"]["status"], 201);
        assert_eq!(first["items"][1]["create"]["_index"], "fallback");
        let again = body(answer(&seen, &text[..text.len()], Some("fallback"))).await;
        assert_eq!(again["errors"], true);
        assert_eq!(again["items"][0]["create"]["status"], 409);
        assert_eq!(
            again["items"][0]["create"]["error"]["type"],
            "version_conflict_engine_exception"
        );
        assert_eq!(seen.documents(), 2);
    }

    #[tokio::test]
    async fn a_missing_document_line_is_a_bad_request() {
        let response = answer(&Seen::default(), b"{\"create\":{\"_id\":\"x\"}}\n", None);
        assert_eq!(response.status(), 400);
    }
}

//! `POST /_bulk`: the NDJSON protocol, validated line by line, answered item
//! by item as Elasticsearch does.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{EsFault, EsState, Store, bad_request, es_error, ingest, processors, unauthorized};

/// The query parameters of `_bulk` the emulator reads.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct BulkParams {
    /// The ingest pipeline for every document (`_none`: not even the default).
    pipeline: Option<String>,
}

pub(crate) async fn bulk(
    state: State<Arc<EsState>>,
    Query(params): Query<BulkParams>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(state, headers, body, None, params).await
}

pub(crate) async fn bulk_in_index(
    state: State<Arc<EsState>>,
    Query(params): Query<BulkParams>,
    headers: HeaderMap,
    Path(index): Path<String>,
    body: Bytes,
) -> Response {
    handle(state, headers, body, Some(index), params).await
}

/// A whole-request failure as Elasticsearch, or a proxy in front of it, answers.
fn failed_request(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    match code {
        404 => es_error(status, "index_not_found_exception", "no such index [_bulk]"),
        408 => (status, "<html><body><h1>408 Request Time-out</h1></body></html>").into_response(),
        429 => es_error(
            status,
            "es_rejected_execution_exception",
            "rejected execution of coordinating operation",
        ),
        _ => es_error(status, "unavailable_shards_exception", "primary shard is not active"),
    }
}

async fn handle(
    State(state): State<Arc<EsState>>,
    headers: HeaderMap,
    body: Bytes,
    default_index: Option<String>,
    params: BulkParams,
) -> Response {
    let number = state.bulk_requests.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    if !state.authorized(&headers) {
        return unauthorized("/_bulk");
    }
    let (fault, persistent, latency) = {
        let mut store = state.lock();
        store.bulk_pipeline_params.push(params.pipeline.clone());
        (store.faults.pop_front(), store.request_failure, store.latency.of(number))
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(code) = persistent {
        return failed_request(code);
    }
    if let Some(response) = injected(fault.clone()).await {
        return response;
    }
    let text = match request_body(&headers, body, state.config.max_content_length) {
        Ok(text) => text,
        Err(response) => return response,
    };
    if state.config.answer_only {
        return super::answer_only::answer(&state.seen, &text, default_index.as_deref());
    }
    let lines: Vec<&[u8]> = text[..text.len() - 1].split(|b| *b == b'\n').collect();
    // Elasticsearch parses and validates the whole request before it indexes
    // anything: a malformed line or an invalid `_id` fails all of it.
    let actions = match parse(&lines, default_index.as_deref()) {
        Ok(actions) => actions,
        Err(response) => return response,
    };
    let (items, errors) = {
        let mut store = state.lock();
        store.bulk_sizes.push(actions.len());
        let mut errors = false;
        let items: Vec<Value> = actions
            .into_iter()
            .map(|action| {
                let (status, item) = index_one(&mut store, action, params.pipeline.as_deref());
                errors |= status >= 300;
                item
            })
            .collect();
        (items, errors)
    };
    if let Some(EsFault::SlowAnswer(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    let mut items = items;
    if fault == Some(EsFault::Reordered) {
        items.reverse();
    }
    let took = started.elapsed().as_millis() as u64;
    axum::Json(json!({"took": took, "errors": errors, "items": items})).into_response()
}

/// What an injected fault answers instead of the request (a `Slow` fault
/// only waits).
async fn injected(fault: Option<EsFault>) -> Option<Response> {
    match fault {
        Some(EsFault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let kind = if code == 429 {
                "es_rejected_execution_exception"
            } else {
                "cluster_block_exception"
            };
            Some(es_error(status, kind, "injected by the testkit"))
        }
        Some(EsFault::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            None
        }
        Some(EsFault::SlowAnswer(_) | EsFault::Reordered) | None => None,
        Some(EsFault::Reset) => {
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected reset",
            ))];
            Some(Body::from_stream(futures_util::stream::iter(chunks)).into_response())
        }
    }
}

/// The request's NDJSON text, as Elasticsearch checks it: the content type,
/// `http.max_content_length`, the encoding, the final newline.
fn request_body(
    headers: &HeaderMap,
    body: Bytes,
    max_content_length: usize,
) -> Result<Bytes, Response> {
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if media != "application/x-ndjson" {
        let body = json!({"error": format!("Content-Type header [{content_type}] is not supported"), "status": 406});
        return Err((StatusCode::NOT_ACCEPTABLE, axum::Json(body)).into_response());
    }
    if body.len() > max_content_length {
        let reason =
            format!("request body is larger than http.max_content_length [{}]", max_content_length);
        return Err((StatusCode::PAYLOAD_TOO_LARGE, reason).into_response());
    }
    let encoding =
        headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let text = match encoding {
        "" | "identity" => body,
        "gzip" => {
            let mut out = Vec::new();
            if flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out).is_err() {
                return Err(bad_request("the request body is not valid gzip"));
            }
            Bytes::from(out)
        }
        other => return Err(bad_request(&format!("unsupported Content-Encoding [{other}]"))),
    };
    if !text.ends_with(b"\n") {
        return Err(bad_request("The bulk request must be terminated by a newline [\\n]"));
    }
    Ok(text)
}

/// Run one action's pipelines and index it; its status and answer item.
fn index_one(store: &mut Store, action: Action, request_pipeline: Option<&str>) -> (u16, Value) {
    let requested = action.pipeline.as_deref().or(request_pipeline);
    let runs = match &action.target {
        Some(target) if action.op != "delete" => {
            Some(ingest::pipelines_for(store, target, requested))
        }
        _ => None,
    };
    let target = action.target.as_deref().unwrap_or_default().to_owned();
    let id = action.id.as_deref().unwrap_or_default().to_owned();
    let mut ran = Vec::new();
    // Elasticsearch runs the pipelines before it indexes.
    let processed = match (&runs, action.source) {
        (Some(Ok(ids)), Some(source)) if !ids.is_empty() => {
            Some(processors::run(&store.pipelines, ids, source, &mut ran))
        }
        (_, source) => source.map(|s| Ok(processors::Outcome::Index(s))),
    };
    let (status, mut item) = match (store.item_failure, &runs, processed) {
        (Some(failure), _, _) if action.op != "delete" => failure.answer(&target, &id),
        (_, Some(Err(missing)), _) => (
            400,
            item_error(
                &target,
                &id,
                "illegal_argument_exception",
                format!("pipeline with id [{missing}] does not exist"),
            ),
        ),
        (_, _, Some(Err(failure))) => {
            (400, item_error(&target, &id, "illegal_argument_exception", failure))
        }
        (_, _, Some(Ok(processors::Outcome::Dropped))) => {
            // A dropped document answers 200 `noop`, version -3.
            let mut item = ok_item(&target, &id, "noop", store.seq_no);
            item.insert("_version".into(), json!(-3));
            (200, item)
        }
        (_, _, Some(Ok(processors::Outcome::Index(doc)))) => {
            apply(store, &action.op, action.target.as_deref(), action.id, Some(doc))
        }
        (_, _, None) => apply(store, &action.op, action.target.as_deref(), action.id, None),
    };
    if (200..=299).contains(&status) {
        for id in ran {
            *store.pipeline_runs.entry(id).or_default() += 1;
        }
    }
    item.insert("status".into(), json!(status));
    (status, json!({ action.op.as_str(): item }))
}

/// One parsed action.
struct Action {
    op: String,
    target: Option<String>,
    id: Option<String>,
    source: Option<Map<String, Value>>,
    /// The action's own `pipeline`, over the request's.
    pipeline: Option<String>,
}

/// The longest `_id` Elasticsearch accepts, in bytes.
const MAX_ID_BYTES: usize = 512;

fn parse(lines: &[&[u8]], default_index: Option<&str>) -> Result<Vec<Action>, Response> {
    let mut actions = Vec::new();
    let mut index = 0;
    let mut problems = Vec::new();
    while index < lines.len() {
        let line_no = index + 1;
        let malformed = |what: &str| {
            bad_request(&format!("Malformed action/metadata line [{line_no}], {what}"))
        };
        let Ok(Value::Object(action)) = serde_json::from_slice::<Value>(lines[index]) else {
            return Err(malformed("expected START_OBJECT"));
        };
        let Some((op, meta)) = action.iter().next().filter(|_| action.len() == 1) else {
            return Err(malformed("expected a single action"));
        };
        let Some(meta) = meta.as_object() else {
            return Err(malformed("expected START_OBJECT"));
        };
        if !["index", "create", "update", "delete"].contains(&op.as_str()) {
            return Err(malformed(&format!(
                "expected one of [create, delete, index, update] but found [{op}]"
            )));
        }
        index += 1;
        let source = if op == "delete" {
            None
        } else {
            let Some(line) = lines.get(index) else {
                return Err(malformed("the action has no document"));
            };
            index += 1;
            match serde_json::from_slice::<Value>(line) {
                Ok(Value::Object(doc)) => Some(doc),
                _ => {
                    return Err(bad_request(&format!(
                        "Malformed document line [{}], expected a JSON object",
                        line_no + 1
                    )));
                }
            }
        };
        let id = meta.get("_id").and_then(Value::as_str).map(str::to_owned);
        if let Some(id) = &id
            && id.len() > MAX_ID_BYTES
        {
            problems.push(format!(
                "id [{id}] is too long, must be no longer than 512 bytes but was: {}",
                id.len()
            ));
        }
        let target = meta
            .get("_index")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| default_index.map(str::to_owned));
        let pipeline = meta.get("pipeline").and_then(Value::as_str).map(str::to_owned);
        actions.push(Action { op: op.clone(), target, id, source, pipeline });
    }
    if !problems.is_empty() {
        let listed: Vec<String> =
            problems.iter().enumerate().map(|(n, p)| format!("{}: {p};", n + 1)).collect();
        let reason = format!("Validation Failed: {}", listed.join(""));
        return Err(es_error(
            StatusCode::BAD_REQUEST,
            "action_request_validation_exception",
            &reason,
        ));
    }
    Ok(actions)
}

/// Elasticsearch's rules for index names.
fn index_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name != name.to_lowercase() {
        return Some("must be lowercase".into());
    }
    if let Some(c) = name.chars().find(|c| "\\/*?\"<>| ,#:".contains(*c)) {
        return Some(format!("must not contain the following characters [{c}]"));
    }
    if name.starts_with(['-', '_', '+']) {
        return Some("must not start with '_', '-', or '+'".into());
    }
    if name == "." || name == ".." {
        return Some("must not be '.' or '..'".into());
    }
    if name.len() > 255 {
        return Some("index name is too long".into());
    }
    None
}

/// `logs-*-*`: the built-in template makes these data streams.
fn is_data_stream(name: &str) -> bool {
    name.strip_prefix("logs-").is_some_and(|rest| rest.contains('-'))
}

/// An item's error answer, as Elasticsearch writes it.
pub(crate) fn item_error(index: &str, id: &str, kind: &str, reason: String) -> Map<String, Value> {
    let mut item = Map::new();
    item.insert("_index".into(), json!(index));
    item.insert("_id".into(), json!(id));
    item.insert("error".into(), json!({"type": kind, "reason": reason, "index": index}));
    item
}

fn apply(
    store: &mut Store,
    op: &str,
    index: Option<&str>,
    id: Option<String>,
    source: Option<Map<String, Value>>,
) -> (u16, Map<String, Value>) {
    store.seq_no += 1;
    let id = id.unwrap_or_else(|| format!("auto-{:020}", store.seq_no));
    let Some(index) = index else {
        return (
            400,
            item_error(
                "",
                &id,
                "action_request_validation_exception",
                "Validation Failed: 1: index is missing;".into(),
            ),
        );
    };
    if let Some(problem) = index_name_problem(index) {
        return (
            400,
            item_error(
                index,
                &id,
                "invalid_index_name_exception",
                format!("Invalid index name [{index}], {problem}"),
            ),
        );
    }
    let data_stream = is_data_stream(index);
    if data_stream && op != "create" {
        let reason =
            "only write ops with an op_type of create are allowed in data streams".to_owned();
        return (400, item_error(index, &id, "illegal_argument_exception", reason));
    }
    let Some(doc) = source else {
        let removed = store.indices.get_mut(index).and_then(|docs| docs.remove(&id)).is_some();
        return if removed {
            (200, ok_item(index, &id, "deleted", store.seq_no))
        } else {
            (404, ok_item(index, &id, "not_found", store.seq_no))
        };
    };
    if data_stream && !doc.contains_key("@timestamp") {
        let reason = "data stream timestamp field [@timestamp] is missing".to_owned();
        return (400, item_error(index, &id, "illegal_argument_exception", reason));
    }
    let document = Value::Object(doc);
    if let Some(rule) =
        store.rejects.iter().find(|rule| document.pointer(&rule.pointer) == Some(&rule.value))
    {
        let field = rule.pointer.trim_start_matches('/').replace('/', ".");
        let reason = format!(
            "failed to parse field [{field}] of type [long] in document with id '{id}'. Preview of field's value: '{}'",
            rule.value
        );
        return (400, item_error(index, &id, "mapper_parsing_exception", reason));
    }
    if store.throttle_items > 0 {
        store.throttle_items -= 1;
        let reason = "rejected execution of coordinating operation [shard_detail=[logs][0][P], shard_coordinating_and_primary_bytes=0, shard_operation_bytes=1024, shard_max_coordinating_and_primary_bytes=1024]".to_owned();
        return (429, item_error(index, &id, "es_rejected_execution_exception", reason));
    }
    let docs = store.indices.entry(index.to_owned()).or_default();
    if op == "create" && docs.contains_key(&id) {
        store.conflicts += 1;
        let reason =
            format!("[{id}]: version conflict, document already exists (current version [1])");
        return (409, item_error(index, &id, "version_conflict_engine_exception", reason));
    }
    let created = docs.insert(id.clone(), document).is_none();
    let seq_no = store.seq_no;
    if created {
        (201, ok_item(index, &id, "created", seq_no))
    } else {
        (200, ok_item(index, &id, "updated", seq_no))
    }
}

fn ok_item(index: &str, id: &str, result: &str, seq_no: u64) -> Map<String, Value> {
    let backing = if is_data_stream(index) {
        format!(".ds-{index}-2026.11.22-000001")
    } else {
        index.to_owned()
    };
    let mut item = Map::new();
    item.insert("_index".into(), json!(backing));
    item.insert("_id".into(), json!(id));
    item.insert("_version".into(), json!(1));
    item.insert("result".into(), json!(result));
    item.insert("_shards".into(), json!({"total": 1, "successful": 1, "failed": 0}));
    item.insert("_seq_no".into(), json!(seq_no));
    item.insert("_primary_term".into(), json!(1));
    item
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_follow_elasticsearch_rules() {
        assert_eq!(index_name_problem("logs-1password.signin_attempts-default"), None);
        assert!(index_name_problem("Logs").is_some());
        assert!(index_name_problem("_logs").is_some());
        assert!(index_name_problem("a b").is_some());
        assert!(index_name_problem("a*b").is_some());
        assert!(is_data_stream("logs-1password.audit_events-default"));
        assert!(!is_data_stream("1password-audit"));
    }
}

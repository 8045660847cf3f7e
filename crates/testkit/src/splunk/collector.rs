//! `POST /services/collector/event` and `POST /services/collector/ack`.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::{HecFault, HecState, HecToken, IndexedEvent, reply};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    channel: Option<String>,
}

/// A GUID as Splunk requires for channels: 8-4-4-4-12 hex digits.
fn is_guid(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The channel (header or query), checked when the token needs one (codes 10, 11).
fn channel_of(
    headers: &HeaderMap,
    params: &Params,
    token: &HecToken,
) -> Result<Option<String>, Response> {
    let channel = headers
        .get("x-splunk-request-channel")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| params.channel.clone());
    match &channel {
        None if token.use_ack => Err(reply(StatusCode::BAD_REQUEST, "Data channel is missing", 10)),
        Some(c) if !is_guid(c) => Err(reply(StatusCode::BAD_REQUEST, "Invalid data channel", 11)),
        _ => Ok(channel),
    }
}

fn body_of(headers: &HeaderMap, body: &Bytes) -> Result<Vec<u8>, Response> {
    match headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()) {
        None | Some("identity") => Ok(body.to_vec()),
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .map_err(|_| reply(StatusCode::BAD_REQUEST, "Invalid data format", 6))?;
            Ok(out)
        }
        Some(_) => {
            Err(reply(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported content encoding", 6))
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    event: Option<Box<RawValue>>,
    time: Option<Box<RawValue>>,
    host: Option<Value>,
    source: Option<Value>,
    sourcetype: Option<Value>,
    index: Option<Value>,
    fields: Option<Value>,
}

/// `time`: epoch seconds as a number or numeric string in fixed point.
fn time_ok(raw: &RawValue) -> bool {
    let text = raw.get();
    let digits = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
    let mut parts = digits.splitn(2, '.');
    let whole = parts.next().unwrap_or_default();
    let fraction = parts.next().unwrap_or("0");
    !whole.is_empty()
        && whole.chars().all(|c| c.is_ascii_digit())
        && !fraction.is_empty()
        && fraction.chars().all(|c| c.is_ascii_digit())
}

fn string_or_absent(value: &Option<Value>) -> bool {
    matches!(value, None | Some(Value::String(_)))
}

/// Check one envelope; its reply code and text when it is refused.
fn check(envelope: &Envelope, token: &HecToken) -> Result<(), (u16, &'static str)> {
    let Some(event) = &envelope.event else { return Err((12, "Event field is required")) };
    match serde_json::from_str::<Value>(event.get()) {
        Ok(Value::Null) => return Err((13, "Event field cannot be blank")),
        Ok(Value::String(s)) if s.is_empty() => return Err((13, "Event field cannot be blank")),
        Ok(Value::Object(map)) if map.is_empty() => {
            return Err((13, "Event field cannot be blank"));
        }
        _ => {}
    }
    if envelope.time.as_deref().is_some_and(|t| !time_ok(t)) {
        return Err((6, "Invalid data format"));
    }
    if ![&envelope.host, &envelope.source, &envelope.sourcetype, &envelope.index]
        .into_iter()
        .all(string_or_absent)
    {
        return Err((6, "Invalid data format"));
    }
    if let Some(fields) = &envelope.fields {
        let Value::Object(map) = fields else { return Err((6, "Invalid data format")) };
        let flat = map.values().all(|v| match v {
            Value::String(_) => true,
            Value::Array(items) => items.iter().all(Value::is_string),
            _ => false,
        });
        if !flat {
            return Err((15, "Error in handling indexed fields"));
        }
    }
    if let (Some(allowed), Some(Value::String(index))) = (&token.indexes, &envelope.index)
        && !allowed.contains(index)
    {
        return Err((7, "Incorrect index"));
    }
    Ok(())
}

/// Splunk's text for an event-level code.
fn text_of(code: u16) -> &'static str {
    match code {
        7 => "Incorrect index",
        12 => "Event field is required",
        13 => "Event field cannot be blank",
        15 => "Error in handling indexed fields",
        _ => "Invalid data format",
    }
}

fn text(value: &Option<Value>) -> Option<String> {
    value.as_ref().and_then(Value::as_str).map(str::to_owned)
}

/// Count the request, pick its indexer and check its token.
fn admit(state: &HecState, headers: &HeaderMap) -> Result<(usize, HecToken), Response> {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let indexer = state.route(headers);
    let token = state.authorize(headers)?.clone();
    Ok((indexer, token))
}

pub(crate) async fn event(
    State(state): State<Arc<HecState>>,
    headers: HeaderMap,
    Query(params): Query<Params>,
    body: Bytes,
) -> Response {
    let (indexer, token) = match admit(&state, &headers) {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let channel = match channel_of(&headers, &params, &token) {
        Ok(channel) => channel,
        Err(response) => return response,
    };
    if body.len() > state.config.max_content_length {
        return reply(StatusCode::PAYLOAD_TOO_LARGE, "Content too large", 27);
    }
    let text_body = match body_of(&headers, &body) {
        Ok(text) => text,
        Err(response) => return response,
    };
    if text_body.iter().all(u8::is_ascii_whitespace) {
        return reply(StatusCode::BAD_REQUEST, "No data", 5);
    }
    let fault = state.lock().faults.pop_front();
    if let Some(response) = injected_answer(fault.as_ref()) {
        return response;
    }
    let injected = match fault {
        Some(HecFault::RejectEvent { at, code }) => Some((at, code)),
        _ => None,
    };
    let (accepted, refused) = index(&text_body, injected, &token, channel.as_ref(), indexer);
    let mut store = state.lock();
    let use_ack = token.use_ack && !state.config.no_ack_indexers.contains(&indexer);
    let mut response = match refused {
        Some((n, code, text)) => {
            store.events.extend(accepted);
            let body = json!({"text": text, "code": code, "invalid-event-number": n});
            (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
        }
        None if use_ack => {
            let channel = channel.as_deref().unwrap_or_default();
            let id = store.new_ack(&state.config, indexer, channel, accepted);
            axum::Json(json!({"text": "Success", "code": 0, "ackId": id})).into_response()
        }
        None => {
            store.events.extend(accepted);
            reply(StatusCode::OK, "Success", 0)
        }
    };
    drop(store);
    state.set_cookies(&mut response, indexer, channel.as_deref());
    response
}

/// What an injected fault answers instead of indexing.
fn injected_answer(fault: Option<&HecFault>) -> Option<Response> {
    match fault {
        Some(HecFault::Busy) => {
            let body = json!({"text": "Server is busy", "code": 9, "invalid-event-number": 0});
            Some((StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response())
        }
        Some(HecFault::Internal) => {
            Some(reply(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error", 8))
        }
        Some(HecFault::ProxyHtml) => {
            let page = "<html><head><title>Maintenance</title></head><body><h1>We'll be back soon</h1></body></html>";
            Some((StatusCode::OK, [(header::CONTENT_TYPE, "text/html")], page).into_response())
        }
        _ => None,
    }
}

/// Concatenated envelopes, indexed until the first bad one: the events
/// accepted, and the first refused with its index, code and text.
fn index(
    text_body: &[u8],
    injected: Option<(usize, u16)>,
    token: &HecToken,
    channel: Option<&String>,
    indexer: usize,
) -> (Vec<IndexedEvent>, Option<(usize, u16, &'static str)>) {
    let mut accepted = Vec::new();
    for (n, parsed) in
        serde_json::Deserializer::from_slice(text_body).into_iter::<Envelope>().enumerate()
    {
        let Ok(envelope) = parsed else {
            return (accepted, Some((n, 6, "Invalid data format")));
        };
        let verdict = match injected {
            Some((at, code)) if at == n => Err((code, text_of(code))),
            _ => check(&envelope, token),
        };
        if let Err((code, text)) = verdict {
            return (accepted, Some((n, code, text)));
        }
        accepted.push(IndexedEvent {
            event: envelope.event.map(|e| e.get().to_owned()).unwrap_or_default(),
            time: envelope.time.map(|t| t.get().to_owned()),
            sourcetype: text(&envelope.sourcetype),
            source: text(&envelope.source),
            index: text(&envelope.index),
            host: text(&envelope.host),
            channel: channel.cloned(),
            indexer,
        });
    }
    (accepted, None)
}

#[derive(Deserialize)]
struct AckQuery {
    acks: Vec<u64>,
}

pub(crate) async fn ack(
    State(state): State<Arc<HecState>>,
    headers: HeaderMap,
    Query(params): Query<Params>,
    body: Bytes,
) -> Response {
    let (indexer, token) = match admit(&state, &headers) {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let refuse = {
        let mut store = state.lock();
        store.ack_queries += 1;
        let refuse = store.ack_disabled_answers > 0;
        store.ack_disabled_answers = store.ack_disabled_answers.saturating_sub(1);
        refuse
    };
    if !token.use_ack || refuse || state.config.no_ack_indexers.contains(&indexer) {
        return reply(StatusCode::BAD_REQUEST, "ACK is disabled", 14);
    }
    let channel = match channel_of(&headers, &params, &token) {
        Ok(channel) => channel.unwrap_or_default(),
        Err(response) => return response,
    };
    let query: AckQuery = match body_of(&headers, &body).map(|b| serde_json::from_slice(&b)) {
        Ok(Ok(query)) => query,
        Ok(Err(_)) => return reply(StatusCode::BAD_REQUEST, "Invalid data format", 6),
        Err(response) => return response,
    };
    let mut store = state.lock();
    let answers: serde_json::Map<String, Value> = query
        .acks
        .iter()
        .map(|id| (id.to_string(), Value::Bool(store.query_ack(indexer, &channel, *id))))
        .collect();
    drop(store);
    let mut response = axum::Json(json!({"acks": answers})).into_response();
    state.set_cookies(&mut response, indexer, Some(&channel));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_guids_and_times_fixed_point() {
        assert!(is_guid("0b4b6a4e-8a57-4b8e-9b9c-2f1b8e0c6d11"));
        assert!(!is_guid("channel-1"));
        let raw = |t: &str| serde_json::from_str::<Box<RawValue>>(t).expect("json");
        assert!(time_ok(&raw("1732090443.250")));
        assert!(time_ok(&raw("\"1732090443.25\"")));
        assert!(time_ok(&raw("1732090443")));
        assert!(!time_ok(&raw("1.73209044325e9")));
        assert!(!time_ok(&raw("\"1732090443,25\"")));
    }
}

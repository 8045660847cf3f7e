//! Elasticsearch's answers sorted into the delivery layer's classes. Only a
//! failure caused by the document itself is a rejection; everything about
//! credentials, privileges, indices, blocks or the cluster's state waits.

use sluice_core::sink::{Failure, ItemOutcome, RequestError};

/// Item error types caused by the document itself: a field whose value does
/// not fit the mapping, a field the mapping forbids, JSON Elasticsearch
/// cannot read, a document whose derived `_id` or size is invalid.
pub const DOCUMENT_ERRORS: [&str; 9] = [
    "mapper_parsing_exception",
    "document_parsing_exception",
    "strict_dynamic_mapping_exception",
    "illegal_argument_exception",
    "mapper_exception",
    "x_content_parse_exception",
    "json_parse_exception",
    "parse_exception",
    "action_request_validation_exception",
];

/// `illegal_argument_exception` reasons that are about settings, not the
/// document: they wait for the operator instead of going to the dead letter.
const SETTING_REASONS: [&str; 3] =
    ["pipeline with id", "no write index is defined", "op_type of create"];

/// Error types that mean the index cannot take writes until someone acts: a
/// read-only block after a full disk, a closed index, a bad name from the
/// settings, missing privileges. (With a 5xx status they are transient, such
/// as a cluster still recovering, and retried with backoff.)
const REFUSED_TYPES: [&str; 4] = [
    "cluster_block_exception",
    "index_closed_exception",
    "invalid_index_name_exception",
    "security_exception",
];

/// The outcome of one bulk item.
pub fn item(status: u16, kind: &str, reason: &str) -> ItemOutcome {
    let failure = || Failure::new(status, kind, reason);
    if REFUSED_TYPES.contains(&kind) && status < 500 {
        return ItemOutcome::Refused(failure());
    }
    match status {
        200..=299 => ItemOutcome::Delivered,
        // `create` of an `_id` that exists: a replay, already stored.
        409 => ItemOutcome::Duplicate,
        401 | 403 | 404 => ItemOutcome::Refused(failure()),
        400 if DOCUMENT_ERRORS.contains(&kind)
            && !SETTING_REASONS.iter().any(|r| reason.contains(r)) =>
        {
            ItemOutcome::Rejected(failure())
        }
        400 if kind == "illegal_argument_exception" => ItemOutcome::Refused(failure()),
        // 429, 5xx, 408 and every status or type sluice does not know.
        _ => ItemOutcome::Retry(failure()),
    }
}

/// A whole-request failure: `status` and Elasticsearch's error body.
pub fn request(status: u16, body: &[u8]) -> RequestError {
    let (kind, reason) = error_of(body);
    let failure = Failure::new(status, kind.clone(), reason);
    if REFUSED_TYPES.contains(&kind.as_str()) && status < 500 {
        return RequestError::Refused(failure);
    }
    match status {
        // A missing index or endpoint is a setting here.
        404 => RequestError::Refused(failure),
        400 => RequestError::Invalid(failure),
        _ => RequestError::from_http_status(status, failure),
    }
}

/// `error.type` and `error.reason` of an error body, or an excerpt.
fn error_of(body: &[u8]) -> (String, String) {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Option<serde_json::Value>,
    }
    let parsed = serde_json::from_slice::<Body>(body).ok().and_then(|b| b.error);
    match parsed {
        Some(serde_json::Value::Object(error)) => {
            let text =
                |key: &str| error.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            (text("type"), text("reason"))
        }
        Some(serde_json::Value::String(reason)) => ("http_error".into(), reason),
        _ => ("http_error".into(), sluice_core::http::excerpt(body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(outcome: ItemOutcome) -> &'static str {
        match outcome {
            ItemOutcome::Delivered => "delivered",
            ItemOutcome::Duplicate => "duplicate",
            ItemOutcome::Retry(_) => "retry",
            ItemOutcome::Refused(_) => "refused",
            ItemOutcome::Rejected(_) => "rejected",
        }
    }

    #[test]
    fn only_document_errors_are_rejections() {
        for (status, kind, reason, expected) in [
            (201, "", "", "delivered"),
            (409, "version_conflict_engine_exception", "document already exists", "duplicate"),
            (
                400,
                "mapper_parsing_exception",
                "failed to parse field [n] of type [long]",
                "rejected",
            ),
            (400, "document_parsing_exception", "[1:20] failed to parse", "rejected"),
            (400, "strict_dynamic_mapping_exception", "mapping set to strict", "rejected"),
            (
                400,
                "illegal_argument_exception",
                "Limit of total fields [1000] has been exceeded",
                "rejected",
            ),
            (
                400,
                "illegal_argument_exception",
                "data stream timestamp field [@timestamp] is missing",
                "rejected",
            ),
            (
                400,
                "illegal_argument_exception",
                "pipeline with id [geoip] does not exist",
                "refused",
            ),
            (
                400,
                "illegal_argument_exception",
                "only write ops with an op_type of create are allowed in data streams",
                "refused",
            ),
            (
                400,
                "invalid_index_name_exception",
                "Invalid index name [A], must be lowercase",
                "refused",
            ),
            (
                403,
                "security_exception",
                "action [indices:data/write/bulk[s]] is unauthorized for API key",
                "refused",
            ),
            (401, "security_exception", "unable to authenticate", "refused"),
            (404, "index_not_found_exception", "no such index [logs-x]", "refused"),
            (
                403,
                "cluster_block_exception",
                "index [x] blocked by: [FORBIDDEN/8/index write (api)]",
                "refused",
            ),
            (
                429,
                "cluster_block_exception",
                "blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark]",
                "refused",
            ),
            (429, "es_rejected_execution_exception", "rejected execution", "retry"),
            (503, "unavailable_shards_exception", "primary shard is not active", "retry"),
            (408, "", "", "retry"),
            (400, "some_new_exception", "", "retry"),
            (418, "", "", "retry"),
        ] {
            assert_eq!(class(item(status, kind, reason)), expected, "{status} {kind} {reason}");
        }
    }

    #[test]
    fn whole_request_statuses() {
        let error = |status, body: &str| request(status, body.as_bytes());
        let es = r#"{"error":{"type":"security_exception","reason":"missing authentication credentials"},"status":401}"#;
        assert!(
            matches!(error(401, es), RequestError::Refused(f) if f.to_string() == "401 security_exception: missing authentication credentials")
        );
        assert!(matches!(error(404, "{}"), RequestError::Refused(_)));
        assert!(matches!(error(413, ""), RequestError::TooLarge(_)));
        assert!(matches!(
            error(
                400,
                r#"{"error":{"type":"action_request_validation_exception","reason":"id is too long"}}"#
            ),
            RequestError::Invalid(_)
        ));
        for status in [302, 405, 408, 421, 429, 500, 503] {
            assert!(matches!(error(status, "<html>"), RequestError::Retry(_)), "{status}");
        }
        let recovering = r#"{"error":{"type":"cluster_block_exception","reason":"blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized]"},"status":503}"#;
        assert!(matches!(error(503, recovering), RequestError::Retry(_)));
        let read_only = r#"{"error":{"type":"cluster_block_exception","reason":"blocked by: [FORBIDDEN/8/index write (api)]"},"status":403}"#;
        assert!(matches!(error(403, read_only), RequestError::Refused(_)));
    }
}

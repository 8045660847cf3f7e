//! Requests to the Events API and its answers, classified into what the
//! poller does next: use the page, wait as told, back off, or stop the stream.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::value::RawValue;
use sluice_core::Secret;
use sluice_core::http::{describe, read_body, sensitive_header};

use crate::streams::Stream;

/// Which event routes to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiVersion {
    /// `/api/v1/...`.
    V1,
    /// `/api/v2/...` (default): adds `account_uuid`, `user_type`, `actor_type`, ...
    #[default]
    V2,
}

impl ApiVersion {
    /// `v1` or `v2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }
}

/// The largest answer read: a page of 1,000 items is a few megabytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// The path segment of a stream.
pub fn path_of(stream: Stream) -> &'static str {
    match stream {
        Stream::SigninAttempts => "signinattempts",
        Stream::ItemUsages => "itemusages",
        Stream::AuditEvents => "auditevents",
    }
}

/// A page of events; each item keeps its raw JSON text.
#[derive(Debug)]
pub struct Page {
    /// Where to continue.
    pub cursor: String,
    /// Whether more may be fetched right away.
    pub has_more: bool,
    /// The events, as the API wrote them: slices of the answer's body, not
    /// copies (the text becomes `event.original` as it is).
    pub items: Vec<Bytes>,
    /// Items that were not valid UTF-8 (their text here has U+FFFD in place
    /// of the invalid bytes): the stream sends them on as `pipeline_error`
    /// events rather than retrying the page forever.
    pub not_utf8: Vec<usize>,
}

/// A page as it is read: the items are only delimited (a validating scan
/// that allocates nothing), to be parsed once each into events.
#[derive(Deserialize)]
struct WirePage<'a> {
    cursor: String,
    has_more: bool,
    #[serde(default, borrow)]
    items: Vec<&'a RawValue>,
}

impl Page {
    fn read(body: &Bytes) -> Result<Self, serde_json::Error> {
        match serde_json::from_slice::<WirePage>(body) {
            Ok(wire) => {
                let items =
                    wire.items.iter().map(|item| body.slice_ref(item.get().as_bytes())).collect();
                Ok(Self {
                    cursor: wire.cursor,
                    has_more: wire.has_more,
                    items,
                    not_utf8: Vec::new(),
                })
            }
            // Invalid UTF-8 in one item must not block the stream: read the
            // page again with the invalid bytes replaced, and name the items
            // that had them.
            Err(err) if std::str::from_utf8(body).is_err() => {
                let lossy = Bytes::from(String::from_utf8_lossy(body).into_owned());
                let wire: WirePage = serde_json::from_slice(&lossy).map_err(|_| err)?;
                let items: Vec<Bytes> =
                    wire.items.iter().map(|item| lossy.slice_ref(item.get().as_bytes())).collect();
                let not_utf8 = items
                    .iter()
                    .enumerate()
                    .filter(|(_, item)| item.windows(3).any(|w| w == "\u{FFFD}".as_bytes()))
                    .map(|(n, _)| n)
                    .collect();
                Ok(Self { cursor: wire.cursor, has_more: wire.has_more, items, not_utf8 })
            }
            Err(err) => Err(err),
        }
    }
}

/// A request body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Start a new cursor: `{limit, start_time}`.
    Reset {
        /// Page size.
        limit: u32,
        /// RFC 3339.
        start_time: String,
    },
    /// Continue: `{cursor}`.
    Cursor(String),
}

impl Request {
    fn body(&self) -> String {
        match self {
            Self::Reset { limit, start_time } => {
                serde_json::json!({"limit": limit, "start_time": start_time}).to_string()
            }
            Self::Cursor(cursor) => serde_json::json!({"cursor": cursor}).to_string(),
        }
    }
}

/// The API's rate-limit headers, when it sends them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quota {
    /// `RateLimit-Remaining`.
    pub remaining: Option<u64>,
    /// `RateLimit-Reset`, seconds.
    pub reset: Option<Duration>,
}

/// Why a request did not produce a page.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 401: the token is wrong, revoked, expired, or lacks the stream's feature.
    #[error(
        "401 Unauthorized: the token is wrong, revoked or expired, or lacks this stream's feature"
    )]
    Unauthorized,
    /// 400: the API refuses the request (often an unusable cursor).
    #[error("400 Bad Request: the API refuses the request{0}")]
    BadRequest(String),
    /// 429: wait.
    #[error("429 Too Many Requests")]
    RateLimited {
        /// `Retry-After`, or `RateLimit-Reset`.
        retry_after: Option<Duration>,
    },
    /// 5xx or another unexpected status: retry with backoff.
    #[error("HTTP {0}")]
    Status(u16),
    /// Timeout, refused or reset connection, broken body.
    #[error("request failed: {0}")]
    Transport(String),
    /// A 200 whose body is not a page.
    #[error("the answer is not a page of events: {0}")]
    Malformed(String),
}

impl ApiError {
    /// The `status` label of the requests metric.
    pub fn status_label(&self) -> String {
        match self {
            Self::Unauthorized => "401".into(),
            Self::BadRequest(_) => "400".into(),
            Self::RateLimited { .. } => "429".into(),
            Self::Status(code) => code.to_string(),
            Self::Transport(_) => "error".into(),
            Self::Malformed(_) => "200".into(),
        }
    }

    /// Whether the stream must stop and retry slowly (the operator has to act).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Unauthorized | Self::BadRequest(_))
    }
}

/// An Events API client for one base URL.
#[derive(Clone, Debug)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    version: ApiVersion,
}

/// The longest wait a header can ask for; a larger one is clamped to it.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(3600);

/// A header holding seconds (`Retry-After`, `RateLimit-Reset`), clamped to
/// [`MAX_WAIT`]; `None` if it is absent, negative or not a number.
fn seconds(headers: &HeaderMap, name: &str) -> Option<Duration> {
    let text = headers.get(name)?.to_str().ok()?;
    let secs = text.trim().parse::<f64>().ok().filter(|s| !s.is_nan() && *s >= 0.0)?;
    Some(Duration::try_from_secs_f64(secs).map_or(MAX_WAIT, |wait| wait.min(MAX_WAIT)))
}

fn auth(token: &Secret) -> HeaderValue {
    // Never printed by the HTTP stack's debug output.
    sensitive_header(&format!("Bearer {}", token.expose()))
}

impl ApiClient {
    /// A client for `base` (no trailing slash needed).
    pub fn new(http: reqwest::Client, base: &reqwest::Url, version: ApiVersion) -> Self {
        Self { http, base: base.as_str().trim_end_matches('/').to_owned(), version }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `POST /api/<version>/<stream>`.
    pub async fn page(
        &self,
        token: &Secret,
        stream: Stream,
        request: &Request,
    ) -> (Result<Page, ApiError>, Quota) {
        let url = format!("{}/api/{}/{}", self.base, self.version.as_str(), path_of(stream));
        let sent = self
            .http
            .post(url)
            .header(AUTHORIZATION, auth(token))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(request.body())
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => return (Err(ApiError::Transport(describe(&err))), Quota::default()),
        };
        let headers = response.headers().clone();
        let status = response.status().as_u16();
        match read_body(response, MAX_ANSWER_BYTES).await {
            Ok(body) => answer(status, &headers, &body),
            Err(err) => (Err(ApiError::Transport(err.to_string())), quota_of(&headers)),
        }
    }

    /// `GET /api/v2/auth/introspect`: the token's features.
    pub async fn introspect(&self, token: &Secret) -> Result<Vec<String>, ApiError> {
        #[derive(Deserialize)]
        struct Introspection {
            features: Vec<String>,
        }
        let url = format!("{}/api/v2/auth/introspect", self.base);
        let response = self
            .http
            .get(url)
            .header(AUTHORIZATION, auth(token))
            .send()
            .await
            .map_err(|e| ApiError::Transport(describe(&e)))?;
        let status = response.status().as_u16();
        let body = read_body(response, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| ApiError::Transport(e.to_string()))?;
        match status {
            200 => serde_json::from_slice::<Introspection>(&body)
                .map(|i| i.features)
                .map_err(|e| ApiError::Malformed(e.to_string())),
            401 | 403 => Err(ApiError::Unauthorized),
            400 => Err(ApiError::BadRequest(error_message(&body))),
            429 => Err(ApiError::RateLimited { retry_after: None }),
            other => Err(ApiError::Status(other)),
        }
    }
}

/// The rate-limit headers of an answer.
fn quota_of(headers: &HeaderMap) -> Quota {
    Quota {
        remaining: headers.get("ratelimit-remaining").and_then(|v| v.to_str().ok()?.parse().ok()),
        reset: seconds(headers, "ratelimit-reset"),
    }
}

/// What an answer to a page request means: the page, or why there is none,
/// and the rate-limit headers. Everything in it comes from outside.
pub(crate) fn answer(
    status: u16,
    headers: &HeaderMap,
    body: &Bytes,
) -> (Result<Page, ApiError>, Quota) {
    let quota = quota_of(headers);
    let result = match status {
        200 => Page::read(body).map_err(|e| ApiError::Malformed(e.to_string())),
        400 => Err(ApiError::BadRequest(error_message(body))),
        401 | 403 => Err(ApiError::Unauthorized),
        429 => Err(ApiError::RateLimited {
            retry_after: seconds(headers, "retry-after").or(quota.reset),
        }),
        other => Err(ApiError::Status(other)),
    };
    (result, quota)
}

/// The API's `{"Error":{"Message":...}}`, as a suffix for the error text.
fn error_message(body: &[u8]) -> String {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["Error"]["Message"].as_str().map(str::to_owned));
    match message {
        Some(message) if message != "Bad Request" => {
            format!(": {}", sluice_core::error::printable(&message))
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_numbers_in_headers_are_clamped_not_trusted() {
        let mut headers = HeaderMap::new();
        for (value, expected) in [
            ("1e19", Some(MAX_WAIT)),
            ("1e400", Some(MAX_WAIT)),
            ("inf", Some(MAX_WAIT)),
            ("1000000000", Some(MAX_WAIT)),
            ("2.5", Some(Duration::from_millis(2500))),
            ("-1", None),
            ("NaN", None),
            ("soon", None),
        ] {
            headers.insert("retry-after", HeaderValue::from_static(value));
            assert_eq!(seconds(&headers, "retry-after"), expected, "{value}");
        }
    }

    #[test]
    fn page_items_are_slices_of_the_body_not_copies() {
        let body = Bytes::from_static(
            br#"{"cursor":"c1","has_more":true,"items":[{"uuid":"A","n":[1,2]}, {"uuid":"B\"q"}]}"#,
        );
        let (page, _) = answer(200, &HeaderMap::new(), &body);
        let page = page.expect("a page");
        assert_eq!((page.cursor.as_str(), page.has_more), ("c1", true));
        assert_eq!(page.items, [&br#"{"uuid":"A","n":[1,2]}"#[..], &br#"{"uuid":"B\"q"}"#[..]]);
        let range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
        for item in &page.items {
            assert!(range.contains(&(item.as_ptr() as usize)), "the item points into the body");
        }
    }

    /// Items the API might send: valid, odd and broken.
    fn item() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            Just(r#"{"uuid":"A","timestamp":"2026-01-01T00:00:00Z"}"#.to_owned()),
            Just(r#"{"uuid":"A","n":1e400}"#.to_owned()),
            Just(r#"{"timestamp":12}"#.to_owned()),
            Just("null".to_owned()),
            Just("[1,2]".to_owned()),
            "[a-z0-9\"{}:,\\. ]{0,40}",
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any status, headers and body: an answer or an error, never a
        /// panic; waits within an hour; every item of a page becomes an
        /// event or a parse failure.
        #[test]
        fn any_answer_is_understood_or_refused_without_a_panic(
            status in 100_u16..600,
            remaining in "[ -~]{0,12}",
            reset in "[ -~]{0,12}",
            retry in "[ -~]{0,12}",
            items in proptest::collection::vec(item(), 0..5),
            has_more in proptest::prelude::any::<bool>(),
            garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            well_formed in proptest::prelude::any::<bool>(),
        ) {
            let mut headers = HeaderMap::new();
            for (name, value) in [("ratelimit-remaining", &remaining), ("ratelimit-reset", &reset), ("retry-after", &retry)] {
                if let Ok(value) = HeaderValue::from_str(value) {
                    headers.insert(name, value);
                }
            }
            let body = if well_formed {
                format!(r#"{{"cursor":"c","has_more":{has_more},"items":[{}]}}"#, items.join(",")).into()
            } else {
                garbage.into()
            };
            let (result, quota) = answer(status, &headers, &body);
            proptest::prop_assert!(quota.reset.is_none_or(|r| r <= MAX_WAIT));
            match result {
                Ok(page) => {
                    for item in page.items {
                        let _ = sluice_core::Event::from_json(item);
                    }
                }
                Err(ApiError::RateLimited { retry_after }) => {
                    proptest::prop_assert!(retry_after.is_none_or(|r| r <= MAX_WAIT));
                }
                Err(other) => {
                    let _ = (other.status_label(), other.is_refusal());
                }
            }
        }
    }
}

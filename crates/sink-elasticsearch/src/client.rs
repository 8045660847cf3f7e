//! The HTTP side: `GET /` for the version, `POST /_bulk` with gzip,
//! authentication and endpoint failover, and the answer turned into one
//! outcome per item through [`crate::classify`].

use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use sluice_core::http::{
    BodyError, ClientSettings, Compression, build_client, certificate_refused, describe,
    parts_body, read_body, sensitive_header,
};
use sluice_core::sink::{BatchService, Encoded, Failure, ItemOutcome, RequestError};

use crate::classify;

use crate::config::{AuthConfig, Settings};

/// The largest answer read: a bulk answer of 100,000 items with long reasons.
const MAX_ANSWER_BYTES: usize = 256 * 1024 * 1024;

#[derive(Deserialize)]
struct BulkResponse {
    items: Vec<Item>,
}

/// One answered item, `{"<action>": {...}}`: the body of its (first)
/// action, read without a map per item.
struct Item(Option<ItemBody>);

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Item;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a bulk item: an object with one action")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
                let mut body = None;
                while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
                    let value: ItemBody = map.next_value()?;
                    body.get_or_insert(value);
                }
                Ok(Item(body))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

#[derive(Deserialize)]
struct ItemBody {
    status: u16,
    #[serde(rename = "_id")]
    id: Option<String>,
    error: Option<ErrorBody>,
}

/// The `_id` an item was sent with: its action line starts
/// `{"create":{"_id":"…"` (see `encode::action`).
pub(crate) fn sent_id(payload: &[u8]) -> Option<String> {
    let rest = payload.strip_prefix(br#"{"create":{"_id":"#)?;
    serde_json::Deserializer::from_slice(rest).into_iter::<String>().next()?.ok()
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    reason: String,
}

/// A client for the configured endpoints.
#[derive(Debug)]
pub(crate) struct EsClient {
    http: reqwest::Client,
    endpoints: Vec<reqwest::Url>,
    current: AtomicUsize,
    auth: Option<HeaderValue>,
    compression: Compression,
    /// `/_bulk` with the `pipeline` parameter `ingest` asks for.
    bulk_path: String,
}

fn transport(err: &reqwest::Error) -> Failure {
    let kind = if certificate_refused(err) { TLS_CERTIFICATE } else { "transport" };
    Failure::without_status(kind, describe(err))
}

/// The kind of a failure where this side refused the server's certificate.
const TLS_CERTIFICATE: &str = "tls_certificate";

/// A failure of the exchange as the delivery layer sees it: a refused
/// certificate waits for the operator, anything else is retried.
fn exchange_error(failure: Failure) -> RequestError {
    if failure.kind == TLS_CERTIFICATE {
        RequestError::Refused(failure)
    } else {
        RequestError::Retry(failure)
    }
}

fn body_failure(err: BodyError) -> Failure {
    Failure::without_status("transport", err.to_string())
}

impl EsClient {
    /// A client; fails only on unusable TLS settings.
    pub(crate) fn new(settings: &Settings) -> Result<Self, sluice_core::http::HttpError> {
        let http = build_client(&ClientSettings {
            timeout: settings.delivery.request_timeout,
            tls: settings.tls.clone(),
            proxy: None,
        })?;
        let auth = settings.auth.as_ref().map(|auth| {
            sensitive_header(&match auth {
                AuthConfig::Basic { user, password } => {
                    format!("Basic {}", STANDARD.encode(format!("{user}:{}", password.expose())))
                }
                AuthConfig::ApiKey { api_key } => format!("ApiKey {}", api_key.expose()),
                AuthConfig::Bearer { token } => format!("Bearer {}", token.expose()),
            })
        });
        Ok(Self {
            http,
            endpoints: settings.endpoints.clone(),
            current: AtomicUsize::new(0),
            auth,
            compression: settings.compression,
            bulk_path: settings.bulk_path(),
        })
    }

    fn endpoint(&self) -> &reqwest::Url {
        &self.endpoints[self.current.load(Ordering::Relaxed) % self.endpoints.len()]
    }

    /// Move to the next endpoint after a connection failure.
    fn fail_over(&self) {
        if self.endpoints.len() > 1 {
            let next = self.current.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(endpoint = %self.endpoints[next % self.endpoints.len()], "switching to the next Elasticsearch endpoint");
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.endpoint().as_str().trim_end_matches('/'));
        let request = self.http.request(method, url);
        match &self.auth {
            Some(auth) => request.header(AUTHORIZATION, auth.clone()),
            None => request,
        }
    }

    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, bytes::Bytes), Failure> {
        let response = request.send().await.map_err(|err| {
            if err.is_connect() {
                self.fail_over();
            }
            transport(&err)
        })?;
        let status = response.status().as_u16();
        let body = read_body(response, MAX_ANSWER_BYTES).await.map_err(body_failure)?;
        Ok((status, body))
    }

    /// `GET path`: the status and body.
    pub(crate) async fn get(&self, path: &str) -> Result<(u16, bytes::Bytes), Failure> {
        self.exchange(self.request(reqwest::Method::GET, path)).await
    }

    /// `PUT path` with a JSON body: the status and body.
    pub(crate) async fn put(
        &self,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, bytes::Bytes), Failure> {
        self.with_json(reqwest::Method::PUT, path, body).await
    }

    /// `POST path` with a JSON body: the status and body.
    pub(crate) async fn post(
        &self,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, bytes::Bytes), Failure> {
        self.with_json(reqwest::Method::POST, path, body).await
    }

    async fn with_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, bytes::Bytes), Failure> {
        let request =
            self.request(method, path).header(CONTENT_TYPE, "application/json").body(body);
        self.exchange(request).await
    }

    /// `GET /`: the version number.
    pub(crate) async fn version(&self) -> Result<String, RequestError> {
        let (status, body) =
            self.exchange(self.request(reqwest::Method::GET, "/")).await.map_err(exchange_error)?;
        if status != 200 {
            return Err(classify::request(status, &body));
        }
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["version"]["number"].as_str().map(str::to_owned))
            .ok_or_else(|| {
                RequestError::Retry(Failure::new(
                    200,
                    "malformed_answer",
                    sluice_core::http::excerpt(&body),
                ))
            })
    }

    /// `POST /_bulk` with `items`; one outcome per item, in order.
    pub(crate) async fn bulk(&self, items: &[Encoded]) -> Result<Vec<ItemOutcome>, RequestError> {
        let size = items.iter().map(|i| i.payload.len()).sum();
        let request = self
            .request(reqwest::Method::POST, &self.bulk_path)
            .header(CONTENT_TYPE, "application/x-ndjson");
        let (body, encoding) = match self.compression {
            Compression::None => {
                (parts_body(items.iter().map(|i| i.payload.clone()).collect()), None)
            }
            compression => {
                let (body, encoding) = compression
                    .body(items.iter().map(|i| &i.payload[..]), size)
                    .map_err(|e| local(e.to_string()))?;
                (reqwest::Body::from(body), encoding)
            }
        };
        let request = match encoding {
            Some(encoding) => request.header(CONTENT_ENCODING, encoding),
            None => request,
        }
        .body(body);
        let (status, body) = self.exchange(request).await.map_err(exchange_error)?;
        let sent: Vec<Option<String>> = items.iter().map(|i| sent_id(&i.payload)).collect();
        bulk_answer(status, &body, &sent)
    }
}

/// What a `_bulk` answer means for the items sent with the `_id`s `sent`
/// (`None`: not known): one outcome per item, in order, or why the whole
/// request must be retried or refused. A count that does not match, an item
/// whose `_id` is not the one sent at its place (a proxy or a bug reordered
/// them), or an answer that is not a bulk answer, is retried, never
/// acknowledged.
pub(crate) fn bulk_answer(
    status: u16,
    body: &[u8],
    sent: &[Option<String>],
) -> Result<Vec<ItemOutcome>, RequestError> {
    if status != 200 {
        return Err(classify::request(status, body));
    }
    let malformed =
        |reason: String| RequestError::Retry(Failure::new(200, "malformed_answer", reason));
    let parsed: BulkResponse =
        serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    if parsed.items.len() != sent.len() {
        return Err(malformed(format!(
            "{} items answered for {} sent",
            parsed.items.len(),
            sent.len()
        )));
    }
    for (at, (item, id)) in parsed.items.iter().zip(sent).enumerate() {
        if let (Some(body), Some(id)) = (&item.0, id)
            && body.id.as_deref() != Some(id.as_str())
        {
            return Err(malformed(format!(
                "item {at} answers for _id {:?}, and the item sent there has _id {id:?}",
                body.id.as_deref().unwrap_or("(none)")
            )));
        }
    }
    Ok(parsed
        .items
        .into_iter()
        .map(|item| match item.0 {
            Some(ItemBody { status, error: Some(error), .. }) => {
                classify::item(status, &error.kind, &error.reason)
            }
            Some(ItemBody { status, error: None, .. }) => classify::item(status, "", ""),
            None => ItemOutcome::Retry(Failure::without_status(
                "empty_item",
                "an empty item in the answer",
            )),
        })
        .collect())
}

fn local(reason: String) -> RequestError {
    RequestError::Retry(Failure::without_status("compression_failed", reason))
}

/// The delivery layer's view of the client.
impl BatchService for EsClient {
    fn send(
        &self,
        items: &[Encoded],
    ) -> impl Future<Output = Result<Vec<ItemOutcome>, RequestError>> + Send {
        self.bulk(items)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sluice_core::sink::{ItemOutcome, RequestError};

    use super::{bulk_answer, sent_id};
    use crate::classify::DOCUMENT_ERRORS;

    /// One bulk item as Elasticsearch might write it, or not.
    fn item() -> impl Strategy<Value = String> {
        let kind = prop_oneof![
            prop::sample::select(&DOCUMENT_ERRORS[..]).prop_map(str::to_owned),
            Just("security_exception".to_owned()),
            Just("cluster_block_exception".to_owned()),
            "[a-z_]{0,12}",
        ];
        prop_oneof![
            (100_u16..700).prop_map(|s| format!(r#"{{"create":{{"_id":"@","status":{s}}}}}"#)),
            (100_u16..700, kind, "[ -!#-~]{0,20}").prop_map(|(s, k, r)| {
                format!(r#"{{"create":{{"_id":"@","status":{s},"error":{{"type":"{k}","reason":"{r}"}}}}}}"#)
            }),
            Just("{}".to_owned()),
            Just(r#"{"create":{}}"#.to_owned()),
            Just(r#"{"create":{"status":-1}}"#.to_owned()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any answer: one outcome per item sent, or a request error; never
        /// a panic, never an acknowledgement for a count that does not
        /// match, and a rejection (the dead letter) only for a 400 that
        /// names a document error.
        #[test]
        fn any_bulk_answer_is_classified_without_a_panic(
            status in prop_oneof![Just(200_u16), 100_u16..600],
            items in prop::collection::vec(item(), 0..6),
            sent in 0_usize..6,
            garbage in prop::collection::vec(any::<u8>(), 0..80),
            well_formed in any::<bool>(),
        ) {
            // Each item answers for the `_id` sent at its place ("@" → d<i>).
            let items: Vec<String> =
                items.iter().enumerate().map(|(i, item)| item.replace('@', &format!("d{i}"))).collect();
            let body = if well_formed {
                format!(r#"{{"took":1,"errors":true,"items":[{}]}}"#, items.join(",")).into_bytes()
            } else {
                garbage
            };
            let ids: Vec<Option<String>> = (0..sent).map(|i| Some(format!("d{i}"))).collect();
            match bulk_answer(status, &body, &ids) {
                Ok(outcomes) => {
                    prop_assert_eq!(status, 200);
                    prop_assert_eq!(outcomes.len(), sent);
                    for outcome in outcomes {
                        if let ItemOutcome::Rejected(failure) = outcome {
                            prop_assert_eq!(failure.status, Some(400));
                            prop_assert!(DOCUMENT_ERRORS.contains(&failure.kind.as_str()), "{failure}");
                        }
                    }
                }
                Err(RequestError::Invalid(failure)) => prop_assert_eq!(failure.status, Some(400)),
                Err(_) => {}
            }
        }

        /// Review H4 (reliability 2026-12): answers matched by place turned
        /// refused documents into acknowledged ones once a proxy reordered
        /// them. Items whose `_id`s are not in the order sent are never
        /// delivered nor rejected.
        #[test]
        fn answers_in_another_order_are_retried(
            statuses in prop::collection::vec(prop_oneof![Just(201_u16), Just(400), Just(409)], 2..8),
            rotate in 1_usize..8,
        ) {
            let sent: Vec<Option<String>> = (0..statuses.len()).map(|i| Some(format!("d{i}"))).collect();
            let mut order: Vec<usize> = (0..statuses.len()).collect();
            order.rotate_left(rotate % statuses.len());
            prop_assume!(order.iter().enumerate().any(|(at, i)| at != *i));
            let items: Vec<String> = order.iter().map(|i| {
                let status = statuses[*i];
                if status == 400 {
                    format!(r#"{{"create":{{"_index":"x","_id":"d{i}","status":400,"error":{{"type":"mapper_parsing_exception","reason":"r"}}}}}}"#)
                } else {
                    format!(r#"{{"create":{{"_index":"x","_id":"d{i}","status":{status}}}}}"#)
                }
            }).collect();
            let body = format!(r#"{{"took":1,"errors":true,"items":[{}]}}"#, items.join(","));
            let answer = bulk_answer(200, body.as_bytes(), &sent);
            prop_assert!(matches!(answer, Err(RequestError::Retry(_))), "{answer:?}");
        }
    }

    #[test]
    fn the_sent_id_is_read_from_the_action_line() {
        let payload = br#"{"create":{"_id":"56YE\"2","_index":"logs-x"}}
{"a":1}
"#;
        assert_eq!(sent_id(payload).as_deref(), Some("56YE\"2"));
        assert_eq!(sent_id(b"{\"index\":{}}\n"), None);
    }
}

//! `_bulk` requests: gzip, authentication, endpoint failover, and the answer
//! classified per item.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;

use crate::config::{AuthConfig, Settings};

/// The answer for one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemOutcome {
    /// Its HTTP status.
    pub status: u16,
    /// `error.type`, if it failed.
    pub error_type: String,
    /// `error.reason`, if it failed.
    pub reason: String,
}

/// A request that produced no per-item answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BulkError {
    /// 401 or 403: the credentials are refused.
    #[error("Elasticsearch refused the credentials (HTTP {0})")]
    Refused(u16),
    /// 413: the request is too large.
    #[error("the request is larger than Elasticsearch accepts (HTTP 413)")]
    TooLarge,
    /// 429 or 5xx: retry later.
    #[error("HTTP {0}: {1}")]
    Retriable(u16, String),
    /// Another 4xx for the whole request.
    #[error("HTTP {0}: {1}")]
    Rejected(u16, String),
    /// Timeout, refused or reset connection.
    #[error("request failed: {0}")]
    Transport(String),
    /// A 200 whose body is not a bulk answer.
    #[error("the answer is not a bulk response: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct BulkResponse {
    items: Vec<BTreeMap<String, ItemBody>>,
}

#[derive(Deserialize)]
struct ItemBody {
    status: u16,
    error: Option<ErrorBody>,
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
pub struct EsClient {
    http: reqwest::Client,
    endpoints: Vec<reqwest::Url>,
    current: AtomicUsize,
    auth: Option<HeaderValue>,
    gzip: bool,
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.chars().take(300).collect()
}

fn describe(err: &reqwest::Error) -> String {
    sluice_core::topology::error_chain(err)
}

impl EsClient {
    /// A client; fails only on unusable TLS settings.
    pub fn new(settings: &Settings) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout.min(std::time::Duration::from_secs(10)))
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(!settings.tls.verify);
        if let Some(path) = &settings.tls.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read tls.ca_file {}: {e}", path.display()))?;
            let certificate = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| format!("tls.ca_file {}: {e}", path.display()))?;
            builder = builder.add_root_certificate(certificate);
        }
        let http = builder.build().map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let auth = settings.auth.as_ref().map(|auth| {
            let text = match auth {
                AuthConfig::Basic { user, password } => {
                    format!("Basic {}", STANDARD.encode(format!("{user}:{}", password.expose())))
                }
                AuthConfig::ApiKey { api_key } => format!("ApiKey {}", api_key.expose()),
                AuthConfig::Bearer { token } => format!("Bearer {}", token.expose()),
            };
            let mut value = HeaderValue::from_str(&text)
                .unwrap_or_else(|_| HeaderValue::from_static("invalid"));
            value.set_sensitive(true);
            value
        });
        Ok(Self {
            http,
            endpoints: settings.endpoints.clone(),
            current: AtomicUsize::new(0),
            auth,
            gzip: settings.gzip,
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

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint().as_str().trim_end_matches('/'))
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match &self.auth {
            Some(auth) => request.header(AUTHORIZATION, auth.clone()),
            None => request,
        }
    }

    /// `GET /`: the version number.
    pub async fn version(&self) -> Result<String, BulkError> {
        let response = self.request(reqwest::Method::GET, "/").send().await.map_err(|e| {
            self.fail_over();
            BulkError::Transport(describe(&e))
        })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| BulkError::Transport(describe(&e)))?;
        match status {
            200 => serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["version"]["number"].as_str().map(str::to_owned))
                .ok_or_else(|| BulkError::Malformed(excerpt(&body))),
            401 | 403 => Err(BulkError::Refused(status)),
            _ => Err(BulkError::Retriable(status, excerpt(&body))),
        }
    }

    /// `POST /_bulk` with `body` (NDJSON); one outcome per item, in order.
    pub async fn bulk(
        &self,
        body: &[u8],
        expected_items: usize,
    ) -> Result<Vec<ItemOutcome>, BulkError> {
        let mut request = self
            .request(reqwest::Method::POST, "/_bulk")
            .header(CONTENT_TYPE, "application/x-ndjson");
        if self.gzip {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::fast(),
            );
            encoder.write_all(body).map_err(|e| BulkError::Transport(e.to_string()))?;
            let compressed = encoder.finish().map_err(|e| BulkError::Transport(e.to_string()))?;
            request = request.header(CONTENT_ENCODING, "gzip").body(compressed);
        } else {
            request = request.body(body.to_vec());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                if err.is_connect() {
                    self.fail_over();
                }
                return Err(BulkError::Transport(describe(&err)));
            }
        };
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| BulkError::Transport(describe(&e)))?;
        match status {
            200 => {}
            401 | 403 => return Err(BulkError::Refused(status)),
            413 => return Err(BulkError::TooLarge),
            429 | 500..=599 => return Err(BulkError::Retriable(status, excerpt(&bytes))),
            _ => return Err(BulkError::Rejected(status, excerpt(&bytes))),
        }
        let parsed: BulkResponse =
            serde_json::from_slice(&bytes).map_err(|e| BulkError::Malformed(e.to_string()))?;
        if parsed.items.len() != expected_items {
            return Err(BulkError::Malformed(format!(
                "{} items answered for {expected_items} sent",
                parsed.items.len()
            )));
        }
        Ok(parsed
            .items
            .into_iter()
            .map(|item| {
                let body = item.into_values().next();
                match body {
                    Some(ItemBody { status, error }) => {
                        let (error_type, reason) =
                            error.map(|e| (e.kind, e.reason)).unwrap_or_default();
                        ItemOutcome { status, error_type, reason }
                    }
                    None => ItemOutcome {
                        status: 500,
                        error_type: "empty_item".into(),
                        reason: "an empty item in the answer".into(),
                    },
                }
            })
            .collect())
    }
}

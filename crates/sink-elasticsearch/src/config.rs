//! The `elasticsearch` sink's settings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sluice_core::Secret;
use sluice_core::config::FieldError;

use crate::sink::ElasticsearchSink;

/// How to authenticate.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "strategy", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// HTTP basic authentication.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: Secret,
    },
    /// An API key, in the encoded form Elasticsearch returns (base64 of `id:api_key`).
    ApiKey {
        /// The encoded key.
        api_key: Secret,
    },
    /// A bearer (OAuth2/JWT) token.
    Bearer {
        /// The token.
        token: Secret,
    },
}

/// TLS settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Extra CA certificates (PEM), e.g. Elasticsearch's own `http_ca.crt`.
    pub ca_file: Option<PathBuf>,
    /// Verify the server's certificate (default true; false only for tests).
    #[serde(default = "yes")]
    pub verify: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self { ca_file: None, verify: true }
    }
}

fn yes() -> bool {
    true
}

/// When a batch is sent.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Events per request (default 1000).
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// Bytes per request before compression (default 10 MB).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Seconds a partial batch waits (default 1).
    #[serde(default = "default_batch_timeout")]
    pub timeout_secs: f64,
}

fn default_max_events() -> usize {
    1000
}
fn default_max_bytes() -> usize {
    10 * 1024 * 1024
}
fn default_batch_timeout() -> f64 {
    1.0
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_events: default_max_events(),
            max_bytes: default_max_bytes(),
            timeout_secs: default_batch_timeout(),
        }
    }
}

/// Where documents go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Data streams `logs-1password.<stream>-<namespace>` (default).
    #[default]
    DataStream,
    /// A plain index named by `index`.
    Index,
}

/// Data stream naming.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataStreamConfig {
    /// `data_stream.type` (default `logs`).
    #[serde(default = "default_type", rename = "type")]
    pub kind: String,
    /// `data_stream.namespace` (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
}

fn default_type() -> String {
    "logs".into()
}
fn default_namespace() -> String {
    "default".into()
}

impl Default for DataStreamConfig {
    fn default() -> Self {
        Self { kind: default_type(), namespace: default_namespace() }
    }
}

/// Where rejected documents are written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// An NDJSON file, relative to the config file.
    pub path: PathBuf,
}

/// `type: elasticsearch` under `sinks`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchSinkConfig {
    /// Elasticsearch URLs; the next one is tried when one cannot be reached.
    pub endpoints: Vec<String>,
    /// Authentication.
    pub auth: Option<AuthConfig>,
    /// TLS.
    #[serde(default)]
    pub tls: TlsConfig,
    /// `gzip` (default) or `none`.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// Batching.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Requests in flight (default 2).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Seconds before a request times out (default 60).
    #[serde(default = "default_timeout")]
    pub request_timeout_secs: u64,
    /// An ingest pipeline to run.
    pub pipeline: Option<String>,
    /// `data_stream` (default) or `index`.
    #[serde(default)]
    pub mode: Mode,
    /// Data stream naming.
    #[serde(default)]
    pub data_stream: DataStreamConfig,
    /// The index in `index` mode; `{stream}` is replaced by the event's stream.
    pub index: Option<String>,
    /// The field whose value is the document `_id` (default `onepassword.uuid`).
    #[serde(default = "default_id_field")]
    pub id_field: String,
    /// Where rejected documents go.
    pub dead_letter: Option<DeadLetterConfig>,
    /// The longest wait between retries (default 60).
    #[serde(default = "default_max_backoff")]
    pub retry_max_backoff_secs: u64,
    /// Seconds between retries while Elasticsearch refuses the credentials (default 60).
    #[serde(default = "default_refused")]
    pub refused_retry_secs: u64,
}

fn default_compression() -> String {
    "gzip".into()
}
fn default_concurrency() -> usize {
    2
}
fn default_timeout() -> u64 {
    60
}
fn default_id_field() -> String {
    "onepassword.uuid".into()
}
fn default_max_backoff() -> u64 {
    60
}
fn default_refused() -> u64 {
    60
}

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Base URLs, without a trailing slash.
    pub endpoints: Vec<reqwest::Url>,
    /// Authentication.
    pub auth: Option<AuthConfig>,
    /// TLS.
    pub tls: TlsConfig,
    /// Compress bodies.
    pub gzip: bool,
    /// Batching.
    pub batch: BatchConfig,
    /// Requests in flight.
    pub concurrency: usize,
    /// Request timeout.
    pub request_timeout: Duration,
    /// Ingest pipeline.
    pub pipeline: Option<String>,
    /// Mode.
    pub mode: Mode,
    /// Data stream naming.
    pub data_stream: DataStreamConfig,
    /// Index template in index mode.
    pub index: Option<String>,
    /// `_id` field path.
    pub id_field: Vec<String>,
    /// Dead-letter file.
    pub dead_letter: Option<PathBuf>,
    /// Backoff cap.
    pub retry_max_backoff: Duration,
    /// Retry interval while credentials are refused.
    pub refused_retry: Duration,
}

impl ElasticsearchSinkConfig {
    /// Check the settings without I/O; relative paths resolve against `dir`.
    pub fn validate(self, dir: &Path) -> Result<ElasticsearchSink, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut endpoints = Vec::new();
        if self.endpoints.is_empty() {
            errors.push(FieldError::new("endpoints", "at least one endpoint is required"));
        }
        for endpoint in &self.endpoints {
            match reqwest::Url::parse(endpoint) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.password().is_none() => {
                    endpoints.push(url)
                }
                Ok(url) if url.password().is_some() => {
                    errors.push(FieldError::new(
                        "endpoints",
                        "put credentials in `auth`, not in the endpoint URL",
                    ));
                }
                Ok(_) => errors.push(FieldError::new(
                    "endpoints",
                    format!("endpoint `{endpoint}` must be http or https"),
                )),
                Err(err) => errors.push(FieldError::new(
                    "endpoints",
                    format!("endpoint `{endpoint}` is not a URL: {err}"),
                )),
            }
        }
        let gzip = match self.compression.as_str() {
            "gzip" => true,
            "none" => false,
            other => {
                errors.push(FieldError::new(
                    "compression",
                    format!("compression `{other}` is not gzip or none"),
                ));
                true
            }
        };
        match (self.mode, &self.index) {
            (Mode::Index, None) => errors.push(FieldError::new("index", "mode `index` needs `index` (e.g. 1password-{stream})")),
            (Mode::DataStream, Some(_)) => errors.push(FieldError::new("index", "`index` is for mode `index`; data streams are named logs-1password.<stream>-<namespace>")),
            _ => {}
        }
        if let Some(index) = &self.index
            && (index != &index.to_lowercase()
                || index.starts_with(['-', '_', '+'])
                || index.contains([' ', '*', '?', '"', '<', '>', '|', ',', '#', '\\', '/']))
        {
            errors.push(FieldError::new("index", format!("`{index}` is not a valid Elasticsearch index name (lowercase, no spaces or \\/*?\"<>|,#, not starting with -_+)")));
        }
        let namespace = &self.data_stream.namespace;
        if namespace.is_empty()
            || namespace != &namespace.to_lowercase()
            || namespace.contains(['-', ' ', '*', '\\', '/', '?', '"', '<', '>', '|', ',', '#'])
        {
            errors.push(FieldError::new(
                "data_stream",
                format!(
                    "namespace `{namespace}` must be lowercase without '-' or special characters"
                ),
            ));
        }
        for (field, ok, message) in [
            (
                "batch",
                self.batch.max_events >= 1
                    && self.batch.max_bytes >= 1024
                    && self.batch.timeout_secs > 0.0,
                "batch needs max_events ≥ 1, max_bytes ≥ 1024 and timeout_secs > 0",
            ),
            ("concurrency", self.concurrency >= 1, "concurrency must be at least 1"),
            (
                "request_timeout_secs",
                self.request_timeout_secs >= 1,
                "request_timeout_secs must be at least 1",
            ),
            ("id_field", !self.id_field.is_empty(), "id_field must not be empty"),
            (
                "retry_max_backoff_secs",
                self.retry_max_backoff_secs >= 1,
                "retry_max_backoff_secs must be at least 1",
            ),
            (
                "refused_retry_secs",
                self.refused_retry_secs >= 1,
                "refused_retry_secs must be at least 1",
            ),
        ] {
            if !ok {
                errors.push(FieldError::new(field, message));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // An empty secret (an unset `${ES_API_KEY:-}`) means: send no credentials.
        let auth = match self.auth {
            Some(AuthConfig::ApiKey { api_key }) if api_key.expose().is_empty() => None,
            Some(AuthConfig::Bearer { token }) if token.expose().is_empty() => None,
            other => other,
        };
        let ca_file = self.tls.ca_file.filter(|f| !f.as_os_str().is_empty()).map(|f| dir.join(f));
        Ok(ElasticsearchSink::new(Settings {
            endpoints,
            auth,
            tls: TlsConfig { ca_file, verify: self.tls.verify },
            gzip,
            batch: self.batch,
            concurrency: self.concurrency,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            pipeline: self.pipeline,
            mode: self.mode,
            data_stream: self.data_stream,
            index: self.index,
            id_field: self.id_field.split('.').map(str::to_owned).collect(),
            dead_letter: self.dead_letter.map(|d| dir.join(d.path)),
            retry_max_backoff: Duration::from_secs(self.retry_max_backoff_secs),
            refused_retry: Duration::from_secs(self.refused_retry_secs),
        }))
    }
}

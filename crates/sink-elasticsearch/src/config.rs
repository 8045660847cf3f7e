//! The `elasticsearch` sink's settings, and their validation into
//! [`Settings`] without I/O.

use std::path::Path;

use serde::Deserialize;
use sluice_core::Secret;
use sluice_core::config::FieldError;
use sluice_core::http::{Compression, TlsConfig};
use sluice_core::sink::{
    BatchConfig, DeadLetterConfig, DriverSettings, RequestConfig, validate_delivery,
};

/// The pipeline sluice installs (`hooks.rs`) and names in its bulk requests.
pub const HOOKS_PIPELINE: &str = "sluice-custom-hooks";

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

/// Where documents go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Data streams `logs-<dataset>-<namespace>` (default), the dataset
    /// being the one its source names (`1password.audit_events`, say).
    #[default]
    DataStream,
    /// A plain index named by `index`.
    Index,
}

/// Who maps the documents into ECS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ingest {
    /// sluice did (default): every bulk request carries `pipeline=_none`
    /// (or the configured `pipeline`), so an index template's
    /// `default_pipeline` (the 1Password integration's, say) does not map
    /// the documents a second time; a `final_pipeline` still runs.
    #[default]
    Sluice,
    /// Elastic's 1Password integration does: each document is what Elastic
    /// Agent's httpjson input sends (`message` = the raw item, `@timestamp`,
    /// `tags`, `data_stream.*`), and the integration's default pipeline maps it.
    Elastic,
}

/// What becomes of `event.original` (the raw item) in sluice's documents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventOriginal {
    /// Kept, and the document tagged `preserve_original_event` so that
    /// Fleet's final pipeline (which removes `event.original` from every
    /// document without that tag once the integration's assets are
    /// installed) keeps it too (default).
    #[default]
    Keep,
    /// Removed by sluice before sending (a smaller index).
    Drop,
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

/// `type: elasticsearch` under `sinks`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchSinkConfig {
    /// Elasticsearch URLs; the next one is tried when one cannot be reached.
    pub endpoints: Vec<String>,
    /// Authentication: `basic`, `api_key` (recommended) or `bearer`.
    pub auth: Option<AuthConfig>,
    /// TLS: `ca_file` to trust a private CA, `verify` (tests only).
    #[serde(default)]
    pub tls: TlsConfig,
    /// Request body compression: `gzip` (default) or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// When a bulk request is sent: `max_events`, `max_bytes`, `timeout_secs`.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Concurrency, timeout, retries and health: see the delivery layer.
    #[serde(default)]
    pub request: RequestConfig,
    /// Who maps the documents: `sluice` (default) or `elastic` (the
    /// installed 1Password integration's ingest pipeline).
    #[serde(default)]
    pub ingest: Ingest,
    /// An ingest pipeline to run on every document, instead of none
    /// (`ingest: sluice`) or the index's default pipeline (`ingest: elastic`).
    pub pipeline: Option<String>,
    /// With `ingest: sluice` in data stream mode and no `pipeline`: run
    /// the `@custom` pipelines Elastic's integration runs (`global@custom`,
    /// `logs@custom`, `logs-1password.integration@custom`,
    /// `logs-1password.<stream>@custom`) through the `sluice-custom-hooks`
    /// pipeline sluice installs at start (needs `manage_pipeline`).
    /// Default true; false sends `pipeline=_none`.
    #[serde(default = "yes")]
    pub custom_pipelines: bool,
    /// `keep` (default: kept and tagged `preserve_original_event`) or `drop`.
    #[serde(default)]
    pub event_original: EventOriginal,
    /// `data_stream` (default) or `index`.
    #[serde(default)]
    pub mode: Mode,
    /// Data stream naming: `type` (default `logs`) and `namespace` (default `default`).
    #[serde(default)]
    pub data_stream: DataStreamConfig,
    /// The index in `index` mode; `{dataset}` is replaced by the event's
    /// dataset (`1password.audit_events`), `{stream}` by its part after the
    /// first dot (`audit_events`).
    pub index: Option<String>,
    /// The field whose value is the document `_id` (default
    /// `onepassword.uuid`, or `uuid` with `ingest: elastic`). Events without
    /// it get a hash of their raw original, so replays stay single.
    pub id_field: Option<String>,
    /// Where rejected documents go: `path` (default
    /// `<data_dir>/<sink id>/dead-letter.ndjson`) and `max_bytes`.
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
}

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Base URLs.
    pub endpoints: Vec<reqwest::Url>,
    /// Authentication.
    pub auth: Option<AuthConfig>,
    /// TLS.
    pub tls: TlsConfig,
    /// Compress bodies.
    pub compression: Compression,
    /// Batching, concurrency, retries, dead letter.
    pub delivery: DriverSettings,
    /// Who maps the documents.
    pub ingest: Ingest,
    /// Ingest pipeline.
    pub pipeline: Option<String>,
    /// Whether to install and name the `@custom` hooks pipeline.
    pub custom_pipelines: bool,
    /// Set by `prepare`: whether bulk requests name the hooks pipeline
    /// (`None`: not tried, as when Elasticsearch was unreachable at start).
    pub hooks_installed: Option<bool>,
    /// `event.original` kept (and tagged) or dropped.
    pub event_original: EventOriginal,
    /// Mode.
    pub mode: Mode,
    /// Data stream naming.
    pub data_stream: DataStreamConfig,
    /// Index template in index mode.
    pub index: Option<String>,
    /// `_id` field path.
    pub id_field: Vec<String>,
}

fn yes() -> bool {
    true
}

impl Settings {
    /// Whether the preflight should install the `@custom` hooks pipeline.
    pub fn wants_hooks(&self) -> bool {
        self.ingest == Ingest::Sluice
            && self.pipeline.is_none()
            && self.custom_pipelines
            && self.mode == Mode::DataStream
    }

    /// The bulk request's path and query: which pipeline runs on its documents.
    pub fn bulk_path(&self) -> String {
        match (self.ingest, &self.pipeline) {
            (_, Some(pipeline)) => format!("/_bulk?pipeline={pipeline}"),
            (Ingest::Sluice, None) if self.hooks_installed == Some(true) => {
                format!("/_bulk?pipeline={}", HOOKS_PIPELINE)
            }
            (Ingest::Sluice, None) => "/_bulk?pipeline=_none".into(),
            (Ingest::Elastic, None) => "/_bulk".into(),
        }
    }
}

const INDEX_FORBIDDEN: [char; 11] = [' ', '*', '?', '"', '<', '>', '|', ',', '#', '\\', '/'];

fn check_endpoints(endpoints: &[String], errors: &mut Vec<FieldError>) -> Vec<reqwest::Url> {
    if endpoints.is_empty() {
        errors.push(FieldError::new("endpoints", "at least one endpoint is required"));
    }
    let mut urls = Vec::new();
    for endpoint in endpoints {
        match reqwest::Url::parse(endpoint) {
            Ok(url) if url.password().is_some() || !url.username().is_empty() => errors.push(
                FieldError::new("endpoints", "put credentials in `auth`, not in the endpoint URL"),
            ),
            Ok(url) if matches!(url.scheme(), "http" | "https") => urls.push(url),
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
    urls
}

fn check_naming(config: &ElasticsearchSinkConfig, errors: &mut Vec<FieldError>) {
    match (config.mode, &config.index) {
        (Mode::Index, None) => errors.push(FieldError::new(
            "index",
            "mode `index` needs `index` (e.g. 1password-{stream}, or {dataset})",
        )),
        (Mode::DataStream, Some(_)) => errors.push(FieldError::new(
            "index",
            "`index` is for mode `index`; data streams are named logs-<dataset>-<namespace>",
        )),
        _ => {}
    }
    if let Some(index) = &config.index
        && (index != &index.to_lowercase()
            || index.starts_with(['-', '_', '+'])
            || index.contains(INDEX_FORBIDDEN))
    {
        errors.push(FieldError::new("index", format!("`{index}` is not a valid Elasticsearch index name (lowercase, no spaces or \\/*?\"<>|,#, not starting with -_+)")));
    }
    let namespace = &config.data_stream.namespace;
    if namespace.is_empty()
        || namespace != &namespace.to_lowercase()
        || namespace.contains('-')
        || namespace.contains(INDEX_FORBIDDEN)
    {
        errors.push(FieldError::new(
            "data_stream",
            format!("namespace `{namespace}` must be lowercase without '-' or special characters"),
        ));
    }
    if config.id_field.as_deref() == Some("") {
        errors.push(FieldError::new("id_field", "id_field must not be empty"));
    }
}

/// Characters of an ingest pipeline id that go into a URL as they are
/// (Fleet's names: `logs-1password.audit_events-1.31.0`, `…@custom`).
fn pipeline_id_ok(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
}

fn check_ingest(config: &ElasticsearchSinkConfig, errors: &mut Vec<FieldError>) {
    if let Some(pipeline) = &config.pipeline
        && !pipeline_id_ok(pipeline)
    {
        errors.push(FieldError::new(
            "pipeline",
            format!("`{pipeline}` is not a pipeline id sluice can name (letters, digits, -_.@)"),
        ));
    }
    let integration_streams = config.mode == Mode::DataStream && config.data_stream.kind == "logs";
    if config.ingest == Ingest::Elastic && config.pipeline.is_none() && !integration_streams {
        errors.push(FieldError::new(
            "ingest",
            "`ingest: elastic` relies on the 1Password integration's templates, which match logs-1password.*-* data streams only; use mode data_stream with type logs, or name the `pipeline`",
        ));
    }
}

impl ElasticsearchSinkConfig {
    /// Check the settings without I/O; relative paths resolve against `dir`.
    pub fn validate(self, dir: &Path) -> Result<Settings, Vec<FieldError>> {
        let mut errors = Vec::new();
        let endpoints = check_endpoints(&self.endpoints, &mut errors);
        check_naming(&self, &mut errors);
        check_ingest(&self, &mut errors);
        let delivery = validate_delivery(&self.batch, &self.request, &self.dead_letter, dir)
            .map_err(|problems| errors.extend(problems))
            .ok();
        let tls = self.tls.resolve(dir).map_err(|problems| errors.extend(problems)).ok();
        let (Some(delivery), Some(tls)) = (delivery, tls) else {
            return Err(errors);
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        // An empty secret (an unset `${ES_API_KEY:-}`) means: send no credentials.
        let auth = match self.auth {
            Some(AuthConfig::ApiKey { api_key }) if api_key.expose().is_empty() => None,
            Some(AuthConfig::Bearer { token }) if token.expose().is_empty() => None,
            other => other,
        };
        Ok(Settings {
            endpoints,
            auth,
            tls,
            compression: self.compression,
            delivery,
            ingest: self.ingest,
            pipeline: self.pipeline,
            custom_pipelines: self.custom_pipelines,
            hooks_installed: None,
            event_original: self.event_original,
            mode: self.mode,
            data_stream: self.data_stream,
            index: self.index,
            id_field: self
                .id_field
                .as_deref()
                .unwrap_or(match self.ingest {
                    Ingest::Sluice => "onepassword.uuid",
                    Ingest::Elastic => "uuid",
                })
                .split('.')
                .map(str::to_owned)
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(yaml: &str) -> Vec<String> {
        let config: ElasticsearchSinkConfig = serde_yaml_ng::from_str(yaml).expect("config");
        match config.validate(Path::new("/etc/sluice")) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.message).collect(),
        }
    }

    #[test]
    fn bad_values_are_reported_together() {
        let found = errors(
            "endpoints: ['ftp://es', 'https://elastic:changeme@es:9200']\nrequest: {concurrency: 0, refused_retry_secs: 18446744073709551615}\nbatch: {timeout_secs: .inf}\nmode: index\n",
        );
        assert_eq!(
            found,
            [
                "endpoint `ftp://es` must be http or https",
                "put credentials in `auth`, not in the endpoint URL",
                "mode `index` needs `index` (e.g. 1password-{stream}, or {dataset})",
                "batch.timeout_secs is inf; it must be from 0.001 to 3600",
                "request.concurrency is 0; it must be from 1 to 128",
                "request.refused_retry_secs is 18446744073709551615; it must be from 1 to 3600",
            ]
        );
    }

    #[test]
    fn ingest_decides_the_bulk_pipeline_and_the_id_field() {
        let settings = |yaml: &str| {
            let config: ElasticsearchSinkConfig = serde_yaml_ng::from_str(yaml).expect("config");
            config.validate(Path::new("/")).expect("valid")
        };
        let sluice = settings("endpoints: [http://es:9200]\n");
        assert_eq!(sluice.bulk_path(), "/_bulk?pipeline=_none");
        assert!(sluice.wants_hooks());
        let hooked = Settings { hooks_installed: Some(true), ..sluice.clone() };
        assert_eq!(hooked.bulk_path(), "/_bulk?pipeline=sluice-custom-hooks");
        assert_eq!(sluice.id_field, ["onepassword", "uuid"]);
        let named = settings("endpoints: [http://es:9200]\npipeline: sluice@custom\n");
        assert_eq!(named.bulk_path(), "/_bulk?pipeline=sluice@custom");
        let elastic = settings("endpoints: [http://es:9200]\ningest: elastic\n");
        assert_eq!(elastic.bulk_path(), "/_bulk", "the index's default pipeline runs");
        assert_eq!(elastic.id_field, ["uuid"]);
        assert_eq!(
            errors(
                "endpoints: [http://es:9200]\ningest: elastic\nmode: index\nindex: op\npipeline: 'a b'\n"
            ),
            ["`a b` is not a pipeline id sluice can name (letters, digits, -_.@)",]
        );
        assert_eq!(
            errors("endpoints: [http://es:9200]\ningest: elastic\nmode: index\nindex: op\n"),
            [
                "`ingest: elastic` relies on the 1Password integration's templates, which match logs-1password.*-* data streams only; use mode data_stream with type logs, or name the `pipeline`",
            ]
        );
    }

    #[test]
    fn the_dead_letter_path_resolves_against_the_config_folder() {
        let config: ElasticsearchSinkConfig = serde_yaml_ng::from_str(
            "endpoints: [http://es:9200]\ndead_letter: {path: out/dl.ndjson}\n",
        )
        .expect("config");
        let settings = config.validate(Path::new("/etc/sluice")).expect("valid");
        assert_eq!(
            settings.delivery.dead_letter_path(Path::new("/data"), "es"),
            Path::new("/etc/sluice/out/dl.ndjson")
        );
    }
}

//! The `splunk_hec` sink's settings, and their validation into [`Settings`]
//! without I/O.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sluice_core::config::FieldError;
use sluice_core::http::{Compression, TlsConfig};
use sluice_core::sink::{
    BatchConfig, DeadLetterConfig, DriverSettings, RequestConfig, validate_delivery,
};
use sluice_core::{Secret, SecretSource};

/// What goes into each envelope's `event`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// The raw 1Password item, byte for byte (default): 1Password's Splunk
    /// add-on props and dashboards work on it unchanged.
    #[default]
    Raw,
    /// The event as it reaches the sink (the ECS document after the `vrl`
    /// transform), for ECS in Splunk.
    Ecs,
}

/// `acknowledgements`: indexer acknowledgement.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckConfig {
    /// Wait for Splunk to say each batch is indexed (default true). Without
    /// acks a 200 only means "received": a crashing indexer can lose it.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Seconds between ack queries (0.01 to 300, default 10).
    #[serde(default = "default_poll")]
    pub poll_interval_secs: f64,
    /// Seconds before an unanswered ack counts as lost and its batch is sent
    /// again (1 to 86400, default 300): a duplicate is possible, a loss is not.
    #[serde(default = "default_ack_timeout")]
    pub timeout_secs: u64,
    /// Batches sent and awaiting their ack (1 to 10000, default 64).
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
}

fn yes() -> bool {
    true
}
fn default_poll() -> f64 {
    10.0
}
fn default_ack_timeout() -> u64 {
    300
}
fn default_max_pending() -> usize {
    64
}

impl Default for AckConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            poll_interval_secs: default_poll(),
            timeout_secs: default_ack_timeout(),
            max_pending: default_max_pending(),
        }
    }
}

/// `type: splunk_hec` under `sinks`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkHecSinkConfig {
    /// The HEC base URL, e.g. `https://splunk:8088`.
    pub endpoint: String,
    /// The HEC token (use `${VAR}`); or `token_file`.
    pub token: Option<Secret>,
    /// A file holding the HEC token.
    pub token_file: Option<PathBuf>,
    /// TLS: `ca_file` for Splunk's own CA, `verify` (tests only).
    #[serde(default)]
    pub tls: TlsConfig,
    /// `gzip` (default) or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// `raw` (default): the 1Password item; `ecs`: the mapped document.
    #[serde(default)]
    pub encoding: Encoding,
    /// The index (default: the token's default index). In `index`, `source`
    /// and `sourcetype`, `{dataset}` is replaced by the event's dataset
    /// (`1password.audit_events`), `{package}` by its part before the first
    /// dot (`1password`) and `{stream}` by the part after it (`audit_events`).
    pub index: Option<String>,
    /// The source (default: Splunk's).
    pub source: Option<String>,
    /// The sourcetype. Default: with `encoding: raw`,
    /// `{package}:insights:{stream}`, for 1Password's datasets its add-on's
    /// own (`1password:insights:audit_events`, whose props and dashboards
    /// read raw items); with `encoding: ecs`, `{package}:ecs:{stream}` (the
    /// add-on's field aliases, `EVAL-action` and dashboards cannot read ECS
    /// documents, so its sourcetypes are refused with `ecs` unless
    /// `allow_addon_sourcetype`).
    pub sourcetype: Option<String>,
    /// Allow an add-on sourcetype (`1password:insights:*`) with `encoding: ecs`.
    #[serde(default)]
    pub allow_addon_sourcetype: bool,
    /// The host field (default: Splunk's).
    pub host: Option<String>,
    /// Indexer acknowledgement.
    #[serde(default)]
    pub acknowledgements: AckConfig,
    /// Channels (GUIDs) this sink spreads its requests over (1 to 64, default 1).
    #[serde(default = "default_channels")]
    pub channels: usize,
    /// When a request is sent: `max_events`, `max_bytes`, `timeout_secs`.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Requests in flight, timeout, retries, health (see the delivery layer).
    #[serde(default)]
    pub request: RequestConfig,
    /// Where rejected events go (default `<data_dir>/<sink id>/dead-letter.ndjson`).
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
}

/// The prefix of 1Password's Splunk add-on's sourcetypes
/// (1Password/events-api-splunk@982241b58679a3df9bce401c9b58c446132cf4f0:app/onepassword_events_api/default/props.conf).
pub const ADDON_SOURCETYPE_PREFIX: &str = "1password:insights:";

fn default_sourcetype(encoding: Encoding) -> String {
    match encoding {
        Encoding::Raw => "{package}:insights:{stream}".into(),
        Encoding::Ecs => "{package}:ecs:{stream}".into(),
    }
}
fn default_channels() -> usize {
    1
}

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The base URL.
    pub endpoint: reqwest::Url,
    /// The token.
    pub token: SecretSource,
    /// TLS.
    pub tls: TlsConfig,
    /// Compression.
    pub compression: Compression,
    /// What is sent.
    pub encoding: Encoding,
    /// Index template.
    pub index: Option<String>,
    /// Source template.
    pub source: Option<String>,
    /// Sourcetype template.
    pub sourcetype: String,
    /// Host.
    pub host: Option<String>,
    /// Whether to wait for indexer acks.
    pub acks: bool,
    /// Ack query interval.
    pub ack_poll: Duration,
    /// Ack timeout.
    pub ack_timeout: Duration,
    /// Channels.
    pub channels: usize,
    /// HTTP requests in flight (POSTs; batches awaiting acks are counted by
    /// `delivery.concurrency`).
    pub requests_in_flight: usize,
    /// Batching, retries, dead letter; `concurrency` = batches in flight.
    pub delivery: DriverSettings,
}

fn check_endpoint(endpoint: &str, errors: &mut Vec<FieldError>) -> Option<reqwest::Url> {
    match reqwest::Url::parse(endpoint) {
        Ok(url) if url.password().is_some() || !url.username().is_empty() => {
            errors.push(FieldError::new(
                "endpoint",
                "put the token in `token`, not in the endpoint URL",
            ));
            None
        }
        Ok(url) if url.query().is_some() => {
            errors.push(FieldError::new(
                "endpoint",
                "the endpoint takes no query (a `?token=` would be logged by proxies)",
            ));
            None
        }
        Ok(url) if url.path().contains("/services/collector") => {
            errors.push(FieldError::new(
                "endpoint",
                format!("leave the path out of endpoint `{endpoint}` (`https://splunk:8088`): sluice adds /services/collector/event and /ack itself (a proxy's own path prefix is fine)"),
            ));
            None
        }
        Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
        Ok(_) => {
            errors.push(FieldError::new(
                "endpoint",
                format!("endpoint `{endpoint}` must be http or https"),
            ));
            None
        }
        Err(err) => {
            errors.push(FieldError::new(
                "endpoint",
                format!("endpoint `{endpoint}` is not a URL: {err}"),
            ));
            None
        }
    }
}

fn check_acks(acks: &AckConfig, channels: usize, errors: &mut Vec<FieldError>) {
    if !(acks.poll_interval_secs >= 0.01 && acks.poll_interval_secs <= 300.0) {
        errors.push(FieldError::new(
            "acknowledgements.poll_interval_secs",
            format!(
                "acknowledgements.poll_interval_secs is {}; it must be from 0.01 to 300",
                acks.poll_interval_secs
            ),
        ));
    }
    if !(1..=86_400).contains(&acks.timeout_secs) {
        errors.push(FieldError::new(
            "acknowledgements.timeout_secs",
            format!(
                "acknowledgements.timeout_secs is {}; it must be from 1 to 86400",
                acks.timeout_secs
            ),
        ));
    }
    if !(1..=10_000).contains(&acks.max_pending) {
        errors.push(FieldError::new(
            "acknowledgements.max_pending",
            format!(
                "acknowledgements.max_pending is {}; it must be from 1 to 10000",
                acks.max_pending
            ),
        ));
    }
    if !(1..=64).contains(&channels) {
        errors.push(FieldError::new(
            "channels",
            format!("channels is {channels}; it must be from 1 to 64"),
        ));
    }
}

impl SplunkHecSinkConfig {
    /// Check the settings without I/O; relative paths resolve against `dir`.
    pub fn validate(self, dir: &Path) -> Result<Settings, Vec<FieldError>> {
        let mut errors = Vec::new();
        let endpoint = check_endpoint(&self.endpoint, &mut errors);
        let token = match self.token {
            Some(token) if self.token_file.is_none() && token.expose().trim().is_empty() => {
                errors.push(FieldError::new("token", "the token is empty"));
                None
            }
            token => SecretSource::from_config(token, self.token_file, dir, "a HEC token")
                .map_err(|error| errors.push(error))
                .ok(),
        };
        check_acks(&self.acknowledgements, self.channels, &mut errors);
        let sourcetype =
            self.sourcetype.clone().unwrap_or_else(|| default_sourcetype(self.encoding));
        if sourcetype.is_empty() {
            errors.push(FieldError::new("sourcetype", "sourcetype must not be empty"));
        }
        if self.encoding == Encoding::Ecs
            && sourcetype.starts_with(ADDON_SOURCETYPE_PREFIX)
            && !self.allow_addon_sourcetype
        {
            errors.push(FieldError::new(
                "sourcetype",
                format!("`{sourcetype}` is 1Password's add-on's sourcetype, whose props and dashboards read raw items, not the ECS documents of `encoding: ecs`; leave `sourcetype` out ({{package}}:ecs:{{stream}}), or set `allow_addon_sourcetype: true`"),
            ));
        }
        let delivery = validate_delivery(&self.batch, &self.request, &self.dead_letter, dir)
            .map_err(|problems| errors.extend(problems))
            .ok();
        let tls = self.tls.resolve(dir).map_err(|problems| errors.extend(problems)).ok();
        let (Some(endpoint), Some(token), Some(mut delivery), Some(tls)) =
            (endpoint, token, delivery, tls)
        else {
            return Err(errors);
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let acks = self.acknowledgements;
        let requests_in_flight = delivery.concurrency;
        if acks.enabled {
            // A batch keeps its slot until its ack comes: that many may wait.
            // The slot's round trip is then mostly the ack poll interval,
            // which says nothing about load: the slots are fixed, and the
            // POSTs under them are capped by `request.(max_)concurrency`.
            delivery.concurrency = acks.max_pending.max(requests_in_flight);
            delivery.adaptive = false;
        }
        Ok(Settings {
            endpoint,
            token,
            tls,
            compression: self.compression,
            encoding: self.encoding,
            index: self.index,
            source: self.source,
            sourcetype,
            host: self.host,
            acks: acks.enabled,
            ack_poll: Duration::from_secs_f64(acks.poll_interval_secs),
            ack_timeout: Duration::from_secs(acks.timeout_secs),
            channels: self.channels,
            requests_in_flight,
            delivery,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(yaml: &str) -> Vec<String> {
        let config: SplunkHecSinkConfig = serde_yaml_ng::from_str(yaml).expect("config");
        match config.validate(Path::new("/etc/sluice")) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.message).collect(),
        }
    }

    #[test]
    fn bad_values_are_reported_together() {
        assert_eq!(
            errors(
                "endpoint: 'https://splunk:8088/?token=abc'\nacknowledgements: {poll_interval_secs: .nan, max_pending: 0}\nchannels: 0\n"
            ),
            [
                "the endpoint takes no query (a `?token=` would be logged by proxies)",
                "a HEC token is required: set `token` or `token_file`",
                "acknowledgements.poll_interval_secs is NaN; it must be from 0.01 to 300",
                "acknowledgements.max_pending is 0; it must be from 1 to 10000",
                "channels is 0; it must be from 1 to 64",
            ]
        );
        assert_eq!(errors("endpoint: https://splunk:8088\ntoken: ''\n"), ["the token is empty"]);
        let path = errors("endpoint: https://splunk:8088/services/collector/event\ntoken: t\n");
        assert!(path[0].starts_with("leave the path out of endpoint"), "{path:?}");
        assert!(
            errors("endpoint: https://lb.example/splunk/\ntoken: t\n").is_empty(),
            "a proxy prefix"
        );
    }

    #[test]
    fn ecs_documents_get_their_own_sourcetype_and_the_addons_is_refused_for_them() {
        let valid = |yaml: &str| {
            let config: SplunkHecSinkConfig = serde_yaml_ng::from_str(yaml).expect("config");
            config.validate(Path::new("/"))
        };
        let ecs = valid("endpoint: https://splunk:8088\ntoken: t\nencoding: ecs\n").expect("valid");
        assert_eq!(ecs.sourcetype, "{package}:ecs:{stream}");
        let raw = valid("endpoint: https://splunk:8088\ntoken: t\n").expect("valid");
        assert_eq!(raw.sourcetype, "{package}:insights:{stream}");
        let refused = valid("endpoint: https://splunk:8088\ntoken: t\nencoding: ecs\nsourcetype: '1password:insights:{stream}'\n")
            .expect_err("refused");
        assert!(format!("{refused:?}").contains("allow_addon_sourcetype"), "{refused:?}");
        let forced = valid("endpoint: https://splunk:8088\ntoken: t\nencoding: ecs\nsourcetype: '1password:insights:{stream}'\nallow_addon_sourcetype: true\n")
            .expect("forced");
        assert_eq!(forced.sourcetype, "1password:insights:{stream}");
    }

    #[test]
    fn batches_awaiting_acks_get_their_own_slots() {
        let config: SplunkHecSinkConfig = serde_yaml_ng::from_str(
            "endpoint: https://splunk:8088\ntoken: t\nrequest: {concurrency: 4}\nacknowledgements: {max_pending: 32}\n",
        )
        .expect("config");
        let settings = config.validate(Path::new("/")).expect("valid");
        assert_eq!((settings.requests_in_flight, settings.delivery.concurrency), (4, 32));
        assert_eq!(settings.sourcetype, "{package}:insights:{stream}");
        let debug = format!("{settings:?}");
        assert!(!debug.contains("token: t") && debug.contains("Inline(Secret("), "{debug}");
    }
}

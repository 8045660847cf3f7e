//! The `sluice` sink's settings, validated without I/O into [`Settings`].

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sluice_core::config::FieldError;
use sluice_core::sink::{
    BatchConfig, DeadLetterConfig, DriverSettings, RequestConfig, validate_delivery,
};
use sluice_core::{Secret, SecretSource};

use crate::tls::ClientTlsConfig;

/// How requests spread over several `endpoints`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Each request goes to the next endpoint (default).
    #[default]
    RoundRobin,
    /// Every request goes to the first endpoint that works; the next one
    /// takes over when it cannot be reached.
    Failover,
}

/// Compression of the requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// gzip (default).
    #[default]
    Gzip,
    /// zstd: faster than gzip at a similar ratio.
    Zstd,
    /// None (loopback, or a CPU-bound edge).
    None,
}

/// `type: sluice` under `sinks`: forwards events to other sluice instances.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SluiceSinkConfig {
    /// The aggregators: `http://host:port` or `https://host:port`.
    pub endpoints: Vec<String>,
    /// `round_robin` (default) or `failover`.
    #[serde(default)]
    pub strategy: Strategy,
    /// A bearer token the aggregator requires (use `${VAR}`); or `token_file`.
    pub token: Option<Secret>,
    /// A file holding the bearer token.
    pub token_file: Option<PathBuf>,
    /// TLS: `ca_file`, and `crt_file` + `key_file` for mutual TLS.
    #[serde(default)]
    pub tls: ClientTlsConfig,
    /// `gzip` (default), `zstd` or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// How this edge names itself to the aggregator (its logs and metrics);
    /// default: the host name.
    pub sender: Option<String>,
    /// When a request is sent: `max_events`, `max_bytes`, `timeout_secs`.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Requests in flight, timeout, retries, health (see the delivery layer).
    #[serde(default)]
    pub request: RequestConfig,
    /// Where events the aggregator rejected go (default `<data_dir>/<sink id>/dead-letter.ndjson`).
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
}

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The endpoints, as given (scheme, host, port).
    pub endpoints: Vec<String>,
    /// How requests spread.
    pub strategy: Strategy,
    /// The bearer token, if any.
    pub token: Option<SecretSource>,
    /// TLS, for `https` endpoints.
    pub tls: ClientTlsConfig,
    /// Compression.
    pub compression: Compression,
    /// The sender's name.
    pub sender: Option<String>,
    /// Batching, retries, dead letter.
    pub delivery: DriverSettings,
}

/// The largest `sender` name.
const MAX_SENDER: usize = 64;

fn check_endpoint(endpoint: &str) -> Result<bool, String> {
    let (scheme, rest) = endpoint.split_once("://").ok_or_else(|| {
        format!("`{endpoint}` needs a scheme: http://host:port or https://host:port")
    })?;
    let tls = match scheme {
        "http" => false,
        "https" => true,
        other => {
            return Err(format!("`{endpoint}`: the scheme must be http or https, not {other}"));
        }
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "`{endpoint}` must be only scheme://host:port (no path, query or user)"
        ));
    }
    tonic::transport::Endpoint::from_shared(endpoint.to_owned())
        .map_err(|e| format!("`{endpoint}` is not a valid address: {e}"))?;
    Ok(tls)
}

impl SluiceSinkConfig {
    /// Check everything that can be checked without I/O; relative paths
    /// resolve against `dir`, the config file's directory.
    pub fn validate(self, dir: &Path) -> Result<Settings, Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.endpoints.is_empty() {
            errors.push(FieldError::new("endpoints", "at least one endpoint is required"));
        }
        let mut any_plain = false;
        for endpoint in &self.endpoints {
            match check_endpoint(endpoint) {
                Ok(tls) => any_plain |= !tls,
                Err(message) => errors.push(FieldError::new("endpoints", message)),
            }
        }
        if any_plain && self.tls.is_set() {
            errors.push(FieldError::new(
                "tls",
                "tls is set but an endpoint is http://: use https:// endpoints for TLS",
            ));
        }
        let token = match (self.token, self.token_file) {
            (None, None) => None,
            (token, file) => match SecretSource::from_config(token, file, dir, "a token") {
                Ok(source) => Some(source),
                Err(err) => {
                    errors.push(err);
                    None
                }
            },
        };
        let tls = self.tls.validate(dir).map_err(|e| errors.push(e)).unwrap_or_default();
        if let Some(sender) = &self.sender
            && (sender.is_empty() || sender.len() > MAX_SENDER)
        {
            errors.push(FieldError::new("sender", format!("1 to {MAX_SENDER} characters")));
        }
        let delivery = validate_delivery(&self.batch, &self.request, &self.dead_letter, dir)
            .map_err(|e| errors.extend(e))
            .ok();
        match delivery {
            Some(delivery) if errors.is_empty() => Ok(Settings {
                endpoints: self.endpoints,
                strategy: self.strategy,
                token,
                tls,
                compression: self.compression,
                sender: self.sender,
                delivery,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Settings, Vec<FieldError>> {
        let config: SluiceSinkConfig = serde_yaml_ng::from_str(yaml).expect("parses");
        config.validate(Path::new("/etc/sluice"))
    }

    fn messages(yaml: &str) -> String {
        let errors = parse(yaml).expect_err("invalid");
        errors.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join(" | ")
    }

    #[test]
    fn defaults_are_round_robin_gzip_without_token() {
        let settings = parse("endpoints: [http://127.0.0.1:6000]").expect("valid");
        assert_eq!(settings.strategy, Strategy::RoundRobin);
        assert_eq!(settings.compression, Compression::Gzip);
        assert!(settings.token.is_none());
        assert_eq!(settings.delivery.max_events, 1000);
    }

    #[test]
    fn bad_endpoints_are_named() {
        assert!(messages("endpoints: []").contains("at least one endpoint"));
        assert!(messages("endpoints: [127.0.0.1:6000]").contains("needs a scheme"));
        assert!(messages("endpoints: [ftp://a:1]").contains("http or https"));
        assert!(messages("endpoints: [http://a:1/push]").contains("no path"));
        assert!(messages("endpoints: ['http://u:p@a:1']").contains("no path, query or user"));
    }

    #[test]
    fn tls_needs_https_and_a_key_with_the_certificate() {
        assert!(messages("endpoints: [http://a:1]\ntls: {ca_file: ca.pem}").contains("https://"));
        assert!(
            messages("endpoints: [https://a:1]\ntls: {crt_file: c.pem}").contains("go together")
        );
        let settings = parse(
            "endpoints: [https://a:1]\ntls: {ca_file: ca.pem, crt_file: c.pem, key_file: k.pem}",
        )
        .expect("valid");
        assert_eq!(settings.tls.ca_file.as_deref(), Some(Path::new("/etc/sluice/ca.pem")));
    }

    #[test]
    fn token_and_token_file_exclude_each_other() {
        assert!(messages("endpoints: [http://a:1]\ntoken: x\ntoken_file: t").contains("not both"));
        let settings = parse("endpoints: [http://a:1]\ntoken_file: t").expect("valid");
        assert!(
            matches!(settings.token, Some(SecretSource::File(p)) if p == Path::new("/etc/sluice/t"))
        );
    }

    #[test]
    fn the_token_is_redacted_in_debug_output() {
        let settings = parse("endpoints: [http://a:1]\ntoken: hunter2-secret").expect("valid");
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}

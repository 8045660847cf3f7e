//! The `sluice` source's settings, validated without I/O into [`Settings`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sluice_core::config::FieldError;
use sluice_core::{Secret, SecretSource};

use crate::tls::ServerTlsConfig;

/// `type: sluice` under `sources`: receives events from edges' `sluice` sinks.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SluiceSourceConfig {
    /// Where to listen (default `127.0.0.1:6000`; `0.0.0.0:6000` for other hosts).
    #[serde(default = "default_address")]
    pub address: String,
    /// A bearer token every edge must send (use `${VAR}`); or `token_file`.
    pub token: Option<Secret>,
    /// A file holding the bearer token.
    pub token_file: Option<PathBuf>,
    /// TLS: `crt_file`, `key_file`, and `client_ca_file` for mutual TLS.
    pub tls: Option<ServerTlsConfig>,
    /// Batches accepted and not yet acknowledged downstream (1 to 10000,
    /// default 16). Past it, pushes are answered RESOURCE_EXHAUSTED and the
    /// edges back off: a slow aggregator slows its edges instead of growing.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// The largest push accepted, in bytes after decompression (64 KiB to
    /// 1 GiB, default 64 MiB). Larger ones are answered OUT_OF_RANGE and
    /// the edge splits them.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Listen beyond loopback without `tls` (a network you trust, a service
    /// mesh that encrypts): without it such a config is refused.
    #[serde(default)]
    pub allow_plaintext: bool,
}

fn default_address() -> String {
    "127.0.0.1:6000".into()
}
fn default_max_in_flight() -> usize {
    16
}
fn default_max_message_bytes() -> usize {
    64 * 1024 * 1024
}

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The listening address.
    pub address: SocketAddr,
    /// The token edges must send.
    pub token: Option<SecretSource>,
    /// TLS.
    pub tls: Option<ServerTlsConfig>,
    /// Batches in flight.
    pub max_in_flight: usize,
    /// Largest push.
    pub max_message_bytes: usize,
}

impl SluiceSourceConfig {
    /// Check everything that can be checked without I/O; relative paths
    /// resolve against `dir`.
    pub fn validate(self, dir: &Path) -> Result<Settings, Vec<FieldError>> {
        let mut errors = Vec::new();
        let address = self
            .address
            .parse::<SocketAddr>()
            .map_err(|_| {
                errors.push(FieldError::new(
                    "address",
                    format!("`{}` is not an ip:port address, e.g. 127.0.0.1:6000", self.address),
                ))
            })
            .ok();
        let token = match (self.token, self.token_file) {
            (None, None) => None,
            (token, file) => SecretSource::from_config(token, file, dir, "a token")
                .map_err(|e| errors.push(e))
                .ok(),
        };
        if !(1..=10_000).contains(&self.max_in_flight) {
            errors.push(FieldError::new("max_in_flight", "1 to 10000"));
        }
        if !(64 * 1024..=1 << 30).contains(&self.max_message_bytes) {
            errors.push(FieldError::new("max_message_bytes", "64 KiB (65536) to 1 GiB"));
        }
        if let Some(address) = address
            && !address.ip().is_loopback()
            && self.tls.is_none()
            && !self.allow_plaintext
        {
            errors.push(FieldError::new(
                "tls",
                format!("listening on {address}, beyond loopback, without TLS: the edges' token and every event would cross the network in clear. Set `tls`, or `allow_plaintext: true` on a network you trust (a service mesh that encrypts)"),
            ));
        }
        match address {
            Some(address) if errors.is_empty() => Ok(Settings {
                address,
                token,
                tls: self.tls.map(|tls| tls.validate(dir)),
                max_in_flight: self.max_in_flight,
                max_message_bytes: self.max_message_bytes,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Settings, Vec<FieldError>> {
        let config: SluiceSourceConfig = serde_yaml_ng::from_str(yaml).expect("parses");
        config.validate(Path::new("/etc/sluice"))
    }

    #[test]
    fn listens_on_loopback_by_default() {
        let settings = parse("{}").expect("valid");
        assert_eq!(settings.address.to_string(), "127.0.0.1:6000");
        assert_eq!(settings.max_in_flight, 16);
        assert!(settings.token.is_none() && settings.tls.is_none());
    }

    #[test]
    fn bad_values_are_named() {
        let errors = parse("address: localhost\nmax_in_flight: 0\nmax_message_bytes: 10")
            .expect_err("invalid");
        let fields: Vec<_> = errors.iter().filter_map(|e| e.field).collect();
        assert_eq!(fields, ["address", "max_in_flight", "max_message_bytes"]);
    }

    #[test]
    fn tls_paths_resolve_against_the_config_directory() {
        let settings = parse("tls: {crt_file: s.pem, key_file: s.key, client_ca_file: ca.pem}")
            .expect("valid");
        let tls = settings.tls.expect("tls");
        assert_eq!(tls.crt_file, Path::new("/etc/sluice/s.pem"));
        assert_eq!(tls.client_ca_file.as_deref(), Some(Path::new("/etc/sluice/ca.pem")));
    }
}

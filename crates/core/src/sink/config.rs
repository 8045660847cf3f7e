//! The settings every batching sink shares: `batch`, `request` and
//! `dead_letter`, each checked with bounds so no value can panic at run time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::{FieldError, check_range};

/// `batch`: when a batch is sent.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Events per request (1 to 100000, default 1000).
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// Bytes per request before compression (1 KiB to 1 GiB, default 10 MiB).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Seconds a partial batch waits for more events (0.001 to 3600, default 1).
    #[serde(default = "default_linger")]
    pub timeout_secs: f64,
}

fn default_max_events() -> usize {
    1000
}
fn default_max_bytes() -> usize {
    10 * 1024 * 1024
}
fn default_linger() -> f64 {
    1.0
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_events: default_max_events(),
            max_bytes: default_max_bytes(),
            timeout_secs: default_linger(),
        }
    }
}

/// `request.concurrency`: learned from the destination, or fixed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Concurrency {
    /// `adaptive`: from 1 up to `request.max_concurrency`, raised while the
    /// round trip stays flat and lowered when it grows or the destination
    /// pushes back (429, 503, timeouts).
    Adaptive,
    /// A number: always this many requests in flight.
    Fixed(usize),
}

impl<'de> Deserialize<'de> for Concurrency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(usize),
            Word(String),
        }
        match Raw::deserialize(deserializer) {
            Ok(Raw::Number(n)) => Ok(Self::Fixed(n)),
            Ok(Raw::Word(word)) if word == "adaptive" => Ok(Self::Adaptive),
            _ => Err(serde::de::Error::custom(
                "request.concurrency is `adaptive` or a number of requests",
            )),
        }
    }
}

/// `request`: concurrency, timeouts, retries and when `/health` turns red.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestConfig {
    /// Requests in flight: `adaptive` (default) or a number from 1 to 128.
    /// When all are busy the sink reads no more input: backpressure up to
    /// the source.
    #[serde(default = "default_concurrency")]
    pub concurrency: Concurrency,
    /// The most requests `adaptive` may keep in flight (1 to 128, default 32).
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Seconds before a request times out (1 to 3600, default 60).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// The longest wait between retries of a failed request (1 to 3600, default 60).
    /// Waits grow from 0.5 s, doubling, with full jitter.
    #[serde(default = "default_sixty")]
    pub retry_max_backoff_secs: u64,
    /// Seconds between attempts while the destination refuses the
    /// credentials, privileges or target (1 to 3600, default 60).
    #[serde(default = "default_sixty")]
    pub refused_retry_secs: u64,
    /// `/health` turns unhealthy when events have waited this long without
    /// any being delivered (1 to 86400, default 60).
    #[serde(default = "default_sixty")]
    pub unhealthy_after_secs: u64,
}

fn default_concurrency() -> Concurrency {
    Concurrency::Adaptive
}
fn default_max_concurrency() -> usize {
    32
}
fn default_timeout() -> u64 {
    60
}
fn default_sixty() -> u64 {
    60
}

impl Default for RequestConfig {
    fn default() -> Self {
        Self {
            concurrency: default_concurrency(),
            max_concurrency: default_max_concurrency(),
            timeout_secs: default_timeout(),
            retry_max_backoff_secs: default_sixty(),
            refused_retry_secs: default_sixty(),
            unhealthy_after_secs: default_sixty(),
        }
    }
}

/// `dead_letter`: where documents the destination rejected go.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// An NDJSON file, relative to the config file (default
    /// `<data_dir>/<sink id>/dead-letter.ndjson`).
    pub path: Option<PathBuf>,
    /// The file's size limit in bytes (default 1 GiB). When it is reached,
    /// the sink stops delivering and `/health` says so; nothing is dropped.
    #[serde(default = "default_dead_letter_bytes")]
    pub max_bytes: u64,
}

fn default_dead_letter_bytes() -> u64 {
    1 << 30
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        Self { path: None, max_bytes: default_dead_letter_bytes() }
    }
}

/// The validated delivery settings of one sink.
#[derive(Clone, Debug)]
pub struct DriverSettings {
    /// Events per request.
    pub max_events: usize,
    /// Bytes per request.
    pub max_bytes: usize,
    /// How long a partial batch waits.
    pub linger: Duration,
    /// Requests in flight: the fixed number, or the ceiling when `adaptive`.
    pub concurrency: usize,
    /// Whether the number in flight is learned (up to `concurrency`).
    pub adaptive: bool,
    /// Per-request timeout, for the sink's client.
    pub request_timeout: Duration,
    /// First backoff wait.
    pub retry_initial_backoff: Duration,
    /// Backoff cap.
    pub retry_max_backoff: Duration,
    /// Retry interval while refused.
    pub refused_retry: Duration,
    /// Waiting time without progress before `/health` turns unhealthy.
    pub unhealthy_after: Duration,
    /// The dead-letter file; `None` means `<data_dir>/<sink id>/dead-letter.ndjson`.
    pub dead_letter_path: Option<PathBuf>,
    /// The dead letter's size limit.
    pub dead_letter_max_bytes: u64,
}

impl DriverSettings {
    /// The dead-letter file of sink `id` under `data_dir`.
    pub fn dead_letter_path(&self, data_dir: &Path, id: &str) -> PathBuf {
        self.dead_letter_path
            .clone()
            .unwrap_or_else(|| data_dir.join(id).join("dead-letter.ndjson"))
    }
}

/// Check `batch`, `request` and `dead_letter` without I/O; a relative
/// dead-letter path resolves against `dir`.
pub fn validate_delivery(
    batch: &BatchConfig,
    request: &RequestConfig,
    dead_letter: &DeadLetterConfig,
    dir: &Path,
) -> Result<DriverSettings, Vec<FieldError>> {
    let mut errors = Vec::new();
    check_range(&mut errors, "batch.max_events", batch.max_events, (1, 100_000));
    check_range(&mut errors, "batch.max_bytes", batch.max_bytes, (1024, 1 << 30));
    check_range(&mut errors, "batch.timeout_secs", batch.timeout_secs, (0.001, 3600.0));
    let (concurrency, adaptive) = match request.concurrency {
        Concurrency::Adaptive => (request.max_concurrency, true),
        Concurrency::Fixed(n) => (n, false),
    };
    if adaptive {
        check_range(&mut errors, "request.max_concurrency", concurrency, (1, 128));
    } else {
        check_range(&mut errors, "request.concurrency", concurrency, (1, 128));
    }
    check_range(&mut errors, "request.timeout_secs", request.timeout_secs, (1, 3600));
    check_range(
        &mut errors,
        "request.retry_max_backoff_secs",
        request.retry_max_backoff_secs,
        (1, 3600),
    );
    check_range(&mut errors, "request.refused_retry_secs", request.refused_retry_secs, (1, 3600));
    check_range(
        &mut errors,
        "request.unhealthy_after_secs",
        request.unhealthy_after_secs,
        (1, 86_400),
    );
    check_range(&mut errors, "dead_letter.max_bytes", dead_letter.max_bytes, (1024, 1 << 50));
    if dead_letter.path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
        errors.push(FieldError::new("dead_letter.path", "dead_letter.path must not be empty"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(DriverSettings {
        max_events: batch.max_events,
        max_bytes: batch.max_bytes,
        linger: Duration::from_secs_f64(batch.timeout_secs),
        concurrency,
        adaptive,
        request_timeout: Duration::from_secs(request.timeout_secs),
        retry_initial_backoff: Duration::from_millis(500),
        retry_max_backoff: Duration::from_secs(request.retry_max_backoff_secs),
        refused_retry: Duration::from_secs(request.refused_retry_secs),
        unhealthy_after: Duration::from_secs(request.unhealthy_after_secs),
        dead_letter_path: dead_letter.path.as_ref().map(|p| dir.join(p)),
        dead_letter_max_bytes: dead_letter.max_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_values_are_field_errors_not_panics() {
        let batch = BatchConfig { timeout_secs: f64::INFINITY, ..BatchConfig::default() };
        let request = RequestConfig {
            concurrency: Concurrency::Fixed(usize::MAX),
            ..RequestConfig::default()
        };
        let errors =
            validate_delivery(&batch, &request, &DeadLetterConfig::default(), Path::new("/"))
                .expect_err("invalid");
        let messages: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(
            messages[0].contains("batch.timeout_secs is inf; it must be from 0.001 to 3600"),
            "{messages:?}"
        );
        assert!(
            messages[1]
                .contains("request.concurrency is 18446744073709551615; it must be from 1 to 128"),
            "{messages:?}"
        );
        let nan = BatchConfig { timeout_secs: f64::NAN, ..BatchConfig::default() };
        assert!(
            validate_delivery(
                &nan,
                &RequestConfig::default(),
                &DeadLetterConfig::default(),
                Path::new("/")
            )
            .is_err()
        );
    }

    #[test]
    fn the_dead_letter_defaults_to_the_sinks_folder_in_data_dir() {
        let settings = validate_delivery(
            &BatchConfig::default(),
            &RequestConfig::default(),
            &DeadLetterConfig::default(),
            Path::new("/etc/sluice"),
        )
        .expect("valid");
        assert_eq!(
            settings.dead_letter_path(Path::new("/var/lib/sluice"), "es"),
            Path::new("/var/lib/sluice/es/dead-letter.ndjson")
        );
        let moved =
            DeadLetterConfig { path: Some("dl/es.ndjson".into()), ..DeadLetterConfig::default() };
        let settings = validate_delivery(
            &BatchConfig::default(),
            &RequestConfig::default(),
            &moved,
            Path::new("/etc/sluice"),
        )
        .expect("valid");
        assert_eq!(
            settings.dead_letter_path(Path::new("/x"), "es"),
            Path::new("/etc/sluice/dl/es.ndjson")
        );
    }
}

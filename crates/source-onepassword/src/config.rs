//! The `onepassword` source's settings, validated without any I/O.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sluice_core::component::FileChecks;
use sluice_core::config::{FieldError, check_range};
use sluice_core::{Secret, SecretSource};

use crate::streams::Stream;

use crate::client::ApiVersion;
use crate::token::{ALLOWED_HOSTS, decode};

/// The API keeps 120 days of events.
pub const RETENTION: Duration = Duration::from_secs(120 * 24 * 3600);

/// TLS settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Extra CA certificates (PEM) to trust, e.g. for a TLS-inspecting proxy.
    pub ca_file: Option<PathBuf>,
}

/// The client-side rate limit, shared by everything that uses one token.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per minute (the API allows 600).
    #[serde(default = "default_per_minute")]
    pub per_minute: u32,
    /// Requests per hour (the API allows 30,000).
    #[serde(default = "default_per_hour")]
    pub per_hour: u32,
}

fn default_per_minute() -> u32 {
    600
}
fn default_per_hour() -> u32 {
    30_000
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self { per_minute: default_per_minute(), per_hour: default_per_hour() }
    }
}

/// `type: onepassword` under `sources`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnePasswordSourceConfig {
    /// The Events API token (use `${VAR}`); or `token_file`.
    pub token: Option<Secret>,
    /// A file holding the token, read again when the API refuses it.
    pub token_file: Option<PathBuf>,
    /// The API's base URL; default `https://` + the token's audience. Hosts
    /// other than 1Password's events hosts need `allow_custom_url: true`.
    pub url: Option<String>,
    /// Allow a `url` (or token audience) outside 1Password's events hosts.
    #[serde(default)]
    pub allow_custom_url: bool,
    /// Streams to collect; default every stream the token permits.
    pub streams: Option<Vec<Stream>>,
    /// `v2` (default) or `v1`.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Where the first run starts: RFC 3339, or a duration ago like `30d`
    /// (default `7d`); clamped to the API's 120 days.
    pub start_time: Option<String>,
    /// Events per page, 1 to 1000 (default 1000).
    #[serde(default = "default_limit")]
    pub limit: u32,
    /// Seconds between polls once a stream is caught up (default 1, ± 10 %;
    /// longer when the token's streams would spend over half its budget).
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    /// Seconds before a request times out (default 30).
    #[serde(default = "default_timeout")]
    pub request_timeout_secs: u64,
    /// Pages per stream sent but not yet acknowledged before polling waits (default 4).
    #[serde(default = "default_pages")]
    pub max_pages_in_flight: usize,
    /// Seconds between retries of a stream the API refuses with 400 or 401 (default 60).
    #[serde(default = "default_refused_retry")]
    pub refused_retry_secs: u64,
    /// The longest wait between retries of a failed request (default 60;
    /// waits grow from 1 s with full jitter).
    #[serde(default = "default_max_backoff")]
    pub retry_max_backoff_secs: u64,
    /// Seconds a stream's requests may keep failing (transport errors, 5xx,
    /// malformed answers) before `/health` reports it (default 60).
    #[serde(default = "default_unhealthy_after")]
    pub unhealthy_after_secs: u64,
    /// An HTTP(S) proxy URL (it may hold credentials: redacted like a token).
    pub proxy: Option<Secret>,
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsConfig,
    /// The client-side rate limit.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
}

fn default_limit() -> u32 {
    1000
}
fn default_interval() -> u64 {
    1
}
fn default_timeout() -> u64 {
    30
}
fn default_pages() -> usize {
    4
}
fn default_refused_retry() -> u64 {
    60
}
fn default_max_backoff() -> u64 {
    60
}
fn default_unhealthy_after() -> u64 {
    60
}

/// Where a first run starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartTime {
    /// A fixed instant.
    At(DateTime<Utc>),
    /// That long before the start.
    Ago(Duration),
}

impl StartTime {
    /// The instant, clamped to the API's retention at `now` (with a warning).
    pub fn resolve(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let wanted = match self {
            Self::At(at) => at,
            // Anything older than the retention is clamped below; an
            // absurd duration (`300000y`) must not overflow on the way.
            Self::Ago(ago) => chrono::Duration::from_std(ago)
                .ok()
                .and_then(|ago| now.checked_sub_signed(ago))
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        };
        let oldest = now - chrono::Duration::from_std(RETENTION).expect("120 days fit")
            + chrono::Duration::minutes(1);
        if wanted > now {
            tracing::warn!(start_time = %wanted.to_rfc3339(), "start_time is in the future; starting now");
            return now;
        }
        if wanted < oldest {
            // Warned about at its line by validate and at start.
            tracing::info!(start_time = %wanted.to_rfc3339(), oldest = %oldest.to_rfc3339(), "start_time is older than the API's 120 days; starting at the oldest available event");
            return oldest;
        }
        wanted
    }
}

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The token.
    pub token: SecretSource,
    /// The configured URL, if any.
    pub url: Option<reqwest::Url>,
    /// Allow hosts outside the allowlist.
    pub allow_custom_url: bool,
    /// Configured streams.
    pub streams: Option<Vec<Stream>>,
    /// API version.
    pub api_version: ApiVersion,
    /// First-run start.
    pub start_time: StartTime,
    /// Page size.
    pub limit: u32,
    /// Idle poll interval.
    pub interval: Duration,
    /// Request timeout.
    pub request_timeout: Duration,
    /// Pages in flight per stream.
    pub max_pages_in_flight: usize,
    /// Retry interval of a refused stream.
    pub refused_retry: Duration,
    /// Cap of the retry backoff.
    pub retry_max_backoff: Duration,
    /// How long requests may keep failing before the stream is reported.
    pub unhealthy_after: Duration,
    /// Proxy URL.
    pub proxy: Option<Secret>,
    /// CA file.
    pub ca_file: Option<PathBuf>,
    /// Rate limit.
    pub rate_limit: RateLimitConfig,
}

/// Whether `host` is one of 1Password's events hosts.
pub fn is_allowed_host(host: &str) -> bool {
    ALLOWED_HOSTS.contains(&host)
}

/// What the token says against the settings, reported at `field`: a token
/// that does not decode, or whose audience (the host it was issued for) is
/// not where it will be sent. 1Password answers a token of another host with
/// a bare 401; a custom `url` (the simulator, a relay) may legitimately
/// differ, so that is a warning.
pub fn token_problems(
    secret: &Secret,
    url: Option<&reqwest::Url>,
    allow_custom_url: bool,
    field: &'static str,
) -> FileChecks {
    let mut checks = FileChecks::default();
    let claims = match decode(secret) {
        Ok(claims) => claims,
        Err(err) => {
            checks.errors.push(FieldError::new(field, err.to_string()));
            return checks;
        }
    };
    // Review L5 (reliability 2026-12): `run` refused an expired token and
    // `validate` accepted it; both say so now, at the key.
    if let Some(exp) = claims.expires_at
        && exp <= chrono::Utc::now().timestamp()
    {
        let at =
            chrono::DateTime::from_timestamp(exp, 0).map(|t| t.to_rfc3339()).unwrap_or_default();
        checks.errors.push(FieldError::new(
            field,
            format!("the token expired at {at}; issue a new one in 1Password (Integrations > Events Reporting)"),
        ));
        return checks;
    }
    let audience = claims.audience;
    let Some(url) = url else {
        if !allow_custom_url && !is_allowed_host(&audience) {
            checks.errors.push(FieldError::new(field, format!(
                "the token's audience `{audience}` is not a 1Password events host ({}); set `url` and `allow_custom_url: true` to use it",
                ALLOWED_HOSTS.join(", ")
            )));
        }
        return checks;
    };
    if issued_for(&audience, url) {
        return checks;
    }
    let host = url.host_str().unwrap_or_default();
    let authority = authority(url);
    if is_allowed_host(host) {
        checks.errors.push(FieldError::new(field, format!(
            "the token was issued for `{audience}`, but url sends it to `{authority}`, which will refuse it (401); leave `url` out (it comes from the token) or use a token of this account"
        )));
    } else {
        checks.warnings.push(FieldError::new(field, format!(
            "the token was issued for `{audience}`, not url's `{authority}`; unless that host relays to `{audience}`, it will refuse the token (401)"
        )));
    }
    checks
}

/// `host[:port]` of `url`, the port only when written.
fn authority(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// Whether a token of `audience` is meant for `url` (`host`, or `host:port`
/// with the port written or the scheme's default).
pub fn issued_for(audience: &str, url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    audience == authority(url)
        || url.port_or_known_default().is_some_and(|port| audience == format!("{host}:{port}"))
}

/// `start_time` as written: RFC 3339, or a duration ago.
pub fn parse_start_time(text: &str) -> Result<StartTime, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(StartTime::At(at.with_timezone(&Utc)));
    }
    humantime::parse_duration(text)
        .map(StartTime::Ago)
        .map_err(|_| format!("start_time `{text}` is neither RFC 3339 (2026-08-01T00:00:00Z) nor a duration (30d, 12h)"))
}

impl OnePasswordSourceConfig {
    /// Valid settings that will not do what they say at `now`: a
    /// `start_time` beyond the API's 120 days.
    pub fn warnings(&self, now: DateTime<Utc>) -> Vec<FieldError> {
        let Some(Ok(start)) = self.start_time.as_deref().map(parse_start_time) else {
            return Vec::new();
        };
        let too_old = match start {
            StartTime::Ago(ago) => ago > RETENTION,
            StartTime::At(at) => {
                at < now - chrono::Duration::from_std(RETENTION).expect("120 days fit")
            }
        };
        if !too_old {
            return Vec::new();
        }
        vec![FieldError::new(
            "start_time",
            "start_time is older than the API's 120 days of retention; the first run starts at the oldest event it still has",
        )]
    }

    /// Check the settings without I/O; relative paths resolve against `dir`.
    pub fn validate(self, dir: &Path) -> Result<Settings, Vec<FieldError>> {
        let mut errors = Vec::new();
        // Reported after the token, url, streams and start_time, in the
        // order of the settings' documentation.
        let mut out_of_range = Vec::new();
        self.check_ranges(&mut out_of_range);
        let token = SecretSource::from_config(self.token, self.token_file, dir, "a token")
            .map_err(|error| errors.push(error))
            .ok();
        let url = check_url(self.url.as_deref(), self.allow_custom_url, &mut errors);
        if let Some(SecretSource::Inline(secret)) = &token {
            errors.extend(
                token_problems(secret, url.as_ref(), self.allow_custom_url, "token").errors,
            );
        }
        if let Some(streams) = &self.streams {
            check_streams(streams, &mut errors);
        }
        let start_time = match self.start_time.as_deref().map(parse_start_time) {
            None => StartTime::Ago(Duration::from_secs(7 * 24 * 3600)),
            Some(Ok(start)) => start,
            Some(Err(message)) => {
                errors.push(FieldError::new("start_time", message));
                StartTime::Ago(Duration::ZERO)
            }
        };
        errors.extend(out_of_range);
        if let Some(proxy) = &self.proxy
            && reqwest::Url::parse(proxy.expose()).is_err()
        {
            errors.push(FieldError::new("proxy", "proxy is not a URL"));
        }
        let (Some(token), true) = (token, errors.is_empty()) else { return Err(errors) };
        Ok(Settings {
            token,
            url,
            allow_custom_url: self.allow_custom_url,
            streams: self.streams,
            api_version: self.api_version,
            start_time,
            limit: self.limit,
            interval: Duration::from_secs(self.interval_secs),
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            max_pages_in_flight: self.max_pages_in_flight,
            refused_retry: Duration::from_secs(self.refused_retry_secs),
            retry_max_backoff: Duration::from_secs(self.retry_max_backoff_secs),
            unhealthy_after: Duration::from_secs(self.unhealthy_after_secs),
            proxy: self.proxy,
            // An empty `ca_file` (an unset variable) means none, as for the sinks.
            ca_file: self.tls.ca_file.filter(|f| !f.as_os_str().is_empty()).map(|f| dir.join(f)),
            rate_limit: self.rate_limit,
        })
    }

    /// The numeric settings, each within its range (core's wording).
    fn check_ranges(&self, errors: &mut Vec<FieldError>) {
        check_range(errors, "limit", self.limit, (1, 1000));
        check_range(errors, "interval_secs", self.interval_secs, (1, 86_400));
        check_range(errors, "request_timeout_secs", self.request_timeout_secs, (1, 3600));
        check_range(errors, "max_pages_in_flight", self.max_pages_in_flight, (1, 1000));
        check_range(errors, "refused_retry_secs", self.refused_retry_secs, (1, 86_400));
        check_range(errors, "retry_max_backoff_secs", self.retry_max_backoff_secs, (1, 3600));
        check_range(errors, "unhealthy_after_secs", self.unhealthy_after_secs, (1, 86_400));
        if self.rate_limit.per_minute == 0 || self.rate_limit.per_hour == 0 {
            errors.push(FieldError::new("rate_limit", "rate_limit values must be at least 1"));
        }
    }
}

/// The configured `url`: an https URL of a 1Password events host (another
/// host needs `allow_custom_url`), without credentials. Empty (an unset
/// `${OP_EVENTS_URL:-}`) or absent means: from the token.
fn check_url(
    url: Option<&str>,
    allow_custom_url: bool,
    errors: &mut Vec<FieldError>,
) -> Option<reqwest::Url> {
    let url = match reqwest::Url::parse(url.map(str::trim).filter(|u| !u.is_empty())?) {
        Ok(url) => url,
        Err(err) => {
            errors.push(FieldError::new("url", format!("url is not a URL: {err}")));
            return None;
        }
    };
    let host = url.host_str().unwrap_or_default().to_owned();
    let problem = if !matches!(url.scheme(), "http" | "https") {
        format!("url `{url}` must be http or https")
    } else if url.scheme() == "http" && is_allowed_host(&host) {
        format!("url `{url}` must be https: the token would cross the network in clear")
    } else if !url.username().is_empty() || url.password().is_some() {
        "the url must not hold credentials; the token goes in `token` or `token_file`".into()
    } else {
        if !allow_custom_url && !is_allowed_host(&host) {
            errors.push(FieldError::new("url", format!(
                "`{host}` is not a 1Password events host ({}); set `allow_custom_url: true` to send the token there",
                ALLOWED_HOSTS.join(", ")
            )));
        }
        return Some(url);
    };
    errors.push(FieldError::new("url", problem));
    None
}

/// `streams`, when given: not empty, none twice.
fn check_streams(streams: &[Stream], errors: &mut Vec<FieldError>) {
    if streams.is_empty() {
        errors.push(FieldError::new(
            "streams",
            "streams must not be empty (leave it out for every permitted stream)",
        ));
    }
    let mut seen = streams.to_vec();
    seen.sort();
    seen.dedup();
    if seen.len() != streams.len() {
        errors.push(FieldError::new("streams", "a stream is listed twice"));
    }
}

#[cfg(test)]
mod tests;

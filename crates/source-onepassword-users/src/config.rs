//! The `onepassword_users` source's settings, validated without any I/O.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sluice_core::config::{FieldError, check_range};
use sluice_core::{Secret, SecretSource};

/// The Users API's regional hosts (1Password's docs name these three).
pub const ALLOWED_HOSTS: [&str; 3] = ["api.1password.com", "api.1password.ca", "api.1password.eu"];

/// TLS settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Extra CA certificates (PEM) to trust, e.g. for a TLS-inspecting proxy.
    pub ca_file: Option<PathBuf>,
}

/// `type: onepassword_users` under `sources`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersSourceConfig {
    /// The regional API host: `https://api.1password.com` (default), `.ca`
    /// or `.eu`; another needs `allow_custom_url: true`.
    pub url: Option<String>,
    /// Allow a `url` outside 1Password's three API hosts.
    #[serde(default)]
    pub allow_custom_url: bool,
    /// The account's ID (26 upper-case letters and digits).
    pub account_id: String,
    /// The OAuth application's client ID.
    pub client_id: String,
    /// Its client secret (use `${VAR}`); or `client_secret_file`.
    pub client_secret: Option<Secret>,
    /// A file holding the client secret, read again at each new token.
    pub client_secret_file: Option<PathBuf>,
    /// Seconds between polls (default 900).
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    /// Seconds between full inventories (default 86,400); polls in between
    /// send only what changed.
    #[serde(default = "default_snapshot")]
    pub snapshot_interval_secs: u64,
    /// Users per page, 1 to 1000 (default 1000).
    #[serde(default = "default_page_size")]
    pub max_page_size: u32,
    /// The resource paths' prefix (default `/v1beta1`; `/v1` at general
    /// availability).
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    /// The token endpoint (default `/v1beta1/users/oauth2/token`;
    /// `/v1/oauth/token` at general availability).
    #[serde(default = "default_token_path")]
    pub token_path: String,
    /// The revoke endpoint, called at shutdown (default
    /// `/v1beta1/users/oauth2/revoke`; empty: never revoke).
    #[serde(default = "default_revoke_path")]
    pub revoke_path: String,
    /// Seconds before a request times out (default 30).
    #[serde(default = "default_timeout")]
    pub request_timeout_secs: u64,
    /// Seconds between retries while the API refuses the credentials (default 60).
    #[serde(default = "default_refused_retry")]
    pub refused_retry_secs: u64,
    /// The longest wait between retries of a failed request (default 60).
    #[serde(default = "default_max_backoff")]
    pub retry_max_backoff_secs: u64,
    /// Seconds requests may keep failing before `/health` reports the
    /// source (default 300).
    #[serde(default = "default_unhealthy_after")]
    pub unhealthy_after_secs: u64,
    /// An HTTP(S) proxy URL (it may hold credentials: redacted like a secret).
    pub proxy: Option<Secret>,
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsConfig,
}

fn default_interval() -> u64 {
    900
}
fn default_snapshot() -> u64 {
    86_400
}
fn default_page_size() -> u32 {
    1000
}
fn default_prefix() -> String {
    "/v1beta1".into()
}
fn default_token_path() -> String {
    "/v1beta1/users/oauth2/token".into()
}
fn default_revoke_path() -> String {
    "/v1beta1/users/oauth2/revoke".into()
}
fn default_timeout() -> u64 {
    30
}
fn default_refused_retry() -> u64 {
    60
}
fn default_max_backoff() -> u64 {
    60
}
fn default_unhealthy_after() -> u64 {
    300
}

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The API's base URL, without a trailing slash.
    pub base: reqwest::Url,
    /// The account.
    pub account_id: String,
    /// The client ID.
    pub client_id: String,
    /// The client secret.
    pub client_secret: SecretSource,
    /// Between polls.
    pub interval: Duration,
    /// Between full inventories.
    pub snapshot_interval: Duration,
    /// Users per page.
    pub max_page_size: u32,
    /// The resource paths' prefix, without a trailing slash.
    pub path_prefix: String,
    /// The token endpoint's path.
    pub token_path: String,
    /// The revoke endpoint's path (`None`: never revoke).
    pub revoke_path: Option<String>,
    /// Request timeout.
    pub request_timeout: Duration,
    /// Retry of refused credentials.
    pub refused_retry: Duration,
    /// Backoff ceiling.
    pub retry_max_backoff: Duration,
    /// Failing this long turns `/health`.
    pub unhealthy_after: Duration,
    /// Proxy.
    pub proxy: Option<Secret>,
    /// Extra CA certificates.
    pub ca_file: Option<PathBuf>,
}

impl UsersSourceConfig {
    /// Check the settings without I/O; relative paths resolve against `dir`.
    pub fn validate(self, dir: &Path) -> Result<Settings, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut out_of_range = Vec::new();
        self.check_ranges(&mut out_of_range);
        let base = check_url(self.url.as_deref(), self.allow_custom_url, &mut errors);
        if !is_account_id(&self.account_id) {
            errors.push(FieldError::new(
                "account_id",
                format!("account_id `{}` is not a 1Password account ID (26 upper-case letters and digits, the part of the web app's URL between `/app#/` and `/AllItems`)", self.account_id),
            ));
        }
        if self.client_id.trim().is_empty() {
            errors.push(FieldError::new("client_id", "client_id must not be empty"));
        }
        let client_secret =
            secret_source(self.client_secret, self.client_secret_file, dir, &mut errors);
        for (field, path) in [("path_prefix", &self.path_prefix), ("token_path", &self.token_path)]
        {
            if !path.starts_with('/') {
                errors.push(FieldError::new(field, format!("{field} `{path}` must start with /")));
            }
        }
        if !self.revoke_path.is_empty() && !self.revoke_path.starts_with('/') {
            errors.push(FieldError::new(
                "revoke_path",
                "revoke_path must start with / (or be empty: never revoke)",
            ));
        }
        errors.extend(out_of_range);
        if let Some(proxy) = &self.proxy
            && reqwest::Url::parse(proxy.expose()).is_err()
        {
            errors.push(FieldError::new("proxy", "proxy is not a URL"));
        }
        let (Some(base), Some(client_secret), true) = (base, client_secret, errors.is_empty())
        else {
            return Err(errors);
        };
        Ok(Settings {
            base,
            account_id: self.account_id,
            client_id: self.client_id,
            client_secret,
            interval: Duration::from_secs(self.interval_secs),
            snapshot_interval: Duration::from_secs(self.snapshot_interval_secs),
            max_page_size: self.max_page_size,
            path_prefix: self.path_prefix.trim_end_matches('/').to_owned(),
            token_path: self.token_path,
            revoke_path: Some(self.revoke_path).filter(|p| !p.is_empty()),
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            refused_retry: Duration::from_secs(self.refused_retry_secs),
            retry_max_backoff: Duration::from_secs(self.retry_max_backoff_secs),
            unhealthy_after: Duration::from_secs(self.unhealthy_after_secs),
            proxy: self.proxy,
            ca_file: self.tls.ca_file.filter(|f| !f.as_os_str().is_empty()).map(|f| dir.join(f)),
        })
    }

    /// The numeric settings, each within its range (core's wording).
    fn check_ranges(&self, errors: &mut Vec<FieldError>) {
        check_range(errors, "interval_secs", self.interval_secs, (1, 86_400));
        check_range(
            errors,
            "snapshot_interval_secs",
            self.snapshot_interval_secs,
            (60, 30 * 86_400),
        );
        check_range(errors, "max_page_size", self.max_page_size, (1, 1000));
        check_range(errors, "request_timeout_secs", self.request_timeout_secs, (1, 3600));
        check_range(errors, "refused_retry_secs", self.refused_retry_secs, (1, 86_400));
        check_range(errors, "retry_max_backoff_secs", self.retry_max_backoff_secs, (1, 3600));
        check_range(errors, "unhealthy_after_secs", self.unhealthy_after_secs, (1, 86_400));
    }
}

/// The client secret: inline or from a file (resolved against `dir`), not both.
fn secret_source(
    inline: Option<Secret>,
    file: Option<PathBuf>,
    dir: &Path,
    errors: &mut Vec<FieldError>,
) -> Option<SecretSource> {
    match (inline, file) {
        (Some(secret), None) if secret.expose().is_empty() => {
            errors.push(FieldError::new(
                "client_secret",
                "client_secret is empty (an unset variable?)",
            ));
            None
        }
        (Some(secret), None) => Some(SecretSource::Inline(secret)),
        (None, Some(file)) => Some(SecretSource::File(dir.join(file))),
        (Some(_), Some(_)) => {
            errors.push(FieldError::new(
                "client_secret_file",
                "set either `client_secret` or `client_secret_file`, not both",
            ));
            None
        }
        (None, None) => {
            errors.push(FieldError {
                field: None,
                message: "a client secret is required: set `client_secret` or `client_secret_file`"
                    .into(),
            });
            None
        }
    }
}

/// `^[A-Z0-9]{26}$`.
fn is_account_id(id: &str) -> bool {
    id.len() == 26 && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// The configured `url` (default `https://api.1password.com`): https for
/// 1Password's hosts, no credentials, another host only with `allow_custom_url`.
fn check_url(
    url: Option<&str>,
    allow_custom_url: bool,
    errors: &mut Vec<FieldError>,
) -> Option<reqwest::Url> {
    let text = url.map(str::trim).filter(|u| !u.is_empty()).unwrap_or("https://api.1password.com");
    let url = match reqwest::Url::parse(text) {
        Ok(url) => url,
        Err(err) => {
            errors.push(FieldError::new("url", format!("url is not a URL: {err}")));
            return None;
        }
    };
    let host = url.host_str().unwrap_or_default().to_owned();
    let allowed = ALLOWED_HOSTS.contains(&host.as_str());
    let problem = if !matches!(url.scheme(), "http" | "https") {
        format!("url `{url}` must be http or https")
    } else if url.scheme() == "http" && allowed {
        format!("url `{url}` must be https: the client secret would cross the network in clear")
    } else if !url.username().is_empty() || url.password().is_some() {
        "the url must not hold credentials; they go in `client_id` and `client_secret`".into()
    } else if !allowed && !allow_custom_url {
        format!(
            "`{host}` is not a 1Password Users API host ({}); set `allow_custom_url: true` to send the client secret there",
            ALLOWED_HOSTS.join(", ")
        )
    } else {
        return Some(url);
    };
    errors.push(FieldError::new("url", problem));
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Settings, Vec<FieldError>> {
        let config: UsersSourceConfig = serde_yaml_ng::from_str(yaml).expect("yaml");
        config.validate(Path::new("/etc/sluice"))
    }

    fn messages(yaml: &str) -> Vec<String> {
        parse(yaml).expect_err("invalid").into_iter().map(|e| e.message).collect()
    }

    const GOOD: &str = "account_id: XLQMR47VZPBKJHSGWNCYFDE3T9\nclient_id: 5ab87915-2deb-429c-a1e2-8b0495900f45\nclient_secret: s3cr3t-value\n";

    #[test]
    fn defaults_follow_the_docs() {
        let settings = parse(GOOD).expect("valid");
        assert_eq!(settings.base.as_str(), "https://api.1password.com/");
        assert_eq!(settings.interval, Duration::from_secs(900));
        assert_eq!(settings.snapshot_interval, Duration::from_secs(86_400));
        assert_eq!(settings.max_page_size, 1000);
        assert_eq!(settings.path_prefix, "/v1beta1");
        assert_eq!(settings.token_path, "/v1beta1/users/oauth2/token");
        assert_eq!(settings.revoke_path.as_deref(), Some("/v1beta1/users/oauth2/revoke"));
        assert!(!format!("{settings:?}").contains("s3cr3t-value"), "the secret never prints");
    }

    #[test]
    fn hosts_are_the_three_regions_unless_allowed() {
        let eu = parse(&format!("{GOOD}url: https://api.1password.eu\n")).expect("valid");
        assert_eq!(eu.base.host_str(), Some("api.1password.eu"));
        let errors = messages(&format!("{GOOD}url: https://users.example.com\n"));
        assert!(errors[0].contains("not a 1Password Users API host"), "{errors:?}");
        assert!(
            parse(&format!("{GOOD}url: http://127.0.0.1:8080\nallow_custom_url: true\n")).is_ok()
        );
        let clear = messages(&format!("{GOOD}url: http://api.1password.com\n"));
        assert!(clear[0].contains("must be https"), "{clear:?}");
    }

    #[test]
    fn bad_values_are_named_at_their_keys() {
        let yaml = "account_id: acct\nclient_id: ''\nmax_page_size: 1001\ninterval_secs: 0\ntoken_path: oauth/token\n";
        let errors = messages(yaml);
        let joined = errors.join("\n");
        for wanted in [
            "account_id",
            "client_id must not be empty",
            "a client secret is required",
            "token_path `oauth/token` must start with /",
            "max_page_size",
            "interval_secs",
        ] {
            assert!(joined.contains(wanted), "{wanted}: {joined}");
        }
        let both = messages(&format!("{GOOD}client_secret_file: secret.txt\n"));
        assert!(both[0].contains("not both"), "{both:?}");
    }

    #[test]
    fn general_availability_paths_are_settings() {
        let ga = parse(&format!(
            "{GOOD}path_prefix: /v1/\ntoken_path: /v1/oauth/token\nrevoke_path: ''\n"
        ))
        .expect("valid");
        assert_eq!((ga.path_prefix.as_str(), ga.token_path.as_str()), ("/v1", "/v1/oauth/token"));
        assert_eq!(ga.revoke_path, None);
    }
}

//! The `onepassword` source: a preflight that checks the token against the
//! API before anything runs, then one poller per stream.

use std::sync::Arc;

use sluice_core::component::{
    BoxError, ComponentFuture, FileChecks, PreflightFuture, Source, SourceContext, Unreachable,
};
use sluice_core::{Secret, SecretSource};

use crate::streams::Stream;

use sluice_core::http::{ClientSettings, TlsConfig, build_client};

use crate::Error;
use crate::checkpoint;
use crate::client::{ApiClient, ApiError, path_of};
use crate::config::{Settings, is_allowed_host, issued_for, token_problems};
use crate::limiter::Limiter;
use crate::stream::StreamPoller;
use crate::token::decode;

/// Warn when the token expires within this long.
const EXPIRY_WARNING: i64 = 7 * 24 * 3600;

/// What the preflight established.
#[derive(Debug)]
struct Resolved {
    client: ApiClient,
    streams: Vec<Stream>,
    token: Secret,
    account: Option<String>,
}

/// A validated `onepassword` source.
#[derive(Debug)]
pub struct OnePasswordSource {
    settings: Arc<Settings>,
    resolved: Option<Resolved>,
    /// Why the API could not be asked at the preflight, if it could not.
    unreachable: Option<String>,
    /// What the token claims, when the API refused it at the preflight: a
    /// run started anyway polls these streams, each shown on `/health` as
    /// refused and tried again every `refused_retry_secs` (a fixed
    /// `token_file` is read again), so one account's bad token stops only
    /// that account.
    refused: Option<Resolved>,
}

impl OnePasswordSource {
    /// A source with validated settings.
    pub fn new(settings: Settings) -> Self {
        Self { settings: Arc::new(settings), resolved: None, unreachable: None, refused: None }
    }

    fn http(&self) -> Result<reqwest::Client, Error> {
        build_client(&ClientSettings {
            timeout: self.settings.request_timeout,
            tls: TlsConfig { ca_file: self.settings.ca_file.clone(), ..TlsConfig::default() },
            proxy: self.settings.proxy.clone(),
        })
        .map_err(|e| Error::Preflight(e.to_string()))
    }

    async fn resolve(&mut self) -> Result<Resolved, Error> {
        let settings = &self.settings;
        let token = settings.token.load().map_err(|e| Error::Token(e.to_string()))?;
        let claims = decode(&token)?;
        check_expiry(claims.expires_at)?;
        let base = match &settings.url {
            Some(url) => url.clone(),
            None => base_of_audience(&claims.audience, settings.allow_custom_url)?,
        };
        let client = ApiClient::new(self.http()?, &base, settings.api_version);
        // The introspection counts against the token's rate limit as a page
        // request does: it goes through the same limiter, or a backfill's
        // first minute draws a 429 (600 pages plus this one).
        Limiter::for_token(&token, settings.rate_limit).acquire(|_| {}).await;
        let features = match client.introspect(&token).await {
            Ok(features) => features,
            Err(ApiError::Unauthorized) => {
                if let Ok(streams) =
                    streams_permitted(&claims.features, settings.streams.as_deref())
                {
                    self.refused = Some(Resolved {
                        client: client.clone(),
                        streams,
                        token: token.clone(),
                        account: claims.account.clone(),
                    });
                }
                let hint = if issued_for(&claims.audience, &base) {
                    String::new()
                } else {
                    format!(" (it was issued for `{}`)", claims.audience)
                };
                return Err(Error::Preflight(format!(
                    "{} refused the token (401 Unauthorized): it is wrong, revoked or expired{hint}",
                    client.base()
                )));
            }
            Err(err) => {
                self.unreachable = Some(format!("{} cannot be reached: {err}", client.base()));
                claims.features.clone()
            }
        };
        let streams = streams_permitted(&features, settings.streams.as_deref())?;
        Ok(Resolved { client, streams, token, account: claims.account.clone() })
    }
}

/// An expired token is an error; one that expires within 7 days is warned about.
fn check_expiry(expires_at: Option<i64>) -> Result<(), Error> {
    let Some(exp) = expires_at else { return Ok(()) };
    let now = chrono::Utc::now().timestamp();
    let at = chrono::DateTime::from_timestamp(exp, 0).map(|t| t.to_rfc3339()).unwrap_or_default();
    if exp <= now {
        return Err(Error::Token(format!(
            "the token expired at {at}; issue a new one in 1Password (Integrations > Events Reporting)"
        )));
    }
    if exp - now < EXPIRY_WARNING {
        tracing::warn!(expires_at = %at, "the Events API token expires within 7 days");
    }
    Ok(())
}

/// The API's address when `url` is not set: the token's audience, which
/// must be a 1Password events host unless `allow_custom_url`.
fn base_of_audience(audience: &str, allow_custom_url: bool) -> Result<reqwest::Url, Error> {
    if !allow_custom_url && !is_allowed_host(audience) {
        return Err(Error::Token(format!(
            "the token's audience `{audience}` is not a 1Password events host; set `url` and `allow_custom_url: true` to use it"
        )));
    }
    reqwest::Url::parse(&format!("https://{audience}"))
        .map_err(|e| Error::Token(format!("the token's audience `{audience}` is not a host: {e}")))
}

/// The streams to poll: those configured, each of which the token's
/// `features` must permit, or every permitted one.
fn streams_permitted(features: &[String], wanted: Option<&[Stream]>) -> Result<Vec<Stream>, Error> {
    let permitted: Vec<Stream> =
        Stream::ALL.into_iter().filter(|s| features.iter().any(|f| f == path_of(*s))).collect();
    match wanted {
        Some(wanted) => {
            let missing: Vec<String> = wanted
                .iter()
                .filter(|s| !permitted.contains(s))
                .map(|s| format!("{s} (needs the `{}` feature)", path_of(*s)))
                .collect();
            if !missing.is_empty() {
                return Err(Error::Preflight(format!(
                    "the token does not permit stream {}; it has: {}",
                    missing.join(", "),
                    if features.is_empty() { "no feature".into() } else { features.join(", ") }
                )));
            }
            Ok(wanted.to_vec())
        }
        None if permitted.is_empty() => {
            Err(Error::Preflight("the token permits no event stream".into()))
        }
        None => Ok(permitted),
    }
}

impl Source for OnePasswordSource {
    fn check_files(&self) -> FileChecks {
        let settings = &self.settings;
        match &settings.token {
            SecretSource::File(path) => match Secret::from_file(path) {
                Ok(secret) => token_problems(
                    &secret,
                    settings.url.as_ref(),
                    settings.allow_custom_url,
                    "token_file",
                ),
                Err(err) => FileChecks::errors([err.token_file_error()]),
            },
            // Errors of an inline token are the settings' own (validate).
            SecretSource::Inline(secret) => FileChecks {
                errors: Vec::new(),
                warnings: token_problems(
                    secret,
                    settings.url.as_ref(),
                    settings.allow_custom_url,
                    "token",
                )
                .warnings,
            },
        }
    }

    fn preflight(&mut self) -> PreflightFuture<'_> {
        Box::pin(async move {
            self.unreachable = None;
            let resolved = match self.resolve().await {
                Ok(resolved) => resolved,
                Err(err) => {
                    self.resolved = self.refused.take();
                    return Err(err.into());
                }
            };
            let streams: Vec<&str> = resolved.streams.iter().map(|s| s.as_str()).collect();
            let url = resolved.client.base().to_owned();
            self.resolved = Some(resolved);
            // Started anyway with the streams the token claims; the pollers retry.
            if let Some(reason) = self.unreachable.take() {
                let message = format!(
                    "{reason}; using the streams the token claims ({})",
                    streams.join(", ")
                );
                return Err(Unreachable(message).into());
            }
            tracing::info!(%url, streams = ?streams, "Events API token accepted");
            Ok(())
        })
    }

    fn run(mut self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            if self.resolved.is_none() {
                match self.preflight().await {
                    // The API could not be asked: the pollers retry it.
                    Err(err) if err.downcast_ref::<Unreachable>().is_some() => {
                        tracing::warn!(error = %err, "starting anyway");
                    }
                    // Refused, with the streams the token claims: they show
                    // as refused on /health and are tried again.
                    Err(err) if self.resolved.is_some() => {
                        tracing::error!(error = %err, "starting the streams the token claims; they retry until the API accepts the token");
                    }
                    other => other?,
                }
            }
            let Some(resolved) = self.resolved.take() else {
                return Err("the preflight did not resolve the token".into());
            };
            let limiter = Limiter::for_token(&resolved.token, self.settings.rate_limit);
            let out = Arc::new(cx.out);
            let consumers: Arc<[String]> = cx.consumers.into();
            let mut tasks = tokio::task::JoinSet::new();
            for stream in resolved.streams {
                let poller = StreamPoller {
                    stream,
                    source_id: cx.id.clone(),
                    settings: self.settings.clone(),
                    client: resolved.client.clone(),
                    limiter: limiter.clone(),
                    out: out.clone(),
                    shutdown: cx.shutdown.clone(),
                    health: cx.health.clone(),
                    metrics: cx.metrics.clone(),
                    checkpoint_path: checkpoint::path(&cx.data_dir, &cx.id, stream),
                    account: resolved.account.clone(),
                    consumers: consumers.clone(),
                };
                tasks.spawn(tracing::Instrument::in_current_span(poller.run()));
            }
            let mut first_error: Option<BoxError> = None;
            while let Some(joined) = tasks.join_next().await {
                let result = joined
                    .unwrap_or_else(|join| Err(format!("a stream poller panicked: {join}").into()));
                if let Err(err) = result {
                    tracing::error!(error = %err, "a stream stopped; stopping the source");
                    cx.shutdown.cancel();
                    first_error.get_or_insert(err);
                }
            }
            first_error.map_or(Ok(()), Err)
        })
    }
}

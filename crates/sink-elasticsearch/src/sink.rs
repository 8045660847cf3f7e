//! The `elasticsearch` sink: encode + the bulk client, run by core's
//! delivery layer (batching, concurrency, retries, dead letter, health).

use sluice_core::component::{
    ComponentFuture, FileChecks, PreflightFuture, Sink, SinkContext, Unreachable,
};
use sluice_core::sink::{BatchSink, RequestError};

use crate::client::EsClient;
use crate::config::{Ingest, Settings};
use crate::encode::encode;
use crate::{hooks, integration, privileges};

/// The version whose built-in `ecs@mappings` types ECS fields in `logs-*-*`.
const ECS_MAPPINGS_SINCE: (u64, u64) = (8, 13);

/// A validated `elasticsearch` sink.
#[derive(Debug)]
pub struct ElasticsearchSink {
    settings: Settings,
}

impl ElasticsearchSink {
    /// A sink with validated settings.
    pub fn new(settings: Settings) -> Self {
        Self { settings }
    }
}

fn version_below(version: &str, (major, minor): (u64, u64)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) < (major, minor)
}

impl Sink for ElasticsearchSink {
    fn check_files(&self) -> FileChecks {
        FileChecks::errors(sluice_core::http::check_ca_file(&self.settings.tls))
    }

    fn preflight(&mut self) -> PreflightFuture<'_> {
        Box::pin(async move {
            let client = EsClient::new(&self.settings)?;
            match client.version().await {
                Ok(version) => {
                    if self.settings.auth.is_some()
                        && let Some(missing) = privileges::missing(&client, &self.settings).await
                        && !missing.is_empty()
                    {
                        return Err(privileges::lacking(&missing).into());
                    }
                    if self.settings.ingest == Ingest::Elastic {
                        tracing::info!(%version, "Elasticsearch reached");
                        return integration::check(&client, &self.settings).await;
                    }
                    if version_below(&version, ECS_MAPPINGS_SINCE) {
                        tracing::warn!(%version, "Elasticsearch is older than 8.13, whose ecs@mappings types ECS fields in logs-*-* data streams; install the 1Password integration's templates");
                    } else {
                        tracing::info!(%version, "Elasticsearch reached");
                    }
                    Ok(())
                }
                Err(RequestError::Refused(failure)) if self.settings.auth.is_none() => {
                    Err(format!("Elasticsearch wants credentials and none were sent (`auth` is not set, or its api_key is empty: is ES_API_KEY set?): {failure}").into())
                }
                Err(RequestError::Refused(failure)) if failure.status == Some(403) => {
                    let missing = privileges::missing(&client, &self.settings).await;
                    match missing.filter(|m| !m.is_empty()) {
                        Some(missing) => Err(privileges::lacking(&missing).into()),
                        None => Err(format!("Elasticsearch refused the API key ({failure}); check its privileges (README: \"The API key's privileges\")").into()),
                    }
                }
                Err(RequestError::Refused(failure)) => {
                    Err(format!("Elasticsearch refused the credentials ({failure}); check `auth`")
                        .into())
                }
                Err(err) if err.failure().kind == "tls_certificate" => Err(format!(
                    "sluice refused Elasticsearch's TLS certificate ({}); give the CA that signed it in `tls.ca_file` (e.g. the cluster's http_ca.crt), or set `tls.server_name` to a name the certificate holds",
                    err.failure()
                )
                .into()),
                Err(err) => {
                    Err(Unreachable(format!("Elasticsearch cannot be reached: {}", err.failure()))
                        .into())
                }
            }
        })
    }

    fn prepare(&mut self) -> PreflightFuture<'_> {
        Box::pin(async move {
            if self.settings.wants_hooks() {
                let client = EsClient::new(&self.settings)?;
                let kind = self.settings.data_stream.kind.clone();
                self.settings.hooks_installed = Some(hooks::install(&client, &kind).await?);
            }
            Ok(())
        })
    }

    fn run(self: Box<Self>, cx: SinkContext) -> ComponentFuture {
        Box::pin(async move {
            sluice_core::http::warn_if_unverified(&cx.id, &self.settings.tls);
            if self.settings.wants_hooks() && self.settings.hooks_installed.is_none() {
                tracing::warn!(component = %cx.id, "the {} pipeline was not installed (Elasticsearch could not be reached at start): bulk requests carry pipeline=_none, so @custom ingest pipelines do not run on sluice's documents until a restart or reload installs it", hooks::HOOKS_PIPELINE);
            }
            let service = EsClient::new(&self.settings)?;
            let delivery = self.settings.delivery.clone();
            let settings = self.settings;
            let sink = BatchSink {
                destination: "Elasticsearch",
                service,
                encode: move |event: &mut sluice_core::Event| {
                    encode(event, &settings).map_err(sluice_core::sink::EncodeError::from)
                },
                settings: delivery,
            };
            sink.run(cx).await
        })
    }
}

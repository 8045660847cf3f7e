//! The `onepassword_users` source: the preflight (a token and the first
//! page, so a wrong secret stops the start with a clear error) and the run
//! (the inventory on the polling kit, the token revoked at the end).

use std::sync::Arc;
use std::time::Duration;

use sluice_core::SecretSource;
use sluice_core::component::{
    ComponentFuture, FileChecks, PreflightFuture, Source, SourceContext, Unreachable,
};
use sluice_core::config::FieldError;
use sluice_core::http::{ClientSettings, TlsConfig, build_client};
use sluice_core::poll::{CheckpointStore, PollMetrics, PollSettings, Poller};

use crate::client::{UsersClient, UsersError};
use crate::config::Settings;
use crate::target::{Target, load_checkpoint};

/// How long the revocation at shutdown may take.
const REVOKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A validated `onepassword_users` source.
#[derive(Debug)]
pub struct UsersSource {
    settings: Arc<Settings>,
    /// The client the preflight used (its token is reused).
    client: Option<UsersClient>,
}

impl UsersSource {
    /// A source with validated settings.
    pub fn new(settings: Settings) -> Self {
        Self { settings: Arc::new(settings), client: None }
    }

    fn client(&self) -> Result<UsersClient, String> {
        let http = build_client(&ClientSettings {
            timeout: self.settings.request_timeout,
            tls: TlsConfig { ca_file: self.settings.ca_file.clone(), ..TlsConfig::default() },
            proxy: self.settings.proxy.clone(),
        })
        .map_err(|e| e.to_string())?;
        Ok(UsersClient::new(http, self.settings.clone()))
    }
}

impl Source for UsersSource {
    fn check_files(&self) -> FileChecks {
        match &self.settings.client_secret {
            SecretSource::File(path) => match sluice_core::Secret::from_file(path) {
                Ok(_) => FileChecks::default(),
                Err(err) => FileChecks::errors([FieldError::new(
                    "client_secret_file",
                    format!(
                        "cannot read the client secret file {}: {}",
                        err.path.display(),
                        err.problem
                    ),
                )]),
            },
            SecretSource::Inline(_) => FileChecks::default(),
        }
    }

    fn preflight(&mut self) -> PreflightFuture<'_> {
        Box::pin(async move {
            let mut client = self.client()?;
            let account = &self.settings.account_id;
            match client.check().await {
                Ok(users) => {
                    tracing::info!(account = %account, first_page = users, "Users API credentials accepted");
                    self.client = Some(client);
                    Ok(())
                }
                Err(
                    err @ (UsersError::Transport(_)
                    | UsersError::Status(..)
                    | UsersError::RateLimited { .. }),
                ) => {
                    self.client = Some(client);
                    Err(Unreachable(format!("the Users API could not be asked: {err}")).into())
                }
                // Refused: a run started anyway polls and shows the refusal
                // on /health, tried again every refused_retry_secs.
                Err(err) => {
                    self.client = Some(client);
                    Err(format!("account {account}: {err}").into())
                }
            }
        })
    }

    fn run(mut self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            if self.client.is_none() {
                match self.preflight().await {
                    Err(err) if err.downcast_ref::<Unreachable>().is_some() => {
                        tracing::warn!(error = %err, "starting anyway");
                    }
                    Err(err) if self.client.is_some() => {
                        tracing::error!(error = %err, "starting anyway; the source retries until the API accepts its credentials");
                    }
                    other => other?,
                }
            }
            let client = match self.client.take() {
                Some(client) => client,
                None => self.client()?,
            };
            let store = CheckpointStore::new(cx.data_dir.join(&cx.id).join("users.json"));
            let committed = Arc::new(load_checkpoint(&store, &self.settings, &cx.id, &cx.metrics)?);
            crate::target::publish(&cx.id, &committed.users);
            let metrics = PollMetrics::new(&cx.metrics, "sluice_onepassword", "users");
            let kit = Poller {
                out: Arc::new(cx.out),
                shutdown: cx.shutdown.clone(),
                health: cx.health.clone(),
                metrics,
                settings: PollSettings {
                    // One listing at a time: each is compared with the one before.
                    max_in_flight: 1,
                    retry_max_backoff: self.settings.retry_max_backoff,
                    refused_retry: self.settings.refused_retry,
                    unhealthy_after: self.settings.unhealthy_after,
                },
            };
            let mut target = Target {
                client,
                settings: self.settings.clone(),
                store,
                emitted: committed.clone(),
                committed,
                source_id: cx.id.as_str().into(),
                component: cx.metrics.clone(),
            };
            let result = kit.run(&mut target, false).await;
            sluice_core::lookup::withdraw(crate::target::LOOKUP_TABLE, &cx.id);
            match tokio::time::timeout(REVOKE_TIMEOUT, target.client.revoke()).await {
                Ok(Ok(())) => tracing::debug!("the access token is revoked"),
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "the access token could not be revoked; it expires within 15 minutes")
                }
                Err(_) => tracing::warn!(
                    "revoking the access token took too long; it expires within 15 minutes"
                ),
            }
            result
        })
    }
}

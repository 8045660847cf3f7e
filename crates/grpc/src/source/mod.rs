//! The `sluice` source (the aggregator side): a gRPC server for
//! `sluice.v1.Forward` and the standard `grpc.health.v1` service. Each push
//! becomes one acknowledged batch in the topology, and the answer goes back
//! only once the batch is final downstream, so the edge commits its cursor
//! only for what this instance's sinks stored.

pub mod config;
mod joins;
mod server;
mod tls_accept;

use std::sync::Arc;

use sluice_core::component::{ComponentFuture, FileChecks, PreflightFuture, Source, SourceContext};
use sluice_core::secret::SecretSource;
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;

pub use config::{Settings, SluiceSourceConfig};
pub use server::describe_metrics;

use crate::proto::forward_server::ForwardServer;
use server::{Handler, Receiver};

/// A validated `sluice` source.
#[derive(Debug)]
pub struct SluiceSource {
    settings: Settings,
}

impl SluiceSource {
    /// A source with validated settings.
    pub fn new(settings: Settings) -> Self {
        Self { settings }
    }
}

impl Source for SluiceSource {
    fn check_files(&self) -> FileChecks {
        let token = self.settings.token.as_ref().and_then(SecretSource::check_file);
        let tls = self.settings.tls.as_ref().and_then(|t| t.load().err()).map(|e| e.field_error());
        FileChecks::errors(token.into_iter().chain(tls))
    }

    fn preflight(&mut self) -> PreflightFuture<'_> {
        Box::pin(async move {
            // Bad certificate or token files stop the start with their name.
            if let Some(tls) = &self.settings.tls {
                tls.load()?;
            }
            if let Some(token) = &self.settings.token {
                token.load()?;
            }
            Ok(())
        })
    }

    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            let settings = self.settings;
            let token = settings.token.as_ref().map(|t| t.load()).transpose()?;
            let tls = settings.tls.as_ref().map(|t| t.load()).transpose()?;
            let listener = TcpListener::bind(settings.address)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", settings.address))?;
            let address = listener.local_addr()?;
            if !address.ip().is_loopback() {
                if tls.is_none() {
                    tracing::warn!(%address, "listening beyond loopback without TLS: events and the token cross the network in clear; set `tls`");
                }
                if token.is_none()
                    && settings.tls.as_ref().is_none_or(|t| t.client_ca_file.is_none())
                {
                    tracing::warn!(%address, "listening beyond loopback without a token or client certificates: anyone who reaches it can send events; set `token` or `tls.client_ca_file`");
                }
            }
            tracing::info!(
                %address,
                tls = tls.is_some(),
                mutual_tls = settings.tls.as_ref().is_some_and(|t| t.client_ca_file.is_some()),
                token = token.is_some(),
                "listening for sluice edges"
            );
            let shutdown = cx.shutdown.clone();
            let receiver = Arc::new(Receiver::new(cx, token, settings.max_in_flight));
            let (reporter, health) = tonic_health::server::health_reporter();
            reporter.set_serving::<ForwardServer<Handler>>().await;
            let forward = ForwardServer::new(Handler(receiver))
                .max_decoding_message_size(settings.max_message_bytes)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd);
            let router = Server::builder().add_service(health).add_service(forward);
            let signal = {
                let shutdown = shutdown.clone();
                async move {
                    shutdown.cancelled().await;
                    reporter.set_not_serving::<ForwardServer<Handler>>().await;
                }
            };
            match tls {
                None => {
                    let incoming = tonic::transport::server::TcpIncoming::from(listener)
                        .with_nodelay(Some(true));
                    router.serve_with_incoming_shutdown(incoming, signal).await?;
                }
                Some(config) => {
                    let incoming = tls_accept::incoming(listener, config, shutdown);
                    router.serve_with_incoming_shutdown(incoming, signal).await?;
                }
            }
            Ok(())
        })
    }
}

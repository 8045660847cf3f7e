//! The `splunk_hec` component: preflight, then encode + the HEC client on
//! core's delivery layer, with the ack query loop beside it.

use std::sync::Arc;

use sluice_core::component::{
    ComponentFuture, FileChecks, PreflightFuture, Sink, SinkContext, Unreachable,
};
use sluice_core::sink::BatchSink;
use tokio_util::task::AbortOnDropHandle;

use crate::client::{CheckError, HecClient, HecService};
use crate::config::Settings;
use crate::encode::encode;

/// A validated `splunk_hec` sink.
#[derive(Debug)]
pub struct SplunkHecSink {
    settings: Settings,
    id: String,
    /// What the preflight's `/ack` query said: acks on, off, or unknown.
    acks_on: Option<bool>,
}

impl SplunkHecSink {
    /// A sink with validated settings; `id` names it in logs.
    pub fn new(settings: Settings, id: &str) -> Self {
        Self { settings, id: id.to_owned(), acks_on: None }
    }
}

/// What to do when this side refuses Splunk's certificate: a setting.
fn certificate_refused(failure: &str) -> String {
    format!(
        "sluice refused Splunk HEC's TLS certificate ({failure}); give the CA that signed it in `tls.ca_file`, set `tls.server_name` to a name the certificate holds, or for a certificate that names no host (Splunk's default SplunkServerDefaultCert) `tls.verify_hostname: false` with that `tls.ca_file`"
    )
}

impl Sink for SplunkHecSink {
    fn check_files(&self) -> FileChecks {
        let token = self.settings.token.check_file();
        let ca = sluice_core::http::check_ca_file(&self.settings.tls);
        FileChecks::errors(token.into_iter().chain(ca))
    }

    fn preflight(&mut self) -> PreflightFuture<'_> {
        Box::pin(async move {
            let token = self.settings.token.load()?;
            let client = HecClient::new(&self.settings, &token, &self.id, Vec::new())?;
            match client.check().await {
                Ok("off") if self.settings.acks => {
                    tracing::warn!(component = %self.id, "the HEC token has indexer acknowledgement off; sluice will count a 200 as delivered. Turn useACK on for the token");
                    self.acks_on = Some(false);
                    Ok(())
                }
                Ok(acks) => {
                    tracing::info!(component = %self.id, acks, "Splunk HEC accepted the token");
                    self.acks_on = (acks == "on").then_some(true);
                    Ok(())
                }
                Err(CheckError::Token(answer)) => {
                    Err(format!("Splunk refused the HEC token: {answer}").into())
                }
                Err(CheckError::Certificate(failure)) => Err(certificate_refused(&failure).into()),
                Err(CheckError::Unreachable(message)) => {
                    Err(Unreachable(format!("Splunk HEC cannot be reached: {message}")).into())
                }
            }
        })
    }

    fn run(self: Box<Self>, cx: SinkContext) -> ComponentFuture {
        Box::pin(async move {
            sluice_core::http::warn_if_unverified(&cx.id, &self.settings.tls);
            let token = self.settings.token.load()?;
            let client =
                Arc::new(HecClient::new(&self.settings, &token, &cx.id, cx.metrics.labels())?);
            if self.settings.acks {
                client.acks_known(self.acks_on);
            }
            let acks = tracing::Instrument::in_current_span(client.clone().poll_acks());
            let _acks = AbortOnDropHandle::new(tokio::spawn(acks));
            let settings = self.settings;
            let sink = BatchSink {
                destination: "Splunk HEC",
                service: HecService(client),
                settings: settings.delivery.clone(),
                encode: move |event: &mut sluice_core::Event| encode(event, &settings),
            };
            sink.run(cx).await
        })
    }
}

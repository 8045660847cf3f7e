//! `ingest: elastic`: before the first document, check that Elastic's
//! 1Password integration is installed (its index templates name the default
//! pipeline that maps what sluice sends), and say how to install it if not.
//! Reading templates needs the `monitor` cluster privilege, reading the
//! pipeline `read_pipeline`; without them the check is skipped, not failed.

use sluice_core::Stream;
use sluice_core::component::{BoxError, Unreachable};

use crate::client::EsClient;
use crate::config::Settings;

/// How to install the integration's assets, for error messages.
pub const INSTALL_HINT: &str = "install the 1Password integration's assets (Kibana → Integrations → 1Password → Settings → Install 1Password assets, or `POST kbn:/api/fleet/epm/packages/1password`), or set `ingest: sluice` to store sluice's own mapping";

/// What a GET found.
enum Lookup {
    Found(serde_json::Value),
    Missing,
    Forbidden,
}

async fn lookup(client: &EsClient, path: &str) -> Result<Lookup, BoxError> {
    let (status, body) = client
        .get(path)
        .await
        .map_err(|failure| Unreachable(format!("Elasticsearch cannot be reached: {failure}")))?;
    match status {
        200 => serde_json::from_slice(&body)
            .map(Lookup::Found)
            .map_err(|e| format!("GET {path} answered malformed JSON: {e}").into()),
        404 => Ok(Lookup::Missing),
        401 | 403 => Ok(Lookup::Forbidden),
        other => Err(Unreachable(format!(
            "GET {path} answered {other}: {}",
            sluice_core::http::excerpt(&body)
        ))
        .into()),
    }
}

/// The `index.default_pipeline` of the integration's template for `stream`.
fn default_pipeline(answer: &serde_json::Value) -> Option<String> {
    let settings = &answer["index_templates"][0]["index_template"]["template"]["settings"];
    settings["index"]["default_pipeline"]
        .as_str()
        .or_else(|| settings["index.default_pipeline"].as_str())
        .map(str::to_owned)
}

/// Check the integration (or the configured `pipeline`) exists.
pub(crate) async fn check(client: &EsClient, settings: &Settings) -> Result<(), BoxError> {
    let mut pipelines = Vec::new();
    if let Some(pipeline) = &settings.pipeline {
        pipelines.push(pipeline.clone());
    } else {
        for stream in Stream::ALL {
            let template = format!("logs-1password.{}", stream.as_str());
            match lookup(client, &format!("/_index_template/{template}")).await? {
                Lookup::Found(answer) => match default_pipeline(&answer) {
                    Some(pipeline) => pipelines.push(pipeline),
                    None => {
                        return Err(format!(
                            "the index template {template} sets no index.default_pipeline, so nothing would map sluice's documents; {INSTALL_HINT}"
                        )
                        .into());
                    }
                },
                Lookup::Missing => {
                    return Err(format!(
                        "`ingest: elastic` needs Elastic's 1Password integration, but Elasticsearch has no index template {template}; {INSTALL_HINT}"
                    )
                    .into());
                }
                Lookup::Forbidden => {
                    tracing::warn!(%template, "cannot read the integration's index templates (the API key needs the `monitor` cluster privilege); assuming the 1Password integration is installed");
                    return Ok(());
                }
            }
        }
    }
    for pipeline in pipelines {
        match lookup(client, &format!("/_ingest/pipeline/{pipeline}")).await? {
            Lookup::Found(_) => {
                tracing::info!(%pipeline, "documents will be mapped by this ingest pipeline")
            }
            Lookup::Missing => {
                return Err(format!(
                    "the ingest pipeline {pipeline} does not exist in Elasticsearch; {INSTALL_HINT}"
                )
                .into());
            }
            Lookup::Forbidden => {
                tracing::info!(%pipeline, "cannot read ingest pipelines (needs `read_pipeline`); not checked")
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_pipeline_is_read_nested_or_flat() {
        let nested = serde_json::json!({"index_templates": [{"name": "logs-1password.audit_events", "index_template": {
            "index_patterns": ["logs-1password.audit_events-*"],
            "template": {"settings": {"index": {"default_pipeline": "logs-1password.audit_events-1.31.0"}}}}}]});
        assert_eq!(
            default_pipeline(&nested).as_deref(),
            Some("logs-1password.audit_events-1.31.0")
        );
        let flat = serde_json::json!({"index_templates": [{"index_template": {
            "template": {"settings": {"index.default_pipeline": "p"}}}}]});
        assert_eq!(default_pipeline(&flat).as_deref(), Some("p"));
        assert_eq!(default_pipeline(&serde_json::json!({"index_templates": []})), None);
    }
}

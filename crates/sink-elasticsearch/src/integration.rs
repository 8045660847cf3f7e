//! `ingest: elastic`: before the first document, check that Elastic's
//! 1Password integration is installed, and say how to install it if not.
//! Fleet leaves the index template's own settings empty and sets
//! `index.default_pipeline` in the `logs-1password.<stream>@package`
//! component template it composes (and `index.final_pipeline` in
//! `.fleet_agent_id_verification-1`): elastic/kibana@0eb655e189c3de088490f0052ca6735d2ba82aee:x-pack/platform/plugins/shared/fleet/server/services/epm/elasticsearch/template/install.ts
//! `buildComponentTemplates`. So the check composes the settings as
//! Elasticsearch does: each component template of `composed_of` in order,
//! then the template's own, the later winning. Reading templates needs the
//! `monitor` cluster privilege (the simulate API would need
//! `manage_index_templates`), reading the pipeline `read_pipeline`; without
//! them the check is skipped, not failed.

use sluice_core::component::{BoxError, Unreachable};

/// The data streams of Elastic's 1Password integration (its package's
/// `data_stream/` folders), whose templates `ingest: elastic` needs.
const INTEGRATION_DATASETS: [&str; 3] =
    ["1password.signin_attempts", "1password.item_usages", "1password.audit_events"];

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

/// The template's `composed_of` and own settings.
fn template_parts(answer: &serde_json::Value) -> (Vec<String>, serde_json::Value) {
    let template = &answer["index_templates"][0]["index_template"];
    let composed = template["composed_of"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    (composed, template["template"]["settings"].clone())
}

/// An index setting in nested (`index.default_pipeline` nested) or flat form.
fn index_setting(settings: &serde_json::Value, key: &str) -> Option<String> {
    settings["index"][key]
        .as_str()
        .or_else(|| settings[format!("index.{key}")].as_str())
        .map(str::to_owned)
}

/// The resolved `default_pipeline` and `final_pipeline`: components in order, then the template.
fn compose(layers: &[serde_json::Value]) -> (Option<String>, Option<String>) {
    let pick = |key: &str| layers.iter().rev().find_map(|settings| index_setting(settings, key));
    (pick("default_pipeline"), pick("final_pipeline"))
}

/// The settings layers of a template: each component's, then its own;
/// `None` when the component templates cannot be read.
async fn layers(
    client: &EsClient,
    answer: &serde_json::Value,
) -> Result<Option<Vec<serde_json::Value>>, BoxError> {
    let (composed, own) = template_parts(answer);
    let mut layers = Vec::new();
    for name in composed {
        match lookup(client, &format!("/_component_template/{name}")).await? {
            Lookup::Found(found) => layers.push(
                found["component_templates"][0]["component_template"]["template"]["settings"]
                    .clone(),
            ),
            // `@custom` components are named but created by users, if at all.
            Lookup::Missing => {}
            Lookup::Forbidden => return Ok(None),
        }
    }
    layers.push(own);
    Ok(Some(layers))
}

/// Check the integration (or the configured `pipeline`) exists.
pub(crate) async fn check(client: &EsClient, settings: &Settings) -> Result<(), BoxError> {
    let mut pipelines = Vec::new();
    if let Some(pipeline) = &settings.pipeline {
        pipelines.push(pipeline.clone());
    } else {
        for dataset in INTEGRATION_DATASETS {
            let template = format!("logs-{dataset}");
            match lookup(client, &format!("/_index_template/{template}")).await? {
                Lookup::Found(answer) => {
                    let Some(layers) = layers(client, &answer).await? else {
                        tracing::warn!(%template, "cannot read the integration's component templates (the API key needs the `monitor` cluster privilege); assuming the 1Password integration is installed");
                        return Ok(());
                    };
                    match compose(&layers) {
                        (Some(pipeline), last) => {
                            if let Some(last) = last {
                                tracing::info!(%template, final_pipeline = %last, "the index's final pipeline runs after the integration's");
                            }
                            pipelines.push(pipeline);
                        }
                        (None, _) => {
                            return Err(format!(
                                "neither the index template {template} nor its component templates set index.default_pipeline, so nothing would map sluice's documents; {INSTALL_HINT}"
                            )
                            .into());
                        }
                    }
                }
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
    fn pipelines_compose_from_components_in_order_then_the_template() {
        let fleet = serde_json::json!({"index_templates": [{"name": "logs-1password.audit_events", "index_template": {
            "index_patterns": ["logs-1password.audit_events-*"],
            "composed_of": ["logs@settings", "logs-1password.audit_events@package", ".fleet_agent_id_verification-1"],
            "template": {"settings": {}}}}]});
        let (composed, own) = template_parts(&fleet);
        assert_eq!(composed.len(), 3);
        let layers = [
            serde_json::json!({"index": {"lifecycle": {"name": "logs"}}}),
            serde_json::json!({"index": {"default_pipeline": "logs-1password.audit_events-1.30.2"}}),
            serde_json::json!({"index.final_pipeline": ".fleet_final_pipeline-1"}),
            own,
        ];
        assert_eq!(
            compose(&layers),
            (
                Some("logs-1password.audit_events-1.30.2".into()),
                Some(".fleet_final_pipeline-1".into())
            )
        );
        let own_wins = [
            serde_json::json!({"index": {"default_pipeline": "component"}}),
            serde_json::json!({"index": {"default_pipeline": "template"}}),
        ];
        assert_eq!(compose(&own_wins).0.as_deref(), Some("template"));
        assert_eq!(compose(&[serde_json::json!({})]), (None, None));
    }
}

//! `ingest: sluice` and Elastic's `@custom` hooks. The integration's
//! pipelines end with four `pipeline` processors that run the user's
//! `global@custom`, `logs@custom`, `logs-1password.integration@custom` and
//! `logs-1password.<stream>@custom` if they exist (Fleet appends them:
//! elastic/kibana@16ad29f7323a5285be9854f0d64dadf7745ec108:x-pack/platform/plugins/shared/fleet/server/services/epm/elasticsearch/ingest_pipeline/helpers.ts
//! `addCustomPipelineAndLocalRoutingRulesProcessor`). `pipeline=_none`
//! would skip them with the mapping, so sluice installs one small pipeline
//! that calls the same four (names rendered from each document's
//! `data_stream.*`, missing ones ignored) and names it on every bulk request.
//! Installing needs the `manage_pipeline` cluster privilege; without it
//! sluice sends `_none` and says which existing hooks will not run.

use sluice_core::component::BoxError;

use crate::client::EsClient;
pub use crate::config::HOOKS_PIPELINE;

/// The hooks Fleet's pipelines call, as `data_stream.*` templates.
const HOOKS: [&str; 4] = [
    "global@custom",
    "{{{data_stream.type}}}@custom",
    "{{{data_stream.type}}}-1password.integration@custom",
    "{{{data_stream.type}}}-{{{data_stream.dataset}}}@custom",
];

/// The body of [`HOOKS_PIPELINE`].
pub(crate) fn pipeline_body() -> serde_json::Value {
    let processors: Vec<serde_json::Value> = HOOKS
        .iter()
        .map(
            |name| serde_json::json!({"pipeline": {"name": name, "ignore_missing_pipeline": true}}),
        )
        .collect();
    serde_json::json!({
        "description": "sluice: runs the @custom pipelines that the Elastic 1Password integration runs, on documents sluice mapped (ingest: sluice)",
        "version": 1,
        "_meta": {"managed_by": "sluice", "managed": true},
        "processors": processors,
    })
}

/// The hook pipelines that exist for `kind` (`logs`) data streams of the
/// three datasets, by name; `None` when they cannot be read.
async fn existing(client: &EsClient, kind: &str) -> Result<Option<Vec<String>>, BoxError> {
    let names = format!(
        "global@custom,{kind}@custom,{kind}-1password.integration@custom,{kind}-1password.*@custom"
    );
    let (status, body) =
        client.get(&format!("/_ingest/pipeline/{names}")).await.map_err(|failure| {
            sluice_core::component::Unreachable(format!(
                "Elasticsearch cannot be reached: {failure}"
            ))
        })?;
    match status {
        200 => {
            let found: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&body).unwrap_or_default();
            Ok(Some(found.keys().cloned().collect()))
        }
        404 => Ok(Some(Vec::new())),
        _ => Ok(None),
    }
}

/// Whether an administrator installed [`HOOKS_PIPELINE`] (the least-privilege
/// way: docker/elastic/setup.sh does it as `elastic`).
async fn installed_by_someone(client: &EsClient) -> bool {
    matches!(client.get(&format!("/_ingest/pipeline/{HOOKS_PIPELINE}")).await, Ok((200, _)))
}

/// Install [`HOOKS_PIPELINE`]; whether bulk requests may name it.
pub(crate) async fn install(client: &EsClient, kind: &str) -> Result<bool, BoxError> {
    let hooks = existing(client, kind).await?;
    let body = serde_json::to_vec(&pipeline_body()).expect("a JSON value serializes");
    let (status, answer) = client
        .put(&format!("/_ingest/pipeline/{HOOKS_PIPELINE}"), body)
        .await
        .map_err(|failure| {
        sluice_core::component::Unreachable(format!("Elasticsearch cannot be reached: {failure}"))
    })?;
    let listed = hooks
        .as_ref()
        .map(|h| h.join(", "))
        .unwrap_or_else(|| "not readable (needs `read_pipeline`)".into());
    match status {
        200 | 201 => {
            match hooks.as_deref() {
                Some([]) => tracing::info!(
                    pipeline = HOOKS_PIPELINE,
                    "no @custom ingest pipelines exist yet; any created later (global@custom, logs@custom, logs-1password.integration@custom, logs-1password.<stream>@custom) will run on sluice's documents"
                ),
                _ => {
                    tracing::info!(pipeline = HOOKS_PIPELINE, hooks = %listed, "these @custom ingest pipelines will run on sluice's documents")
                }
            }
            Ok(true)
        }
        401 | 403 if installed_by_someone(client).await => {
            tracing::info!(pipeline = HOOKS_PIPELINE, hooks = %listed, "the @custom hooks pipeline is installed (sluice may not update it: no `manage_pipeline`); these @custom ingest pipelines will run on sluice's documents");
            Ok(true)
        }
        401 | 403 => {
            match hooks.as_deref() {
                Some([]) => tracing::info!(
                    "cannot install the {HOOKS_PIPELINE} pipeline (the API key needs the `manage_pipeline` cluster privilege); no @custom pipelines exist, so none is skipped"
                ),
                _ => {
                    tracing::warn!(hooks = %listed, "cannot install the {HOOKS_PIPELINE} pipeline (the API key needs the `manage_pipeline` cluster privilege): these @custom ingest pipelines will NOT run on sluice's documents; grant the privilege, or set `custom_pipelines: false` to silence this")
                }
            }
            Ok(false)
        }
        other => {
            tracing::warn!(status = other, answer = %sluice_core::http::excerpt(&answer), hooks = %listed, "Elasticsearch refused the {HOOKS_PIPELINE} pipeline (ignore_missing_pipeline needs Elasticsearch 8.4 or later): @custom ingest pipelines will NOT run on sluice's documents");
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docker-compose's setup installs the pipeline as `elastic`, so
    /// sluice's key needs no `manage_pipeline`: its body must be sluice's.
    #[test]
    fn the_compose_setup_installs_the_same_hooks_pipeline() {
        let script = include_str!("../../../docker/elastic/setup.sh");
        let start = script.find("# hooks-pipeline-begin").expect("begin marker");
        let end = script.find("# hooks-pipeline-end").expect("end marker");
        let block = &script[start..end];
        let json = &block[block.find("-d '").expect("-d '") + 4..block.rfind("' >").expect("' >")];
        let body: serde_json::Value = serde_json::from_str(json).expect("JSON in setup.sh");
        assert_eq!(body, pipeline_body());
        assert!(block.contains(&format!("/_ingest/pipeline/{HOOKS_PIPELINE}")));
    }
}

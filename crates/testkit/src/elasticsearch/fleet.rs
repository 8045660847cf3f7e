//! What Fleet leaves in Elasticsearch when it installs the 1Password
//! integration (Kibana → Integrations → 1Password → Install assets), laid
//! out as Kibana's Fleet code does it, so sluice's tests meet the real shape:
//!
//! - per data stream an index template `logs-1password.<stream>` whose own
//!   `template.settings` are empty, composed of `logs@mappings`,
//!   `logs@settings`, `logs-1password.<stream>@package` (which sets
//!   `index.default_pipeline`), the three `@custom` component templates
//!   (named, not created: `ignore_missing_component_templates`),
//!   `ecs@mappings`, `.fleet_globals-1` and `.fleet_agent_id_verification-1`
//!   (which sets `index.final_pipeline: .fleet_final_pipeline-1`):
//!   elastic/kibana@01627b12f0405e135ba8170a153245ecffd556e9:x-pack/platform/plugins/shared/fleet/server/services/epm/elasticsearch/template/template.ts
//!   (`getTemplate`, `getBaseEsComponents`) and
//!   elastic/kibana@0eb655e189c3de088490f0052ca6735d2ba82aee:x-pack/platform/plugins/shared/fleet/server/services/epm/elasticsearch/template/install.ts
//!   (`buildComponentTemplates`; `@custom` templates are "lazily created by user");
//! - the package's ingest pipelines, named `logs-1password.<stream>-<version>`,
//!   each with Fleet's four `@custom` `pipeline` processors appended:
//!   elastic/kibana@16ad29f7323a5285be9854f0d64dadf7745ec108:x-pack/platform/plugins/shared/fleet/server/services/epm/elasticsearch/ingest_pipeline/helpers.ts
//!   (`addCustomPipelineAndLocalRoutingRulesProcessor`);
//! - Fleet's final pipeline and component templates:
//!   elastic/kibana@0efbb44da9d4be20a80f770b2f74d1dd23c840ee:x-pack/platform/plugins/shared/fleet/server/constants/fleet_es_assets.ts.
//!
//! The pipelines themselves are fixtures in `crates/testkit/fixtures/elastic/`,
//! each naming its upstream file; `docs/emulators.md` says how to refresh them.

use serde_json::{Value, json};

use super::EsEmulator;

/// The package version whose pipelines the fixtures hold.
pub const PACKAGE_VERSION: &str = "1.30.2";

/// Fleet's final pipeline.
pub const FINAL_PIPELINE: &str = ".fleet_final_pipeline-1";

/// The integration's data streams.
pub const STREAMS: [&str; 3] = ["signin_attempts", "item_usages", "audit_events"];

const FINAL_PIPELINE_YAML: &str = include_str!("../../fixtures/elastic/fleet_final_pipeline-1.yml");
const SIGNIN_YAML: &str =
    include_str!("../../fixtures/elastic/1password-1.30.2/signin_attempts.yml");
const ITEM_USAGES_YAML: &str =
    include_str!("../../fixtures/elastic/1password-1.30.2/item_usages.yml");
const AUDIT_YAML: &str = include_str!("../../fixtures/elastic/1password-1.30.2/audit_events.yml");

/// A fixture pipeline as JSON.
fn pipeline(yaml: &str) -> Value {
    serde_yaml_ng::from_str(yaml).expect("the testkit's pipeline fixtures are valid YAML")
}

/// The package pipeline of `stream` as Fleet installs it.
pub fn package_pipeline(stream: &str) -> Value {
    let yaml = match stream {
        "signin_attempts" => SIGNIN_YAML,
        "item_usages" => ITEM_USAGES_YAML,
        _ => AUDIT_YAML,
    };
    let mut body = pipeline(yaml);
    let hooks = [
        ("global@custom".to_owned(), "[Fleet] Global pipeline for all data streams".to_owned()),
        ("logs@custom".to_owned(), "[Fleet] Pipeline for all data streams of type `logs`".to_owned()),
        (
            "logs-1password.integration@custom".to_owned(),
            "[Fleet] Pipeline for all data streams of type `logs` defined by the `1password` integration".to_owned(),
        ),
        (
            format!("logs-1password.{stream}@custom"),
            format!("[Fleet] Pipeline for the `1password.{stream}` dataset"),
        ),
    ];
    if let Some(processors) = body["processors"].as_array_mut() {
        for (name, description) in hooks {
            processors.push(json!({"pipeline": {"name": name, "ignore_missing_pipeline": true, "description": description}}));
        }
    }
    body
}

/// Fleet's final pipeline (version 4).
pub fn final_pipeline() -> Value {
    pipeline(FINAL_PIPELINE_YAML)
}

/// Run the package pipeline of `stream` (without Fleet's final pipeline) on
/// `document`, as Elasticsearch would: the mapped document, `None` when the
/// pipeline dropped it, or the failure no `on_failure` handled.
pub fn run_package_pipeline(stream: &str, document: Value) -> Result<Option<Value>, String> {
    let id = format!("logs-1password.{stream}-{PACKAGE_VERSION}");
    let pipelines = [(id.clone(), package_pipeline(stream))].into_iter().collect();
    let Value::Object(document) = document else { return Err("not an object".into()) };
    match super::processors::run(&pipelines, &[id], document, &mut Vec::new())? {
        super::processors::Outcome::Index(map) => Ok(Some(Value::Object(map))),
        super::processors::Outcome::Dropped => Ok(None),
    }
}

fn fleet_meta() -> Value {
    json!({"package": {"name": "1password"}, "managed_by": "fleet", "managed": true})
}

impl EsEmulator {
    /// Install the 1Password integration's assets as Fleet does.
    pub fn install_1password_integration(&self) {
        // Stack and Fleet component templates (their mappings are not modelled).
        self.put_component_template("logs@mappings", json!({"template": {"mappings": {}}}));
        self.put_component_template(
            "logs@settings",
            json!({"template": {"settings": {"index": {"lifecycle": {"name": "logs"}, "codec": "best_compression"}}}}),
        );
        self.put_component_template("ecs@mappings", json!({"template": {"mappings": {}}}));
        self.put_component_template(
            ".fleet_globals-1",
            json!({"template": {"settings": {}, "mappings": {"date_detection": false}}}),
        );
        self.put_component_template(
            ".fleet_agent_id_verification-1",
            json!({"template": {"settings": {"index": {"final_pipeline": FINAL_PIPELINE}}}}),
        );
        self.put_pipeline(FINAL_PIPELINE, final_pipeline());
        for stream in STREAMS {
            let name = format!("logs-1password.{stream}");
            let pipeline_id = format!("{name}-{PACKAGE_VERSION}");
            self.put_component_template(
                &format!("{name}@package"),
                json!({"template": {"settings": {"index": {"default_pipeline": pipeline_id,
                    "mapping": {"total_fields": {"limit": 1000}}}}}, "_meta": fleet_meta()}),
            );
            self.put_pipeline(&pipeline_id, package_pipeline(stream));
            let custom =
                ["logs@custom".to_owned(), "1password@custom".to_owned(), format!("{name}@custom")];
            let mut composed_of = vec![
                "logs@mappings".to_owned(),
                "logs@settings".to_owned(),
                format!("{name}@package"),
            ];
            composed_of.extend(custom.iter().cloned());
            composed_of.extend(
                ["ecs@mappings", ".fleet_globals-1", ".fleet_agent_id_verification-1"]
                    .map(str::to_owned),
            );
            self.put_index_template(
                &name,
                json!({
                    "index_patterns": [format!("{name}-*")],
                    "priority": 200,
                    "data_stream": {"hidden": false, "allow_custom_routing": false},
                    "composed_of": composed_of,
                    "ignore_missing_component_templates": custom,
                    "template": {"settings": {}, "mappings": {"_meta": fleet_meta()}},
                    "_meta": fleet_meta(),
                }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Map, json};

    use super::super::processors::{Outcome, run};
    use super::*;

    fn installed() -> BTreeMap<String, Value> {
        let mut pipelines: BTreeMap<String, Value> = STREAMS
            .iter()
            .map(|s| (format!("logs-1password.{s}-{PACKAGE_VERSION}"), package_pipeline(s)))
            .collect();
        pipelines.insert(FINAL_PIPELINE.into(), final_pipeline());
        pipelines
    }

    fn agent_document(raw: &str) -> Map<String, Value> {
        json!({"@timestamp": "2026-12-03T10:00:00.000Z", "message": raw, "tags": ["forwarded", "1password-audit_events"],
               "data_stream": {"type": "logs", "dataset": "1password.audit_events", "namespace": "default"}})
        .as_object()
        .cloned()
        .expect("object")
    }

    #[test]
    fn the_package_pipeline_maps_an_agent_document_and_the_final_pipeline_drops_event_original() {
        let raw = r#"{"uuid":"U1","timestamp":"2026-11-20T08:14:03.123456Z","actor_uuid":"IK4P","actor_details":{"uuid":"IK4P","name":"Ada Lovelace","email":"ada@example.com"},"action":"join","object_type":"gm","aux_uuid":"WZCV","session":{"ip":"192.0.2.7"}}"#;
        let ids =
            [format!("logs-1password.audit_events-{PACKAGE_VERSION}"), FINAL_PIPELINE.to_owned()];
        let mut runs = Vec::new();
        let Outcome::Index(doc) =
            run(&installed(), &ids, agent_document(raw), &mut runs).expect("maps")
        else {
            panic!("dropped")
        };
        assert_eq!(doc["related"]["user"], json!(["Ada Lovelace", "IK4P", "WZCV"]));
        assert_eq!(
            doc["user"],
            json!({"id": "IK4P", "full_name": "Ada Lovelace", "name": "Ada Lovelace", "email": "ada@example.com"})
        );
        assert_eq!(doc["event"]["action"], "join");
        assert_eq!(doc["event"]["created"], "2026-12-03T10:00:00.000Z");
        assert_eq!(doc["@timestamp"], "2026-11-20T08:14:03.123Z");
        assert_eq!(doc["event"]["agent_id_status"], "missing");
        assert!(doc["event"]["ingested"].is_string());
        assert!(
            doc["event"].get("original").is_none(),
            "no preserve_original_event tag: removed by the final pipeline"
        );
        assert!(!doc.contains_key("_security"));
        assert_eq!(runs, ids);

        let mut kept = agent_document(raw);
        kept["tags"] = json!(["preserve_original_event", "forwarded"]);
        let Outcome::Index(doc) = run(&installed(), &ids, kept, &mut Vec::new()).expect("maps")
        else {
            panic!("dropped")
        };
        assert_eq!(doc["event"]["original"], raw);
    }

    #[test]
    fn a_document_without_timestamp_is_dropped_and_one_without_an_ip_is_a_pipeline_error() {
        let ids = [format!("logs-1password.audit_events-{PACKAGE_VERSION}")];
        let dropped = run(&installed(), &ids, agent_document(r#"{"uuid":"x"}"#), &mut Vec::new());
        assert_eq!(dropped, Ok(Outcome::Dropped));
        let raw = r#"{"uuid":"U2","timestamp":"2026-11-20T08:14:03Z","action":"join"}"#;
        let Ok(Outcome::Index(doc)) = run(&installed(), &ids, agent_document(raw), &mut Vec::new())
        else {
            panic!("indexed")
        };
        assert_eq!(doc["event"]["kind"], "pipeline_error");
        assert_eq!(
            doc["error"]["message"],
            json!(["field [source.ip] not present as part of path [source.ip]"])
        );
    }
}

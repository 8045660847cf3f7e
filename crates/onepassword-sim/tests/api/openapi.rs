//! Every v1 item validates against the published OpenAPI 1.2.0 schemas
//! (from ../shared, present in CI; skipped with a notice elsewhere). The live
//! API also sends `details: null` and the item usage action `other`, which
//! the spec lacks: the schemas are widened for those two only.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::{backfilled, days_ago, drain, sim};

fn spec_path() -> PathBuf {
    std::env::var_os("SLUICE_SHARED_DIR")
        .map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
            PathBuf::from,
        )
        .join("samples/onepassword-api/apis-guru-openapi-directory/events-1.2.0-openapi.yaml")
}

fn schemas() -> Option<Value> {
    let path = spec_path();
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("notice: skipping the OpenAPI conformance check: {} is not here", path.display());
        return None;
    };
    let spec: Value = serde_yaml_ng::from_str(&text).expect("the spec is YAML");
    let mut schemas = spec["components"]["schemas"].clone();
    schemas["ItemUsage"]["properties"]["action"]["enum"]
        .as_array_mut()
        .expect("action enum")
        .push(json!("other"));
    let details = schemas["Details"].clone();
    schemas["Details"] = json!({"anyOf": [details, {"type": "null"}]});
    Some(schemas)
}

#[tokio::test]
async fn v1_items_validate_against_the_openapi_schemas() {
    let Some(schemas) = schemas() else { return };
    let sim = sim(backfilled(300)).await;
    let token = sim.token();
    for (path, schema) in [
        ("/api/v1/signinattempts", "SignInAttemptItems"),
        ("/api/v1/itemusages", "ItemUsageItems"),
        ("/api/v1/auditevents", "AuditEventItems"),
    ] {
        let root = json!({"$ref": format!("#/components/schemas/{schema}"), "components": {"schemas": schemas.clone()}});
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&root)
            .expect("schema compiles");
        let (items, cursor) =
            drain(&sim, path, &token, json!({"start_time": days_ago(2), "limit": 1000})).await;
        assert!(items.len() > 200, "{path}");
        let page = json!({"cursor": cursor, "has_more": false, "items": items});
        let errors: Vec<String> = validator
            .iter_errors(&page)
            .take(5)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{path}: {errors:#?}");
    }
}

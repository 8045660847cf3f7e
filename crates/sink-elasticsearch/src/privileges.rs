//! Which of the privileges sluice needs the API key lacks, asked of
//! Elasticsearch's has-privileges API (`POST /_security/user/_has_privileges`,
//! which every user may call for itself): the cluster privilege `monitor`
//! (`GET /`, the version) and `create_doc` and `auto_configure` on the
//! indices the sink writes. Asked at start and by `validate --network`, so a
//! key that cannot write is named before any event waits on it.

use serde_json::{Value, json};

use crate::client::EsClient;
use crate::config::{Mode, Settings};

/// The index pattern the sink writes to: `logs-1password.*-default` in
/// data stream mode, the `index` template with `*` for the stream otherwise.
fn pattern(settings: &Settings) -> String {
    match settings.mode {
        Mode::DataStream => {
            let ds = &settings.data_stream;
            format!("{}-1password.*-{}", ds.kind, ds.namespace)
        }
        Mode::Index => {
            settings.index.as_deref().unwrap_or("1password-{stream}").replace("{stream}", "*")
        }
    }
}

/// The privileges the key lacks, each named with where it applies; `None`
/// when Elasticsearch cannot tell (security off, an old version, a proxy),
/// in which case the bulk answers will.
pub(crate) async fn missing(client: &EsClient, settings: &Settings) -> Option<Vec<String>> {
    let index = pattern(settings);
    let body = json!({
        "cluster": ["monitor"],
        "index": [{"names": [&index], "privileges": ["create_doc", "auto_configure"]}],
    });
    let (status, answer) =
        client.post("/_security/user/_has_privileges", body.to_string().into_bytes()).await.ok()?;
    if status != 200 {
        tracing::debug!(status, "the has-privileges API did not answer; privileges not checked");
        return None;
    }
    let answer: Value = serde_json::from_slice(&answer).ok()?;
    let mut missing = Vec::new();
    if answer["cluster"]["monitor"] == Value::Bool(false) {
        missing.push("the cluster privilege `monitor`".to_owned());
    }
    for privilege in ["create_doc", "auto_configure"] {
        if answer["index"][&index][privilege] == Value::Bool(false) {
            missing.push(format!("`{privilege}` on `{index}`"));
        }
    }
    Some(missing)
}

/// The error for a key that lacks `missing`.
pub(crate) fn lacking(missing: &[String]) -> String {
    format!(
        "the Elasticsearch API key lacks {}; grant them to its role (README: \"The API key's privileges\")",
        missing.join(" and ")
    )
}

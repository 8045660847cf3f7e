//! The dead letter replayed as the README says (newcomer review row 49):
//! Elasticsearch rejects documents of two streams, the cause is fixed, and
//! `pipelines/replay.yaml` sends every one of them into its data stream.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use sluice_testkit::{EsEmulator, EsEmulatorConfig};

use super::elasticsearch::{holds_all, stored, visible, write_config};
use super::util::{free_port, repo, signal, spawn, start_sim, stderr_of, wait_exit, wait_for};

fn records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .map(|text| text.lines().map(|l| serde_json::from_str(l).expect("json")).collect())
        .unwrap_or_default()
}

#[test]
fn the_dead_letter_replays_into_elasticsearch_with_pipelines_replay_yaml() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let es = runtime.block_on(EsEmulator::start(EsEmulatorConfig::default()));
    // A mapping that refuses some item usages and some sign-in attempts.
    es.reject_documents("/onepassword/used_version", serde_json::json!(3));
    es.reject_documents("/event/action", serde_json::json!("credentials_failed"));
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), 600, &["--no-rate-limit"]);
    let expected = visible(&sim);
    let total: usize = expected.values().map(HashSet::len).sum();
    let dead_letter = dir.path().join("out/rejected.ndjson");

    write_config(dir.path(), &sim, &es, free_port(), "");
    let mut child = spawn(Path::new("sluice.yaml"), dir.path(), &[]);
    let done = wait_for(Duration::from_secs(120), || {
        (stored(&es) + records(&dead_letter).len() >= total).then_some(())
    });
    signal(&child, libc::SIGTERM);
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let logs = stderr_of(&mut child);
    assert!(done.is_some() && status.success(), "{logs}");
    let rejected = records(&dead_letter);
    let datasets: HashSet<&str> =
        rejected.iter().filter_map(|r| r["document"]["data_stream"]["dataset"].as_str()).collect();
    assert_eq!(
        datasets,
        HashSet::from(["1password.item_usages", "1password.signin_attempts"]),
        "both streams had rejections"
    );
    assert_eq!(stored(&es) + rejected.len(), total);

    // The cause is fixed; replay with the shipped pipeline, as the README says.
    es.accept_all_documents();
    let replay = |state: &Path| {
        super::util::sluice()
            .args(["run", "pipelines/replay.yaml"])
            .current_dir(repo())
            .env("SLUICE_DATA_DIR", state)
            .env("SLUICE_REPLAY_FILE", &dead_letter)
            .env("SLUICE_API_ADDRESS", format!("127.0.0.1:{}", free_port()))
            .env("ES_URL", es.url())
            .output()
            .expect("runs")
    };
    let state = tempfile::tempdir().expect("state");
    let output = replay(state.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stored(&es), total, "every rejected document is in its data stream now");
    assert!(holds_all(&es, &expected), "each under its own stream and _id");
    assert!(
        records(&state.path().join("unreplayable.ndjson")).is_empty()
            && records(&state.path().join("mapping-failures.ndjson")).is_empty(),
        "nothing was unreplayable or failed the mapping: {stderr}"
    );
    // The replayed documents are what the pipeline would have written.
    let replayed = &rejected[0]["document"];
    let stream = replayed["data_stream"]["dataset"].as_str().expect("dataset");
    let index = format!("logs-{stream}-default");
    let uuid = replayed["onepassword"]["uuid"].as_str().expect("uuid");
    let document = es.documents(&index).remove(uuid).expect("stored");
    assert_eq!(document["event"]["original"], replayed["event"]["original"]);
    assert_eq!(document["onepassword"], replayed["onepassword"]);

    // Replayed again from scratch: the same _ids, answered 409, stored once.
    let conflicts = es.conflicts();
    let again = tempfile::tempdir().expect("state");
    let output = replay(again.path());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(stored(&es), total);
    assert_eq!(es.conflicts() - conflicts, rejected.len() as u64);
}

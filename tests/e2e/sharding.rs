//! Many accounts shared by the replicas of one StatefulSet: the sharded
//! manifests render for three replicas (kustomize), validate offline
//! (`kubernetes-validate --strict`), and their pipeline splits its accounts
//! over `--shard 0/3`, `1/3`, `2/3` with each on exactly one replica; a
//! fourth replica takes about a quarter of 120 accounts and nothing else
//! moves.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use super::operations::{copy_tree, named, ok, render};
use super::util::{have, repo, sluice};

/// The source ids `sluice graph --shard <shard>` keeps of `config` in `dir`.
fn sources_of(dir: &Path, config: &str, shard: &str) -> BTreeSet<String> {
    let output = sluice()
        .args(["graph", "--shard", shard, config])
        .current_dir(dir)
        .env("SLUICE_DATA_DIR", dir.join("data"))
        .env("SLUICE_API_ADDRESS", "0.0.0.0:9598")
        .env("SLUICE_AGGREGATOR_URL", "http://sluice-aggregator:6000")
        .env("SLUICE_FORWARD_TOKEN_FILE", "/run/secrets/forward/token")
        .output()
        .expect("sluice graph");
    let dot = ok(&output);
    dot.lines()
        .filter(|l| l.contains(r#"shape="trapezium""#))
        .filter_map(|l| l.trim().split('"').nth(1).map(str::to_owned))
        .collect()
}

/// A config of `n` accounts, forwarded to one aggregator.
fn many_accounts(n: usize) -> String {
    let mut yaml = String::from("data_dir: ${SLUICE_DATA_DIR}\nsources:\n");
    let ids: Vec<String> = (0..n).map(|i| format!("account-{i:03}")).collect();
    for id in &ids {
        yaml.push_str(&format!("  {id}: {{type: onepassword, token_file: /run/secrets/op/{id}, url: https://events.1password.com}}\n"));
    }
    yaml.push_str(&format!("sinks:\n  out: {{type: blackhole, inputs: [{}]}}\n", ids.join(", ")));
    yaml
}

#[test]
fn three_replicas_share_the_accounts_and_a_fourth_moves_only_its_share() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("many.yaml"), many_accounts(120)).expect("config");
    let by_replica: Vec<BTreeSet<String>> =
        (0..3).map(|i| sources_of(dir.path(), "many.yaml", &format!("{i}/3"))).collect();
    let all: BTreeSet<String> = by_replica.iter().flatten().cloned().collect();
    assert_eq!(all.len(), 120, "every account runs somewhere");
    assert_eq!(by_replica.iter().map(BTreeSet::len).sum::<usize>(), 120, "and on one replica only");
    let after: Vec<BTreeSet<String>> =
        (0..4).map(|i| sources_of(dir.path(), "many.yaml", &format!("{i}/4"))).collect();
    let moved: usize = (0..3).map(|i| by_replica[i].difference(&after[i]).count()).sum();
    assert_eq!(moved, after[3].len(), "what moves goes to the new replica");
    assert!(moved <= 36, "about a quarter of 120 moves, not {moved}");
    let bad = sluice()
        .args(["graph", "--shard", "3/3", "many.yaml"])
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2), "an index beyond the replicas is a usage error");
    // One account over three replicas: the two without it say why they stop.
    std::fs::write(dir.path().join("one.yaml"), many_accounts(1)).expect("config");
    let empty: Vec<String> = (0..3)
        .map(|i| {
            sluice()
                .args(["graph", "--shard", &format!("{i}/3"), "one.yaml"])
                .current_dir(dir.path())
                .env("SLUICE_DATA_DIR", "data")
                .output()
                .expect("run")
        })
        .filter(|o| !o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();
    assert_eq!(empty.len(), 2, "{empty:?}");
    assert!(empty.iter().all(|e| e.contains("holds none of the 1 account sources")), "{empty:?}");
}

#[test]
fn the_sharded_manifests_render_and_validate_offline() {
    let required = "SLUICE_REQUIRE_KUBERNETES";
    if !have("kubectl", &["version", "--client"], required, "kubectl, for its kustomize")
        || !have(
            "python3",
            &["-c", "import kubernetes_validate"],
            required,
            "pip install kubernetes-validate",
        )
    {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&repo().join("deploy"), &dir.path().join("deploy"));
    let sharded = dir.path().join("deploy/kubernetes-sharded");
    let docs = render(&sharded);
    let sets = named(&docs, "StatefulSet");
    assert_eq!(sets.len(), 1, "one StatefulSet for every account");
    let set = sets[0];
    let replicas = set["spec"]["replicas"].as_u64().expect("replicas");
    assert_eq!(replicas, 3);
    let container = &set["spec"]["template"]["spec"]["containers"][0];
    let env = container["env"].as_array().expect("env");
    let shard = env.iter().find(|e| e["name"] == "SLUICE_SHARD").expect("SLUICE_SHARD");
    assert_eq!(
        shard["value"],
        format!("auto/{replicas}"),
        "R in SLUICE_SHARD is the replica count"
    );
    assert_eq!(set["spec"]["volumeClaimTemplates"][0]["metadata"]["name"], "data", "a volume each");
    assert!(!named(&docs, "Deployment").is_empty(), "the aggregator");
    let validate = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict", "rendered.yaml"])
        .current_dir(&sharded)
        .output()
        .expect("kubernetes-validate");
    let report = ok(&validate);
    assert!(!report.contains("ERROR") && !report.contains("WARN"), "{report}");
    // The pipeline every replica loads splits its accounts over the three.
    let map = named(&docs, "ConfigMap")
        .into_iter()
        .find(|m| m["data"].get("accounts.yaml").is_some())
        .expect("the accounts pipeline");
    std::fs::write(
        dir.path().join("accounts.yaml"),
        map["data"]["accounts.yaml"].as_str().expect("text"),
    )
    .expect("write");
    let split: Vec<BTreeSet<String>> = (0..3)
        .map(|i| sources_of(dir.path(), "accounts.yaml", &format!("{i}/{replicas}")))
        .collect();
    let all: BTreeSet<String> = split.iter().flatten().cloned().collect();
    let accounts = ["acme", "cyberdyne", "dunder", "globex", "hooli", "initech"];
    assert_eq!(all, accounts.map(String::from).into(), "{split:?}");
    assert_eq!(split.iter().map(BTreeSet::len).collect::<Vec<_>>(), [2, 2, 2], "{split:?}");
}

//! simulator → onepassword source → splunk_hec sink → the strict HEC
//! emulator, through the binary: a 30,000-event backfill with kill -9 and a
//! restart, raw items byte for byte, lost and late acks, and the HEC token
//! kept out of every output.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use sluice_testkit::{HecEmulator, HecEmulatorConfig, HecToken};

use super::util::{
    Sim, free_port, http_get, http_get_large, signal, spawn, start_sim, stderr_of, wait_exit,
    wait_for,
};

const TOKEN: &str = "5b1e0c4f-2d7a-4e11-9c3b-8a6f0d2e4b71";
const STREAMS: [&str; 3] = ["signin_attempts", "item_usages", "audit_events"];

/// Every visible item as the simulator serves it: stream → uuid → JSON text.
fn items(sim: &Sim) -> HashMap<String, HashMap<String, String>> {
    let (_, body) = http_get_large(sim.port, "/_sim/items").expect("items");
    serde_json::from_str(&body).expect("json")
}

fn write_config(dir: &Path, sim: &Sim, hec: &HecEmulator, api_port: u16, acks: &str) {
    let config = format!(
        "data_dir: state
api: {{address: '127.0.0.1:{api_port}'}}
sources:
  op:
    type: onepassword
    url: http://127.0.0.1:{}
    allow_custom_url: true
    token_file: op_token
    start_time: 2d
    interval_secs: 1
sinks:
  splunk:
    type: splunk_hec
    inputs: [op]
    endpoint: '{}'
    token: '${{HEC_TOKEN}}'
    index: onepassword
    acknowledgements: {acks}
",
        sim.port,
        hec.url()
    );
    std::fs::write(dir.join("sluice.yaml"), config).expect("config");
}

fn committed(dir: &Path) -> u64 {
    STREAMS
        .iter()
        .filter_map(|s| std::fs::read(dir.join(format!("state/op/{s}.json"))).ok())
        .filter_map(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .filter_map(|checkpoint| checkpoint["events"].as_u64())
        .sum()
}

fn indexed_uuids(hec: &HecEmulator) -> HashSet<String> {
    hec.events()
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.event).expect("json")["uuid"]
                .as_str()
                .expect("uuid")
                .to_owned()
        })
        .collect()
}

fn distinct(hec: &HecEmulator) -> usize {
    indexed_uuids(hec).len()
}

/// Whether every item of `served` is indexed (late arrivals can make a
/// count reach a total before that).
fn holds_all(hec: &HecEmulator, served: &HashMap<String, HashMap<String, String>>) -> bool {
    let indexed = indexed_uuids(hec);
    served.values().flat_map(HashMap::keys).all(|uuid| indexed.contains(uuid))
}

#[test]
fn a_30000_event_backfill_survives_kill_9_with_raw_items_indexed_once_acked() {
    let _heavy = super::util::heavy();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let hec = runtime.block_on(HecEmulator::start(HecEmulatorConfig {
        tokens: vec![HecToken::with_acks(TOKEN)],
        ack_delay: Duration::from_millis(200),
        ..HecEmulatorConfig::default()
    }));
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), 10_000, &["--no-rate-limit"]);
    let served = items(&sim);
    let total: usize = served.values().map(HashMap::len).sum();
    assert!(total > 28_000, "{total}");
    let acks = "{poll_interval_secs: 0.05, timeout_secs: 30}";
    write_config(dir.path(), &sim, &hec, free_port(), acks);
    let env = [("HEC_TOKEN", TOKEN.to_owned()), ("RUST_LOG", "trace".to_owned())];

    let mut first = spawn(Path::new("sluice.yaml"), dir.path(), &env);
    let progressed =
        wait_for(Duration::from_secs(180), || (hec.event_count() >= 10_000).then_some(()));
    first.kill().expect("kill -9");
    first.wait().expect("reaped");
    let first_logs = stderr_of(&mut first);
    // Each run sends on channels of its own: count the first run's events by
    // channel at the end, as a request in flight at the kill may land later.
    let first_channels: HashSet<Option<String>> =
        hec.events().into_iter().map(|e| e.channel).collect();
    let committed_at_kill = committed(dir.path());
    assert!(progressed.is_some(), "no progress before the kill: {first_logs}");
    assert!(distinct(&hec) < total, "the first run finished before the kill");

    let api_port = free_port();
    write_config(dir.path(), &sim, &hec, api_port, acks);
    let mut second = spawn(Path::new("sluice.yaml"), dir.path(), &env);
    let done = wait_for(Duration::from_secs(300), || holds_all(&hec, &served).then_some(()));
    let metrics = http_get(api_port, "/metrics").map(|(_, body)| body).unwrap_or_default();
    signal(&second, libc::SIGTERM);
    let status = wait_exit(&mut second, Duration::from_secs(60));
    let logs = stderr_of(&mut second);
    assert!(done.is_some(), "{} of {total} indexed: {logs}", distinct(&hec));
    assert!(status.success(), "{logs}");

    let events = hec.events();
    let duplicates = events.len() - distinct(&hec);
    let indexed_by_first =
        events.iter().filter(|e| first_channels.contains(&e.channel)).count() as u64;
    // Late arrivals may have joined since the start: compare with what is served now.
    let served = items(&sim);
    eprintln!(
        "indexed {} for {} events: {duplicates} duplicates; the first run indexed {indexed_by_first} and committed {committed_at_kill}",
        events.len(),
        distinct(&hec)
    );
    assert!(
        duplicates as u64 <= indexed_by_first - committed_at_kill,
        "duplicates come only from the window after the last commit"
    );
    for event in &events {
        let stream = event
            .sourcetype
            .as_deref()
            .and_then(|s| s.strip_prefix("1password:insights:"))
            .expect("sourcetype");
        let item: serde_json::Value = serde_json::from_str(&event.event).expect("json");
        let uuid = item["uuid"].as_str().expect("uuid");
        assert_eq!(
            &served[stream][uuid], &event.event,
            "{stream} {uuid}: the raw item byte for byte"
        );
        let at = chrono_free_epoch(item["timestamp"].as_str().expect("timestamp"));
        let time: f64 = event.time.as_deref().expect("time").parse().expect("number");
        assert!((time - at).abs() < 1e-3, "{uuid}: time {time} for {at}");
        assert_eq!(event.index.as_deref(), Some("onepassword"));
    }
    the_addon_reads_every_field_it_expects(&events);
    for text in [&first_logs, &logs, &metrics] {
        assert!(!text.contains(TOKEN), "the HEC token leaked");
    }
    assert!(logs.contains("TRACE"), "trace logging is on");
    assert!(
        metrics.contains("sluice_splunk_hec_requests_total{component_id=\"splunk\""),
        "{metrics}"
    );
}

/// 1Password's Splunk add-on (the testkit's fixture of its props.conf and
/// dashboards): every field its aliases, `EVAL-action` and dashboard
/// searches read is in the raw events of its sourcetype, and `uuid` (which
/// every item has) in all of them. (Not every field is in every item: older
/// item usages carry no `action`, an audit event may have no `session`.)
fn the_addon_reads_every_field_it_expects(events: &[sluice_testkit::IndexedEvent]) {
    let lookup = |item: &serde_json::Value, path: &str| {
        path.split('.').try_fold(item, |at, key| at.get(key)).is_some_and(|v| !v.is_null())
    };
    for (sourcetype, addon) in sluice_testkit::splunk::addon::sourcetypes() {
        let items: Vec<serde_json::Value> = events
            .iter()
            .filter(|e| e.sourcetype.as_deref() == Some(sourcetype.as_str()))
            .map(|e| serde_json::from_str(&e.event).expect("json"))
            .collect();
        assert!(!items.is_empty(), "no events of {sourcetype}");
        for field in addon.fields() {
            let carried = items.iter().filter(|item| lookup(item, &field)).count();
            assert!(carried > 0, "{sourcetype}: no event carries {field}, which the add-on reads");
            if field == "uuid" {
                assert_eq!(carried, items.len(), "{sourcetype}: {field} missing in some events");
            }
        }
    }
}

/// Epoch seconds of an RFC 3339 timestamp, with the fraction, via the
/// simulator's own format (`YYYY-MM-DDTHH:MM:SS[.fff...]Z` or an offset).
fn chrono_free_epoch(text: &str) -> f64 {
    let (date, rest) = text.split_once('T').expect("T");
    let mut parts = date.split('-').map(|p| p.parse::<i64>().expect("date"));
    let (y, m, d) = (parts.next().expect("y"), parts.next().expect("m"), parts.next().expect("d"));
    let (clock, offset) = match rest.find(['Z', '+', '-']) {
        Some(at) => rest.split_at(at),
        None => (rest, "Z"),
    };
    let mut fields = clock.split(':');
    let h: f64 = fields.next().expect("h").parse().expect("h");
    let min: f64 = fields.next().expect("m").parse().expect("m");
    let s: f64 = fields.next().expect("s").parse().expect("s");
    let offset_secs = if offset == "Z" {
        0.0
    } else {
        let sign = if offset.starts_with('-') { -1.0 } else { 1.0 };
        let (oh, om) = offset[1..].split_once(':').expect("offset");
        sign * (oh.parse::<f64>().expect("oh") * 3600.0 + om.parse::<f64>().expect("om") * 60.0)
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + s - offset_secs
}

#[test]
fn lost_and_late_acks_are_resent_and_counted_and_nothing_is_lost() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let hec = runtime.block_on(HecEmulator::start(HecEmulatorConfig {
        tokens: vec![HecToken::with_acks(TOKEN)],
        ack_delay: Duration::from_millis(400),
        lose_every_nth_ack: Some(10),
        ..HecEmulatorConfig::default()
    }));
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), 1_000, &["--no-rate-limit"]);
    let served = items(&sim);
    let total: usize = served.values().map(HashMap::len).sum();
    let api_port = free_port();
    write_config(dir.path(), &sim, &hec, api_port, "{poll_interval_secs: 0.05, timeout_secs: 2}");
    std::fs::write(
        dir.path().join("sluice.yaml"),
        std::fs::read_to_string(dir.path().join("sluice.yaml")).expect("config")
            + "    batch: {max_events: 50, timeout_secs: 0.05}\n",
    )
    .expect("config");
    let mut child = spawn(Path::new("sluice.yaml"), dir.path(), &[("HEC_TOKEN", TOKEN.to_owned())]);
    let done = wait_for(Duration::from_secs(180), || {
        (holds_all(&hec, &served) && committed(dir.path()) >= total as u64).then_some(())
    });
    let metrics = http_get(api_port, "/metrics").map(|(_, body)| body).unwrap_or_default();
    signal(&child, libc::SIGTERM);
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let logs = stderr_of(&mut child);
    assert!(
        done.is_some(),
        "{} of {total} indexed, {} committed: {logs}",
        distinct(&hec),
        committed(dir.path())
    );
    assert!(status.success(), "{logs}");
    assert!(hec.acks_lost() > 0);
    let timeouts = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sluice_splunk_hec_ack_timeouts_total{component_id=\"splunk\",component_kind=\"sink\",component_type=\"splunk_hec\"} "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert_eq!(
        timeouts,
        hec.acks_lost(),
        "every lost ack was noticed and its batch sent again: {metrics}"
    );
    assert!(logs.contains("no indexer acknowledgement in time; the batch is sent again"), "{logs}");
}

#[test]
fn a_token_with_acks_off_warns_once_and_delivery_continues() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let hec = runtime.block_on(HecEmulator::start(HecEmulatorConfig {
        tokens: vec![HecToken { use_ack: false, ..HecToken::with_acks(TOKEN) }],
        ..HecEmulatorConfig::default()
    }));
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(dir.path(), 200, &["--no-rate-limit"]);
    let served = items(&sim);
    let api_port = free_port();
    write_config(dir.path(), &sim, &hec, api_port, "{poll_interval_secs: 0.05}");
    let mut child = spawn(Path::new("sluice.yaml"), dir.path(), &[("HEC_TOKEN", TOKEN.to_owned())]);
    let done = wait_for(Duration::from_secs(120), || holds_all(&hec, &served).then_some(()));
    let metrics = http_get(api_port, "/metrics").map(|(_, body)| body).unwrap_or_default();
    signal(&child, libc::SIGTERM);
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let logs = stderr_of(&mut child);
    assert!(done.is_some(), "{logs}");
    assert!(status.success(), "{logs}");
    assert_eq!(
        logs.matches("has indexer acknowledgement off").count(),
        2,
        "one warning at the preflight, one when the first answer has no ackId: {logs}"
    );
    assert!(
        metrics.contains("sluice_splunk_hec_acks_enabled{component_id=\"splunk\",component_kind=\"sink\",component_type=\"splunk_hec\"} 0"),
        "{metrics}"
    );
}

//! `sluice top`: a live table of a running sluice's components (as
//! `vector top`): events in and out with their rates, errors, rejections,
//! input queue fill and health, read from its API's `/metrics` and
//! `/health` every interval. On a terminal the table redraws in place;
//! otherwise (a pipe, a test) each refresh is printed after the last, and
//! `--count` stops after that many.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use crate::error::{CliError, CliResult};

#[derive(Args, Debug)]
pub struct TopArgs {
    /// The running sluice's API (its `api.address`).
    #[arg(long, default_value = "http://127.0.0.1:9598", value_name = "URL")]
    pub url: String,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0, value_name = "SECS")]
    pub interval_secs: f64,
    /// Stop after this many refreshes (default: until Ctrl-C).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

/// One component's row.
#[derive(Debug, Default, Clone, PartialEq)]
struct Row {
    kind: String,
    type_name: String,
    received: f64,
    sent: f64,
    errors: f64,
    rejected: f64,
    buffer_bytes: Option<f64>,
    buffer_max: Option<f64>,
    healthy: Option<bool>,
}

pub fn run(args: &TopArgs) -> CliResult {
    if !(args.interval_secs.is_finite() && (0.05..=3600.0).contains(&args.interval_secs)) {
        return Err(CliError::usage("--interval-secs must be from 0.05 to 3600"));
    }
    let base = args.url.trim_end_matches('/');
    let metrics_url = reqwest::Url::parse(&format!("{base}/metrics"))
        .map_err(|e| CliError::usage(format!("--url `{}` is not a URL: {e}", args.url)))?;
    let health_url = reqwest::Url::parse(&format!("{base}/health")).context("health URL")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("cannot build an HTTP client")?;
    let terminal = std::io::stdout().is_terminal();
    let mut previous: Option<(Instant, BTreeMap<String, Row>)> = None;
    let mut shown = 0;
    loop {
        let (rows, reasons) = runtime.block_on(scrape(&client, &metrics_url, &health_url, base))?;
        let now = Instant::now();
        let rates = previous.as_ref().map(|(at, before)| {
            let secs = now.duration_since(*at).as_secs_f64().max(1e-3);
            (secs, before)
        });
        let table = render(base, &rows, &reasons, rates);
        let mut stdout = std::io::stdout().lock();
        let clear = if terminal { "\x1b[2J\x1b[H" } else { "" };
        // A closed pipe (`| head`) ends it quietly.
        if write!(stdout, "{clear}{table}").and_then(|()| stdout.flush()).is_err() {
            return Ok(ExitCode::SUCCESS);
        }
        shown += 1;
        if args.count.is_some_and(|count| shown >= count) {
            return Ok(ExitCode::SUCCESS);
        }
        previous = Some((now, rows));
        let pause = Duration::from_secs_f64(args.interval_secs);
        // Made inside the runtime: a tokio timer needs its reactor.
        runtime.block_on(async { tokio::time::sleep(pause).await });
    }
}

async fn scrape(
    client: &reqwest::Client,
    metrics: &reqwest::Url,
    health: &reqwest::Url,
    base: &str,
) -> Result<(BTreeMap<String, Row>, BTreeMap<String, String>), CliError> {
    let unreachable = |e: reqwest::Error| {
        CliError::Failed(anyhow::anyhow!(
            "cannot reach sluice's API at {base} ({}); is `sluice run` running there with the API enabled? (--url)",
            sluice_core::error::error_chain(&e)
        ))
    };
    let response = client.get(metrics.clone()).send().await.map_err(unreachable)?;
    if !response.status().is_success() {
        let status = response.status();
        return Err(CliError::Failed(anyhow::anyhow!("{base}/metrics answered {status}")));
    }
    let text = response.text().await.map_err(unreachable)?;
    // /health answers 503 with the same body when something is unhealthy.
    let body: serde_json::Value = match client.get(health.clone()).send().await {
        Ok(answer) => answer.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    };
    let reasons = body["unhealthy"]
        .as_object()
        .map(|map| {
            map.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned())).collect()
        })
        .unwrap_or_default();
    Ok((rows(&text), reasons))
}

/// One sample of the text exposition: name, labels, value.
fn sample(line: &str) -> Option<(&str, BTreeMap<String, String>, f64)> {
    if line.starts_with('#') || line.trim().is_empty() {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let Some((name, rest)) = series.split_once('{') else {
        return Some((series, BTreeMap::new(), value));
    };
    let mut labels = BTreeMap::new();
    let mut chars = rest.strip_suffix('}')?.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('"') {
            return None;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => return None,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Some((name, labels, value))
}

/// The component rows of a `/metrics` text, by component id.
fn rows(text: &str) -> BTreeMap<String, Row> {
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for (name, labels, value) in text.lines().filter_map(sample) {
        let Some(id) = labels.get("component_id") else { continue };
        let row = rows.entry(id.clone()).or_default();
        if let Some(kind) = labels.get("component_kind") {
            row.kind.clone_from(kind);
        }
        if let Some(type_name) = labels.get("component_type") {
            row.type_name.clone_from(type_name);
        }
        match name {
            "sluice_component_received_events_total" => row.received += value,
            "sluice_component_sent_events_total" => row.sent += value,
            "sluice_component_errors_total" => row.errors += value,
            "sluice_component_rejected_events_total" => row.rejected += value,
            "sluice_component_buffer_bytes" => row.buffer_bytes = Some(value),
            "sluice_component_buffer_max_bytes" => row.buffer_max = Some(value),
            "sluice_component_healthy" => row.healthy = Some(value >= 1.0),
            _ => {}
        }
    }
    rows
}

/// A count with its rate since the last refresh, if there was one.
fn with_rate(now: f64, before: Option<f64>, secs: Option<f64>) -> String {
    match (before, secs) {
        (Some(before), Some(secs)) => format!("{now:.0} ({:.0}/s)", (now - before).max(0.0) / secs),
        _ => format!("{now:.0}"),
    }
}

fn render(
    base: &str,
    rows: &BTreeMap<String, Row>,
    reasons: &BTreeMap<String, String>,
    rates: Option<(f64, &BTreeMap<String, Row>)>,
) -> String {
    let header =
        ["ID", "KIND", "TYPE", "EVENTS IN", "EVENTS OUT", "ERRORS", "REJECTED", "QUEUE", "HEALTH"];
    let mut table: Vec<[String; 9]> = vec![header.map(str::to_owned)];
    for (id, row) in rows {
        let before = rates.and_then(|(_, before)| before.get(id));
        let secs = rates.map(|(secs, _)| secs);
        let queue = match (row.buffer_bytes, row.buffer_max) {
            (Some(used), Some(max)) if max > 0.0 => format!("{:.0}%", 100.0 * used / max),
            _ => "-".into(),
        };
        // A component is named on /health by its id or `<id>.<part>`.
        let reason = reasons
            .iter()
            .find(|(name, _)| *name == id || name.starts_with(&format!("{id}.")))
            .map(|(_, reason)| reason.chars().take(60).collect::<String>());
        let health = match (reason, row.healthy) {
            (Some(reason), _) => reason,
            (None, Some(false)) => "unhealthy".into(),
            (None, _) => "ok".into(),
        };
        table.push([
            id.clone(),
            row.kind.clone(),
            row.type_name.clone(),
            with_rate(row.received, before.map(|b| b.received), secs),
            with_rate(row.sent, before.map(|b| b.sent), secs),
            format!("{:.0}", row.errors),
            format!("{:.0}", row.rejected),
            queue,
            health,
        ]);
    }
    let widths: Vec<usize> =
        (0..9).map(|c| table.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = format!("sluice top: {base} ({} components)\n", rows.len());
    for row in &table {
        let cells: Vec<String> =
            row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = r#"# HELP sluice_component_received_events_total Events in.
# TYPE sluice_component_received_events_total counter
sluice_component_received_events_total{component_id="ecs",component_kind="transform",component_type="vrl"} 300
sluice_component_sent_events_total{component_id="ecs",component_kind="transform",component_type="vrl",output="_default"} 290
sluice_component_sent_events_total{component_id="ecs",component_kind="transform",component_type="vrl",output="dropped"} 10
sluice_component_errors_total{component_id="ecs",component_kind="transform",component_type="vrl",error_type="vrl_error",stage="processing"} 10
sluice_component_buffer_bytes{component_id="ecs",component_kind="transform",component_type="vrl"} 1048576
sluice_component_buffer_max_bytes{component_id="ecs",component_kind="transform",component_type="vrl"} 4194304
sluice_component_healthy{component_id="es",component_kind="sink",component_type="elasticsearch"} 0
sluice_component_received_events_total{component_id="odd \"id\"",component_kind="sink",component_type="console"} 1
sluice_build_info{version="0.1.0"} 1
"#;

    #[test]
    fn rows_add_up_each_components_series() {
        let rows = rows(METRICS);
        let ecs = &rows["ecs"];
        assert_eq!((ecs.kind.as_str(), ecs.type_name.as_str()), ("transform", "vrl"));
        assert_eq!((ecs.received, ecs.sent, ecs.errors), (300.0, 300.0, 10.0));
        assert_eq!(rows["es"].healthy, Some(false));
        assert!(rows.contains_key("odd \"id\""), "escaped label values: {rows:?}");
        assert_eq!(rows.len(), 3, "build_info has no component");
    }

    #[test]
    fn the_table_shows_rates_queue_fill_and_health_reasons() {
        let now = rows(METRICS);
        let mut before = now.clone();
        before.get_mut("ecs").expect("ecs").received = 100.0;
        let reasons = BTreeMap::from([("es".to_owned(), "Elasticsearch refuses: 403".to_owned())]);
        let table = render("http://x", &now, &reasons, Some((2.0, &before)));
        let ecs = table.lines().find(|l| l.starts_with("ecs ")).expect("ecs row");
        assert!(ecs.contains("300 (100/s)"), "{table}");
        assert!(ecs.contains("25%") && ecs.ends_with("ok"), "{table}");
        let es = table.lines().find(|l| l.starts_with("es ")).expect("es row");
        assert!(es.ends_with("Elasticsearch refuses: 403"), "{table}");
    }
}

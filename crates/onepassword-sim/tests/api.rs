//! The simulator driven over HTTP by an independent client (plain reqwest),
//! as the 1Password API contract describes it.

use std::collections::HashSet;
use std::net::SocketAddr;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice_onepassword_sim::{Fault, RateLimits, SimConfig, SimStream, Simulator};

const ALL: [&str; 3] = ["signinattempts", "itemusages", "auditevents"];

async fn sim(config: SimConfig) -> Simulator {
    let listen: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    Simulator::start(config, listen).await.expect("simulator starts")
}

fn backfilled(events: usize) -> SimConfig {
    SimConfig { events_per_stream: events, ..SimConfig::default() }
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("request");
    let (status, headers) = (response.status(), response.headers().clone());
    Answer { status, headers, text: response.text().await.expect("body") }
}

async fn post(sim: &Simulator, path: &str, token: &str, body: &Value) -> Answer {
    let client = reqwest::Client::new();
    send(client.post(format!("{}{path}", sim.url())).bearer_auth(token).json(body)).await
}

/// Page from `body` until `has_more` is false; the items and the last cursor.
async fn drain(sim: &Simulator, path: &str, token: &str, body: Value) -> (Vec<Value>, String) {
    let mut items = Vec::new();
    let mut body = body;
    loop {
        let answer = post(sim, path, token, &body).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let page = answer.json();
        items.extend(page["items"].as_array().expect("items").iter().cloned());
        let cursor = page["cursor"].as_str().expect("cursor").to_owned();
        if !page["has_more"].as_bool().expect("has_more") {
            return (items, cursor);
        }
        body = json!({ "cursor": cursor });
    }
}

fn uuids(items: &[Value]) -> Vec<String> {
    items.iter().map(|i| i["uuid"].as_str().expect("uuid").to_owned()).collect()
}

fn days_ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339()
}

#[tokio::test]
async fn introspection_v1_and_v2() {
    let sim = sim(SimConfig::default()).await;
    let token = sim.mint_token(&["itemusages", "auditevents"], None);
    let client = reqwest::Client::new();
    let v1 =
        send(client.get(format!("{}/api/auth/introspect", sim.url())).bearer_auth(&token)).await;
    assert_eq!(v1.status, StatusCode::OK);
    let v1 = v1.json();
    assert_eq!(v1["Features"], json!(["itemusages", "auditevents"]));
    assert_eq!(v1["UUID"].as_str().map(str::len), Some(26));
    assert!(v1["IssuedAt"].as_str().expect("IssuedAt").ends_with('Z'));
    let v2 = send(client.get(format!("{}/api/v2/auth/introspect", sim.url())).bearer_auth(&token))
        .await
        .json();
    assert_eq!(v2["uuid"], v1["UUID"]);
    assert_eq!(v2["features"], v1["Features"]);
    assert_eq!(v2["account_uuid"].as_str().map(str::len), Some(26));
}

#[tokio::test]
async fn paging_serves_every_event_once_then_only_new_ones() {
    let sim = sim(backfilled(450)).await;
    let token = sim.token();
    let (items, cursor) =
        drain(&sim, "/api/v2/itemusages", &token, json!({"limit": 100, "start_time": days_ago(2)}))
            .await;
    let served = uuids(&items);
    let distinct: HashSet<_> = served.iter().collect();
    assert_eq!(distinct.len(), served.len(), "no uuid twice");
    assert_eq!(served.len(), sim.visible_events(SimStream::ItemUsages), "every visible event");
    assert!(served.len() > 300, "most of the 450 backfilled events are already ingested");

    let empty = post(&sim, "/api/v2/itemusages", &token, &json!({"cursor": cursor})).await.json();
    assert_eq!(empty["items"], json!([]));
    assert_eq!(empty["has_more"], json!(false));
    assert_eq!(empty["cursor"], json!(cursor), "an empty page returns the same cursor");

    let fresh =
        [sim.inject(SimStream::ItemUsages, now()), sim.inject(SimStream::ItemUsages, now())];
    let (new_items, _) = drain(&sim, "/api/v2/itemusages", &token, json!({"cursor": cursor})).await;
    assert_eq!(uuids(&new_items), fresh.iter().map(|e| e.uuid.clone()).collect::<Vec<_>>());
}

fn now() -> i64 {
    sluice_onepassword_sim::now_nanos()
}

#[tokio::test]
async fn a_late_arrival_reaches_a_cursor_client_and_escapes_a_timestamp_client() {
    let sim = sim(backfilled(50)).await;
    let token = sim.token();
    let (items, cursor) =
        drain(&sim, "/api/v1/signinattempts", &token, json!({"start_time": days_ago(2)})).await;
    let newest = items
        .iter()
        .map(|i| i["timestamp"].as_str().expect("timestamp").to_owned())
        .max()
        .expect("events");
    let newest_nanos = chrono::DateTime::parse_from_rfc3339(&newest)
        .expect("rfc3339")
        .timestamp_nanos_opt()
        .expect("ns");

    // It happened ten minutes before the newest event already served, and arrives now.
    let late = sim.inject(SimStream::SigninAttempts, newest_nanos - 600_000_000_000);
    let (by_cursor, _) =
        drain(&sim, "/api/v1/signinattempts", &token, json!({"cursor": cursor})).await;
    assert_eq!(
        uuids(&by_cursor),
        std::slice::from_ref(&late.uuid),
        "the cursor client gets the late event"
    );

    let (by_timestamp, _) =
        drain(&sim, "/api/v1/signinattempts", &token, json!({"start_time": newest})).await;
    assert!(
        !uuids(&by_timestamp).contains(&late.uuid),
        "restarting from the newest timestamp misses it"
    );
}

#[tokio::test]
async fn v1_and_v2_shapes_differ_by_the_v2_fields() {
    let sim = sim(backfilled(30)).await;
    let token = sim.token();
    for (stream, v2_fields) in [
        ("signinattempts", vec!["account_uuid"]),
        ("itemusages", vec!["account_uuid"]),
        ("auditevents", vec!["account_uuid", "actor_type", "actor_account_uuid"]),
    ] {
        let (v1, _) =
            drain(&sim, &format!("/api/v1/{stream}"), &token, json!({"start_time": days_ago(2)}))
                .await;
        let (v2, _) =
            drain(&sim, &format!("/api/v2/{stream}"), &token, json!({"start_time": days_ago(2)}))
                .await;
        assert_eq!(uuids(&v1), uuids(&v2), "{stream}: same events on both versions");
        for field in v2_fields {
            assert!(v1.iter().all(|i| i.get(field).is_none()), "{stream} v1 has {field}");
            assert!(v2.iter().all(|i| i.get(field).is_some()), "{stream} v2 lacks {field}");
        }
    }
    let (v2, _) =
        drain(&sim, "/api/v2/signinattempts", &token, json!({"start_time": days_ago(2)})).await;
    assert!(v2.iter().all(|i| i["target_user"]["user_type"].is_string()));
}

#[tokio::test]
async fn unauthorized_answers() {
    let sim = sim(backfilled(5)).await;
    let other = Simulator::start(
        SimConfig { seed: 99, ..SimConfig::default() },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("other");
    let revoked_token = sim.mint_token(&ALL, None);
    let sub = send(
        reqwest::Client::new()
            .get(format!("{}/api/v2/auth/introspect", sim.url()))
            .bearer_auth(&revoked_token),
    )
    .await
    .json()["uuid"]
        .as_str()
        .expect("uuid")
        .to_owned();
    sim.revoke(&sub);
    let cases = [
        ("malformed", "not.a.jwt".to_owned()),
        ("another key", other.token()),
        ("expired", sim.mint_token(&ALL, Some(-60))),
        ("without the feature", sim.mint_token(&["signinattempts", "auditevents"], None)),
        ("revoked", revoked_token),
    ];
    for (case, token) in cases {
        let answer = post(&sim, "/api/v1/itemusages", &token, &json!({})).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(answer.json(), json!({"Error": {"Message": "Unauthorized"}}), "{case}");
    }
    let missing = send(
        reqwest::Client::new().post(format!("{}/api/v1/itemusages", sim.url())).json(&json!({})),
    )
    .await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_requests() {
    let sim = sim(backfilled(20)).await;
    let token = sim.token();
    let signin_cursor =
        post(&sim, "/api/v2/signinattempts", &token, &json!({"limit": 1})).await.json()["cursor"]
            .clone();
    let v1_cursor =
        post(&sim, "/api/v1/itemusages", &token, &json!({"limit": 1})).await.json()["cursor"]
            .clone();
    let cases = [
        ("limit 1001", json!({"limit": 1001})),
        ("limit 0", json!({"limit": 0})),
        ("fractional limit", json!({"limit": 2.5})),
        ("bad time", json!({"start_time": "yesterday"})),
        ("garbage cursor", json!({"cursor": "Zm9vYmFy"})),
        ("another stream's cursor", json!({"cursor": signin_cursor})),
        ("another version's cursor", json!({"cursor": v1_cursor})),
    ];
    for (case, body) in cases {
        let answer = post(&sim, "/api/v2/itemusages", &token, &body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{case}");
        assert_eq!(answer.json(), json!({"Error": {"Message": "Bad Request"}}), "{case}");
    }
    let client = reqwest::Client::new();
    let bad_json = send(
        client
            .post(format!("{}/api/v2/itemusages", sim.url()))
            .bearer_auth(&token)
            .body("{\"limit\":"),
    )
    .await;
    assert_eq!(bad_json.status, StatusCode::BAD_REQUEST);
    // No Content-Type at all, as the Splunk and beat clients send.
    let bare = send(
        client.post(format!("{}/api/v2/itemusages", sim.url())).bearer_auth(&token).body("{}"),
    )
    .await;
    assert_eq!(bare.status, StatusCode::OK, "{}", bare.text);
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods() {
    let sim = sim(SimConfig::default()).await;
    let client = reqwest::Client::new();
    let missing =
        send(client.post(format!("{}/api/v1/nothing", sim.url())).bearer_auth(sim.token())).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.text, "404 page not found\n");
    assert!(missing.headers["content-type"].to_str().expect("ascii").starts_with("text/plain"));
    let wrong =
        send(client.get(format!("{}/api/v1/itemusages", sim.url())).bearer_auth(sim.token())).await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let config = SimConfig {
        rate_limits: Some(RateLimits { per_minute: 3, per_hour: 100 }),
        ..SimConfig::default()
    };
    let sim = sim(config).await;
    let token = sim.token();
    for remaining in [2, 1, 0] {
        let answer = post(&sim, "/api/v2/auditevents", &token, &json!({})).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.headers["ratelimit-limit"], "3");
        assert_eq!(answer.headers["ratelimit-remaining"], remaining.to_string().as_str());
    }
    let limited = post(&sim, "/api/v2/auditevents", &token, &json!({})).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 =
        limited.headers["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(limited.json(), json!({"Error": {"Message": "Too Many Requests"}}));
}

#[tokio::test]
async fn injected_faults() {
    let sim = sim(backfilled(30)).await;
    let token = sim.token();
    let body = json!({"start_time": days_ago(2), "limit": 5});
    sim.push_fault(Fault::Status { status: 503 });
    assert_eq!(
        post(&sim, "/api/v2/auditevents", &token, &body).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    sim.push_fault(Fault::Malformed);
    let malformed = post(&sim, "/api/v2/auditevents", &token, &body).await;
    assert_eq!(malformed.status, StatusCode::OK);
    assert!(serde_json::from_str::<Value>(&malformed.text).is_err(), "truncated JSON");
    sim.push_fault(Fault::Reset);
    let reset = reqwest::Client::new()
        .post(format!("{}/api/v2/auditevents", sim.url()))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await;
    let body_error = match reset {
        Err(_) => true,
        Ok(response) => response.bytes().await.is_err(),
    };
    assert!(body_error, "the connection breaks mid-answer");
    sim.push_fault(Fault::EmptyPage);
    let empty = post(&sim, "/api/v2/auditevents", &token, &body).await.json();
    assert_eq!((empty["items"].clone(), empty["has_more"].clone()), (json!([]), json!(true)));
    let (items, _) =
        drain(&sim, "/api/v2/auditevents", &token, json!({"cursor": empty["cursor"]})).await;
    assert_eq!(items.len(), sim.visible_events(SimStream::AuditEvents), "nothing was skipped");
}

#[tokio::test]
async fn cursors_survive_a_restart_with_the_same_seed() {
    let until = Some(now() - 60_000_000_000);
    let config =
        SimConfig { seed: 5, events_per_stream: 40, backfill_until: until, ..SimConfig::default() };
    let first = sim(config.clone()).await;
    let token = first.token();
    let page = post(
        &first,
        "/api/v2/itemusages",
        &token,
        &json!({"start_time": days_ago(2), "limit": 10}),
    )
    .await
    .json();
    let cursor = page["cursor"].clone();
    first.shutdown().await;
    let second = sim(config).await;
    let audience_token = second.token();
    let next =
        post(&second, "/api/v2/itemusages", &audience_token, &json!({"cursor": cursor})).await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.text);
    let first_uuids = uuids(page["items"].as_array().expect("items"));
    let next_uuids = uuids(next.json()["items"].as_array().expect("items"));
    assert!(!next_uuids.is_empty());
    assert!(
        next_uuids.iter().all(|u| !first_uuids.contains(u)),
        "the restarted simulator continues after the cursor"
    );
}

#[tokio::test]
async fn fixture_mode_serves_given_events_verbatim() {
    let dir = std::env::temp_dir().join(format!("sluice-sim-fixtures-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("item_usages.ndjson");
    let recent = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    let lines = [
        format!(
            r#"{{"uuid":"FIXTUREAAAAAAAAAAAAAAAAAAA","timestamp":"{recent}","custom":{{"kept":true}}}}"#
        ),
        format!(
            r#"{{"uuid":"FIXTUREBBBBBBBBBBBBBBBBBBB","timestamp":"{recent}","action":"fill"}}"#
        ),
    ];
    std::fs::write(&path, lines.join("\n")).expect("write");
    let config = SimConfig {
        fixtures: vec![(SimStream::ItemUsages, path)],
        events_per_stream: 100,
        ..SimConfig::default()
    };
    let sim = sim(config).await;
    let (items, _) = drain(&sim, "/api/v1/itemusages", &sim.token(), json!({})).await;
    let expected: Vec<Value> =
        lines.iter().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(items, expected, "raw events, in order, nothing generated");
    std::fs::remove_dir_all(dir).expect("cleanup");
}

#[tokio::test]
async fn the_control_plane_mints_revokes_faults_and_injects() {
    let sim = sim(SimConfig::default()).await;
    let client = reqwest::Client::new();
    let control = |path: &str| format!("{}/_sim/{path}", sim.url());
    let minted = send(
        client
            .post(control("tokens"))
            .json(&json!({"features": ["auditevents"], "expires_in_secs": 3600})),
    )
    .await
    .json();
    let token = minted["token"].as_str().expect("token").to_owned();
    assert_eq!(post(&sim, "/api/v2/auditevents", &token, &json!({})).await.status, StatusCode::OK);
    assert_eq!(
        post(&sim, "/api/v2/itemusages", &token, &json!({})).await.status,
        StatusCode::UNAUTHORIZED
    );

    let queued =
        send(client.post(control("faults/next")).json(&json!([{"kind": "status", "status": 500}])))
            .await;
    assert_eq!(queued.status, StatusCode::NO_CONTENT);
    let failed = post(&sim, "/api/v2/auditevents", &token, &json!({})).await;
    assert_eq!(
        (failed.status, failed.json()),
        (StatusCode::INTERNAL_SERVER_ERROR, json!({"Error": {"Message": "Internal Server Error"}}))
    );

    let injected =
        send(client.post(control("events")).json(&json!({"stream": "audit_events"}))).await.json();
    let (items, _) = drain(&sim, "/api/v2/auditevents", &token, json!({})).await;
    assert_eq!(uuids(&items), [injected["uuid"].as_str().expect("uuid").to_owned()]);
    let stats = send(client.get(control("stats"))).await.json();
    assert_eq!(stats["visible_events"]["audit_events"], json!(1));

    send(client.post(control("revoke")).json(&json!({"sub": minted["sub"]}))).await;
    assert_eq!(
        post(&sim, "/api/v2/auditevents", &token, &json!({})).await.status,
        StatusCode::UNAUTHORIZED,
        "revoked mid-run"
    );
    let all_fail = send(client.put(control("faults")).json(&json!({"error_rate": 1.0}))).await;
    assert_eq!(all_fail.status, StatusCode::NO_CONTENT);
    let status = post(&sim, "/api/v2/auditevents", &sim.token(), &json!({})).await.status;
    assert!([500, 502, 503].contains(&status.as_u16()), "{status}");
}

#[path = "api/openapi.rs"]
mod openapi;

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::*;

fn token(aud: &str) -> String {
    let claims = format!(
        r#"{{"aud":["{aud}"],"1password.com/fts":["signinattempts","itemusages","auditevents"]}}"#
    );
    format!("eyJhbGciOiJFUzI1NiJ9.{}.c2ln", URL_SAFE_NO_PAD.encode(claims))
}

fn config(yaml: &str) -> OnePasswordSourceConfig {
    serde_yaml_ng::from_str(yaml).expect("deserialises")
}

fn messages(config: OnePasswordSourceConfig) -> Vec<(Option<&'static str>, String)> {
    match config.validate(Path::new("/etc/sluice")) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.into_iter().map(|e| (e.field, e.message)).collect(),
    }
}

#[test]
fn a_token_for_a_1password_host_is_enough() {
    let yaml = format!("token: {}\n", token("events.1password.eu"));
    assert!(messages(config(&yaml)).is_empty());
}

#[test]
fn hosts_outside_1password_need_allow_custom_url() {
    let yaml = format!("token: {}\n", token("127.0.0.1:8080"));
    let errors = messages(config(&yaml));
    assert_eq!(errors.len(), 1);
    assert!(errors[0].1.contains("`127.0.0.1:8080` is not a 1Password events host"), "{errors:?}");
    let errors = messages(config("token_file: t\nurl: https://evil.example.com\n"));
    assert_eq!(errors[0].0, Some("url"));
    assert!(
        messages(config("token_file: t\nurl: http://127.0.0.1:8080\nallow_custom_url: true\n"))
            .is_empty()
    );
}

#[test]
fn every_problem_is_reported() {
    let yaml = "token_file: t\ntoken: x.y.z\nstart_time: last tuesday\nlimit: 1001\nstreams: []\ninterval_secs: 0\n";
    let fields: Vec<_> = messages(config(yaml)).into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        fields,
        [
            Some("token_file"),
            Some("streams"),
            Some("start_time"),
            Some("limit"),
            Some("interval_secs")
        ]
    );
    let errors = messages(config("streams: [item_usages]\n"));
    assert_eq!(errors, [(None, "a token is required: set `token` or `token_file`".to_owned())]);
}

#[test]
fn start_time_is_a_date_or_a_duration_clamped_to_120_days() {
    assert!(matches!(parse_start_time("2026-08-01T00:00:00Z"), Ok(StartTime::At(_))));
    assert_eq!(parse_start_time("30d"), Ok(StartTime::Ago(Duration::from_secs(30 * 86_400))));
    let now = Utc::now();
    let clamped = StartTime::Ago(Duration::from_secs(400 * 86_400)).resolve(now);
    assert!(
        now - clamped < chrono::Duration::days(120) && now - clamped > chrono::Duration::days(119)
    );
    let recent = StartTime::Ago(Duration::from_secs(3600)).resolve(now);
    assert_eq!(now - recent, chrono::Duration::hours(1));
    // A start in the future would skip every event until then: now instead.
    let future = StartTime::At(now + chrono::Duration::days(2)).resolve(now);
    assert_eq!(future, now);
    let warned = config("token_file: t\nstart_time: 200d\n").warnings(now);
    assert_eq!(warned.len(), 1);
    assert_eq!(warned[0].field, Some("start_time"));
    assert!(config("token_file: t\nstart_time: 30d\n").warnings(now).is_empty());
}

#[test]
fn the_token_never_shows_in_debug_output() {
    let secret = token("events.1password.com");
    let source = config(&format!("token: {secret}\n")).validate(Path::new("/")).expect("valid");
    let debug = format!("{source:?}");
    assert!(!debug.contains(&secret), "{debug}");
    assert!(debug.contains("REDACTED"));
}

#[test]
fn values_that_would_panic_at_run_time_are_refused_or_clamped() {
    let now = Utc::now();
    let absurd = parse_start_time("300000y").expect("a duration");
    let start = absurd.resolve(now);
    assert!(now - start < chrono::Duration::days(120), "clamped to the retention, no overflow");
    let huge = u64::MAX;
    let yaml = format!(
        "token_file: t\ninterval_secs: {huge}\nrefused_retry_secs: {huge}\nretry_max_backoff_secs: {huge}\nrequest_timeout_secs: {huge}\nmax_pages_in_flight: {huge}\n"
    );
    let fields: Vec<_> = messages(config(&yaml)).into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        fields,
        [
            Some("interval_secs"),
            Some("request_timeout_secs"),
            Some("max_pages_in_flight"),
            Some("refused_retry_secs"),
            Some("retry_max_backoff_secs"),
        ]
    );
}

#[test]
fn a_1password_host_needs_https_and_no_credentials_in_the_url() {
    let errors = messages(config("token_file: t\nurl: http://events.1password.com\n"));
    assert_eq!(
        errors,
        [(Some("url"), "url `http://events.1password.com/` must be https: the token would cross the network in clear".to_owned())]
    );
    let errors = messages(config("token_file: t\nurl: https://user:pw@events.1password.com\n"));
    assert_eq!(errors[0].0, Some("url"));
    assert!(!errors[0].1.contains("pw"), "{errors:?}");
    assert!(messages(config("token_file: t\nurl: https://events.1password.com\n")).is_empty());
}

/// Review L5 (reliability 2026-12): an expired token passed `validate` and
/// was refused only by `run`.
#[test]
fn an_expired_token_is_refused_offline() {
    let claims =
        r#"{"aud":["events.1password.com"],"1password.com/fts":["auditevents"],"exp":1700000000}"#;
    let expired = format!("eyJhbGciOiJFUzI1NiJ9.{}.c2ln", URL_SAFE_NO_PAD.encode(claims));
    let found = messages(config(&format!("token: {expired}\n")));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, Some("token"));
    assert!(found[0].1.starts_with("the token expired at 2023-11-14T22:13:20+00:00"), "{found:?}");
    let file = tempfile::NamedTempFile::new().expect("file");
    std::fs::write(file.path(), &expired).expect("write");
    let source = crate::OnePasswordSource::new(
        config(&format!("token_file: {}\n", file.path().display()))
            .validate(Path::new("/"))
            .expect("settings are valid; the file is checked offline"),
    );
    let checks = sluice_core::component::Source::check_files(&source);
    assert_eq!(checks.errors.len(), 1, "{:?}", checks.errors);
    assert!(checks.errors[0].message.contains("the token expired at"), "{:?}", checks.errors);
}

#[test]
fn an_empty_url_means_the_host_comes_from_the_token() {
    // The shipped pipelines write `url: ${OP_EVENTS_URL:-}`: unset, the
    // token decides (.com, .ca, .eu, enterprise).
    for yaml in [
        format!("token: {}\nurl: ''\n", token("events.1password.eu")),
        format!("token: {}\nurl: '  '\n", token("events.1password.eu")),
        format!("token: {}\nurl:\n", token("events.1password.ca")),
    ] {
        let settings = config(&yaml).validate(Path::new("/etc/sluice")).expect("valid");
        assert_eq!(settings.url, None, "{yaml}");
    }
}

#[test]
fn ranges_read_as_every_components_do_and_an_empty_ca_file_is_none() {
    let errors = messages(config("token_file: t\nlimit: 0\nrefused_retry_secs: 90000\n"));
    assert_eq!(
        errors,
        [
            (Some("limit"), "limit is 0; it must be from 1 to 1000".to_owned()),
            (
                Some("refused_retry_secs"),
                "refused_retry_secs is 90000; it must be from 1 to 86400".to_owned()
            ),
        ]
    );
    let settings = config("token_file: t\ntls: {ca_file: ''}\n").validate(Path::new("/etc/sluice"));
    assert_eq!(settings.expect("valid").ca_file, None, "not the config folder itself");
}

//! The HEC sink's encode path: a raw 1Password item → one envelope, beside
//! the serde_json parse + serialize floor of the same item.
//! Run: cargo bench -p sluice-sink-splunk-hec

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_core::Event;
use sluice_sink_splunk_hec::SplunkHecSinkConfig;
use sluice_sink_splunk_hec::encode::encode;

const ITEM: &str = r#"{"uuid":"TB2VQ4N7XKZ5JW3HL6DRYMPCEA","session_uuid":"K3XQZP7V2B5NWJ4HL6TDRYMCEA","timestamp":"2026-11-20T08:15:41.5+01:00","country":"SE","category":"credentials_failed","type":"password_secret_bad","details":null,"target_user":{"uuid":"IK4PGPLXZNFL5HQ6ULZC7BAHZ4","name":"Ada Lovelace","email":"ada@example.com"},"client":{"app_name":"1Password for Mac","app_version":"81028002","platform_name":"Apple","platform_version":"MacBookPro18,3","os_name":"MacOSX","os_version":"14.6.1","ip_address":"89.160.20.156"},"account_uuid":"VZSYVT2LGHTBWBQGUJAIZVRABM"}"#;

fn bench(c: &mut Criterion) {
    let config: SplunkHecSinkConfig =
        serde_yaml_ng::from_str("endpoint: https://127.0.0.1:8088\ntoken: t\nindex: '1password'\n")
            .expect("config");
    let settings = config.validate(std::path::Path::new(".")).expect("valid");
    let mut event = Event::from_json(bytes::Bytes::from_static(ITEM.as_bytes())).expect("json");
    event.meta.dataset = Some("1password.signin_attempts".into());

    let mut group = c.benchmark_group("splunk_hec");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode_raw", |b| {
        b.iter(|| std::hint::black_box(encode(&event, &settings).expect("encodes")));
    });
    group.bench_function("floor_serde_json_parse_serialize", |b| {
        b.iter(|| {
            let value: serde_json::Value = serde_json::from_str(ITEM).expect("json");
            std::hint::black_box(serde_json::to_vec(&value).expect("json"))
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

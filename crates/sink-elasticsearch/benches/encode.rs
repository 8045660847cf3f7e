//! The sink's encode path: an ECS document → bulk action + document line,
//! and a 1000-item batch compressed with gzip.
//! Run: cargo bench -p sluice-sink-elasticsearch

use std::io::Write;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_core::Event;
use sluice_sink_elasticsearch::ElasticsearchSinkConfig;
use sluice_sink_elasticsearch::encode::encode;

const DOCUMENT: &str = r#"{"@timestamp":"2026-11-20T07:15:41.500Z","ecs":{"version":"8.11.0"},"event":{"action":"credentials_failed","category":["authentication"],"dataset":"1password.signin_attempts","kind":"event","original":"{\"uuid\":\"TB2VQ4N7XKZ5JW3HL6DRYMPCEA\",\"session_uuid\":\"K3XQZP7V2B5NWJ4HL6TDRYMCEA\",\"timestamp\":\"2026-11-20T08:15:41.5+01:00\",\"country\":\"SE\",\"category\":\"credentials_failed\",\"type\":\"password_secret_bad\",\"details\":null,\"target_user\":{\"uuid\":\"IK4PGPLXZNFL5HQ6ULZC7BAHZ4\",\"name\":\"Ada Lovelace\",\"email\":\"ada@example.com\"},\"client\":{\"app_name\":\"1Password for Mac\",\"app_version\":\"81028002\",\"platform_name\":\"Apple\",\"platform_version\":\"MacBookPro18,3\",\"os_name\":\"MacOSX\",\"os_version\":\"14.6.1\",\"ip_address\":\"89.160.20.156\"}}","outcome":"failure","type":["info"]},"host":{"os":{"name":"MacOSX","version":"14.6.1"}},"onepassword":{"client":{"app_name":"1Password for Mac","app_version":"81028002","platform_name":"Apple","platform_version":"MacBookPro18,3"},"country":"SE","session_uuid":"K3XQZP7V2B5NWJ4HL6TDRYMCEA","type":"password_secret_bad","uuid":"TB2VQ4N7XKZ5JW3HL6DRYMPCEA"},"related":{"ip":["89.160.20.156"],"user":["IK4PGPLXZNFL5HQ6ULZC7BAHZ4","ada@example.com","Ada Lovelace"]},"source":{"as":{"number":29518,"organization":{"name":"Bredband2 AB"}},"geo":{"city_name":"Linköping","continent_name":"Europe","country_iso_code":"SE","country_name":"Sweden","location":{"lat":58.4167,"lon":15.6167},"region_iso_code":"SE-E","region_name":"Östergötland County"},"ip":"89.160.20.156"},"user":{"email":"ada@example.com","full_name":"Ada Lovelace","id":"IK4PGPLXZNFL5HQ6ULZC7BAHZ4","name":"Ada Lovelace"}}"#;

fn bench(c: &mut Criterion) {
    let config: ElasticsearchSinkConfig =
        serde_yaml_ng::from_str("endpoints: [http://127.0.0.1:9200]").expect("config");
    let settings = config.validate(std::path::Path::new(".")).expect("valid");
    let mut event = Event::from_json(bytes::Bytes::from_static(DOCUMENT.as_bytes())).expect("json");
    event.meta.dataset = Some("1password.signin_attempts".into());

    let mut group = c.benchmark_group("elasticsearch");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode", |b| {
        b.iter(|| {
            let mut copy = event.clone();
            std::hint::black_box(encode(&mut copy, &settings).expect("encodes"));
        });
    });
    let mut batch = Vec::new();
    for _ in 0..1000 {
        let mut copy = event.clone();
        batch.extend_from_slice(&encode(&mut copy, &settings).expect("encodes").payload);
    }
    group.throughput(Throughput::Elements(1000));
    group.bench_function("gzip_1000", |b| {
        b.iter(|| {
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(batch.len() / 4),
                flate2::Compression::fast(),
            );
            gz.write_all(&batch).expect("gzip");
            std::hint::black_box(gz.finish().expect("gzip"));
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

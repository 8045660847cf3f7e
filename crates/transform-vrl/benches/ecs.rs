//! parse → map (pipelines/vrl/ecs.vrl, with GeoIP) → serialise, per stream.
//! Run: cargo bench -p sluice-transform-vrl --features test-util

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_core::Event;
use sluice_core::component::{FunctionTransform, TransformOutput};
use sluice_transform_vrl::{GeoIpConfig, VrlTransformConfig};

fn raw(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../tests/fixtures/ecs/{name}.json"));
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON");
    fixture["raw"].as_str().expect("raw").to_owned()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (city, asn) = sluice_transform_vrl::testing::write_databases(dir.path());
    run(c, "ecs", &dir, GeoIpConfig { city_db: Some(city), asn_db: Some(asn) });
    run(c, "ecs_without_geoip", &dir, GeoIpConfig::default());
}

fn run(c: &mut Criterion, name: &str, dir: &tempfile::TempDir, geoip: GeoIpConfig) {
    let config = VrlTransformConfig {
        source: None,
        file: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/vrl/ecs.vrl")),
        files: None,
        geoip,
        event_budget_ms: 1000,
        concurrency: None,
    };
    let mut transform = config.validate(dir.path(), "bench").expect("compiles");
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    for (stream, fixture) in [
        ("signin_attempts", "signin_credentials_failed"),
        ("item_usages", "item_usage_with_action_and_location"),
        ("audit_events", "audit_with_actor_details_and_location"),
    ] {
        let dataset: std::sync::Arc<str> = format!("1password.{stream}").into();
        let text = bytes::Bytes::from(raw(fixture));
        let mut out = TransformOutput::default();
        let mut buffer = Vec::with_capacity(4096);
        group.bench_function(stream, |b| {
            b.iter(|| {
                let mut event = Event::from_json(text.clone()).expect("parse");
                event.meta.dataset = Some(dataset.clone());
                transform.transform(event, &mut out);
                let (mapped, failed) = out.take_for_test();
                assert!(failed.is_empty());
                buffer.clear();
                mapped[0].write_json(&mut buffer);
                std::hint::black_box(&buffer);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

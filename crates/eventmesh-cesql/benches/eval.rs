//! Cost of evaluating typical subscription filters on one event.
//!
//! `cargo bench -p eventmesh-cesql --bench eval -- --warm-up-time 1 --measurement-time 3`
//!
//! * `matches/<filter>`: [`Expression::matches`], what a subscription runs per event;
//! * `evaluate/<filter>`: [`Expression::evaluate`] (value and error list);
//! * `parse/<filter>`: parsing and checking, once per subscription.
//!
//! Goal on the 2-core reference machine: under 200 ns per event for these filters.

use std::hint::black_box;
use std::time::Duration;

use chrono::TimeZone;
use criterion::{Criterion, criterion_group, criterion_main};
use eventmesh_cesql::Expression;
use eventmesh_core::{CloudEvent, ExtensionValue};

const FILTERS: [(&str, &str); 5] = [
    (
        "type_and_like",
        "type = 'com.example.order.created' AND source LIKE '/orders/%'",
    ),
    (
        "in_list",
        "type IN ('com.example.order.cancelled', 'com.example.order.shipped', \
         'com.example.order.created', 'com.example.order.returned')",
    ),
    ("arithmetic", "seq * 2 + 1 > 50"),
    (
        "like_suffix_or_exists",
        "subject LIKE '%.priority' OR EXISTS urgent",
    ),
    (
        "no_match_short_circuit",
        "type = 'com.example.payment.failed' AND region IN ('eu', 'us')",
    ),
];

fn event() -> CloudEvent {
    let mut e = CloudEvent::new(
        "8a1b9c2e-44f1-4bd4-9a6e-4f1b2c3d4e5f",
        "/orders/eu-west-1",
        "com.example.order.created",
    )
    .with_data("application/json", r#"{"order":1234,"total":99.5}"#)
    .with_extension("seq", ExtensionValue::Integer(42))
    .with_extension("region", "eu")
    .with_extension("partitionkey", "customer-7781");
    e.subject = Some("orders/1234.priority".to_owned());
    e.time = chrono::Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).single();
    e
}

fn bench(c: &mut Criterion) {
    let event = event();
    // What the machine gives right now for the cheapest part of a filter (one string
    // comparison), to read the other figures against when the machine is busy.
    c.bench_function("baseline/string_eq", |b| {
        b.iter(|| black_box(&event).ty == black_box("com.example.order.created"))
    });
    let mut matches = c.benchmark_group("matches");
    for (name, src) in FILTERS {
        let expr = Expression::parse(src).expect("the filter parses");
        matches.bench_function(name, |b| {
            b.iter(|| black_box(&expr).matches(black_box(&event)))
        });
    }
    matches.finish();

    let mut evaluate = c.benchmark_group("evaluate");
    for (name, src) in FILTERS {
        let expr = Expression::parse(src).expect("the filter parses");
        evaluate.bench_function(name, |b| {
            b.iter(|| black_box(&expr).evaluate(black_box(&event)).is_match())
        });
    }
    evaluate.finish();

    let mut parse = c.benchmark_group("parse");
    for (name, src) in FILTERS.into_iter().take(3) {
        parse.bench_function(name, |b| b.iter(|| Expression::parse(black_box(src))));
    }
    parse.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);

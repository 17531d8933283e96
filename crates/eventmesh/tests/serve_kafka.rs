//! `eventmesh serve --store kafka --store-url kafka://…` (the real binary) in front of a private
//! tansu broker (Kafka-compatible, on free loopback ports), with `eventmesh sub` and
//! `eventmesh pub` as clients: the events go through Kafka and come out of the subscriber.
//! A missing `tansu` fails the test (scripts/install-brokers installs it).

#![cfg(feature = "kafka")]

mod common;

use common::serve_store::{Serve, carry};
use common::tansu::start_tansu;

#[test]
fn should_carry_events_through_kafka() {
    let dir = tempfile::tempdir().expect("dir");
    // Declared after `dir`: killed before its directory is removed.
    let (port, _broker) = start_tansu(dir.path());
    let serve = Serve::start(
        "kafka",
        &format!("kafka://127.0.0.1:{port}"),
        &dir.path().join("node"),
        "Opened the Kafka store.",
        &String::new,
    );
    let data = carry(&serve, "T-kafka", "g-kafka", &["one", "two"], &String::new);
    assert_eq!(data, ["one", "two"]);
    serve.stop();
}

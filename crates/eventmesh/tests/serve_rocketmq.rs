//! `eventmesh serve --store rocketmq --store-url rocketmq://…` (the real binary) in front of a
//! private rocketmq-rust name server and broker (on free loopback ports, started by
//! `eventmesh_storage_rocketmq::test_broker`), with `eventmesh sub` and `eventmesh pub` as
//! clients: the events go through RocketMQ and come out of the subscriber. Missing broker
//! binaries fail the test (scripts/install-brokers installs them).

#![cfg(feature = "rocketmq")]

use eventmesh_storage_rocketmq::test_broker::RocketBroker;

mod common;

use common::serve_store::{Serve, carry};

/// The events published, one per line.
const EVENTS: [&str; 5] = ["one", "two", "three", "four", "five"];

#[test]
fn should_carry_events_through_rocketmq() {
    let dir = tempfile::tempdir().expect("dir");
    // Declared after `dir`: killed (with its own directory removed) before `dir` is.
    let broker = RocketBroker::start();
    // `serve` opens its store once: the broker must be known to the name server by then.
    broker.wait_registered();
    let context = || broker.log_tail();
    let serve = Serve::start(
        "rocketmq",
        &broker.url(),
        &dir.path().join("node"),
        "RocketMQ store open.",
        &context,
    );
    let data = carry(&serve, "T-rocketmq", "g-rocketmq", &EVENTS, &context);
    // One queue per topic: the events come out in the order they were published.
    assert_eq!(data, EVENTS);
    serve.stop();
}

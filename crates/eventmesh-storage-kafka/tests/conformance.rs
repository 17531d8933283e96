//! The storage conformance kit against a real Kafka-compatible broker (tansu 0.6.0, one private
//! broker per test with the SQLite engine; the restart scenario restarts it on the same port and
//! data).
//!
//! The scenarios are listed one by one (rather than with `conformance_tests!`) because one of
//! them runs on a broker with tansu's memory engine: `nack_and_lease_redelivery`. With the
//! SQLite engine the test process died with SIGSEGV inside librdkafka
//! (`rd_kafka_metadata_cache_find` under `rd_kafka_metadata_update_op`) while the kit deleted
//! its topics: tansu answered a fetch as for an unknown topic, with a `CurrentLeader` and a zero
//! topic id, which librdkafka's leader discovery looks up by a null name (docs/stores.md). The
//! scenario restarts no broker, so the memory engine serves it as well.

mod common;

use eventmesh_storage::testkit;

macro_rules! scenario {
    ($(#[$attr:meta])* $name:ident) => {
        scenario!($(#[$attr])* $name, common::TansuFactory::start());
    };
    ($(#[$attr:meta])* $name:ident, $factory:expr) => {
        $(#[$attr])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let factory = $factory;
            if let Err(failure) = testkit::$name(&factory).await {
                panic!("{failure}");
            }
        }
    };
}

scenario!(publish_fetch_order);
scenario!(clustering_shared_cursor);
scenario!(broadcasting_fan_out);
scenario!(nack_and_lease_redelivery, common::TansuFactory::in_memory());
scenario!(replay_and_seek);
scenario!(restart_durability);
scenario!(topic_admin);

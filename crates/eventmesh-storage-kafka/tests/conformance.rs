//! The storage conformance kit against a real Kafka-compatible broker (tansu 0.6.0, one private
//! broker per test with the SQLite engine; the restart scenario restarts it on the same port and
//! data).
//!
//! The scenarios are listed one by one (rather than with `conformance_tests!`) because one of
//! them fails against tansu 0.6.0 for a reason recorded in docs/stores.md and is ignored here,
//! so that it is run on purpose (`-- --ignored`) and not forgotten:
//!
//! * `nack_and_lease_redelivery`: the test process dies with SIGSEGV inside librdkafka
//!   (`rd_kafka_metadata_cache_find` called from `rd_kafka_metadata_update_op` in a client's
//!   main thread) while the kit deletes its topics: tansu answers a fetch of a topic it does
//!   not find with a `CurrentLeader` and a zero topic id, which librdkafka's leader discovery
//!   looks up by a null name.

mod common;

use eventmesh_storage::testkit;

macro_rules! scenario {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let factory = common::TansuFactory::start();
            if let Err(failure) = testkit::$name(&factory).await {
                panic!("{failure}");
            }
        }
    };
}

scenario!(publish_fetch_order);
scenario!(clustering_shared_cursor);
scenario!(broadcasting_fan_out);
scenario!(
    #[ignore = "SIGSEGV inside librdkafka's metadata cache against tansu 0.6.0; see docs/stores.md"]
    nack_and_lease_redelivery
);
scenario!(replay_and_seek);
scenario!(restart_durability);
scenario!(topic_admin);

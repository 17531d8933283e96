//! The storage conformance kit against a real Kafka-compatible broker (tansu 0.6.0, one private
//! broker per test with the SQLite engine; the restart scenario restarts it on the same port and
//! data).
//!
//! The scenarios are listed one by one (rather than with `conformance_tests!`) because two of
//! them fail against tansu 0.6.0 for reasons recorded in docs/stores.md and ignored here, so
//! that they are run on purpose (`-- --ignored`) and not forgotten:
//!
//! * `restart_durability`: tansu stores the metadata of an offset commit but its `OffsetFetch`
//!   answer leaves it out, so after a restart the store cannot know the events acked above the
//!   committed offset (they are delivered again) nor the earlier delivery counts.
//! * `nack_and_lease_redelivery`: the test process dies with SIGSEGV inside librdkafka
//!   (`rd_kafka_metadata_cache_find` called from `rd_kafka_metadata_update_op` in a client's
//!   main thread) while running against tansu; not yet understood.

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
scenario!(
    #[ignore = "tansu 0.6.0 does not return commit metadata in OffsetFetch; see docs/stores.md"]
    restart_durability
);
scenario!(topic_admin);

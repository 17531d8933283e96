//! The storage conformance kit against a real Kafka-compatible broker (tansu, one private broker
//! per test with the SQLite engine; the restart scenario restarts it on the same port and data).

mod common;

eventmesh_storage::conformance_tests!(common::TansuFactory::start());

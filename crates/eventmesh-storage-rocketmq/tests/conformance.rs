//! The storage conformance kit against a real RocketMQ name server and broker (rocketmq-rust
//! 1.0.0; one private pair per test on free ports, with the small-store settings).

mod common;

eventmesh_storage::conformance_tests!(common::RocketFactory::start());

//! The storage conformance kit against a real nats-server with JetStream (one private server per
//! test; the restart scenario restarts it on the same port and store directory).

mod common;

eventmesh_storage::conformance_tests!(common::NatsFactory::start());

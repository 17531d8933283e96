//! Generates the gRPC code from `proto/` at build time: `protox` parses the files into a
//! descriptor set (no system `protoc`), `tonic-prost-build` writes the messages and services.

use std::error::Error;

const PROTOS: [&str; 3] = [
    "proto/eventmesh-cloudevents.proto",
    "proto/eventmesh-service.proto",
    "proto/eventmesh-client.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    tonic_prost_build::configure()
        // A CloudEvent carries a dozen or more small attributes; a BTreeMap decodes them with
        // no hashing and no rehashing as the map grows (the top cost of a batch publish was
        // HashMap inserts and rehashes: docs/benchmarks.md, "gRPC server").
        .btree_map(".org.apache.eventmesh.cloudevents.v1.CloudEvent.attributes")
        .build_server(std::env::var_os("CARGO_FEATURE_SERVER").is_some())
        .build_client(std::env::var_os("CARGO_FEATURE_CLIENT").is_some())
        .compile_fds(descriptors)?;
    Ok(())
}

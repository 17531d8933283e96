//! `eventmesh pub --grpc` and `eventmesh sub --grpc` (the real binary, as child processes)
//! against a runtime in-process on port 0.

mod common;

use common::{Node, check_bad_filter_refused, check_pub_sub, data_of, filtered_sub};
use eventmesh_sdk::grpc::{GrpcConfig, GrpcPublisher};
use eventmesh_sdk::{CloudEvent, random_id};

#[test]
fn should_publish_and_subscribe_over_grpc() {
    let node = Node::start();
    check_pub_sub("--grpc", &node.grpc, "T-cli-grpc", "g-cli-grpc");
}

#[test]
fn should_pass_a_filter_through_the_grpc_subscription() {
    let node = Node::start();
    let sub = filtered_sub(
        "--grpc",
        &node.grpc,
        "T-cli-grpc-filter",
        "g-cli-grpc-filter",
    );
    // Events of another type first: were the filter not applied, they would fill the count.
    let endpoint = format!("http://{}", node.grpc);
    node.rt.block_on(async {
        let publisher = GrpcPublisher::connect(GrpcConfig::new(endpoint, "p-cli-grpc"))
            .await
            .expect("a gRPC publisher");
        for (ty, data) in [
            ("drop", "d1"),
            ("drop", "d2"),
            ("keep", "k1"),
            ("keep", "k2"),
        ] {
            let event = CloudEvent::new(random_id(), "/cli-test", ty).with_data("text/plain", data);
            publisher
                .publish("T-cli-grpc-filter", event)
                .await
                .expect("published");
        }
    });
    let got = sub.printed();
    for line in &got {
        assert!(line.contains(r#""type":"keep""#), "{line}");
    }
    assert_eq!(data_of(&got), ["k1", "k2"]);

    // A filter that does not parse is refused with the parse error: exit 1.
    check_bad_filter_refused("--grpc", &node.grpc, "T-cli-grpc-bad", "g-cli-grpc-filter");
}

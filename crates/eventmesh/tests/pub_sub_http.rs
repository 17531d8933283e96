//! `eventmesh pub --http` and `eventmesh sub --http` (the real binary, as child processes)
//! against a runtime in-process on port 0.

mod common;

use common::{Node, check_bad_filter_refused, check_pub_sub, data_of, filtered_sub};
use eventmesh_sdk::http::{HttpConfig, HttpMode, HttpPublisher};
use eventmesh_sdk::{CloudEvent, random_id};

#[test]
fn should_publish_and_subscribe_over_http() {
    let node = Node::start();
    check_pub_sub("--http", &node.http, "T-cli-http", "g-cli-http");
}

#[test]
fn should_pass_a_filter_through_the_http_subscribe_body() {
    let node = Node::start();
    let sub = filtered_sub("--http", &node.http, "T-cli-filter", "g-cli-filter");
    // Events of another type first: were the filter not applied, they would fill the count.
    let base = format!("http://{}", node.http);
    node.rt.block_on(async {
        let publisher = HttpPublisher::new(HttpConfig::new(base).mode(HttpMode::CloudEvents))
            .expect("an HTTP publisher");
        for (ty, data) in [
            ("drop", "d1"),
            ("drop", "d2"),
            ("keep", "k1"),
            ("drop", "d3"),
            ("keep", "k2"),
        ] {
            let event = CloudEvent::new(random_id(), "/cli-test", ty).with_data("text/plain", data);
            publisher
                .publish("T-cli-filter", event)
                .await
                .expect("published");
        }
    });
    // The push carries the subscriber's format (the type is not kept by the legacy form);
    // the data tells the events apart.
    assert_eq!(data_of(&sub.printed()), ["k1", "k2"]);

    // A filter that does not parse is refused by the mesh with the parse error: exit 1.
    check_bad_filter_refused("--http", &node.http, "T-cli-filter-bad", "g-cli-filter");
}

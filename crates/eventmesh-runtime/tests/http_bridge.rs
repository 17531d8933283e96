//! Mesh-to-mesh bridging between two runtimes in-process: mesh B subscribes on mesh A with
//! `/eventmesh/subscribe/remote`; events published on A reach B's own webhook subscriber through
//! B's `/eventmesh/bridge/publish`, intact; `/eventmesh/unsubscribe/remote` ends it.

mod http_common;

use std::time::Duration;

use http_common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn should_bridge_a_topic_from_a_remote_mesh_and_stop_on_unsubscribe() {
    let (a, _dir_a) = start(|_| {}).await;
    let (b, _dir_b) = start(|c| c.server.http.bridge.group = "cluster-b-bridge".to_owned()).await;
    let http = Http::default();
    let (base_a, base_b) = (base(&a), base(&b));

    // B's own subscriber of the topic, in binary mode to see every attribute (BROADCASTING
    // here; the bridge itself is CLUSTERING).
    let mut rx = Receiver::ok().await;
    subscribe(
        &http,
        &base_b,
        &rx.url(),
        "b-local",
        "bridged-t",
        "BROADCASTING",
        &[("format", json!("binary"))],
    )
    .await;

    // B subscribes on A, naming A the way the Java documentation does.
    let body = json!({
        "url": "http://127.0.0.1:1/replaced",
        "consumerGroup": "replaced-too",
        "topic": [{"topic": "bridged-t", "mode": "BROADCASTING", "type": "ASYNC"}],
        "remoteMesh": format!("{base_a}/eventmesh/subscribe/local"),
    });
    let r = http
        .post(
            &format!("{base_b}/eventmesh/subscribe/remote"),
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (200, 0), "{}", r.body);
    let callback = format!("{base_b}/eventmesh/bridge/publish");
    assert_eq!(r.json()["callbackUrl"], callback.as_str(), "{}", r.body);
    assert_eq!(r.json()["remoteMesh"], base_a.as_str());

    // A now holds B's bridge subscription: B's group, B's callback URL, CLUSTERING.
    let subs = subscriptions(&http, &base_a).await;
    let bridge = subs
        .iter()
        .find(|s| s["consumerGroup"] == "cluster-b-bridge")
        .unwrap_or_else(|| panic!("no bridge subscription on A: {subs:?}"));
    assert_eq!(bridge["url"], callback.as_str(), "{bridge}");
    assert_eq!(bridge["mode"], "CLUSTERING", "{bridge}");
    assert_eq!(bridge["format"], "form-cloudevents", "{bridge}");

    // Published on A with an extension: B's subscriber gets it, every attribute kept.
    let ev = json!({
        "specversion": "1.0", "id": "bridged-1", "source": "/mesh-a", "type": "t.bridged",
        "datacontenttype": "text/plain", "data": "across meshes", "myext": "kept",
    });
    let r = http
        .post(
            &format!("{base_a}/eventmesh/publish/bridged-t"),
            &[("content-type", "application/cloudevents+json")],
            ev.to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let p = tokio::time::timeout(Duration::from_secs(20), rx.next())
        .await
        .expect("the bridged event reaches B's subscriber");
    assert_eq!(p.body.as_ref(), b"across meshes");
    for (k, v) in [
        ("ce-id", "bridged-1"),
        ("ce-source", "/mesh-a"),
        ("ce-type", "t.bridged"),
        ("ce-myext", "kept"),
    ] {
        assert_eq!(p.header(k), Some(v), "{k}: {:?}", p.headers);
    }
    // Nothing of the push itself was added to the event.
    for k in ["ce-bizseqno", "ce-uniqueid", "ce-language"] {
        assert_eq!(p.header(k), None, "{k}: {:?}", p.headers);
    }

    // Unsubscribed on A: events published there no longer come.
    let r = http
        .post(
            &format!("{base_b}/eventmesh/unsubscribe/remote"),
            &[("content-type", "application/json")],
            json!({"topic": ["bridged-t"], "remoteMesh": base_a}).to_string(),
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (200, 0), "{}", r.body);
    let subs = subscriptions(&http, &base_a).await;
    assert!(
        !subs
            .iter()
            .any(|s| s["consumerGroup"] == "cluster-b-bridge"),
        "{subs:?}"
    );
    publish_ce(&http, &base_a, "bridged-t", "after-unsub", "gone").await;
    // A marker published on B itself arrives; the event published on A before it does not.
    publish_ce(&http, &base_b, "bridged-t", "marker", "marker").await;
    let p = tokio::time::timeout(Duration::from_secs(20), rx.next())
        .await
        .expect("the marker");
    assert_eq!(p.body.as_ref(), b"marker");
    assert!(rx.try_next().is_none());
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn should_refuse_bad_bridge_requests_clearly() {
    let (b, _dir) = start(|_| {}).await;
    let http = Http::default();
    let base_b = base(&b);
    let topics = json!([{"topic": "t", "mode": "CLUSTERING", "type": "ASYNC"}]);
    let sub = |remote: Value| {
        json!({"url": "http://127.0.0.1:1/x", "consumerGroup": "g", "topic": topics, "remoteMesh": remote})
            .to_string()
    };
    let post = |path: &'static str, body: String| {
        let http = &http;
        let base_b = &base_b;
        async move {
            http.post(
                &format!("{base_b}/eventmesh/{path}"),
                &[("content-type", "application/json")],
                body,
            )
            .await
        }
    };
    // No remoteMesh, or not an HTTP address: 400.
    let r = post(
        "subscribe/remote",
        json!({"url": "http://127.0.0.1:1/x", "consumerGroup": "g", "topic": topics}).to_string(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("remoteMesh"), "{}", r.body);
    let r = post("subscribe/remote", sub(json!("tcp://host:1"))).await;
    assert_eq!(r.status, 400, "{}", r.body);
    // Nobody listens there: 502 naming the remote mesh.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let r = post("subscribe/remote", sub(json!(format!("http://{dead}")))).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.body.contains(&dead.to_string()), "{}", r.body);
    // A remote mesh that refuses (here B itself, for an invalid topic name): 502 with its answer.
    let r = post(
        "subscribe/remote",
        json!({"url": "http://127.0.0.1:1/x", "consumerGroup": "g", "remoteMesh": base_b,
               "topic": [{"topic": "t", "mode": "CLUSTERING", "type": "ASYNC", "filter": "((("}]})
        .to_string(),
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.body.contains("refused"), "{}", r.body);
    // The deny list applies to remoteMesh.
    let r = post("subscribe/remote", sub(json!("http://169.254.169.254"))).await;
    assert_eq!(r.status, 403, "{}", r.body);
    // bridge/publish: a form push without topic or content is a 400; a Java mesh's legacy form
    // push is published.
    let r = http
        .post(
            &format!("{base_b}/eventmesh/bridge/publish"),
            &[("content-type", "application/x-www-form-urlencoded")],
            "content=x",
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let mut rx = Receiver::ok().await;
    subscribe(
        &http,
        &base_b,
        &rx.url(),
        "g-legacy",
        "legacy-bridged",
        "CLUSTERING",
        &[],
    )
    .await;
    let r = http
        .post(
            &format!("{base_b}/eventmesh/bridge/publish"),
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("code", "105"),
                ("protocoltype", "eventmeshmessage"),
            ],
            form(&[
                ("topic", "legacy-bridged"),
                ("content", "from a java mesh"),
                ("bizseqno", "12345678901234567890"),
                ("uniqueId", "j-1"),
            ]),
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (200, 0), "{}", r.body);
    let p = tokio::time::timeout(Duration::from_secs(20), rx.next())
        .await
        .expect("the pushed event");
    assert_eq!(p.form()["content"], "from a java mesh");
    b.shutdown().await;
}

async fn subscriptions(http: &Http, base: &str) -> Vec<Value> {
    let r = http
        .post(&format!("{base}/eventmesh/subscription/query"), &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["subscriptions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

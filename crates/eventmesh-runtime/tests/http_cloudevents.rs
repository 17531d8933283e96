//! The CloudEvents HTTP binding on the publish paths (binary, structured, batched, and the Java
//! runtime's wrapping of other requests), and the three webhook push formats.

mod http_common;

use http_common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn should_take_binary_mode_and_push_it_binary() {
    let (h, _dir) = start(|_| {}).await;
    let http = Http::default();
    let base = base(&h);
    let mut rx = Receiver::ok().await;
    subscribe(
        &http,
        &base,
        &rx.url(),
        "ce-g",
        "ce-bin",
        "CLUSTERING",
        &[("format", json!("binary"))],
    )
    .await;
    let r = http
        .post(
            &format!("{base}/eventmesh/publish/ce-bin"),
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", "evt-1"),
                ("ce-source", "/sensors/a%20b"),
                ("ce-type", "com.example.reading"),
                ("ce-subject", "room-1"),
                ("ce-time", "2024-05-01T10:00:00Z"),
                ("ce-traceid", "caf%C3%A9"),
                ("content-type", "application/octet-stream"),
            ],
            vec![0u8, 1, 2, 255],
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (200, 0), "{}", r.body);
    assert_eq!(r.json()["eventIds"].as_array().unwrap().len(), 1);
    assert_eq!(r.headers.get("uri").unwrap(), "/eventmesh/publish/ce-bin");
    let p = rx.next().await;
    assert_eq!(p.header("ce-specversion"), Some("1.0"));
    assert_eq!(p.header("ce-id"), Some("evt-1"));
    assert_eq!(p.header("ce-source"), Some("/sensors/a%20b"));
    assert_eq!(p.header("ce-type"), Some("com.example.reading"));
    assert_eq!(p.header("ce-subject"), Some("room-1"));
    assert!(
        p.header("ce-time")
            .unwrap()
            .starts_with("2024-05-01T10:00:00")
    );
    assert_eq!(p.header("ce-traceid"), Some("caf%C3%A9"));
    assert_eq!(p.header("content-type"), Some("application/octet-stream"));
    assert_eq!(&p.body[..], &[0u8, 1, 2, 255]);
    h.shutdown().await;
}

#[tokio::test]
async fn should_take_structured_and_batched_mode_and_push_cloudevents_json_in_a_form() {
    let (h, _dir) = start(|_| {}).await;
    let http = Http::default();
    let base = base(&h);
    let mut rx = Receiver::ok().await;
    // protocoltype=cloudevents chooses the form with CloudEvent JSON content.
    let body = json!({"url": rx.url(), "consumerGroup": "ce-g2", "topic": [{"topic": "ce-st", "mode": "CLUSTERING", "type": "ASYNC"}]});
    let r = http
        .post(
            &format!("{base}/eventmesh/subscribe/local"),
            &[
                ("content-type", "application/json"),
                ("protocoltype", "cloudevents"),
            ],
            body.to_string(),
        )
        .await;
    assert_eq!(r.ret_code(), 0, "{}", r.body);
    let ev = json!({"specversion": "1.0", "id": "s-1", "source": "/s", "type": "t", "datacontenttype": "application/json", "data": {"a": 1}, "myext": "x"});
    let r = http
        .post(
            &format!("{base}/eventmesh/publish/ce-st"),
            &[(
                "content-type",
                "application/cloudevents+json; charset=utf-8",
            )],
            ev.to_string(),
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (200, 0), "{}", r.body);
    let p = rx.next().await;
    assert_eq!(p.header("protocoltype"), Some("cloudevents"));
    assert_eq!(p.header("code"), Some("105"));
    let content: Value = serde_json::from_str(&p.content()).unwrap();
    assert_eq!(content["id"], "s-1");
    assert_eq!(content["data"], json!({"a": 1}));
    assert_eq!(content["myext"], "x");

    // A batch to the topic of the path.
    let batch = json!([
        {"specversion": "1.0", "id": "b-1", "source": "/s", "type": "t", "data": "one"},
        {"specversion": "1.0", "id": "b-2", "source": "/s", "type": "t", "data": "two"},
    ]);
    let r = http
        .post(
            &format!("{base}/eventmesh/publish/ce-st"),
            &[("content-type", "application/cloudevents-batch+json")],
            batch.to_string(),
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (200, 0), "{}", r.body);
    assert_eq!(r.json()["eventIds"].as_array().unwrap().len(), 2);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let c: Value = serde_json::from_str(&rx.next().await.content()).unwrap();
        ids.push(c["id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    assert_eq!(ids, ["b-1", "b-2"]);

    // /eventmesh/publish/batch: topics from each event's subject.
    let batch = json!([
        {"specversion": "1.0", "id": "c-1", "source": "/s", "type": "t", "subject": "ce-st", "data": "x"},
        {"specversion": "1.0", "id": "c-2", "source": "/s", "type": "t", "subject": "ce-other", "data": "y"},
    ]);
    let r = http
        .post(
            &format!("{base}/eventmesh/publish/batch"),
            &[("content-type", "application/cloudevents-batch+json")],
            batch.to_string(),
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (200, 0), "{}", r.body);
    let c: Value = serde_json::from_str(&rx.next().await.content()).unwrap();
    assert_eq!(c["id"], "c-1");
    // … or from the `topic` header.
    let r = http
        .post(
            &format!("{base}/eventmesh/publish/batch"),
            &[
                ("content-type", "application/cloudevents+json"),
                ("topic", "ce-st"),
            ],
            json!({"specversion": "1.0", "id": "d-1", "source": "/s", "type": "t"}).to_string(),
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (200, 0), "{}", r.body);
    let c: Value = serde_json::from_str(&rx.next().await.content()).unwrap();
    assert_eq!(c["id"], "d-1");
    h.shutdown().await;
}

#[tokio::test]
async fn should_refuse_invalid_events_naming_the_attribute() {
    let (h, _dir) = start(|_| {}).await;
    let http = Http::default();
    let base = base(&h);
    let url = format!("{base}/eventmesh/publish/ce-bad");
    // (headers, body, status, attribute named)
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<u8>, u16, Option<&'a str>);
    let cases: Vec<Case> = vec![
        // structured: no source
        (vec![("content-type", "application/cloudevents+json")], json!({"specversion": "1.0", "id": "1", "type": "t"}).to_string().into_bytes(), 400, Some("source")),
        // structured: bad specversion
        (vec![("content-type", "application/cloudevents+json")], json!({"specversion": "2.0", "id": "1", "source": "/s", "type": "t"}).to_string().into_bytes(), 400, Some("specversion")),
        // structured: bad extension name
        (vec![("content-type", "application/cloudevents+json")], json!({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "Bad-Name": 1}).to_string().into_bytes(), 400, Some("Bad-Name")),
        // structured: not JSON
        (vec![("content-type", "application/cloudevents+json")], b"{not json".to_vec(), 400, None),
        // batch: the second event has no id
        (vec![("content-type", "application/cloudevents-batch+json")], json!([{"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}, {"specversion": "1.0", "source": "/s", "type": "t"}]).to_string().into_bytes(), 400, Some("id")),
        // batch: not an array
        (vec![("content-type", "application/cloudevents-batch+json")], b"{}".to_vec(), 400, None),
        // binary: no type
        (vec![("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "/s")], b"x".to_vec(), 400, Some("type")),
        // binary: bad time
        (vec![("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "/s"), ("ce-type", "t"), ("ce-time", "noon")], Vec::new(), 400, Some("time")),
        // binary: broken percent-encoding
        (vec![("ce-specversion", "1.0"), ("ce-id", "1%zz"), ("ce-source", "/s"), ("ce-type", "t")], Vec::new(), 400, Some("id")),
        // wrapped JSON that is not JSON
        (vec![("content-type", "application/json")], b"[1,".to_vec(), 400, None),
    ];
    for (headers, body, status, attribute) in cases {
        let r = http.post(&url, &headers, body).await;
        assert_eq!(r.status, status, "{headers:?}: {}", r.body);
        // 7: a bad body; 6: a bad ce-* header.
        assert!([6, 7].contains(&r.ret_code()), "{}", r.body);
        if let Some(a) = attribute {
            assert_eq!(r.json()["attribute"], a, "{headers:?}: {}", r.body);
        }
    }
    // The batch path takes only CloudEvents.
    let r = http
        .post(
            &format!("{base}/eventmesh/publish/batch"),
            &[("content-type", "text/plain")],
            "x",
        )
        .await;
    assert_eq!(r.status, 415, "{}", r.body);
    // A batch without topics anywhere names `subject`.
    let r = http
        .post(
            &format!("{base}/eventmesh/publish/batch"),
            &[("content-type", "application/cloudevents-batch+json")],
            json!([{"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}]).to_string(),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["attribute"].as_str()),
        (400, Some("subject")),
        "{}",
        r.body
    );
    h.shutdown().await;
}

#[tokio::test]
async fn should_wrap_other_requests_as_the_java_runtime_does_also_over_http2() {
    let (h, _dir) = start(|_| {}).await;
    let http = Http::default();
    let base = base(&h);
    let mut rx = Receiver::ok().await;
    subscribe(
        &http,
        &base,
        &rx.url(),
        "w-g",
        "wrapped",
        "CLUSTERING",
        &[("format", json!("form-cloudevents"))],
    )
    .await;
    let r = Http::h2()
        .post(
            &format!("{base}/eventmesh/publish/wrapped"),
            &[
                ("content-type", "application/json"),
                ("bizseqno", "biz-9"),
                ("x-custom", "yes"),
            ],
            json!({"order": 42}).to_string(),
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (200, 0), "{}", r.body);
    let c: Value = serde_json::from_str(&rx.next().await.content()).unwrap();
    assert_eq!(c["id"], "biz-9");
    assert_eq!(c["type"], "http_request");
    assert_eq!(c["subject"], "wrapped");
    assert_eq!(c["data"]["body"], json!({"order": 42}));
    assert_eq!(c["data"]["path"], "/eventmesh/publish/wrapped");
    assert_eq!(c["data"]["method"], "POST");
    assert_eq!(c["data"]["headers"]["x-custom"], "yes");
    assert_eq!(c["ttl"], "14400000");
    // A non-JSON body is the raw data.
    let r = http
        .post(
            &format!("{base}/eventmesh/publish/wrapped"),
            &[("content-type", "text/plain")],
            "raw text",
        )
        .await;
    assert_eq!(r.ret_code(), 0, "{}", r.body);
    let c: Value = serde_json::from_str(&rx.next().await.content()).unwrap();
    assert_eq!(c["data"], "raw text");
    h.shutdown().await;
}

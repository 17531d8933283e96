//! The request-code protocol (section 3.1) against the runtime in-process: every code, as the
//! Java SDK sends them, and every kind of bad input.

mod http_common;

use std::time::Duration;

use http_common::*;
use serde_json::json;

#[tokio::test]
async fn should_publish_with_104_and_107_and_push_the_legacy_form_to_a_webhook() {
    let (h, _dir) = start(|_| {}).await;
    let http = Http::default();
    let base = base(&h);
    let mut rx = Receiver::ok().await;
    let topics = json!([{"topic": "legacy-t", "mode": "CLUSTERING", "type": "ASYNC"}]).to_string();
    let mut headers = sdk_headers();
    headers.push(("consumergroup", "g1"));
    // 206 with the Java SDK's field spelling.
    let r = http
        .code(
            &base,
            "206",
            &headers,
            &[
                ("url", &rx.url()),
                ("consumerGroup", "g1"),
                ("topic", &topics),
            ],
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (200, 0), "{}", r.body);
    assert!(
        r.headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(r.headers.get("code").unwrap(), "206");
    assert!(r.headers.contains_key("eventmeshcluster"));
    assert!(r.json()["resTime"].as_i64().unwrap() > 0);

    let mut pub_headers = sdk_headers();
    pub_headers.push(("producergroup", "p1"));
    let ext = json!({"myprop": "v1", "Bad Key!": "x"}).to_string();
    let r = http
        .code(
            &base,
            "104",
            &pub_headers,
            &[
                ("topic", "legacy-t"),
                ("content", "hello 104"),
                ("bizseqno", "12345678901234567890"),
                ("uniqueid", "u-1"),
                ("ttl", "3000"),
                ("tag", "tagA"),
                ("extFields", &ext),
            ],
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (200, 0), "{}", r.body);
    let p = rx.next().await;
    assert_eq!(p.header("code"), Some("105"));
    assert_eq!(p.header("protocoltype"), Some("eventmeshmessage"));
    let f = p.form();
    assert_eq!(f["content"], "hello 104");
    assert_eq!(f["topic"], "legacy-t");
    assert_eq!(f["bizseqno"], "12345678901234567890");
    assert_eq!(f["uniqueid"], "u-1");
    assert!(f.contains_key("randomno"));
    let ext = p.ext();
    assert_eq!(ext["myprop"], "v1");
    assert_eq!(ext["badkey"], "x", "keys are normalised: {ext}");
    assert_eq!(ext["tag"], "tagA");
    assert_eq!(ext["sys"], "1234");
    assert_eq!(ext["ip"], "127.0.0.1", "the ip header is the peer's: {ext}");
    assert!(
        ext.get("passwd").is_none(),
        "credentials are never copied: {ext}"
    );

    // 107: one message, `msg` instead of `content`; keys in any case.
    let r = http
        .code(
            &base,
            "107",
            &pub_headers,
            &[
                ("TOPIC", "legacy-t"),
                ("Msg", "hello 107"),
                ("BizSeqNo", "1"),
            ],
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (200, 0), "{}", r.body);
    assert_eq!(rx.next().await.content(), "hello 107");
    h.shutdown().await;
}

/// `multipart/form-data` forms (which the Java runtime's decoder also reads), sent by curl, a
/// third-party client: a 206 subscribe and a 104 publish whose push arrives intact.
#[tokio::test]
async fn should_accept_multipart_forms_from_curl() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no curl on PATH");
        return;
    }
    let (h, _dir) = start(|_| {}).await;
    let base = base(&h);
    let mut rx = Receiver::ok().await;
    let topics = json!([{"topic": "mp-t", "mode": "CLUSTERING", "type": "ASYNC"}]).to_string();
    let curl = |code: &'static str, fields: Vec<String>| {
        let base = base.clone();
        async move {
            let out = tokio::task::spawn_blocking(move || {
                let mut cmd = std::process::Command::new("curl");
                cmd.args([
                    "-s",
                    "-S",
                    "-H",
                    &format!("code: {code}"),
                    "-H",
                    "env: test",
                ]);
                for f in fields {
                    // --form-string: no @file or <file interpretation of the value.
                    cmd.args(["--form-string", &f]);
                }
                cmd.arg(format!("{base}/")).output()
            })
            .await
            .expect("curl task")
            .expect("run curl");
            assert!(
                out.status.success(),
                "curl: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let body: serde_json::Value =
                serde_json::from_slice(&out.stdout).expect("a JSON answer");
            assert_eq!(body["retCode"], 0, "{body}");
        }
    };
    curl(
        "206",
        vec![
            format!("url={}", rx.url()),
            "consumerGroup=mp-g".to_owned(),
            format!("topic={topics}"),
        ],
    )
    .await;
    let content = "multi\r\nline; with \"quotes\" and --dashes";
    curl(
        "104",
        vec![
            "topic=mp-t".to_owned(),
            format!("content={content}"),
            "bizseqno=12345678901234567890".to_owned(),
            "uniqueId=mp-1".to_owned(),
        ],
    )
    .await;
    let p = rx.next().await;
    assert_eq!(p.header("code"), Some("105"));
    let f = p.form();
    assert_eq!(f["content"], content);
    assert_eq!(f["uniqueid"], "mp-1");
    h.shutdown().await;
}

#[tokio::test]
async fn should_publish_a_102_batch_all_or_nothing() {
    let (h, _dir) = start(|c| c.server.http.max_batch_events = 5).await;
    let http = Http::default();
    let base = base(&h);
    let mut rx = Receiver::ok().await;
    subscribe(&http, &base, &rx.url(), "gb", "batch-t", "CLUSTERING", &[]).await;
    let contents = json!([
        {"bizSeqNo": "1", "topic": "batch-t", "msg": "m1", "tag": "", "ttl": "1000"},
        {"bizseqno": "2", "TOPIC": "batch-t", "msg": "m2"},
    ])
    .to_string();
    let r = http
        .code(
            &base,
            "102",
            &sdk_headers(),
            &[
                ("batchId", "b1"),
                ("size", "2"),
                ("producerGroup", "p"),
                ("contents", &contents),
            ],
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (200, 0), "{}", r.body);
    let mut got = vec![rx.next().await.content(), rx.next().await.content()];
    got.sort();
    assert_eq!(got, ["m1", "m2"]);

    // One bad item: nothing is published.
    let bad = json!([{"topic": "batch-t", "msg": "m3"}, {"topic": "batch-t"}]).to_string();
    let r = http
        .code(&base, "102", &sdk_headers(), &[("contents", &bad)])
        .await;
    assert_eq!((r.status, r.ret_code()), (400, 7), "{}", r.body);
    assert!(
        r.json()["retMsg"].as_str().unwrap().contains("contents[1]"),
        "{}",
        r.body
    );
    // Over the limit, and a size that does not match.
    let many: Vec<_> = (0..6)
        .map(|i| json!({"topic": "batch-t", "msg": i.to_string()}))
        .collect();
    let r = http
        .code(
            &base,
            "102",
            &sdk_headers(),
            &[("contents", &json!(many).to_string())],
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (400, 8), "{}", r.body);
    let r = http
        .code(
            &base,
            "102",
            &sdk_headers(),
            &[("size", "3"), ("contents", &contents)],
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (400, 7), "{}", r.body);
    // A later good event is the next push: the bad batches left nothing behind.
    let r = http
        .code(
            &base,
            "104",
            &sdk_headers(),
            &[("topic", "batch-t"), ("content", "after")],
        )
        .await;
    assert_eq!(r.ret_code(), 0, "{}", r.body);
    assert_eq!(rx.next().await.content(), "after");
    h.shutdown().await;
}

#[tokio::test]
async fn should_answer_101_with_the_reply_a_106_webhook_sent_back_with_301() {
    let (h, _dir) = start(|_| {}).await;
    let http = Http::default();
    let base = base(&h);
    // The responder: a SYNC webhook that answers each request with code 301.
    let (req_tx, mut req_rx) = tokio::sync::mpsc::channel::<Received>(16);
    let responder = Receiver::start(move |r| {
        let _ = req_tx.try_send(r.clone());
        Reply::ok()
    })
    .await;
    let topics = json!([{"topic": "rr-t", "mode": "CLUSTERING", "type": "SYNC"}]).to_string();
    let r = http
        .code(
            &base,
            "206",
            &sdk_headers(),
            &[
                ("url", &responder.url()),
                ("consumerGroup", "rr-g"),
                ("topic", &topics),
            ],
        )
        .await;
    assert_eq!(r.ret_code(), 0, "{}", r.body);
    let replier = {
        let http = http.clone();
        let base = base.clone();
        tokio::spawn(async move {
            let req = tokio::time::timeout(WAIT, req_rx.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(req.header("code"), Some("106"));
            let f = req.form();
            let ext = req.ext();
            assert!(ext.get("correlationid").is_some(), "{ext}");
            let r = http
                .code(
                    &base,
                    "301",
                    &sdk_headers(),
                    &[
                        ("origtopic", &f["topic"]),
                        ("bizseqno", &f["bizseqno"]),
                        ("uniqueid", &f["uniqueid"]),
                        ("content", &format!("pong to {}", f["content"])),
                        ("extFields", &ext.to_string()),
                    ],
                )
                .await;
            assert_eq!(r.ret_code(), 0, "{}", r.body);
        })
    };
    let r = http
        .code(
            &base,
            "101",
            &sdk_headers(),
            &[
                ("topic", "rr-t"),
                ("content", "ping"),
                ("bizseqno", "77"),
                ("ttl", "10000"),
            ],
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (200, 0), "{}", r.body);
    let msg: serde_json::Value =
        serde_json::from_str(r.json()["retMsg"].as_str().unwrap()).unwrap();
    assert_eq!(msg["body"], "pong to ping");
    assert_eq!(msg["topic"], "rr-t");
    replier.await.unwrap();

    // 101 needs a ttl; with nobody answering it times out.
    let r = http
        .code(
            &base,
            "101",
            &sdk_headers(),
            &[("topic", "rr-none"), ("content", "x")],
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (400, 7), "{}", r.body);
    let r = http
        .code(
            &base,
            "101",
            &sdk_headers(),
            &[("topic", "rr-none"), ("content", "x"), ("ttl", "200")],
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (200, 4), "{}", r.body);
    h.shutdown().await;
}

#[tokio::test]
async fn should_heartbeat_unsubscribe_and_expire_silent_urls() {
    let (h, _dir) = start(|c| c.server.http.webhook.url_ttl = Duration::from_millis(600)).await;
    let http = Http::default();
    let base = base(&h);
    let rx = Receiver::ok().await;
    let url = rx.url();
    let topics = json!([{"topic": "hb-t", "mode": "CLUSTERING", "type": "ASYNC"}]).to_string();
    let r = http
        .code(
            &base,
            "206",
            &sdk_headers(),
            &[("url", &url), ("consumerGroup", "hb-g"), ("topic", &topics)],
        )
        .await;
    assert_eq!(r.ret_code(), 0, "{}", r.body);
    let entities =
        json!([{"topic": "hb-t", "url": url, "serviceId": "s", "instanceId": "i"}]).to_string();
    // Heart-beating keeps it for well past the ttl.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < deadline {
        let r = http
            .code(
                &base,
                "203",
                &sdk_headers(),
                &[
                    ("clientType", "SUB"),
                    ("consumerGroup", "hb-g"),
                    ("heartbeatEntities", &entities),
                ],
            )
            .await;
        assert_eq!((r.status, r.ret_code()), (200, 0), "{}", r.body);
        assert_eq!(r.json()["retMsg"], "success");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let q = http
        .send(
            "GET",
            &format!("{base}/eventmesh/subscrition/query"),
            &[],
            "",
        )
        .await;
    assert_eq!(
        q.json()["subscriptions"].as_array().unwrap().len(),
        1,
        "{}",
        q.body
    );
    // PUB heartbeats and unknown entities are fine.
    let r = http
        .code(&base, "203", &sdk_headers(), &[("clientType", "PUB")])
        .await;
    assert_eq!(r.ret_code(), 0, "{}", r.body);
    let r = http
        .code(&base, "203", &sdk_headers(), &[("clientType", "NOPE")])
        .await;
    assert_eq!((r.status, r.ret_code()), (400, 7), "{}", r.body);

    // Unsubscribe (207: topic names as strings).
    let names = json!(["hb-t"]).to_string();
    let r = http
        .code(
            &base,
            "207",
            &sdk_headers(),
            &[("url", &url), ("consumerGroup", "hb-g"), ("topic", &names)],
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (200, 0), "{}", r.body);
    let r = http
        .code(
            &base,
            "207",
            &sdk_headers(),
            &[("url", &url), ("consumerGroup", "hb-g"), ("topic", &names)],
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (200, 19), "{}", r.body);

    // Subscribed again and left silent: it expires.
    let r = http
        .code(
            &base,
            "206",
            &sdk_headers(),
            &[("url", &url), ("consumerGroup", "hb-g"), ("topic", &topics)],
        )
        .await;
    assert_eq!(r.ret_code(), 0, "{}", r.body);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let q = http
            .send(
                "GET",
                &format!("{base}/eventmesh/subscription/query"),
                &[],
                "",
            )
            .await;
        if q.json()["subscriptions"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the silent URL never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.shutdown().await;
}

#[tokio::test]
async fn should_refuse_bad_requests_with_a_clear_4xx() {
    let (h, _dir) = start(|c| {
        c.limits.max_event_bytes = 1024;
        c.server.http.max_body_bytes = 4096;
    })
    .await;
    let http = Http::default();
    let base = base(&h);
    // No code, unknown code.
    let r = http.post(&format!("{base}/"), &[], "topic=t").await;
    assert_eq!((r.status, r.ret_code()), (400, 2), "{}", r.body);
    let r = http.code(&base, "999", &[], &[]).await;
    assert_eq!((r.status, r.ret_code()), (400, 2), "{}", r.body);
    assert!(r.body.contains("999"), "{}", r.body);
    // Bad headers.
    let r = http
        .code(
            &base,
            "104",
            &[("version", "7.0")],
            &[("topic", "t"), ("content", "c")],
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (400, 6), "{}", r.body);
    assert!(r.body.contains("version"), "{}", r.body);
    let r = http
        .code(
            &base,
            "104",
            &[("pid", "abc")],
            &[("topic", "t"), ("content", "c")],
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (400, 6), "{}", r.body);
    // Missing and malformed fields, each named.
    let r = http.code(&base, "104", &[], &[("content", "c")]).await;
    assert_eq!((r.status, r.ret_code()), (400, 7), "{}", r.body);
    assert!(r.body.contains("`topic`"), "{}", r.body);
    let r = http
        .code(
            &base,
            "104",
            &[],
            &[("topic", "bad topic ~"), ("content", "c")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = http
        .code(
            &base,
            "104",
            &[],
            &[("topic", "t"), ("content", "c"), ("extFields", "{nope")],
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (400, 7), "{}", r.body);
    assert!(r.body.contains("extFields"), "{}", r.body);
    let r = http
        .code(
            &base,
            "206",
            &[],
            &[
                ("url", "http://127.0.0.1:1/"),
                ("consumerGroup", "g"),
                ("topic", "[{"),
            ],
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (400, 7), "{}", r.body);
    let r = http
        .code(
            &base,
            "206",
            &[],
            &[
                ("url", "ftp://x/"),
                ("consumerGroup", "g"),
                ("topic", r#"["t"]"#),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = http
        .code(
            &base,
            "104",
            &[("protocoltype", "cloudevents")],
            &[
                ("topic", "t"),
                ("content", r#"{"specversion":"1.0","id":"1","type":"x"}"#),
            ],
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (400, 7), "{}", r.body);
    assert!(r.body.contains("source"), "{}", r.body);
    // Garbage bytes in the form are not a crash.
    let r = http
        .post(
            &format!("{base}/"),
            &[("code", "104")],
            vec![0xff, 0xfe, b'%', b'z', b'&', b'='],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // An event over max_event_bytes, and a body over max_body_bytes.
    let big = "x".repeat(2000);
    let r = http
        .code(&base, "104", &[], &[("topic", "t"), ("content", &big)])
        .await;
    assert_eq!((r.status, r.ret_code()), (413, 8), "{}", r.body);
    let huge = "y".repeat(200_000);
    let r = http
        .code(&base, "104", &[], &[("topic", "t"), ("content", &huge)])
        .await;
    assert_eq!((r.status, r.ret_code()), (413, 8), "{}", r.body);
    // Multipart other than form-data is refused by name; a broken form-data body is a 400.
    let r = http
        .post(
            &format!("{base}/"),
            &[
                ("code", "104"),
                ("content-type", "multipart/mixed; boundary=x"),
            ],
            "--x--",
        )
        .await;
    assert_eq!(r.status, 415, "{}", r.body);
    assert!(r.body.contains("multipart/form-data"), "{}", r.body);
    for (ct, body) in [
        ("multipart/form-data", "--x--"),
        (
            "multipart/form-data; boundary=x",
            "--x\r\nContent-Disposition: form-data; name=topic\r\n\r\nt",
        ),
        (
            "multipart/form-data; boundary=x",
            "--x\r\nContent-Type: text/plain\r\n\r\nt\r\n--x--",
        ),
    ] {
        let r = http
            .post(
                &format!("{base}/"),
                &[("code", "104"), ("content-type", ct)],
                body,
            )
            .await;
        assert!(
            matches!(r.status, 400 | 415) && r.ret_code() == 7,
            "{ct} {body:?}: {} {}",
            r.status,
            r.body
        );
    }
    // GET with the fields in the query string works.
    let r = http
        .send(
            "GET",
            &format!("{base}/?code=104&topic=q-t&content=via-get"),
            &[],
            "",
        )
        .await;
    assert_eq!((r.status, r.ret_code()), (200, 0), "{}", r.body);
    // The server still serves.
    let r = http
        .code(&base, "104", &[], &[("topic", "t"), ("content", "ok")])
        .await;
    assert_eq!(r.ret_code(), 0, "{}", r.body);
    h.shutdown().await;
}

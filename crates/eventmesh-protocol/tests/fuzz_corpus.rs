//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) through the same checks the
//! cargo-fuzz targets run, so CI exercises them without nightly or cargo-fuzz.
//!
//! `cargo test -p eventmesh-protocol --test fuzz_corpus -- --ignored write_seed_corpus`
//! regenerates the seed files (named `seed-*`); files found by fuzzing are kept beside them.

// Helpers outside #[test] fns unwrap too (clippy.toml allows it only inside them).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use eventmesh_core::CloudEvent;
use eventmesh_protocol::cloudevents::{encode_batch, encode_event};
use eventmesh_protocol::tcp::{
    Body, Command, Dialect, Header, OpStatus, Package, ProtocolType, RedirectInfo, Subscription,
    SubscriptionItem, SubscriptionMode, SubscriptionType, UserAgent, encode,
};

#[path = "../fuzz/checks.rs"]
mod checks;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn replay(target: &str, check: fn(&[u8])) {
    let dir = corpus_dir(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{} failed its check", path.display());
        count += 1;
    }
    assert!(
        count >= 10,
        "{target}: only {count} corpus files in {}",
        dir.display()
    );
}

#[test]
fn replay_frame_decode_corpus() {
    replay("frame_decode", checks::frame_decode);
}

#[test]
fn replay_cloudevent_json_corpus() {
    replay("cloudevent_json", checks::cloudevent_json);
}

#[test]
fn replay_multipart_form_corpus() {
    replay("multipart_form", checks::multipart_form);
}

/// Multipart seeds: a content type line, then the body.
fn seed_forms() -> Vec<(&'static str, Vec<u8>)> {
    let ct = b"multipart/form-data; boundary=B0und\n".as_slice();
    let part = |headers: &str, content: &str| {
        format!("--B0und\r\n{headers}\r\n\r\n{content}\r\n").into_bytes()
    };
    let end = b"--B0und--\r\n".as_slice();
    let form = |parts: &[Vec<u8>]| {
        [
            &[ct][..],
            &parts.iter().map(Vec::as_slice).collect::<Vec<_>>(),
            &[end],
        ]
        .concat()
        .concat()
    };
    let name = |n: &str| format!("Content-Disposition: form-data; name=\"{n}\"");
    vec![
        (
            "send-async",
            form(&[
                part(&name("topic"), "orders"),
                part(&name("content"), "{\"a\":1}"),
                part(&name("bizseqno"), "12345678901234567890"),
            ]),
        ),
        (
            "file-part",
            form(&[
                part(
                    "Content-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream",
                    "\u{1}\u{2}",
                ),
                part(&name("x"), "y"),
            ]),
        ),
        (
            "quoted-name",
            form(&[part("content-disposition: form-data; name=\"a\\\"b\"", "v")]),
        ),
        (
            "token-name",
            form(&[part("Content-Disposition: form-data; name=plain", "v")]),
        ),
        ("empty-form", [ct, end].concat()),
        (
            "preamble",
            [
                ct,
                b"preamble\r\n".as_slice(),
                &part(&name("a"), "1"),
                end,
                b"epilogue",
            ]
            .concat(),
        ),
        (
            "padding",
            [
                ct,
                b"--B0und  \t\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--B0und--"
                    .as_slice(),
            ]
            .concat(),
        ),
        (
            "no-headers",
            [ct, b"--B0und\r\n\r\nx\r\n--B0und--".as_slice()].concat(),
        ),
        (
            "truncated",
            [
                ct,
                b"--B0und\r\nContent-Disposition: form-data; name=a\r\n\r\n1".as_slice(),
            ]
            .concat(),
        ),
        (
            "quoted-boundary",
            [
                b"multipart/form-data; boundary=\"a b\"\n".as_slice(),
                b"--a b\r\nContent-Disposition: form-data; name=k\r\n\r\nv\r\n--a b--".as_slice(),
            ]
            .concat(),
        ),
        (
            "not-form-data",
            b"multipart/mixed; boundary=x\n--x--".to_vec(),
        ),
    ]
}

fn seed_packages() -> Vec<(&'static str, Package)> {
    let ua: UserAgent = serde_json::from_str(
        r#"{"env":"P","subsystem":"5023","path":"/data/app/x","pid":32893,"host":"127.0.0.1","port":8362,"version":"2.0.11","username":"u","password":"p","idc":"FT","group":"EventmeshTest-consumerGroup","purpose":"sub","unack":0}"#,
    )
    .unwrap();
    let message = br#"{"topic":"TEST-TOPIC-TCP-ASYNC","properties":{"keys":"k1","ttl":"30000"},"headers":{"datacontenttype":"text/plain"},"body":"testAsyncMessage"}"#;
    let event = encode_event(
        &CloudEvent::new("e-1", "/demo", "cloudevents")
            .with_data("application/cloudevents+json", r#"{"content":"hello"}"#),
    )
    .unwrap();
    let seq = || Some("0123456781".to_owned());
    vec![
        (
            "heartbeat",
            Package::header_only(Header::new(Command::HeartbeatRequest, seq())),
        ),
        (
            "hello",
            Package::new(
                Header::new(Command::HelloRequest, seq()),
                Body::UserAgent(Box::new(ua)),
            ),
        ),
        (
            "hello-response",
            Package::header_only(
                Header::new(Command::HelloRequest, seq())
                    .reply(OpStatus::Success, Some("success".into())),
            ),
        ),
        (
            "subscribe",
            Package::new(
                Header::new(Command::SubscribeRequest, seq()),
                Body::Subscription(Subscription {
                    topic_list: vec![SubscriptionItem::new(
                        "TEST-TOPIC-TCP-ASYNC",
                        SubscriptionMode::Clustering,
                        SubscriptionType::Async,
                    )],
                }),
            ),
        ),
        (
            "publish",
            Package::new(
                Header::new(Command::AsyncMessageToServer, seq())
                    .with_protocol(ProtocolType::EventMeshMessage, "1.0"),
                Body::Raw(Bytes::from_static(message)),
            ),
        ),
        (
            "publish-cloudevents",
            Package::new(
                Header::new(Command::AsyncMessageToServer, seq())
                    .with_protocol(ProtocolType::CloudEvents, "1.0"),
                Body::Raw(Bytes::from(event)),
            ),
        ),
        (
            "redirect",
            Package::new(
                Header::new(Command::RedirectToClient, None),
                Body::Redirect(RedirectInfo::new("10.0.0.2", 10000)),
            ),
        ),
        (
            "goodbye",
            Package::header_only(
                Header::new(Command::ServerGoodbyeRequest, None)
                    .with_status(OpStatus::Fail, "Unknown Command type"),
            ),
        ),
    ]
}

fn seed_events() -> Vec<(&'static str, Vec<u8>)> {
    let mut out: Vec<(&'static str, Vec<u8>)> = vec![
        (
            "spec-example",
            br#"{"specversion":"1.0","type":"com.example.someevent","source":"/mycontext","id":"C234-1234-1234","time":"2018-04-05T17:31:00Z","comexampleextension1":"value","comexampleothervalue":5,"datacontenttype":"application/json","data":{"appinfoA":"abc","appinfoB":123,"appinfoC":true}}"#.to_vec(),
        ),
        (
            "binary",
            br#"{"specversion":"1.0","type":"t","source":"/s","id":"1","datacontenttype":"application/octet-stream","data_base64":"AJ+Slg=="}"#.to_vec(),
        ),
        (
            "text",
            br#"{"specversion":"1.0","type":"t","source":"/s","id":"1","datacontenttype":"text/plain","data":"hello"}"#.to_vec(),
        ),
        (
            "v03-base64",
            br#"{"specversion":"0.3","type":"t","source":"/s","id":"1","schemaurl":"http://x","datacontentencoding":"base64","data":"aGk="}"#.to_vec(),
        ),
        (
            "batch",
            encode_batch(&[
                CloudEvent::new("1", "/s", "t").with_data("text/plain", "a"),
                CloudEvent::new("2", "/s", "t").with_extension("partitionkey", "k"),
            ])
            .unwrap(),
        ),
        ("empty-batch", b"[]".to_vec()),
        ("both-data", br#"{"specversion":"1.0","type":"t","source":"/s","id":"1","data":1,"data_base64":"AA=="}"#.to_vec()),
        ("bad-time", br#"{"specversion":"1.0","type":"t","source":"/s","id":"1","time":"yesterday"}"#.to_vec()),
        ("bad-extension", br#"{"specversion":"1.0","type":"t","source":"/s","id":"1","Bad":"x"}"#.to_vec()),
        ("not-json", b"{\"specversion\":".to_vec()),
    ];
    out.sort_by_key(|(name, _)| *name);
    out
}

#[test]
#[ignore = "writes the seed corpus into the source tree; run by hand"]
fn write_seed_corpus() {
    let frames = corpus_dir("frame_decode");
    std::fs::create_dir_all(&frames).unwrap();
    for (name, package) in seed_packages() {
        for (tag, dialect) in [
            ("v19", Dialect::V19),
            ("v12", Dialect::V12),
            ("v10", Dialect::V10),
        ] {
            let mut out = BytesMut::new();
            encode(&package, dialect, &mut out).unwrap();
            std::fs::write(frames.join(format!("seed-{name}-{tag}")), &out).unwrap();
        }
    }
    // Two frames back to back, and garbage.
    let mut two = BytesMut::new();
    for (_, p) in seed_packages().into_iter().take(2) {
        encode(&p, Dialect::V12, &mut two).unwrap();
    }
    std::fs::write(frames.join("seed-two-frames-v12"), &two).unwrap();
    std::fs::write(frames.join("seed-garbage-http"), b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut negative = b"EventMesh0000".to_vec();
    negative.extend_from_slice(&(-1i32).to_be_bytes());
    negative.extend_from_slice(&5i32.to_be_bytes());
    std::fs::write(frames.join("seed-garbage-negative-length"), &negative).unwrap();

    let forms = corpus_dir("multipart_form");
    std::fs::create_dir_all(&forms).unwrap();
    for (name, bytes) in seed_forms() {
        std::fs::write(forms.join(format!("seed-{name}")), bytes).unwrap();
    }

    let events = corpus_dir("cloudevent_json");
    std::fs::create_dir_all(&events).unwrap();
    for (name, bytes) in seed_events() {
        std::fs::write(events.join(format!("seed-{name}")), bytes).unwrap();
    }
}

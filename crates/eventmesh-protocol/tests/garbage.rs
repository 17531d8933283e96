//! Garbage in: typed errors, never panics, and the size limit is enforced before buffering.

// Helpers outside #[test] fns unwrap too (clippy.toml allows it only inside them).
#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use eventmesh_protocol::ProtocolError;
use eventmesh_protocol::tcp::{
    Body, Command, DEFAULT_MAX_FRAME_BYTES, Dialect, FrameCodec, Header, Package, decode, encode,
    encode_with_limit,
};
use proptest::prelude::*;

fn prefix(magic: &[u8], length: i32, header_len: i32) -> Vec<u8> {
    let mut out = magic.to_vec();
    out.extend_from_slice(b"0000");
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&header_len.to_be_bytes());
    out
}

fn detect(buf: &[u8]) -> Result<Option<(Package, usize)>, ProtocolError> {
    FrameCodec::detecting().decode(buf)
}

#[test]
fn bad_magic_is_reported_from_the_first_byte() {
    for buf in [
        &b"G"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00",
    ] {
        let e = detect(buf).unwrap_err();
        assert!(matches!(e, ProtocolError::BadMagic { .. }), "{e}");
        let e = decode(Dialect::V19, buf).unwrap_err();
        assert!(matches!(e, ProtocolError::BadMagic { .. }), "{e}");
    }
    let e = decode(Dialect::V19, b"EventMash0000").unwrap_err();
    assert_eq!(
        e.to_string(),
        "bad magic: expected \"EventMesh\", found \"EventMash\""
    );
    let e = decode(Dialect::V10, b"WEMX").unwrap_err();
    assert!(e.to_string().contains("WEMQ"), "{e}");
    // A v1.9 connection that sends a WEMQ frame later is garbage for it.
    assert!(matches!(
        decode(Dialect::V19, b"WEMQ0000"),
        Err(ProtocolError::BadMagic { .. })
    ));
}

#[test]
fn bad_version() {
    let e = detect(b"EventMesh0001\0\0\0\0").unwrap_err();
    assert!(matches!(e, ProtocolError::BadVersion { .. }), "{e}");
    let e = decode(Dialect::V10, b"WEMQ1").unwrap_err();
    assert!(matches!(e, ProtocolError::BadVersion { .. }), "{e}");
}

#[test]
fn negative_and_inconsistent_lengths() {
    for (length, header_len) in [(-1, 10), (i32::MIN, 1), (20, 30), (5, 1)] {
        let buf = prefix(b"EventMesh", length, header_len);
        for d in [Dialect::V19, Dialect::V12] {
            let e = decode(d, &buf).unwrap_err();
            assert!(
                matches!(e, ProtocolError::BadLength { .. }),
                "{d:?} {length} {header_len}: {e}"
            );
        }
        assert!(matches!(detect(&buf), Err(ProtocolError::BadLength { .. })));
    }
    for header_len in [0, -1, i32::MIN] {
        let buf = prefix(b"EventMesh", 100, header_len);
        assert!(
            matches!(decode(Dialect::V19, &buf), Err(ProtocolError::BadHeaderLength(h)) if h == header_len)
        );
        assert!(matches!(
            detect(&buf),
            Err(ProtocolError::BadHeaderLength(_))
        ));
    }
    // 10 <= length < 13 + header: wrong for v1.9 only; a v1.9 connection refuses it.
    let buf = prefix(b"EventMesh", 12, 2);
    assert!(matches!(
        decode(Dialect::V19, &buf),
        Err(ProtocolError::BadLength { minimum: 15, .. })
    ));
}

#[test]
fn oversized_frames_are_refused_from_the_prefix_alone() {
    let buf = prefix(b"EventMesh", i32::MAX, 100);
    assert!(matches!(
        decode(Dialect::V19, &buf),
        Err(ProtocolError::FrameTooLarge { .. })
    ));
    assert!(matches!(
        detect(&buf),
        Err(ProtocolError::FrameTooLarge { .. })
    ));
    assert!(matches!(
        decode(Dialect::V10, &prefix(b"WEMQ", i32::MAX, 100)),
        Err(ProtocolError::FrameTooLarge { .. })
    ));

    // Exactly at the default limit: waits for the bytes; one more: refused.
    let at_limit = i32::try_from(DEFAULT_MAX_FRAME_BYTES - 8).unwrap();
    assert!(
        decode(Dialect::V19, &prefix(b"EventMesh", at_limit, 100))
            .unwrap()
            .is_none()
    );
    let e = decode(Dialect::V19, &prefix(b"EventMesh", at_limit + 1, 100)).unwrap_err();
    assert!(
        matches!(e, ProtocolError::FrameTooLarge { size, max } if size == DEFAULT_MAX_FRAME_BYTES as u64 + 1 && max == DEFAULT_MAX_FRAME_BYTES)
    );

    // A configured limit.
    let mut small = FrameCodec::new(Dialect::V19).with_max_frame_bytes(200);
    assert!(matches!(
        small.decode(&prefix(b"EventMesh", 200, 50)),
        Err(ProtocolError::FrameTooLarge {
            size: 208,
            max: 200
        })
    ));
    let mut small = FrameCodec::detecting().with_max_frame_bytes(200);
    assert!(matches!(
        small.decode(&prefix(b"EventMesh", 200, 50)),
        Err(ProtocolError::FrameTooLarge { .. })
    ));
}

#[test]
fn encoder_enforces_the_limit_and_leaves_the_buffer_untouched() {
    let pkg = Package::new(
        Header::new(Command::AsyncMessageToServer, Some("1".into())),
        Body::Raw(Bytes::from(vec![b'x'; 1000])),
    );
    let mut out = BytesMut::from(&b"keep"[..]);
    let e = encode_with_limit(&pkg, Dialect::V19, 500, &mut out).unwrap_err();
    assert!(
        matches!(e, ProtocolError::FrameTooLarge { max: 500, .. }),
        "{e}"
    );
    assert_eq!(&out[..], b"keep");
    let big = Package::new(
        pkg.header.clone(),
        Body::Raw(Bytes::from(vec![b'x'; DEFAULT_MAX_FRAME_BYTES])),
    );
    assert!(encode(&big, Dialect::V19, &mut out).is_err());
    assert_eq!(&out[..], b"keep");
    // The codec's configured limit applies to encoding too.
    let codec = FrameCodec::new(Dialect::V12).with_max_frame_bytes(100);
    assert!(codec.encode(&pkg, &mut out).is_err());
    assert_eq!(&out[..], b"keep");
}

fn with_header(header: &str, body: &str) -> Vec<u8> {
    let h = i32::try_from(header.len()).unwrap();
    let b = i32::try_from(body.len()).unwrap();
    let mut out = prefix(b"EventMesh", 13 + h + b, h);
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body.as_bytes());
    out
}

#[test]
fn bad_headers() {
    type Check = fn(&ProtocolError) -> bool;
    let cases: [(&str, Check); 6] = [
        ("{not json", |e| {
            matches!(e, ProtocolError::InvalidHeader(_))
        }),
        ("[\"HELLO_REQUEST\"]", |e| {
            matches!(e, ProtocolError::InvalidHeader(_))
        }),
        (
            r#"{"cmd":"FLY_REQUEST","code":0}"#,
            |e| matches!(e, ProtocolError::UnknownCommand(c) if c == "FLY_REQUEST"),
        ),
        (
            r#"{"cmd":99}"#,
            |e| matches!(e, ProtocolError::UnknownCommand(c) if c == "99"),
        ),
        (r#"{"seq":"1"}"#, |e| {
            matches!(e, ProtocolError::MissingCommand)
        }),
        (r#"{"cmd":"HEARTBEAT_REQUEST","code":"zero"}"#, |e| {
            matches!(e, ProtocolError::InvalidHeader(_))
        }),
    ];
    for (header, check) in cases {
        let e = decode(Dialect::V19, &with_header(header, "")).unwrap_err();
        assert!(check(&e), "{header}: {e}");
        let e = detect(&with_header(header, "")).unwrap_err();
        assert!(check(&e), "{header} (detecting): {e}");
    }
    let e = decode(
        Dialect::V19,
        &with_header(r#"{"cmd":"HELLO_REQUEST"}"#, r#"{"pid":"abc"}"#),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            ProtocolError::InvalidBody {
                command: Command::HelloRequest,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().starts_with("invalid HELLO_REQUEST body"),
        "{e}"
    );
    let e = decode(Dialect::V19, &with_header(r#"{"cmd":"\u0000"}"#, "")).unwrap_err();
    assert!(matches!(e, ProtocolError::UnknownCommand(_)), "{e}");
    // A raw control character, and bytes that are not UTF-8.
    let e = decode(Dialect::V19, &with_header("{\"cmd\":\"\u{0}\"}", "")).unwrap_err();
    assert!(matches!(e, ProtocolError::InvalidHeader(_)), "{e}");
    let mut bad_utf8 = prefix(b"EventMesh", 13 + 3, 3);
    bad_utf8.extend_from_slice(b"{\xff}");
    assert!(matches!(
        decode(Dialect::V19, &bad_utf8),
        Err(ProtocolError::InvalidHeader(_))
    ));
}

#[test]
fn broken_first_hello_is_reported_not_waited_on() {
    // A v1.9 client whose HELLO body is broken JSON: the detecting codec must answer with an
    // error at once (the client waits for the reply, so five more bytes never come).
    let buf = with_header(r#"{"cmd":"HELLO_REQUEST","seq":"1"}"#, r#"{"group":"g",}"#);
    let mut codec = FrameCodec::detecting();
    let e = codec.decode(&buf).unwrap_err();
    assert!(matches!(e, ProtocolError::InvalidBody { .. }), "{e}");
    // The goodbye goes out in the client's framing.
    assert_eq!(codec.dialect(), Some(Dialect::V19));
}

#[test]
fn errors_do_not_echo_much_input() {
    let long = vec![b'Z'; 10_000];
    let e = detect(&long).unwrap_err().to_string();
    assert!(e.len() < 100, "{e}");
    let name = "X".repeat(10_000);
    let e = decode(
        Dialect::V19,
        &with_header(&format!(r#"{{"cmd":"{name}"}}"#), ""),
    )
    .unwrap_err()
    .to_string();
    assert!(e.len() < 200, "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = detect(&bytes);
        for d in [Dialect::V19, Dialect::V12, Dialect::V10] {
            let _ = decode(d, &bytes);
        }
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_prefix_never_panic(
        magic in proptest::sample::select(vec![&b"EventMesh"[..], &b"WEMQ"[..]]),
        length in prop_oneof![any::<i32>(), 0i32..400],
        header_len in prop_oneof![any::<i32>(), 0i32..200],
        rest in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut buf = prefix(magic, length, header_len);
        buf.extend_from_slice(&rest);
        let _ = detect(&buf);
        for d in [Dialect::V19, Dialect::V12, Dialect::V10] {
            if let Ok(Some((_, used))) = decode(d, &buf) {
                prop_assert!(used <= buf.len());
            }
        }
    }

    #[test]
    fn arbitrary_json_headers_never_panic(header in "\\PC{0,80}", body in "\\PC{0,80}") {
        let buf = with_header(&header, &body);
        let _ = detect(&buf);
        let _ = decode(Dialect::V19, &buf);
    }
}

#[test]
fn a_bad_header_on_the_first_frame_still_fixes_the_dialect() {
    // A pre-1.9 client with an unknown command: the goodbye must go out in its framing.
    let header = r#"{"cmd":"HELLO_REQUESTX","seq":"1"}"#;
    let body = r#"{"group":"g","purpose":"sub","version":"1","unack":0}"#;
    let h = i32::try_from(header.len()).unwrap();
    let b = i32::try_from(body.len()).unwrap();
    let mut buf = prefix(b"EventMesh", 8 + h + b, h);
    buf.extend_from_slice(header.as_bytes());
    buf.extend_from_slice(body.as_bytes());
    let mut codec = FrameCodec::detecting();
    let e = codec.decode(&buf).unwrap_err();
    assert!(matches!(e, ProtocolError::UnknownCommand(_)), "{e}");
    assert_eq!(codec.dialect(), Some(Dialect::V12));
    assert_eq!(codec.reply_dialect(), Dialect::V12);
}

/// Multipart bodies built from random fields round-trip; random bytes around a boundary never
/// panic the decoder.
mod multipart_forms {
    use eventmesh_protocol::multipart::{FormField, encode_form_data, parse_form_data};
    use proptest::prelude::*;

    fn field() -> impl Strategy<Value = FormField> {
        ("[a-zA-Z0-9_\"\\\\ ]{1,12}", "\\PC{0,40}")
            .prop_map(|(name, value)| FormField { name, value })
    }

    proptest! {
        #[test]
        fn fields_round_trip(fields in proptest::collection::vec(field(), 0..8)) {
            let boundary = "proptest-boundary-7f3a";
            prop_assume!(fields.iter().all(|f| !f.value.contains(boundary)));
            let body = encode_form_data(&fields, boundary);
            prop_assert_eq!(parse_form_data(&body, boundary).unwrap(), fields);
        }

        #[test]
        fn random_bytes_never_panic(
            head in proptest::collection::vec(any::<u8>(), 0..64),
            tail in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut body = head;
            body.extend_from_slice(b"--b\r\n");
            body.extend_from_slice(&tail);
            let _ = parse_form_data(&body, "b");
        }
    }
}

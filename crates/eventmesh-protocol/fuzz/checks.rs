//! The properties the fuzz targets check, shared with the corpus replay test
//! (`tests/fuzz_corpus.rs`) so CI exercises them without cargo-fuzz.

// Each fuzz target uses one of the checks.
#![allow(dead_code)]

use bytes::BytesMut;
use eventmesh_protocol::cloudevents::{decode_batch, decode_event, encode_batch, encode_event};
use eventmesh_protocol::multipart::{encode_form_data, form_data_boundary, parse_form_data};
use eventmesh_protocol::tcp::{Dialect, FrameCodec, Package, decode, encode};

/// Feeds `data` to the detecting codec and to each fixed dialect. Nothing may panic; a frame
/// that decodes must re-encode, in its dialect, to bytes that decode to the same package.
pub(crate) fn frame_decode(data: &[u8]) {
    let mut codec = FrameCodec::detecting();
    let mut rest = data;
    while let Ok(Some((package, used))) = codec.decode(rest) {
        assert!(used > 0 && used <= rest.len());
        let dialect = codec.dialect().expect("a decoded frame fixes the dialect");
        reencodes(&package, dialect);
        rest = &rest[used..];
    }
    for dialect in [Dialect::V19, Dialect::V12, Dialect::V10] {
        if let Ok(Some((package, used))) = decode(dialect, data) {
            assert!(used <= data.len());
            reencodes(&package, dialect);
        }
    }
}

fn reencodes(package: &Package, dialect: Dialect) {
    let mut out = BytesMut::new();
    encode(package, dialect, &mut out).expect("a decoded package re-encodes");
    let (again, used) = decode(dialect, &out)
        .expect("re-encoded bytes decode")
        .expect("re-encoded bytes are a whole frame");
    assert_eq!(used, out.len());
    assert_eq!(&again, package);
}

/// Decodes `data` as one CloudEvent and as a batch. Nothing may panic; an event that decodes
/// must encode, and decode back equal.
pub(crate) fn cloudevent_json(data: &[u8]) {
    if let Ok(event) = decode_event(data) {
        let bytes = encode_event(&event).expect("a decoded event encodes");
        assert_eq!(
            decode_event(&bytes).expect("an encoded event decodes"),
            event
        );
    }
    if let Ok(events) = decode_batch(data) {
        let bytes = encode_batch(&events).expect("a decoded batch encodes");
        assert_eq!(
            decode_batch(&bytes).expect("an encoded batch decodes"),
            events
        );
    }
}

/// `data` is a content type, a newline, then a body. Nothing may panic; fields that decode must
/// encode (with a boundary found nowhere in `data`) to a body that decodes to the same fields.
pub(crate) fn multipart_form(data: &[u8]) {
    let (content_type, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b""[..], data),
    };
    let Ok(content_type) = std::str::from_utf8(content_type) else {
        return;
    };
    let Ok(boundary) = form_data_boundary(content_type) else {
        return;
    };
    let Ok(fields) = parse_form_data(body, &boundary) else {
        return;
    };
    let fresh = (0u32..)
        .map(|n| format!("fuzz-b{n}"))
        .find(|b| !data.windows(b.len()).any(|w| w == b.as_bytes()))
        .expect("some boundary is not in the input");
    let again =
        parse_form_data(&encode_form_data(&fields, &fresh), &fresh).expect("encoded fields decode");
    assert_eq!(again, fields);
}

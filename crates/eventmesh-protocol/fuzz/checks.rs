//! The properties the fuzz targets check, shared with the corpus replay test
//! (`tests/fuzz_corpus.rs`) so CI exercises them without cargo-fuzz.

// Each fuzz target uses one of the two checks.
#![allow(dead_code)]

use bytes::BytesMut;
use eventmesh_protocol::cloudevents::{decode_batch, decode_event, encode_batch, encode_event};
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

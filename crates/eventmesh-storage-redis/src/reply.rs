//! Reading the replies of the store's scripts (RESP values) without trusting their shape.

use redis::Value;

use crate::error::Error;
use crate::keys::StreamId;

/// A script's answer: its status and the rest of the reply.
pub(crate) enum Status {
    Ok(Vec<Value>),
    NoTopic,
    NoGroup,
}

fn bad(op: &'static str, detail: impl Into<String>) -> Error {
    Error::Reply {
        op,
        detail: detail.into(),
    }
}

/// Splits a script reply into its status and the rest.
pub(crate) fn status(op: &'static str, v: Value) -> Result<Status, Error> {
    let mut items = array(op, v)?;
    if items.is_empty() {
        return Err(bad(op, "empty reply"));
    }
    let rest = items.split_off(1);
    match bytes(op, &items[0])? {
        b"ok" => Ok(Status::Ok(rest)),
        b"notopic" => Ok(Status::NoTopic),
        b"nogroup" => Ok(Status::NoGroup),
        other => Err(bad(
            op,
            format!("unknown status {:?}", String::from_utf8_lossy(other)),
        )),
    }
}

/// The elements of an array reply (nil counts as empty).
pub(crate) fn array(op: &'static str, v: Value) -> Result<Vec<Value>, Error> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(bad(op, format!("expected an array, got {other:?}"))),
    }
}

/// The bytes of a string reply.
pub(crate) fn bytes<'a>(op: &'static str, v: &'a Value) -> Result<&'a [u8], Error> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.as_bytes()),
        Value::Okay => Ok(b"OK"),
        other => Err(bad(op, format!("expected a string, got {other:?}"))),
    }
}

/// An integer reply (or a string holding one).
pub(crate) fn int(op: &'static str, v: &Value) -> Result<i64, Error> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(op, "expected an integer")),
        other => Err(bad(op, format!("expected an integer, got {other:?}"))),
    }
}

/// A stream id reply.
pub(crate) fn id(op: &'static str, v: &Value) -> Result<StreamId, Error> {
    let b = bytes(op, v)?;
    StreamId::parse(b).ok_or_else(|| {
        bad(
            op,
            format!("bad stream id {:?}", String::from_utf8_lossy(b)),
        )
    })
}

/// A stream id reply, or nil (Lua `false`).
pub(crate) fn opt_id(op: &'static str, v: &Value) -> Result<Option<StreamId>, Error> {
    match v {
        Value::Nil => Ok(None),
        v => id(op, v).map(Some),
    }
}

/// An integer reply, or nil.
pub(crate) fn opt_int(op: &'static str, v: &Value) -> Result<Option<i64>, Error> {
    match v {
        Value::Nil => Ok(None),
        v => int(op, v).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_shapes() {
        let ok = Value::Array(vec![
            Value::BulkString(b"ok".to_vec()),
            Value::BulkString(b"5-1".to_vec()),
        ]);
        let Ok(Status::Ok(rest)) = status("t", ok) else {
            panic!("expected ok");
        };
        assert_eq!(id("t", &rest[0]).ok(), Some(StreamId { ms: 5, seq: 1 }));
        assert!(matches!(
            status(
                "t",
                Value::Array(vec![Value::BulkString(b"nogroup".to_vec())])
            ),
            Ok(Status::NoGroup)
        ));
        assert!(status("t", Value::Int(3)).is_err());
        assert!(status("t", Value::Array(vec![])).is_err());
        assert_eq!(opt_int("t", &Value::Nil).ok(), Some(None));
        assert_eq!(int("t", &Value::BulkString(b"42".to_vec())).ok(), Some(42));
    }
}

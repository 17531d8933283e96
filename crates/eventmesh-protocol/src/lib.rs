//! The wire protocol of EventMesh-rs, sans IO: the single definition of the bytes shared by the
//! server and the SDK, compatible with Apache EventMesh clients.
//!
//! No sockets and no runtime: decoders read from a caller-owned `&[u8]` (or `BytesMut`) and
//! answer `Ok(None)` until a whole frame is there; encoders append to a caller-owned
//! [`bytes::BytesMut`].
//!
//! * [`tcp`]: the TCP frame codec ([`tcp::FrameCodec`]), the header ([`tcp::Header`]), the 37
//!   commands ([`tcp::Command`]) and the bodies ([`tcp::UserAgent`], [`tcp::Subscription`],
//!   [`tcp::RedirectInfo`], [`tcp::EventMeshMessage`]).
//! * [`cloudevents`]: the CloudEvents JSON event and batch formats, to and from
//!   [`eventmesh_core::CloudEvent`] (shared by the TCP and HTTP servers).
//! * [`multipart`]: `multipart/form-data` bodies, which the HTTP request-code protocol accepts
//!   beside URL-encoded forms.
//! * [`convert`]: wire types to and from the domain types of `eventmesh-core`. Wire types never
//!   leak domain types; only `convert` and `cloudevents` use `eventmesh-core`.
//!
//! # TCP frame
//!
//! ```text
//! offset  size  field
//! 0       9     magic         "EventMesh"            ("WEMQ", 4 bytes, in v1.0)
//! 9       4     version       "0000"
//! 13      4     length        int32 big-endian
//! 17      4     headerLength  int32 big-endian = H
//! 21      H     header        UTF-8 JSON
//! 21+H    B     body          JSON (or raw CloudEvent bytes); may be empty
//! ```
//!
//! What `length` counts depends on the client generation ([`tcp::Dialect`]):
//!
//! | dialect | clients | magic | `length` | bytes on the wire |
//! |---|---|---|---|---|
//! | [`V19`](tcp::Dialect::V19) | Java SDK/runtime v1.9+ | `EventMesh` | `13 + H + B` | `21 + H + B` |
//! | [`V12`](tcp::Dialect::V12) | v1.2–v1.8, Go SDK | `EventMesh` | `8 + H + B` | `21 + H + B` |
//! | [`V10`](tcp::Dialect::V10) | v1.0–v1.1, C SDK | `WEMQ` | `8 + H + B` | `16 + H + B` |
//!
//! A server's [`tcp::FrameCodec::detecting`] codec tells them apart from the first frame and
//! answers each connection in its own dialect; a client fixes its dialect.
//!
//! The header is `{"cmd":"HELLO_REQUEST","code":0,"desc":…,"seq":"…","properties":{…},"command":"HELLO_REQUEST"}`;
//! see [`tcp::Header`] for what is accepted on input.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use eventmesh_protocol::tcp::{self, Body, Command, Dialect, FrameCodec, Header, OpStatus, Package, UserAgent};
//!
//! // A Go SDK client (pre-1.9 length rule) says hello.
//! let hello = Package::new(
//!     Header::new(Command::HelloRequest, Some("0123456781".into())),
//!     Body::UserAgent(Box::new(UserAgent {
//!         group: Some("demo-group".into()),
//!         purpose: Some("sub".into()),
//!         version: Some("1.0".into()),
//!         ..UserAgent::default()
//!     })),
//! );
//! let mut wire = BytesMut::new();
//! tcp::encode(&hello, Dialect::V12, &mut wire)?;
//!
//! // The server's per-connection codec detects the dialect from that first frame...
//! let mut codec = FrameCodec::detecting();
//! let Some(request) = codec.decode_buf(&mut wire)? else { unreachable!("a whole frame") };
//! assert_eq!(codec.dialect(), Some(Dialect::V12));
//! assert_eq!(request, hello);
//!
//! // ...and answers in it.
//! let reply = Package::header_only(request.header.reply(OpStatus::Success, Some("success".into())));
//! let mut out = BytesMut::new();
//! codec.encode(&reply, &mut out)?;
//! assert_eq!(tcp::decode(Dialect::V12, &out)?.map(|(p, _)| p.header.command), Some(Command::HelloResponse));
//! # Ok::<(), eventmesh_protocol::ProtocolError>(())
//! ```
//!
//! # Invariants worth naming
//!
//! * The frame-size limit ([`tcp::DEFAULT_MAX_FRAME_BYTES`], 4 MiB by default, configurable)
//!   counts every byte of a frame on the wire and is checked from the length fields, before the
//!   frame is buffered; the encoder enforces the same limit.
//! * Decoding never panics: garbage (bad magic or version, negative or inconsistent lengths, bad
//!   JSON, an unknown command) is a typed [`ProtocolError`]; a truncated frame is `Ok(None)`.
//! * For every package `p` with a body of the type its command carries,
//!   `decode(encode(p)) == p` in every dialect (property-tested).
//! * [`tcp::Body::Raw`] bodies are kept byte for byte; a CloudEvent's JSON `data` is kept byte for
//!   byte as well.

#![deny(missing_docs)]
#![warn(clippy::pedantic)]
#![allow(clippy::module_name_repetitions)]
// Project and spec names (EventMesh, CloudEvents, WeBank) read better without backticks.
#![allow(clippy::doc_markdown)]

pub mod cloudevents;
pub mod convert;
mod error;
mod json;
pub mod multipart;
pub mod tcp;

pub use error::{Escaped, ProtocolError};

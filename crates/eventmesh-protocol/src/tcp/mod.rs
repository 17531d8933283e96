//! The EventMesh TCP protocol: frames, header, commands and bodies.
//!
//! See the crate documentation for the frame layout. [`FrameCodec`] is the per-connection
//! decoder/encoder; [`Package`] is one decoded frame.

mod command;
mod frame;
mod header;
mod message;
mod redirect;
mod subscription;
mod user_agent;

use bytes::Bytes;

use crate::json::object_from_slice;

pub use command::{BodyKind, Command, Direction};
pub use frame::{
    DEFAULT_MAX_FRAME_BYTES, Dialect, FrameCodec, MAGIC, V10_MAGIC, VERSION, decode, encode,
    encode_with_limit,
};
pub use header::{Header, OpStatus, PROTOCOL_DESC, PROTOCOL_TYPE, PROTOCOL_VERSION, ProtocolType};
pub use message::{DATA_CONTENT_TYPE, EventMeshMessage};
pub use redirect::RedirectInfo;
pub use subscription::{Subscription, SubscriptionItem, SubscriptionMode, SubscriptionType};
pub use user_agent::{Purpose, UserAgent};

/// One frame: a header and a body.
#[derive(Clone, Debug, PartialEq)]
pub struct Package {
    /// The header.
    pub header: Header,
    /// The body.
    pub body: Body,
}

/// A frame body, typed by the header's command as the Java codec types it
/// (see [`Command::body_kind`]).
///
/// A body that is empty, only whitespace, or the JSON literal `null` (what Java encoders before
/// v1.9 wrote for "no body") decodes as [`Body::Empty`].
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// No body (`B = 0` on the wire).
    Empty,
    /// `HELLO_REQUEST`, `RECOMMEND_REQUEST` (boxed: it is much larger than the other variants).
    UserAgent(Box<UserAgent>),
    /// `SUBSCRIBE_REQUEST`, `UNSUBSCRIBE_REQUEST`.
    Subscription(Subscription),
    /// `REDIRECT_TO_CLIENT`.
    Redirect(RedirectInfo),
    /// Every other command, bytes as received: an [`EventMeshMessage`] JSON or a structured
    /// CloudEvent by the header's `protocoltype`, an ack's echo, a `RECOMMEND_RESPONSE` string.
    /// Encoding writes the bytes verbatim, whatever the command (so a typed command given a raw
    /// body decodes back as its typed body).
    Raw(Bytes),
}

impl Package {
    /// A package.
    #[must_use]
    pub fn new(header: Header, body: Body) -> Self {
        Package { header, body }
    }

    /// A package without a body.
    #[must_use]
    pub fn header_only(header: Header) -> Self {
        Package {
            header,
            body: Body::Empty,
        }
    }

    /// The command.
    #[must_use]
    pub fn command(&self) -> Command {
        self.header.command
    }

    /// The raw body bytes, for commands whose body is kept raw. `None` for an empty or typed body.
    #[must_use]
    pub fn raw_body(&self) -> Option<&Bytes> {
        match &self.body {
            Body::Raw(b) => Some(b),
            _ => None,
        }
    }
}

impl Body {
    /// Types a received body for `command`.
    ///
    /// # Errors
    /// [`crate::ProtocolError::InvalidBody`] if a typed body is not valid JSON of its type.
    pub fn decode(command: Command, bytes: Bytes) -> Result<Body, crate::ProtocolError> {
        if is_absent(&bytes) {
            return Ok(Body::Empty);
        }
        let invalid = |source| crate::ProtocolError::InvalidBody { command, source };
        Ok(match command.body_kind() {
            BodyKind::UserAgent => {
                Body::UserAgent(Box::new(object_from_slice(&bytes).map_err(invalid)?))
            }
            BodyKind::Subscription => {
                Body::Subscription(object_from_slice(&bytes).map_err(invalid)?)
            }
            BodyKind::RedirectInfo => Body::Redirect(object_from_slice(&bytes).map_err(invalid)?),
            BodyKind::Raw => Body::Raw(bytes),
        })
    }
}

/// Empty, whitespace, or `null`.
fn is_absent(bytes: &[u8]) -> bool {
    let trimmed = bytes.trim_ascii();
    trimmed.is_empty() || trimmed == b"null"
}

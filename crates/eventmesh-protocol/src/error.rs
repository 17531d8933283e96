//! The protocol error type.

use std::fmt;

use crate::cloudevents::FormatError;
use crate::tcp::Command;

/// Everything that can be wrong with bytes on the wire, or with a conversion at the edge.
///
/// Decoding errors are fatal to a TCP connection: the decoder's position in the stream is lost,
/// so the connection answers `SERVER_GOODBYE_REQUEST` (code 1, `desc` = this error's text) and
/// closes. The text names what was wrong and never echoes more than a few bytes of input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The frame does not start with `EventMesh` (or `WEMQ` for the v1.0 dialect).
    #[error("bad magic: expected {expected:?}, found {found}")]
    BadMagic {
        /// The magic the decoder expected.
        expected: &'static str,
        /// The first bytes received, escaped.
        found: Escaped,
    },
    /// The 4 version bytes after the magic are not `0000`.
    #[error("bad protocol version: expected \"0000\", found {found}")]
    BadVersion {
        /// The bytes received, escaped.
        found: Escaped,
    },
    /// The `length` field is negative or too small to hold the fixed part and the header.
    #[error(
        "bad frame length {length} (header length {header_length}): the frame must hold at least {minimum} bytes after the length fields"
    )]
    BadLength {
        /// The `length` field.
        length: i32,
        /// The `headerLength` field.
        header_length: i32,
        /// The smallest `length` that would be consistent with `header_length`.
        minimum: i64,
    },
    /// The `headerLength` field is zero or negative: every frame has a header.
    #[error("bad header length {0}: every frame carries a JSON header")]
    BadHeaderLength(i32),
    /// The frame is larger than the configured maximum. Checked from the length fields, before
    /// the frame is buffered.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The frame's size on the wire.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// The header is not valid JSON or not a valid header object.
    #[error("invalid header JSON: {0}")]
    InvalidHeader(#[source] serde_json::Error),
    /// The header has neither `cmd` nor `command`.
    #[error("header has no `cmd`")]
    MissingCommand,
    /// The header's command is not one of the 37 known commands.
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// A header field has the wrong type or value.
    #[error("invalid header field `{field}`: {reason}")]
    InvalidHeaderField {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The body does not parse as the type the command carries.
    #[error("invalid {command} body: {source}")]
    InvalidBody {
        /// The command whose body failed.
        command: Command,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The first frame of a connection reads as valid JSON under neither the v1.9+ nor the
    /// pre-v1.9 length rule.
    #[error(
        "cannot tell the frame dialect: the first frame's body is not JSON under either the v1.9 or the pre-1.9 length rule"
    )]
    UndetectableDialect,
    /// A JSON value could not be written (should not happen with the crate's own types).
    #[error("cannot encode JSON: {0}")]
    Encode(#[source] serde_json::Error),
    /// A header property a message command needs is missing or blank.
    #[error("header property `{0}` is missing or blank")]
    MissingProperty(&'static str),
    /// The header's `protocoltype` is not supported for this operation.
    #[error("unsupported protocoltype {0:?}")]
    UnsupportedProtocolType(String),
    /// The header's `protocolversion` is neither `1.0` nor `0.3`.
    #[error("unsupported protocolversion {0:?}: use \"1.0\" or \"0.3\"")]
    UnsupportedProtocolVersion(String),
    /// A property key cannot be a CloudEvents extension name (lower-case ASCII letters and
    /// digits only).
    #[error(
        "abnormal property key {0:?}: CloudEvents extension names are 1 to 64 lower-case ASCII letters or digits"
    )]
    InvalidPropertyKey(String),
    /// A subscription item cannot become a domain subscription.
    #[error("invalid subscription to {topic:?}: {reason}")]
    InvalidSubscription {
        /// The item's topic.
        topic: String,
        /// What is wrong.
        reason: String,
    },
    /// An event body is not usable (a message body that is not UTF-8, an event that fails
    /// validation, ...).
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// A CloudEvents JSON document is invalid.
    #[error(transparent)]
    CloudEvent(#[from] FormatError),
}

/// A few bytes of input, shown with non-printable bytes escaped (for error messages).
#[derive(Clone, PartialEq, Eq)]
pub struct Escaped(pub Vec<u8>);

impl Escaped {
    /// Keeps at most 16 bytes of `bytes`.
    #[must_use]
    pub fn new(bytes: &[u8]) -> Self {
        Escaped(bytes[..bytes.len().min(16)].to_vec())
    }
}

impl fmt::Display for Escaped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for b in &self.0 {
            write!(f, "{}", b.escape_ascii())?;
        }
        f.write_str("\"")
    }
}

impl fmt::Debug for Escaped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

//! TCP framing: the three dialects, the per-connection codec and the stateless functions.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use super::header::HeaderStyle;
use super::{Body, Header, Package};
use crate::ProtocolError;
use crate::error::Escaped;

/// The magic of v1.2 and later frames.
pub const MAGIC: &[u8; 9] = b"EventMesh";
/// The magic of v1.0–v1.1 frames.
pub const V10_MAGIC: &[u8; 4] = b"WEMQ";
/// The version bytes that follow the magic in every dialect.
pub const VERSION: &[u8; 4] = b"0000";
/// The default limit on one frame's size on the wire (4 MiB, as the Java runtime).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// A framing dialect. All three share the layout
/// `magic | "0000" | int32 BE length | int32 BE headerLength | header | body`
/// and differ in the magic and in what `length` counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// v1.9 and later (the Java SDK and runtime today): magic `EventMesh`,
    /// `length = 13 + H + B` (magic, version, header, body).
    V19,
    /// v1.2–v1.8, and the Go SDK still: magic `EventMesh`, `length = 8 + H + B` (the two int
    /// fields, header, body). Same bytes on the wire as [`Dialect::V19`] apart from `length`.
    V12,
    /// v1.0–v1.1 (WeBank, the C SDK): magic `WEMQ`, `length = 8 + H + B`; header keys
    /// `command`/`code`/`msg`/`seq`.
    V10,
}

impl Dialect {
    /// A short name for configuration and logs: `v1.9`, `v1.2` or `v1.0`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Dialect::V19 => "v1.9",
            Dialect::V12 => "v1.2",
            Dialect::V10 => "v1.0",
        }
    }

    /// Parses [`Dialect::as_str`] names, also without the dot or the `v` (`v19`, `1.2`, ...).
    #[must_use]
    pub fn parse(s: &str) -> Option<Dialect> {
        let s = s.trim();
        let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
        match s {
            "1.9" | "19" => Some(Dialect::V19),
            "1.2" | "12" => Some(Dialect::V12),
            "1.0" | "10" => Some(Dialect::V10),
            _ => None,
        }
    }

    /// The magic bytes.
    #[must_use]
    pub const fn magic(self) -> &'static [u8] {
        match self {
            Dialect::V19 | Dialect::V12 => MAGIC,
            Dialect::V10 => V10_MAGIC,
        }
    }

    /// Bytes before the header: magic, version and the two int fields (21, or 16 for v1.0).
    #[must_use]
    pub const fn prefix_len(self) -> usize {
        self.magic().len() + 4 + 8
    }

    /// What `length` counts besides the header and body (13 for v1.9, 8 otherwise).
    #[must_use]
    pub const fn length_overhead(self) -> usize {
        match self {
            Dialect::V19 => 13,
            Dialect::V12 | Dialect::V10 => 8,
        }
    }

    /// [`Dialect::length_overhead`] as an `i64`, for length arithmetic.
    const fn overhead_i64(self) -> i64 {
        match self {
            Dialect::V19 => 13,
            Dialect::V12 | Dialect::V10 => 8,
        }
    }

    /// [`Dialect::prefix_len`] as an `i64`, for length arithmetic.
    const fn prefix_i64(self) -> i64 {
        match self {
            Dialect::V19 | Dialect::V12 => 21,
            Dialect::V10 => 16,
        }
    }

    pub(crate) const fn header_style(self) -> HeaderStyle {
        match self {
            Dialect::V19 | Dialect::V12 => HeaderStyle::Current,
            Dialect::V10 => HeaderStyle::V10,
        }
    }
}

/// The per-connection codec: detects the dialect from the first frame (unless fixed), decodes
/// with it, and encodes replies in it.
///
/// Detection (the first frame of a connection is `HELLO_REQUEST` or `RECOMMEND_REQUEST`, whose
/// body is a JSON object):
/// * a frame starting with `WEMQ` is [`Dialect::V10`];
/// * an `EventMesh` frame is read with the v1.9 length rule first. If that leaves a negative
///   body it is [`Dialect::V12`]; if the body is empty or valid JSON it is [`Dialect::V19`];
/// * otherwise the pre-1.9 rule, which gives a body five bytes longer, is tried: valid JSON
///   means [`Dialect::V12`]; JSON under neither rule is a [`Dialect::V19`] frame with a broken
///   body (reported by the body decoder);
/// * while those five bytes have not arrived, a body that ends like JSON (`}` or `]`) is taken
///   as v1.9 rather than waiting for bytes a v1.9 client would never send; any other body waits.
///
/// Known limits: a pre-1.9 body with five or more trailing whitespace bytes reads as v1.9; a
/// pre-1.9 body whose first `B - 5` bytes end in `}` and whose last five bytes arrive in a later
/// read reads as v1.9 (then fails to decode); a v1.9 first frame whose body is not JSON and does
/// not end like JSON waits for five more bytes (a server settles that with
/// [`FrameCodec::settle_v19`] when no byte follows for a moment). None of these happens with a
/// real `HELLO_REQUEST` (a flat object ending in `"unack":0}`).
///
/// The dialect is kept once a first frame has been framed, even if its body then fails to
/// decode, so the goodbye for that error goes out in the client's own framing.
#[derive(Clone, Debug)]
pub struct FrameCodec {
    dialect: Option<Dialect>,
    max_frame_bytes: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::detecting()
    }
}

impl FrameCodec {
    /// A codec that detects the dialect from the first frame (what a server uses).
    #[must_use]
    pub fn detecting() -> Self {
        FrameCodec {
            dialect: None,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        }
    }

    /// A codec fixed to one dialect (what a client uses).
    #[must_use]
    pub fn new(dialect: Dialect) -> Self {
        FrameCodec {
            dialect: Some(dialect),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        }
    }

    /// Sets the largest frame accepted or produced, in bytes on the wire.
    #[must_use]
    pub fn with_max_frame_bytes(mut self, max: usize) -> Self {
        self.max_frame_bytes = max;
        self
    }

    /// The largest frame accepted or produced.
    #[must_use]
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// The dialect, once fixed or detected.
    #[must_use]
    pub fn dialect(&self) -> Option<Dialect> {
        self.dialect
    }

    /// The dialect replies are written in: the detected one, else [`Dialect::V19`].
    #[must_use]
    pub fn reply_dialect(&self) -> Dialect {
        self.dialect.unwrap_or(Dialect::V19)
    }

    /// Decodes one frame from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds only part of a frame (read more and call again with
    /// the same bytes plus the new ones), or the package and the number of bytes it used.
    ///
    /// # Errors
    /// Any framing, header or body error. The error is fatal for the connection.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(Package, usize)>, ProtocolError> {
        let Some(frame) = self.frame(buf)? else {
            return Ok(None);
        };
        let body = Bytes::copy_from_slice(&buf[frame.body.clone()]);
        let total = frame.total;
        let package = package(&buf[frame.header.clone()], body)?;
        Ok(Some((package, total)))
    }

    /// Decodes one frame from the start of `buf` and removes it from `buf`, without copying the
    /// body (it shares `buf`'s allocation).
    ///
    /// # Errors
    /// As [`FrameCodec::decode`].
    pub fn decode_buf(&mut self, buf: &mut BytesMut) -> Result<Option<Package>, ProtocolError> {
        let Some(frame) = self.frame(buf)? else {
            return Ok(None);
        };
        let bytes = buf.split_to(frame.total).freeze();
        let body = bytes.slice(frame.body.clone());
        package(&bytes[frame.header.clone()], body).map(Some)
    }

    /// Encodes `package` at the end of `dst` in the reply dialect.
    ///
    /// # Errors
    /// [`ProtocolError::FrameTooLarge`] (nothing is left in `dst`).
    pub fn encode(&self, package: &Package, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        encode_with_limit(package, self.reply_dialect(), self.max_frame_bytes, dst)
    }

    /// Settles a detection that waits for the five bytes a pre-1.9 body would still need: when
    /// the dialect is not known yet and `buf` holds a whole frame under the v1.9 length rule,
    /// fixes the dialect to [`Dialect::V19`] and returns `true`; the next decode then reads that
    /// frame (and reports its broken body) instead of waiting for bytes that are not coming.
    ///
    /// A server calls this when a first frame stays undecided while no more bytes arrive for a
    /// while (a pre-1.9 client writes its frame at once).
    pub fn settle_v19(&mut self, buf: &[u8]) -> bool {
        if self.dialect.is_some() || buf.first() == Some(&b'W') {
            return false;
        }
        let Ok(Some((length, header_length))) = lengths(Dialect::V19, buf) else {
            return false;
        };
        let body = body_len(Dialect::V19, length, header_length);
        if body < 0 {
            return false;
        }
        match total_len(Dialect::V19, header_length, body, self.max_frame_bytes) {
            Ok(total) if buf.len() >= total => {
                self.dialect = Some(Dialect::V19);
                true
            }
            _ => false,
        }
    }

    fn frame(&mut self, buf: &[u8]) -> Result<Option<Frame>, ProtocolError> {
        let frame = match self.dialect {
            Some(d) => parse_fixed(d, buf, self.max_frame_bytes)?,
            None => detect(buf, self.max_frame_bytes)?,
        };
        if let Some(f) = &frame {
            self.dialect = Some(f.dialect);
        }
        Ok(frame)
    }
}

/// Decodes one frame of a known dialect from the start of `buf`, with the default size limit.
///
/// # Errors
/// As [`FrameCodec::decode`].
pub fn decode(dialect: Dialect, buf: &[u8]) -> Result<Option<(Package, usize)>, ProtocolError> {
    FrameCodec::new(dialect).decode(buf)
}

/// Encodes `package` in `dialect` at the end of `dst`, with the default size limit.
///
/// # Errors
/// As [`encode_with_limit`].
pub fn encode(
    package: &Package,
    dialect: Dialect,
    dst: &mut BytesMut,
) -> Result<(), ProtocolError> {
    encode_with_limit(package, dialect, DEFAULT_MAX_FRAME_BYTES, dst)
}

/// Encodes `package` in `dialect` at the end of `dst`, refusing frames over `max_frame_bytes`.
///
/// # Errors
/// [`ProtocolError::FrameTooLarge`] if the frame would exceed the limit (or `i32` lengths);
/// `dst` is then left as it was.
pub fn encode_with_limit(
    package: &Package,
    dialect: Dialect,
    max_frame_bytes: usize,
    dst: &mut BytesMut,
) -> Result<(), ProtocolError> {
    let start = dst.len();
    let result = write_frame(package, dialect, max_frame_bytes, start, dst);
    if result.is_err() {
        dst.truncate(start);
    }
    result
}

fn write_frame(
    package: &Package,
    dialect: Dialect,
    max_frame_bytes: usize,
    start: usize,
    dst: &mut BytesMut,
) -> Result<(), ProtocolError> {
    dst.reserve(dialect.prefix_len() + 256);
    dst.put_slice(dialect.magic());
    dst.put_slice(VERSION);
    let lengths_at = dst.len();
    dst.put_bytes(0, 8);
    let header_at = dst.len();
    package
        .header
        .write_json(dialect.header_style(), (&mut *dst).writer())
        .map_err(ProtocolError::Encode)?;
    let header_len = dst.len() - header_at;
    let json = match &package.body {
        Body::Empty => Ok(()),
        Body::UserAgent(b) => serde_json::to_writer((&mut *dst).writer(), b),
        Body::Subscription(b) => serde_json::to_writer((&mut *dst).writer(), b),
        Body::Redirect(b) => serde_json::to_writer((&mut *dst).writer(), b),
        Body::Raw(b) => {
            dst.put_slice(b);
            Ok(())
        }
    };
    json.map_err(ProtocolError::Encode)?;
    let total = dst.len() - start;
    let too_large = || ProtocolError::FrameTooLarge {
        size: total as u64,
        max: max_frame_bytes,
    };
    if total > max_frame_bytes {
        return Err(too_large());
    }
    let body_len = dst.len() - header_at - header_len;
    let length = i32::try_from(dialect.length_overhead() + header_len + body_len)
        .map_err(|_| too_large())?;
    let header_len = i32::try_from(header_len).map_err(|_| too_large())?;
    dst[lengths_at..lengths_at + 4].copy_from_slice(&length.to_be_bytes());
    dst[lengths_at + 4..lengths_at + 8].copy_from_slice(&header_len.to_be_bytes());
    Ok(())
}

/// Where one complete frame lies in the buffer. The header is parsed after the dialect has been
/// recorded, so an error in it is answered in the client's own framing.
struct Frame {
    dialect: Dialect,
    total: usize,
    header: Range<usize>,
    body: Range<usize>,
}

/// Parses the header and types the body of a framed package.
fn package(header: &[u8], body: Bytes) -> Result<Package, ProtocolError> {
    let header = Header::from_json(header)?;
    let body = Body::decode(header.command, body)?;
    Ok(Package { header, body })
}

/// Checks as much of the magic and version as `buf` holds.
fn check_prefix(dialect: Dialect, buf: &[u8]) -> Result<(), ProtocolError> {
    let magic = dialect.magic();
    let n = buf.len().min(magic.len());
    if buf[..n] != magic[..n] {
        return Err(ProtocolError::BadMagic {
            expected: if dialect == Dialect::V10 {
                "WEMQ"
            } else {
                "EventMesh"
            },
            found: Escaped::new(&buf[..n]),
        });
    }
    if buf.len() > magic.len() {
        let v = &buf[magic.len()..buf.len().min(magic.len() + 4)];
        if v != &VERSION[..v.len()] {
            return Err(ProtocolError::BadVersion {
                found: Escaped::new(v),
            });
        }
    }
    Ok(())
}

fn read_i32(buf: &[u8], at: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    i32::from_be_bytes(b)
}

/// The two int fields, when `buf` holds the prefix.
fn lengths(dialect: Dialect, buf: &[u8]) -> Result<Option<(i32, i32)>, ProtocolError> {
    check_prefix(dialect, buf)?;
    if buf.len() < dialect.prefix_len() {
        return Ok(None);
    }
    let at = dialect.magic().len() + 4;
    let length = read_i32(buf, at);
    let header_length = read_i32(buf, at + 4);
    if header_length <= 0 {
        return Err(ProtocolError::BadHeaderLength(header_length));
    }
    Ok(Some((length, header_length)))
}

/// The body length `length` implies under `dialect` (may be negative).
fn body_len(dialect: Dialect, length: i32, header_length: i32) -> i64 {
    i64::from(length) - dialect.overhead_i64() - i64::from(header_length)
}

fn bad_length(dialect: Dialect, length: i32, header_length: i32) -> ProtocolError {
    ProtocolError::BadLength {
        length,
        header_length,
        minimum: dialect.overhead_i64() + i64::from(header_length),
    }
}

/// The frame's total size if the body length is `body`; checks it against the limit.
fn total_len(
    dialect: Dialect,
    header_length: i32,
    body: i64,
    max: usize,
) -> Result<usize, ProtocolError> {
    // header_length > 0 and body >= 0 here, and both fit in i32, so the sum fits in i64.
    let total = dialect.prefix_i64() + i64::from(header_length) + body;
    let total = u64::try_from(total).unwrap_or(u64::MAX);
    match usize::try_from(total) {
        Ok(t) if t <= max => Ok(t),
        _ => Err(ProtocolError::FrameTooLarge { size: total, max }),
    }
}

fn parse_fixed(dialect: Dialect, buf: &[u8], max: usize) -> Result<Option<Frame>, ProtocolError> {
    let Some((length, header_length)) = lengths(dialect, buf)? else {
        return Ok(None);
    };
    let body = body_len(dialect, length, header_length);
    if body < 0 {
        return Err(bad_length(dialect, length, header_length));
    }
    let total = total_len(dialect, header_length, body, max)?;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some(finish(dialect, header_length, total)))
}

fn finish(dialect: Dialect, header_length: i32, total: usize) -> Frame {
    let header_start = dialect.prefix_len();
    // header_length > 0 was checked, and total covers it.
    let header_end = header_start + usize::try_from(header_length).unwrap_or(0);
    Frame {
        dialect,
        total,
        header: header_start..header_end,
        body: header_end..total,
    }
}

fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

fn ends_like_json(bytes: &[u8]) -> bool {
    matches!(bytes.trim_ascii_end().last(), Some(b'}' | b']'))
}

fn detect(buf: &[u8], max: usize) -> Result<Option<Frame>, ProtocolError> {
    match buf.first() {
        None => return Ok(None),
        Some(b'W') => return parse_fixed(Dialect::V10, buf, max),
        Some(_) => {}
    }
    let Some((length, header_length)) = lengths(Dialect::V19, buf)? else {
        return Ok(None);
    };
    let body19 = body_len(Dialect::V19, length, header_length);
    let body12 = body_len(Dialect::V12, length, header_length);
    if body12 < 0 {
        return Err(bad_length(Dialect::V12, length, header_length));
    }
    if body19 < 0 {
        return parse_fixed(Dialect::V12, buf, max);
    }
    let total19 = total_len(Dialect::V19, header_length, body19, max)?;
    if buf.len() < total19 {
        return Ok(None);
    }
    let header_end = Dialect::V19.prefix_len() + usize::try_from(header_length).unwrap_or(0);
    let candidate19 = &buf[header_end..total19];
    if candidate19.is_empty() || is_json(candidate19) {
        return Ok(Some(finish(Dialect::V19, header_length, total19)));
    }
    // Not JSON under the v1.9 rule: try the pre-1.9 rule, five bytes longer.
    let total12 = total_len(Dialect::V12, header_length, body12, max)?;
    if buf.len() >= total12 {
        let dialect = if is_json(&buf[header_end..total12]) {
            Dialect::V12
        } else {
            // JSON under neither rule: a v1.9 frame with a broken body, reported as such.
            Dialect::V19
        };
        let total = if dialect == Dialect::V12 {
            total12
        } else {
            total19
        };
        return Ok(Some(finish(dialect, header_length, total)));
    }
    if ends_like_json(candidate19) {
        // Do not wait for bytes a v1.9 client may never send: a body ending like JSON is taken
        // as a (broken) v1.9 body.
        return Ok(Some(finish(Dialect::V19, header_length, total19)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_v19_reports_a_broken_first_body_instead_of_waiting() {
        let header = br#"{"cmd":"HELLO_REQUEST","code":0,"seq":"1"}"#;
        let body = br#"{"group":"#;
        let h = i32::try_from(header.len()).unwrap();
        let b = i32::try_from(body.len()).unwrap();
        let mut buf = BytesMut::new();
        buf.put_slice(MAGIC);
        buf.put_slice(VERSION);
        buf.put_i32(13 + h + b);
        buf.put_i32(h);
        buf.put_slice(header);
        buf.put_slice(body);
        let mut codec = FrameCodec::detecting();
        assert!(
            !codec.settle_v19(&buf[..buf.len() - 1]),
            "not a whole frame yet"
        );
        assert!(
            codec.decode_buf(&mut buf).unwrap().is_none(),
            "waits for a pre-1.9 tail"
        );
        assert!(codec.settle_v19(&buf));
        assert_eq!(codec.dialect(), Some(Dialect::V19));
        assert!(!codec.settle_v19(&buf), "already settled");
        assert!(matches!(
            codec.decode_buf(&mut buf),
            Err(ProtocolError::InvalidBody { .. })
        ));
    }

    #[test]
    fn dialect_names() {
        for d in [Dialect::V19, Dialect::V12, Dialect::V10] {
            assert_eq!(Dialect::parse(d.as_str()), Some(d));
        }
        assert_eq!(Dialect::parse("V12"), Some(Dialect::V12));
        assert_eq!(Dialect::parse("1.1"), None);
        assert_eq!(Dialect::V19.prefix_len(), 21);
        assert_eq!(Dialect::V10.prefix_len(), 16);
        for d in [Dialect::V19, Dialect::V12, Dialect::V10] {
            assert_eq!(d.prefix_i64(), i64::try_from(d.prefix_len()).unwrap());
            assert_eq!(
                d.overhead_i64(),
                i64::try_from(d.length_overhead()).unwrap()
            );
        }
    }
}

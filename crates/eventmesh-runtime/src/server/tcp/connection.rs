//! Framed reads and writes of one TCP connection over the protocol crate's codec. Knows nothing
//! about commands.
//!
//! The read half owns the per-connection [`FrameCodec`] (which detects the client's framing from
//! its first frame); the write half encodes in that framing. Both methods used inside `select!`
//! are cancel-safe: [`FrameReader::read_frame`] consumes a frame from its buffer only once it is
//! whole, and [`FrameWriter::write_some`] is a single write.

use std::io;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use eventmesh_protocol::ProtocolError;
use eventmesh_protocol::tcp::{Dialect, FrameCodec, Package, encode_with_limit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// How long an undecided first frame waits for more bytes before it is read as v1.9.
const SETTLE_AFTER: Duration = Duration::from_millis(500);
/// The read buffer's first capacity: enough for the HELLO, SUBSCRIBE and LISTEN of an idle
/// session (a few hundred bytes each), so 10,000 idle sessions do not hold 8 KiB each.
const READ_INITIAL: usize = 1024;
/// How much the read buffer grows by once a client sends more than fits (a busy publisher).
const READ_CAPACITY: usize = 8 * 1024;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The bytes are not a valid frame (fatal for the connection).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The socket failed, or closed in the middle of a frame.
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
}

/// The read half: a buffer and the codec.
pub(crate) struct FrameReader {
    half: OwnedReadHalf,
    buf: BytesMut,
    codec: FrameCodec,
}

impl FrameReader {
    pub(crate) fn new(half: OwnedReadHalf, max_frame_bytes: usize) -> Self {
        FrameReader {
            half,
            buf: BytesMut::with_capacity(READ_INITIAL),
            codec: FrameCodec::detecting().with_max_frame_bytes(max_frame_bytes),
        }
    }

    /// The client's framing, once detected.
    pub(crate) fn dialect(&self) -> Option<Dialect> {
        self.codec.dialect()
    }

    /// The framing replies are written in (the detected one, else v1.9).
    pub(crate) fn reply_dialect(&self) -> Dialect {
        self.codec.reply_dialect()
    }

    /// A frame already buffered, without reading from the socket.
    pub(crate) fn buffered_frame(&mut self) -> Result<Option<Package>, ProtocolError> {
        self.codec.decode_buf(&mut self.buf)
    }

    /// The next frame; `Ok(None)` when the client closed cleanly between frames. Cancel-safe.
    pub(crate) async fn read_frame(&mut self) -> Result<Option<Package>, ReadError> {
        loop {
            if let Some(p) = self.codec.decode_buf(&mut self.buf)? {
                return Ok(Some(p));
            }
            if self.buf.capacity() - self.buf.len() < READ_INITIAL {
                self.buf.reserve(READ_CAPACITY);
            }
            let read = if self.codec.dialect().is_none() && !self.buf.is_empty() {
                // A first frame may be undecided between the v1.9 and pre-1.9 length rules
                // (its body is not JSON under the first): when no byte follows for a moment,
                // read it as v1.9 so that a broken body is reported, not waited on.
                match tokio::time::timeout(SETTLE_AFTER, self.half.read_buf(&mut self.buf)).await {
                    Ok(r) => r?,
                    Err(_) => {
                        self.codec.settle_v19(&self.buf);
                        continue;
                    }
                }
            } else {
                self.half.read_buf(&mut self.buf).await?
            };
            if read == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "the client closed the connection in the middle of a frame ({} bytes buffered)",
                            self.buf.len()
                        ),
                    )))
                };
            }
        }
    }
}

/// The write half: an output buffer flushed by [`FrameWriter::write_some`].
pub(crate) struct FrameWriter {
    half: OwnedWriteHalf,
    buf: BytesMut,
    max_frame_bytes: usize,
}

impl FrameWriter {
    pub(crate) fn new(half: OwnedWriteHalf, max_frame_bytes: usize) -> Self {
        FrameWriter {
            half,
            // Allocated by the first frame queued, and only as large as the frames need.
            buf: BytesMut::new(),
            max_frame_bytes,
        }
    }

    /// Encodes `package` at the end of the output buffer, in `dialect`.
    pub(crate) fn queue(
        &mut self,
        package: &Package,
        dialect: Dialect,
    ) -> Result<(), ProtocolError> {
        encode_with_limit(package, dialect, self.max_frame_bytes, &mut self.buf)
    }

    /// Bytes waiting to be written.
    pub(crate) fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Writes some of the output buffer. Cancel-safe.
    pub(crate) async fn write_some(&mut self) -> io::Result<()> {
        let n = self.half.write(self.buf.chunk()).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        self.buf.advance(n);
        Ok(())
    }

    /// Writes everything buffered and shuts the write side down, within `timeout`.
    pub(crate) async fn finish(&mut self, timeout: Duration) -> io::Result<()> {
        let flush = async {
            while !self.buf.is_empty() {
                self.write_some().await?;
            }
            self.half.shutdown().await
        };
        match tokio::time::timeout(timeout, flush).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read the last frames in time",
            )),
        }
    }
}

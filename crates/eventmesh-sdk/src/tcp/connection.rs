//! Framed IO over one TCP stream, using the protocol crate's codec, and `seq` generation.
//!
//! [`Connection`] knows nothing about commands: it reads whole packages and queues packages to
//! write. Writing is buffered and flushed while reading, so a server that is pushing to us while
//! we write to it never deadlocks the two sides.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use eventmesh_protocol::ProtocolError;
use eventmesh_protocol::tcp::{Dialect, FrameCodec, Package};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::Error;

/// Length of a client `seq`, as the Java SDK.
pub const SEQ_LEN: usize = 10;

/// Queued outgoing bytes above which the client stops taking new work until they are written.
pub(crate) const WRITE_HIGH_WATER: usize = 1024 * 1024;

const READ_CHUNK: usize = 8 * 1024;

/// A new client `seq`: ten random digits `0`–`8`, like the Java SDK's generator (which never
/// yields `9`).
#[must_use]
pub fn new_seq() -> String {
    let mut rng = rand::rng();
    (0..SEQ_LEN)
        .map(|_| char::from(b'0' + rng.random_range(0..9u8)))
        .collect()
}

/// Why reading failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Eof,
    /// A socket error.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    /// The server sent bytes that do not decode; the stream position is lost.
    #[error("undecodable frame: {0}")]
    Protocol(#[from] ProtocolError),
}

/// One framed TCP connection (v1.9 framing).
#[derive(Debug)]
pub(crate) struct Connection {
    stream: TcpStream,
    codec: FrameCodec,
    rbuf: BytesMut,
    wbuf: BytesMut,
    address: String,
}

impl Connection {
    /// Opens a connection to `address` within `timeout`.
    pub(crate) async fn connect(
        address: &str,
        timeout: Duration,
        max_frame_bytes: usize,
    ) -> Result<Connection, Error> {
        let connect = |source| Error::Connect {
            address: address.to_owned(),
            source,
        };
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| {
                connect(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection within {} ms", timeout.as_millis()),
                ))
            })?
            .map_err(connect)?;
        stream.set_nodelay(true).map_err(connect)?;
        Ok(Connection {
            stream,
            codec: FrameCodec::new(Dialect::V19).with_max_frame_bytes(max_frame_bytes),
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::with_capacity(READ_CHUNK),
            address: address.to_owned(),
        })
    }

    /// The address this connection was opened to.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// Encodes `package` into the write buffer; [`Connection::read_package`] and
    /// [`Connection::flush`] write it out.
    pub(crate) fn queue(&mut self, package: &Package) -> Result<(), ProtocolError> {
        self.codec.encode(package, &mut self.wbuf)
    }

    /// Bytes queued and not yet written.
    pub(crate) fn backlog(&self) -> usize {
        self.wbuf.len()
    }

    /// Writes everything queued.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        while !self.wbuf.is_empty() {
            self.stream.write_buf(&mut self.wbuf).await?;
        }
        self.stream.flush().await
    }

    /// Reads the next package, writing queued bytes meanwhile.
    ///
    /// Cancel-safe: a partly read frame stays buffered and partly written bytes stay queued.
    pub(crate) async fn read_package(&mut self) -> Result<Package, ReadError> {
        loop {
            if let Some(package) = self.codec.decode_buf(&mut self.rbuf)? {
                return Ok(package);
            }
            self.rbuf.reserve(READ_CHUNK);
            let (mut reader, mut writer) = self.stream.split();
            if self.wbuf.is_empty() {
                if reader.read_buf(&mut self.rbuf).await? == 0 {
                    return Err(ReadError::Eof);
                }
                continue;
            }
            tokio::select! {
                read = reader.read_buf(&mut self.rbuf) => {
                    if read? == 0 {
                        return Err(ReadError::Eof);
                    }
                }
                written = writer.write_buf(&mut self.wbuf) => {
                    if written? == 0 {
                        return Err(ReadError::Io(io::ErrorKind::WriteZero.into()));
                    }
                }
            }
        }
    }

    /// Flushes and shuts the write side down (best effort).
    pub(crate) async fn shutdown(mut self) {
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqs_are_ten_digits_without_nine() {
        for _ in 0..1000 {
            let s = new_seq();
            assert_eq!(s.len(), SEQ_LEN);
            assert!(s.bytes().all(|b| (b'0'..=b'8').contains(&b)), "{s}");
        }
    }
}

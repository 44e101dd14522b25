//! A connection's first bytes: read to tell HTTP/2 from HTTP/1.1 (as
//! hyper-util's `auto` builder tells them), then read again by hyper.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// What an HTTP/2 connection starts with; anything else is HTTP/1.1.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads the connection's first bytes, as many as tell its protocol: all of
/// HTTP/2's preface (`true`), or up to the first byte that differs from it
/// or the end of the stream (`false`, HTTP/1.1), as hyper-util's `auto`
/// builder tells them.
pub(super) async fn first_bytes<IO: AsyncRead + Unpin>(io: &mut IO) -> io::Result<(bool, Bytes)> {
    let mut buffer = [0u8; H2_PREFACE.len()];
    let mut filled = 0;
    while filled < buffer.len() {
        let read = io.read(&mut buffer[filled..]).await?;
        let end = filled + read;
        if read == 0 || buffer[filled..end] != H2_PREFACE[filled..end] {
            return Ok((false, Bytes::copy_from_slice(&buffer[..end])));
        }
        filled = end;
    }
    Ok((true, Bytes::copy_from_slice(&buffer)))
}

/// A connection whose first bytes were read already: they are read again
/// first, then the connection's. Writes and the close go to the connection.
pub(super) struct Replay<IO> {
    first: Bytes,
    io: IO,
}

impl<IO> Replay<IO> {
    pub(super) fn new(first: Bytes, io: IO) -> Replay<IO> {
        Replay { first, io }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Replay<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.first.has_remaining() {
            let n = self.first.len().min(buf.remaining());
            buf.put_slice(&self.first[..n]);
            self.first.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Replay<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_bytes_tell_http2_from_http1_and_are_read_again() {
        let preface = [H2_PREFACE.as_slice(), b"\0\0\0\x04"].concat();
        for (sent, h2, first) in [
            (preface.as_slice(), true, H2_PREFACE.as_slice()),
            (b"GET / HTTP/1.1\r\n".as_slice(), false, b"G".as_slice()),
            (
                b"PRI * HTTP/1.1".as_slice(),
                false,
                b"PRI * HTTP/1".as_slice(),
            ),
            (b"PRI".as_slice(), false, b"PRI".as_slice()),
            (b"".as_slice(), false, b"".as_slice()),
        ] {
            // One byte a read: the preface may come in pieces.
            let mut io = trickle(sent);
            let (is_h2, read) = first_bytes(&mut io).await.unwrap();
            assert_eq!((is_h2, &read[..]), (h2, first), "{sent:?}");
            let mut again = Vec::new();
            Replay::new(read, io).read_to_end(&mut again).await.unwrap();
            assert_eq!(again, sent);
        }
    }

    /// A reader of `bytes` that hands them over one at a time.
    fn trickle(bytes: &[u8]) -> impl AsyncRead + AsyncWrite + Unpin {
        let (mut client, server) = tokio::io::duplex(1);
        let bytes = bytes.to_vec();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = client.write_all(&bytes).await;
        });
        server
    }
}

//! Accepting connections within bounds: at most so many at once (the accept
//! loop waits for one to close before taking another), and each one closed
//! if it has not sent the first 24 bytes (the length of HTTP/2's connection
//! preface; a TLS ClientHello is longer) within the handshake timeout, so
//! that silent or trickling sockets cannot hold every slot. Past that, TLS
//! has its own handshake timeout and HTTP/2 its keep-alive pings.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures_util::Stream;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    time::{Instant, Sleep},
};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// What a connection must send within the handshake timeout: HTTP/2's
/// connection preface is 24 bytes.
const HANDSHAKE_BYTES: usize = 24;

/// Connections from `listener`, at most `max` open at once.
pub(super) fn bounded(
    listener: TcpListener,
    max: usize,
    handshake_timeout: Duration,
) -> impl Stream<Item = io::Result<BoundedStream>> {
    let slots = Arc::new(Semaphore::new(max.max(1)));
    futures_util::stream::unfold((listener, slots), move |(listener, slots)| async move {
        let permit = slots.clone().acquire_owned().await.ok()?;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let stream = BoundedStream::new(stream, permit, handshake_timeout);
                    return Some((Ok(stream), (listener, slots)));
                }
                // Out of file descriptors, a connection reset before accept:
                // pause briefly rather than spin, and keep serving.
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
}

/// A connection holding one of the server's connection slots until it
/// closes.
#[derive(Debug)]
pub(super) struct BoundedStream {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    /// Until the first `HANDSHAKE_BYTES` arrive: when to give up on the peer.
    handshake: Option<Pin<Box<Sleep>>>,
    /// Bytes received so far, counted until the handshake deadline is lifted.
    received: usize,
    peer: Option<SocketAddr>,
}

impl BoundedStream {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit, handshake_timeout: Duration) -> Self {
        let peer = stream.peer_addr().ok();
        BoundedStream {
            stream,
            _slot: slot,
            handshake: Some(Box::pin(tokio::time::sleep_until(
                Instant::now() + handshake_timeout,
            ))),
            received: 0,
            peer,
        }
    }
}

impl AsyncRead for BoundedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if self.handshake.is_some() {
            if let Poll::Ready(Ok(())) = &result {
                self.received += buf.filled().len() - before;
                if self.received >= HANDSHAKE_BYTES {
                    self.handshake = None;
                    return result;
                }
            }
            let deadline = self.handshake.as_mut().expect("checked above");
            if deadline.as_mut().poll(cx).is_ready() {
                tracing::debug!(peer = ?self.peer, "closing a connection that did not start in time");
                return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
            }
        }
        result
    }
}

impl AsyncWrite for BoundedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl Connected for BoundedStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

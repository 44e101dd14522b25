//! Serving one connection: TLS when configured (ALPN `h2` and
//! `http/1.1`), then HTTP/2 or HTTP/1.1 on hyper with the server's limits,
//! until the connection closes or its close signal says to close it
//! gracefully (HTTP/2: `GOAWAY` naming the last stream, then the calls in
//! flight finish; HTTP/1.1: the connection closes after the request in
//! flight). hyper's own HTTP/1.1 read buffer is bounded by the header list
//! limit, so an unfinished request head costs that much memory, not the
//! 400 KB hyper allows by default.
//!
//! Which protocol is read here, from the connection's first bytes, not by
//! hyper-util's `auto` builder: told to close gracefully before it has read
//! them, that builder drops the connection, and with it whatever the client
//! had already sent (a request, which a proxy in front then reports failed,
//! and a socket closed with unread bytes, which answers with a TCP reset).
//! Here a connection told to close that early still reads its first bytes,
//! then closes gracefully: the requests it already carries are answered.

use std::{
    convert::Infallible,
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Buf, Bytes};
use http::{Request, Response};
use hyper::{
    body::Incoming,
    server::conn::{http1, http2},
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio_rustls::{TlsAcceptor, rustls::ServerConfig};
use tonic::{body::Body, transport::server::TcpConnectInfo};

use super::{Limits, connections::CloseSignal, stream::BoundedStream};

/// The least read buffer hyper's HTTP/1.1 server takes (it panics below).
const MIN_HTTP1_BUFFER: usize = 8192;

/// Room in the buffer beyond the header list limit: for the request line,
/// and so that a head just over the limit is still read whole and refused
/// by the server's own 431 (which carries CORS headers) rather than hyper's.
const HTTP1_BUFFER_SLACK: usize = 4096;

/// What an HTTP/2 connection starts with; anything else is HTTP/1.1.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Marks a request that arrived over TLS, in its extensions: for the proxy's
/// `X-Forwarded-Proto`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ArrivedOverTls;

/// How every connection of the server is served: the HTTP settings and
/// the TLS acceptor, built once and shared.
#[derive(Clone)]
pub(super) struct Serving {
    http2: http2::Builder<TokioExecutor>,
    http1: http1::Builder,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
}

impl Serving {
    pub(super) fn new(limits: &Limits, tls: Option<Arc<ServerConfig>>) -> Serving {
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_concurrent_streams)
            .max_header_list_size(limits.max_header_list_bytes)
            .keep_alive_interval(Some(limits.keepalive_interval))
            .keep_alive_timeout(limits.keepalive_timeout);
        // The timer makes hyper enforce its read timeout for a request head.
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .max_buf_size(http1_buffer(limits.max_header_list_bytes));
        Serving {
            http2,
            http1,
            tls: tls.map(TlsAcceptor::from),
            handshake_timeout: limits.handshake_timeout,
        }
    }

    /// Serves `stream` with `service` until it closes, or gracefully once
    /// `close` resolves.
    pub(super) async fn serve<S, B>(&self, stream: BoundedStream, service: S, close: CloseSignal)
    where
        S: tower_service::Service<Request<Body>, Response = Response<B>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let info = TcpConnectInfo {
            local_addr: stream.local_addr(),
            remote_addr: stream.peer(),
        };
        let Some(acceptor) = &self.tls else {
            let service = Arrival::new(service, info, false);
            return self.http(stream, service, close).await;
        };
        let peer = info.remote_addr;
        match tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                let service = Arrival::new(service, info, true);
                self.http(tls, service, close).await;
            }
            Ok(Err(error)) => tracing::debug!(?peer, %error, "TLS handshake failed"),
            Err(_) => tracing::debug!(?peer, "TLS handshake timed out"),
        }
    }

    async fn http<IO, S, B>(&self, mut io: IO, service: Arrival<S>, mut close: CloseSignal)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: tower_service::Service<Request<Body>, Response = Response<B>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // The first bytes, even if told to close meanwhile: they may carry
        // a request. How long they may take is bounded as before: by the
        // handshake timeout (plaintext), the grace period or the shutdown
        // timeout.
        let mut closing = false;
        let first = {
            let mut first = std::pin::pin!(first_bytes(&mut io));
            loop {
                tokio::select! {
                    first = first.as_mut() => break first,
                    () = close.as_mut(), if !closing => closing = true,
                }
            }
        };
        let (h2, first) = match first {
            Ok(first) => first,
            Err(error) => {
                tracing::debug!(%error, "reading a connection's first bytes failed");
                return;
            }
        };
        let io = TokioIo::new(Replay::new(first, io));
        let service = TowerToHyperService::new(service);
        let served = if h2 {
            let connection = self.http2.serve_connection(io, service);
            until_closed(connection, close, closing, |c| c.graceful_shutdown()).await
        } else {
            let connection = self.http1.serve_connection(io, service);
            until_closed(connection, close, closing, |c| c.graceful_shutdown()).await
        };
        if let Err(error) = served {
            tracing::debug!(%error, "serving a connection failed");
        }
    }
}

/// Drives `connection` until it ends, closing it gracefully once `close`
/// resolves, or at once if `closing` already.
async fn until_closed<C>(
    connection: C,
    close: CloseSignal,
    closing: bool,
    graceful_shutdown: impl FnOnce(Pin<&mut C>),
) -> hyper::Result<()>
where
    C: Future<Output = hyper::Result<()>>,
{
    let mut connection = std::pin::pin!(connection);
    if closing {
        graceful_shutdown(connection.as_mut());
        return connection.await;
    }
    tokio::select! {
        served = connection.as_mut() => served,
        () = close => {
            graceful_shutdown(connection.as_mut());
            connection.await
        }
    }
}

/// Reads the connection's first bytes, as many as tell its protocol: all of
/// HTTP/2's preface (`true`), or up to the first byte that differs from it
/// or the end of the stream (`false`, HTTP/1.1), as hyper-util's `auto`
/// builder tells them.
async fn first_bytes<IO: AsyncRead + Unpin>(io: &mut IO) -> io::Result<(bool, Bytes)> {
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
struct Replay<IO> {
    first: Bytes,
    io: IO,
}

impl<IO> Replay<IO> {
    fn new(first: Bytes, io: IO) -> Replay<IO> {
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

/// hyper's HTTP/1.1 read buffer for a header list limit: the limit and a
/// little room (at least hyper's minimum), so that a head that never ends
/// holds no more.
fn http1_buffer(max_header_list_bytes: u32) -> usize {
    usize::try_from(max_header_list_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(HTTP1_BUFFER_SLACK)
        .max(MIN_HTTP1_BUFFER)
}

/// The server's stack behind hyper: each request in tonic's body type, with
/// where it came from in its extensions: tonic's `TcpConnectInfo` (what
/// the gate's logs read), and [`ArrivedOverTls`] over TLS. tonic's
/// `TlsConnectInfo`, and so `Request::peer_certs`, is not there: tonic
/// offers no way to make one, and client certificates are not asked for.
#[derive(Clone)]
struct Arrival<S> {
    inner: S,
    info: TcpConnectInfo,
    tls: bool,
}

impl<S> Arrival<S> {
    fn new(inner: S, info: TcpConnectInfo, tls: bool) -> Arrival<S> {
        Arrival { inner, info, tls }
    }
}

impl<S> tower_service::Service<Request<Incoming>> for Arrival<S>
where
    S: tower_service::Service<Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Incoming>) -> S::Future {
        let mut request = request.map(Body::new);
        let extensions = request.extensions_mut();
        extensions.insert(self.info.clone());
        if self.tls {
            extensions.insert(ArrivedOverTls);
        }
        self.inner.call(request)
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

    #[test]
    fn the_http1_buffer_is_the_header_limit_but_never_below_hypers_least() {
        assert_eq!(http1_buffer(16 * 1024), 20 * 1024);
        assert_eq!(http1_buffer(1), MIN_HTTP1_BUFFER);
        assert_eq!(
            http1_buffer(u32::MAX),
            u32::MAX as usize + HTTP1_BUFFER_SLACK
        );
    }
}

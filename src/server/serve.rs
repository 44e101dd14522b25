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
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use hyper::{
    body::Incoming,
    server::conn::{http1, http2},
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsAcceptor, rustls::ServerConfig};
use tonic::{body::Body, transport::server::TcpConnectInfo};

use super::{
    Limits,
    connections::CloseSignal,
    first_bytes::{Replay, first_bytes},
    stream::BoundedStream,
};

/// The least read buffer hyper's HTTP/1.1 server takes (it panics below).
const MIN_HTTP1_BUFFER: usize = 8192;

/// Room in the buffer beyond the header list limit: for the request line,
/// and so that a head just over the limit is still read whole and refused
/// by the server's own 431 (which carries CORS headers) rather than hyper's.
const HTTP1_BUFFER_SLACK: usize = 4096;

/// A response body hyper can send.
pub(super) trait Answer:
    http_body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
    + Send
    + 'static
{
}

impl<B> Answer for B where
    B: http_body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static
{
}

/// The service a connection is served with, as hyper needs it: one per
/// connection, cloned per request, its futures sent to the runtime.
pub(super) trait Served<B: Answer>:
    tower_service::Service<
        Request<Body>,
        Response = Response<B>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S, B: Answer> Served<B> for S where
    S: tower_service::Service<
            Request<Body>,
            Response = Response<B>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

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
    /// `close` resolves. A plain function returning the future, boxed: each
    /// layer of `async` around a connection would keep its own room for
    /// the service and the stream it moved on.
    pub(super) fn serve<S, B>(
        &self,
        stream: BoundedStream,
        service: S,
        close: CloseSignal,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>
    where
        S: Served<B>,
        B: Answer,
    {
        let info = TcpConnectInfo {
            local_addr: stream.local_addr(),
            remote_addr: stream.peer(),
        };
        match &self.tls {
            None => Box::pin(
                self.clone()
                    .http(stream, Arrival::new(service, info, false), close),
            ),
            // The TLS state (rustls' connection, some kilobytes) only in
            // the tasks of TLS connections.
            Some(acceptor) => self.tls(acceptor.clone(), stream, service, info, close),
        }
    }

    fn tls<S, B>(
        &self,
        acceptor: TlsAcceptor,
        stream: BoundedStream,
        service: S,
        info: TcpConnectInfo,
        close: CloseSignal,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>
    where
        S: Served<B>,
        B: Answer,
    {
        let serving = self.clone();
        Box::pin(async move {
            let peer = info.remote_addr;
            let handshake = acceptor.accept(stream);
            match tokio::time::timeout(serving.handshake_timeout, handshake).await {
                Ok(Ok(tls)) => {
                    let service = Arrival::new(service, info, true);
                    serving.http(tls, service, close).await;
                }
                Ok(Err(error)) => tracing::debug!(?peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(?peer, "TLS handshake timed out"),
            }
        })
    }

    async fn http<IO, S, B>(self, mut io: IO, service: Arrival<S>, mut close: CloseSignal)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Served<B>,
        B: Answer,
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
        let served = self.connection(h2, io, service, close, closing).await;
        if let Err(error) = served {
            tracing::debug!(%error, "serving a connection failed");
        }
    }

    /// hyper's HTTP/2 or HTTP/1.1 connection, in a box of its own size. An
    /// idle connection's memory is mostly its task; were both protocols'
    /// state machines inline in one future, each connection would carry
    /// room for the larger, and rustc keeps room for values moved out of a
    /// local across an `await`: a plain function builds the box, so neither
    /// happens (the task was 14 KiB; the box is hyper's own size).
    fn connection<IO, S, B>(
        &self,
        h2: bool,
        io: TokioIo<Replay<IO>>,
        service: Arrival<S>,
        close: CloseSignal,
        closing: bool,
    ) -> Pin<Box<dyn Future<Output = hyper::Result<()>> + Send + 'static>>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Served<B>,
        B: Answer,
    {
        let service = TowerToHyperService::new(service);
        if h2 {
            let connection = self.http2.serve_connection(io, service);
            Box::pin(until_closed(connection, close, closing, |c| {
                c.graceful_shutdown()
            }))
        } else {
            let connection = self.http1.serve_connection(io, service);
            Box::pin(until_closed(connection, close, closing, |c| {
                c.graceful_shutdown()
            }))
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

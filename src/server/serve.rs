//! Serving one connection: TLS when configured (ALPN `h2` and
//! `http/1.1`), then HTTP/2 or HTTP/1.1 on hyper with the server's limits,
//! until the connection closes or its close signal says to close it
//! gracefully (HTTP/2: `GOAWAY` naming the last stream, then the calls in
//! flight finish; HTTP/1.1: the connection closes after the request in
//! flight). hyper's own HTTP/1.1 read buffer is bounded by the header list
//! limit, so an unfinished request head costs that much memory, not the
//! 400 KB hyper allows by default.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsAcceptor, rustls::ServerConfig};
use tonic::{body::Body, transport::server::TcpConnectInfo};

use super::{Limits, connections::CloseSignal, incoming::BoundedStream};

/// The least read buffer hyper's HTTP/1.1 server takes (it panics below).
const MIN_HTTP1_BUFFER: usize = 8192;

/// Room in the buffer beyond the header list limit: for the request line,
/// and so that a head just over the limit is still read whole and refused
/// by the server's own 431 (which carries CORS headers) rather than hyper's.
const HTTP1_BUFFER_SLACK: usize = 4096;

/// Marks a request that arrived over TLS, in its extensions: for the proxy's
/// `X-Forwarded-Proto`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ArrivedOverTls;

/// How every connection of the server is served: the HTTP settings and
/// the TLS acceptor, built once and shared.
#[derive(Clone)]
pub(super) struct Serving {
    http: auto::Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
}

impl Serving {
    pub(super) fn new(limits: &Limits, tls: Option<Arc<ServerConfig>>) -> Serving {
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_concurrent_streams)
            .max_header_list_size(limits.max_header_list_bytes)
            .keep_alive_interval(Some(limits.keepalive_interval))
            .keep_alive_timeout(limits.keepalive_timeout);
        // The timer makes hyper enforce its read timeout for a request head.
        http.http1()
            .timer(TokioTimer::new())
            .max_buf_size(http1_buffer(limits.max_header_list_bytes));
        Serving {
            http,
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

    async fn http<IO, S, B>(&self, io: IO, service: Arrival<S>, close: CloseSignal)
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
        let connection = self
            .http
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        let mut connection = std::pin::pin!(connection);
        let served = tokio::select! {
            served = connection.as_mut() => served,
            () = close => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(error) = served {
            tracing::debug!(%error, "serving a connection failed");
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

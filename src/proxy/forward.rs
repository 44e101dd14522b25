//! [`Forward`]: the tower service that sends a request the gate let in to
//! the upstream and streams its answer back, over HTTP/2 (one connection,
//! [`Http2Upstream`]: `grpc-timeout` passes on as a header, and a caller
//! that goes cancels the upstream's stream) or HTTP/1.1 (hyper's pooled
//! client).

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use http::{StatusCode, header, uri::Authority};
use tonic::{
    Status,
    body::Body,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
};

use super::{
    UpstreamConfig, UpstreamProtocol,
    forwarded::{arrival, caller_host, set_forwarded},
    hop_by_hop,
    http1::Http1Upstream,
    http2::Http2Upstream,
    identity::set_identity,
    trailers::{FilteredTrailers, MALFORMED_BODY, Trailers},
};
use crate::{
    Principal, StartupError,
    error::error_chain,
    gate::stats::LogBudget,
    server::{detail_response, is_grpc},
};

/// Forwards each request to the upstream. Cheap to clone: clones share the
/// connection (HTTP/2) or the connection pool (HTTP/1.1).
#[derive(Clone)]
pub struct Forward {
    client: Client,
    shared: Arc<Shared>,
}

#[derive(Clone)]
enum Client {
    H2(Http2Upstream),
    Http1(Http1Upstream),
}

struct Shared {
    upstream: UpstreamConfig,
    /// `scheme://host:port`, as the log names it.
    name: Box<str>,
    /// Bounds the lines an upstream that is down writes: every caller can
    /// cause one.
    failures_logged: LogBudget,
}

impl fmt::Debug for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forward")
            .field("upstream", &self.shared.name)
            .field("protocol", &self.shared.upstream.protocol)
            .finish_non_exhaustive()
    }
}

type ForwardFuture = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

impl Forward {
    /// A forwarder to `upstream`; connects on the first call. Call it
    /// within a Tokio runtime.
    pub fn new(upstream: UpstreamConfig) -> Result<Forward, StartupError> {
        let client = match upstream.protocol {
            UpstreamProtocol::H2 => Client::H2(Http2Upstream::new(&upstream)?),
            UpstreamProtocol::Http1 => Client::Http1(Http1Upstream::new(&upstream)?),
        };
        Ok(Forward {
            client,
            shared: Arc::new(Shared {
                name: upstream.display().into(),
                upstream,
                failures_logged: LogBudget::new("upstream failures"),
            }),
        })
    }

    /// The upstream, as `scheme://host:port`.
    pub fn upstream(&self) -> &str {
        &self.shared.name
    }

    /// A tonic channel to the upstream, when it speaks HTTP/2, for the
    /// calls the proxy makes itself (its reflection, at start-up).
    pub(super) fn channel(&self) -> Option<Result<Channel, StartupError>> {
        match &self.client {
            Client::H2(_) => Some(channel(&self.shared.upstream)),
            Client::Http1(_) => None,
        }
    }
}

fn channel(upstream: &UpstreamConfig) -> Result<Channel, StartupError> {
    let bad = |e: tonic::transport::Error| {
        StartupError::Config(format!(
            "upstream {}: {}",
            upstream.display(),
            error_chain(&e)
        ))
    };
    let mut endpoint = Endpoint::from_shared(upstream.url.to_string())
        .map_err(bad)?
        .connect_timeout(upstream.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    if upstream.is_tls() {
        let tls = ClientTlsConfig::new();
        let tls = match &upstream.ca_pem {
            Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
            None => tls.with_enabled_roots(),
        };
        endpoint = endpoint.tls_config(tls).map_err(|e| {
            StartupError::Tls(format!(
                "upstream {}: {}",
                upstream.display(),
                error_chain(&e)
            ))
        })?;
    }
    Ok(endpoint.connect_lazy())
}

impl tower_service::Service<http::Request<Body>> for Forward {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = ForwardFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Readiness is the client's, awaited in the call: an upstream that
        // is down must fail calls, not stall the server.
        Poll::Ready(Ok(()))
    }

    /// The request rewritten for the upstream, a concern a step: the
    /// hop-by-hop headers (`hop_by_hop.rs`); `Host` and `X-Forwarded-*`
    /// (`forwarded.rs`); `authorization` and who called (`identity.rs`);
    /// the request trailers (`trailers.rs`); then sent by the client of the
    /// upstream's protocol (`http2.rs`, `http1.rs`), a failure rendered by
    /// `Shared::unavailable`.
    fn call(&mut self, mut request: http::Request<Body>) -> ForwardFuture {
        let grpc = is_grpc(&request);
        let principal = request.extensions().get::<Principal>().cloned();
        let arrival = arrival(&request);
        let host = caller_host(&request);
        let upstream = &self.shared.upstream;
        let headers = request.headers_mut();
        hop_by_hop::strip(headers);
        // The upstream's authority is the client's to set, unless the
        // caller's is kept (HTTP/1.1: as `Host`; HTTP/2: as `:authority`).
        headers.remove(header::HOST);
        let kept_host = host.as_ref().filter(|_| upstream.preserve_host).cloned();
        set_forwarded(headers, arrival, host, &upstream.trust_forwarded);
        if !upstream.forward_authorization {
            headers.remove(header::AUTHORIZATION);
        }
        set_identity(headers, principal.as_ref());
        let trailers = if grpc {
            Trailers::Filter {
                keep_authorization: upstream.forward_authorization,
            }
        } else {
            Trailers::Drop
        };
        let request = request.map(|body| Body::new(FilteredTrailers::new(body, trailers)));
        let shared = self.shared.clone();
        match &self.client {
            Client::H2(client) => {
                let client = client.clone();
                // A kept host that is no authority (`Host: a b`) leaves the
                // upstream's.
                let authority =
                    kept_host.and_then(|host| Authority::try_from(host.as_bytes()).ok());
                Box::pin(async move {
                    Ok(match client.send(request, authority).await {
                        Ok(response) => response.map(Body::new),
                        Err(error) => shared.unavailable(grpc, &*error),
                    })
                })
            }
            Client::Http1(client) => {
                if grpc {
                    let status = Status::unimplemented(format!(
                        "upstream {} speaks HTTP/1.1 only (--upstream-protocol http1): \
                         gRPC calls cannot reach it",
                        shared.name
                    ));
                    return Box::pin(std::future::ready(Ok(status.into_http())));
                }
                let sent = client.send(request, kept_host);
                Box::pin(async move {
                    Ok(match sent.await {
                        Ok(response) => response,
                        Err(error) => shared.unavailable(grpc, &*error),
                    })
                })
            }
        }
    }
}

impl Shared {
    /// The answer when the request could not be forwarded: `400` (or
    /// `INVALID_ARGUMENT`) when the caller broke its own request body,
    /// else `UNAVAILABLE` (502 for plain HTTP) saying only `upstream
    /// unavailable`. The upstream's address and the error (OS errors,
    /// certificate names) are the operator's, so they go to the log, at
    /// most [`REFUSALS_LOGGED_PER_SECOND`](crate::REFUSALS_LOGGED_PER_SECOND)
    /// lines a second however many calls fail.
    fn unavailable(
        &self,
        grpc: bool,
        error: &(dyn std::error::Error + 'static),
    ) -> http::Response<Body> {
        if broken_body(error) {
            if grpc {
                return Status::invalid_argument(MALFORMED_BODY).into_http();
            }
            return detail_response(StatusCode::BAD_REQUEST, MALFORMED_BODY);
        }
        if self.failures_logged.admit(crate::util::unix_now()) {
            tracing::warn!(
                upstream = %self.name,
                "upstream unavailable: {}",
                error_chain(error)
            );
        }
        if grpc {
            return Status::unavailable(UNAVAILABLE).into_http();
        }
        detail_response(StatusCode::BAD_GATEWAY, UNAVAILABLE)
    }
}

/// What a caller is told of an upstream that cannot be reached.
const UNAVAILABLE: &str = "upstream unavailable";

/// Whether forwarding failed because the caller's own request body did:
/// [`FilteredTrailers`] turns such an error into a `Status` saying so,
/// which hyper's HTTP/1.1 client keeps as the cause of its error; its
/// HTTP/2 client instead resets the upstream's stream from our side, with
/// `INTERNAL_ERROR`, and reports that reset.
fn broken_body(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(status) = error.downcast_ref::<Status>()
            && status.code() == tonic::Code::InvalidArgument
            && status.message() == MALFORMED_BODY
        {
            return true;
        }
        if let Some(h2) = error.downcast_ref::<h2::Error>()
            && h2.is_reset()
            && !h2.is_remote()
            && h2.reason() == Some(h2::Reason::INTERNAL_ERROR)
        {
            return true;
        }
        cause = error.source();
    }
    false
}

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

use http::{HeaderMap, HeaderValue, StatusCode, header, uri::Authority};
use hyper_util::{
    client::legacy::{Client as HttpClient, connect::HttpConnector},
    rt::TokioExecutor,
};
use tonic::{
    Status,
    body::Body,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
};

use super::{
    UpstreamConfig, UpstreamProtocol,
    forwarded::{arrival, caller_host, set_forwarded},
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

/// Hop-by-hop headers (RFC 9110 7.6.1), never forwarded in either
/// direction, with those a `Connection` header names; `te: trailers`, which
/// gRPC needs, is kept.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

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
    Http1(Box<HttpClient<HttpConnector, Body>>),
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
            UpstreamProtocol::Http1 => {
                if upstream.is_tls() {
                    return Err(StartupError::Config(format!(
                        "upstream {}: https:// upstreams over HTTP/1.1 are not supported yet; \
                         use --upstream-protocol h2, or reach it over http://",
                        upstream.display()
                    )));
                }
                let mut connector = HttpConnector::new();
                connector.set_connect_timeout(Some(upstream.connect_timeout));
                connector.set_nodelay(true);
                Client::Http1(Box::new(
                    HttpClient::builder(TokioExecutor::new())
                        .pool_idle_timeout(Duration::from_secs(60))
                        .build(connector),
                ))
            }
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

    fn call(&mut self, mut request: http::Request<Body>) -> ForwardFuture {
        let grpc = is_grpc(&request);
        let principal = request.extensions().get::<Principal>().cloned();
        let arrival = arrival(&request);
        let host = caller_host(&request);
        let upstream = &self.shared.upstream;
        let headers = request.headers_mut();
        strip_hop_by_hop(headers);
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
        let mut request = request.map(|body| Body::new(FilteredTrailers::new(body, trailers)));
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
                let path = request
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                let base = &shared.upstream.url;
                let uri = http::Uri::builder()
                    .scheme(base.scheme_str().unwrap_or("http"))
                    .authority(base.authority().map_or("", |a| a.as_str()))
                    .path_and_query(path)
                    .build();
                match uri {
                    Ok(uri) => *request.uri_mut() = uri,
                    Err(error) => {
                        return Box::pin(std::future::ready(Ok(shared.unavailable(grpc, &error))));
                    }
                }
                *request.version_mut() = http::Version::HTTP_11;
                if let Some(host) = kept_host {
                    request.headers_mut().insert(header::HOST, host);
                }
                join_cookies(request.headers_mut());
                let client = (**client).clone();
                Box::pin(async move {
                    Ok(match client.request(request).await {
                        Ok(response) => {
                            let mut response = response.map(Body::new);
                            strip_hop_by_hop(response.headers_mut());
                            response
                        }
                        Err(error) => shared.unavailable(grpc, &error),
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

/// Joins several `cookie` headers (HTTP/2 may split them, one per cookie)
/// into one, as RFC 9113 section 8.2.3 says to before HTTP/1.1: many
/// HTTP/1.1 servers read only the first.
fn join_cookies(headers: &mut HeaderMap) {
    let mut cookies = headers.get_all(header::COOKIE).iter();
    if cookies.next().is_none() || cookies.next().is_none() {
        return;
    }
    let joined: Vec<&[u8]> = headers
        .get_all(header::COOKIE)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if let Ok(value) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        headers.insert(header::COOKIE, value);
    }
}

/// Removes the hop-by-hop headers, and those `Connection` names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    for name in named {
        if name != "te" {
            headers.remove(name.as_str());
        }
    }
    let trailers_only = headers
        .get(header::TE)
        .is_some_and(|te| te.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for name in HOP_BY_HOP {
        if name == "te" && trailers_only {
            continue;
        }
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_and_te_trailers_stays() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("upgrade", "h2c"),
            ("te", "trailers"),
            ("content-type", "application/grpc"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        strip_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["te", "content-type"]);
        headers.insert("te", HeaderValue::from_static("gzip"));
        strip_hop_by_hop(&mut headers);
        assert!(!headers.contains_key("te"));
    }

    #[test]
    fn cookies_split_by_http2_are_one_header_for_http1() {
        let mut headers = HeaderMap::new();
        headers.append("cookie", HeaderValue::from_static("a=1"));
        join_cookies(&mut headers);
        assert_eq!(headers["cookie"], "a=1");
        headers.append("cookie", HeaderValue::from_static("b=2"));
        headers.append("cookie", HeaderValue::from_static("c=3"));
        join_cookies(&mut headers);
        assert_eq!(headers.get_all("cookie").iter().count(), 1);
        assert_eq!(headers["cookie"], "a=1; b=2; c=3");
    }
}

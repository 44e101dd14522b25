//! [`GateLayer`]: the gate in front of a whole tonic server, deny by
//! default, health and reflection open (for a time, when given a maximum
//! age); its service and response future.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::time::Instant;

use tonic::{
    Status,
    transport::server::{TcpConnectInfo, TlsConnectInfo},
};

use super::Gate;
use crate::gate::expiry::{Deadline, ExpiringBody};

/// Services anyone may call without a token: health and reflection.
pub const PUBLIC_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// A tower layer that guards a whole tonic server: every method but the
/// public ones needs a valid token, including methods added later.
#[derive(Clone, Debug)]
pub struct GateLayer {
    interceptor: Gate,
    /// Paths open without a token: health, reflection, and what was allowed.
    public: Arc<[PublicPath]>,
    /// How long a public call may last; `None`: as long as it likes.
    public_max_age: Option<Duration>,
}

impl GateLayer {
    /// Guards everything but [`PUBLIC_SERVICES`].
    pub fn new(interceptor: Gate) -> GateLayer {
        GateLayer {
            interceptor,
            public: PUBLIC_SERVICES
                .iter()
                .map(|s| PublicPath::Prefix(format!("/{s}/").into()))
                .collect(),
            public_max_age: None,
        }
    }

    /// Ends each call to a public method (a health `Watch`, a reflection
    /// stream) `max_age` after it starts, with `UNAVAILABLE` (`stream
    /// reached its maximum age`), on which their clients call again; by
    /// default such calls last as long as the client likes. The server
    /// assembly sets this from its `Limits`.
    pub fn public_stream_max_age(mut self, max_age: Duration) -> GateLayer {
        self.public_max_age = Some(max_age);
        self
    }

    /// Also leaves `service` (`package.Service`) open without a token.
    pub fn allow_unauthenticated(self, service: &str) -> GateLayer {
        self.allow(PublicPath::Prefix(format!("/{service}/").into()))
    }

    /// Also leaves `path` open without a token: a path exactly
    /// (`/echo.v1.Echo/Unary`, `/healthz`), or, ending in `/*`, every path
    /// under it (`/docs/*` opens `/docs/` and everything below; `/*` opens
    /// every path). Fails on a pattern that is neither.
    pub fn allow_path(self, path: &str) -> Result<GateLayer, String> {
        Ok(self.allow(parse_public_path(path)?))
    }

    /// Whether `path` reads as [`GateLayer::allow_path`] takes it, and
    /// if not, why: for checking settings before a gate exists.
    pub fn check_path(path: &str) -> Result<(), String> {
        parse_public_path(path).map(|_| ())
    }

    fn allow(mut self, path: PublicPath) -> GateLayer {
        if !self.public.contains(&path) {
            let mut public = self.public.to_vec();
            public.push(path);
            self.public = public.into();
        }
        self
    }

    /// The paths open without a token, for plain HTTP's gate to share.
    #[cfg(feature = "server")]
    pub(crate) fn public_paths(&self) -> Arc<[PublicPath]> {
        self.public.clone()
    }

    fn is_public(&self, path: &str) -> bool {
        is_public(&self.public, path)
    }
}

/// A path open without a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PublicPath {
    /// This path exactly.
    Exact(Box<str>),
    /// Every path that starts with this (`/grpc.health.v1.Health/`).
    Prefix(Box<str>),
}

impl PublicPath {
    fn matches(&self, path: &str) -> bool {
        match self {
            PublicPath::Exact(exact) => path == &**exact,
            PublicPath::Prefix(prefix) => path.starts_with(&**prefix),
        }
    }
}

/// Whether one of `public` opens `path`.
pub(crate) fn is_public(public: &[PublicPath], path: &str) -> bool {
    public.iter().any(|public| public.matches(path))
}

/// A public path as `--public` takes it: `/exact/path` or `/prefix/*`.
fn parse_public_path(path: &str) -> Result<PublicPath, String> {
    let wrong = || {
        format!(
            "`{path}` is not a path such as /echo.v1.Echo/Unary, or /prefix/* for every path under it"
        )
    };
    if !path.starts_with('/') || path.contains(char::is_whitespace) {
        return Err(wrong());
    }
    match path.strip_suffix('*') {
        Some(prefix) if prefix.ends_with('/') && !prefix.contains('*') => {
            Ok(PublicPath::Prefix(prefix.into()))
        }
        Some(_) => Err(wrong()),
        None if path.contains('*') => Err(wrong()),
        None => Ok(PublicPath::Exact(path.into())),
    }
}

impl<S> tower_layer::Layer<S> for GateLayer {
    type Service = GateService<S>;
    fn layer(&self, inner: S) -> GateService<S> {
        GateService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`GateLayer`] wraps around a server.
#[derive(Clone, Debug)]
pub struct GateService<S> {
    inner: S,
    layer: GateLayer,
}

impl<S, B, R> tower_service::Service<http::Request<B>> for GateService<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = http::Response<ExpiringBody<R>>;
    type Error = S::Error;
    type Future = GateFuture<S::Future, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        if self.layer.is_public(path) {
            let deadline = self
                .layer
                .public_max_age
                .map(|max_age| Deadline::max_age(Instant::now() + max_age));
            return GateFuture::Inner {
                future: self.inner.call(request),
                deadline,
            };
        }
        let values = request.headers().get_all(http::header::AUTHORIZATION);
        match self
            .layer
            .interceptor
            .check(path, values.iter().map(|v| v.as_bytes()))
        {
            Ok(principal) => {
                // The call, streams included, ends when its token does.
                let deadline = self.layer.interceptor.deadline(&principal);
                request.extensions_mut().insert(principal);
                GateFuture::Inner {
                    future: self.inner.call(request),
                    deadline: Some(Deadline::token_expiry(deadline)),
                }
            }
            Err(refusal) => {
                self.layer
                    .interceptor
                    .log_refusal(path, peer(&request), &refusal);
                GateFuture::Refused {
                    response: Some(Status::from(&refusal.error).into_http()),
                }
            }
        }
    }
}

pub(crate) fn peer<B>(request: &http::Request<B>) -> Option<SocketAddr> {
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .and_then(|i| i.remote_addr())
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|i| i.get_ref().remote_addr())
        })
}

pin_project_lite::pin_project! {
    /// The response of [`GateService`]: the inner call, or a refusal.
    // pin-project-lite takes no docs on variant fields; the variants say it.
    #[allow(missing_docs)]
    #[project = GateFutureProj]
    pub enum GateFuture<F, R> {
        /// The call went through; its response ends at the deadline.
        Inner { #[pin] future: F, deadline: Option<Deadline> },
        /// The call was refused with this gRPC status.
        Refused { response: Option<http::Response<ExpiringBody<R>>> },
    }
}

impl<F, R, E> Future for GateFuture<F, R>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = Result<http::Response<ExpiringBody<R>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            GateFutureProj::Inner { future, deadline } => future
                .poll(cx)
                .map_ok(|response| response.map(|body| ExpiringBody::new(body, *deadline))),
            GateFutureProj::Refused { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_paths_are_exact_or_a_prefix() {
        let exact = parse_public_path("/echo.v1.Echo/Unary").unwrap();
        assert!(exact.matches("/echo.v1.Echo/Unary"));
        assert!(!exact.matches("/echo.v1.Echo/UnaryX"));
        let prefix = parse_public_path("/docs/*").unwrap();
        assert!(prefix.matches("/docs/"));
        assert!(prefix.matches("/docs/a/b"));
        assert!(!prefix.matches("/docs"));
        assert!(!prefix.matches("/docsx/a"));
        assert!(parse_public_path("/*").unwrap().matches("/anything"));
        for bad in ["docs/*", "/docs*", "/a/*/b", "/a b", "", "/a/**"] {
            assert!(parse_public_path(bad).is_err(), "{bad}");
        }
    }
}

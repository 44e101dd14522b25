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
    /// Path prefixes (`/grpc.health.v1.Health/`) open without a token.
    public: Arc<[Box<str>]>,
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
                .map(|s| format!("/{s}/").into_boxed_str())
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
    pub fn allow_unauthenticated(mut self, service: &str) -> GateLayer {
        let mut public = self.public.to_vec();
        public.push(format!("/{service}/").into_boxed_str());
        self.public = public.into();
        self
    }

    fn is_public(&self, path: &str) -> bool {
        self.public.iter().any(|prefix| path.starts_with(&**prefix))
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

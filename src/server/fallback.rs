//! [`Fallback`]: the service that answers every path no added service
//! claims, type-erased so that the builder need not carry its type; what
//! makes the server a reverse proxy.

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tonic::body::Body;

type BoxFuture = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

/// A cloneable service over any request the routes do not claim.
#[derive(Clone)]
pub(crate) struct Fallback(Arc<dyn Fn(http::Request<Body>) -> BoxFuture + Send + Sync>);

impl Fallback {
    pub(crate) fn new<S>(service: S) -> Fallback
    where
        S: tower_service::Service<
                http::Request<Body>,
                Response = http::Response<Body>,
                Error = Infallible,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Fallback(Arc::new(move |request| {
            let mut service = service.clone();
            Box::pin(async move {
                std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
                service.call(request).await
            })
        }))
    }
}

impl fmt::Debug for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fallback")
    }
}

impl tower_service::Service<http::Request<Body>> for Fallback {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> BoxFuture {
        (self.0)(request)
    }
}

/// The same service over the requests axum's router hands its fallback.
impl tower_service::Service<http::Request<axum::body::Body>> for Fallback {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<axum::body::Body>) -> BoxFuture {
        (self.0)(request.map(Body::new))
    }
}

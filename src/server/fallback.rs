//! [`Fallback`]: the service that answers every request no added service
//! claims (plain HTTP too), erased once into tower's cloneable boxed
//! service, so that the builder need not carry its type; with one, the
//! server forwards (what `authgate proxy` installs).

use std::convert::Infallible;

use tonic::body::Body;
use tower::{ServiceExt, util::BoxCloneSyncService};

/// Any service over the requests no route claims.
pub(crate) type Fallback =
    BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Infallible>;

/// `service`, erased.
pub(crate) fn fallback<S>(service: S) -> Fallback
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
    BoxCloneSyncService::new(service)
}

/// `fallback` over the requests axum's router hands its fallback.
pub(crate) fn for_axum(
    fallback: Fallback,
) -> impl tower_service::Service<
    http::Request<axum::body::Body>,
    Response = http::Response<Body>,
    Error = Infallible,
    Future: Send,
> + Clone
+ Send
+ Sync
+ 'static {
    fallback.map_request(|request: http::Request<axum::body::Body>| request.map(Body::new))
}

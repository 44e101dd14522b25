//! Plain HTTP on the gRPC port: [`HttpGate`] checks each request with the
//! gate and answers its refusals as RFC 6750 says (401, 403 or 503, with
//! `WWW-Authenticate` and the gRPC message as `{"detail": "..."}`), and
//! [`HttpRoutes`] is what `serve` answers behind it: the seed's `GET /`.

use std::{
    convert::Infallible,
    future::{Ready, ready},
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::{TryFutureExt, future::MapOk};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use tonic::{Code, body::Body};

use crate::{
    AuthError, Gate, GateFuture, GateLayer,
    error::challenge,
    gate::expiry::{Deadline, ExpiringBody},
    gate::layer::expiring_request,
};

/// What `Retry-After` says when the keys are unavailable: the refresher
/// retries within seconds, so a client need not wait longer.
const RETRY_AFTER_SECS: u32 = 5;

/// `GET /`'s body, byte for byte as the seed's FastAPI route is quoted.
const PRIVATE_ROOT_BODY: &str = r#"{"message": "This is private"}"#;

/// The gate in front of a plain HTTP handler `H`: the plain HTTP front of
/// the one decision ([`GateLayer`]'s). A request reaches `H` only with a
/// valid bearer token that meets the scope rules of its path (or of the gRPC
/// method the path is checked as), carrying the [`Principal`] in its
/// extensions, or without one on a path [`HttpGate::public_as`] opened to
/// every protocol (and then with no `Principal`); any other gets the RFC
/// 6750 refusal. An admitted request's body and its answer end with its
/// token (a public one's at the public maximum age): the answer by an
/// error, which resets its HTTP/2 stream or closes its HTTP/1.1 connection.
///
/// [`Principal`]: crate::Principal
#[derive(Clone, Debug)]
pub(crate) struct HttpGate<H> {
    /// The decision, with the paths open without a token.
    layer: GateLayer,
    /// Paths checked under another path's scope rules: (path, method).
    checked_as: Arc<[(Box<str>, Box<str>)]>,
    inner: H,
}

impl<H> HttpGate<H> {
    /// Guards `inner` with `gate`; each path is checked under its own scope
    /// rules until [`HttpGate::check_as`] says otherwise.
    pub(crate) fn new(gate: Gate, inner: H) -> HttpGate<H> {
        HttpGate {
            layer: gate.layer(),
            checked_as: Arc::new([]),
            inner,
        }
    }

    /// Decides as `layer` does: the same gate, the same paths open without
    /// a token (those opened to every protocol: health and reflection are
    /// open to gRPC only), the same public maximum age.
    pub(crate) fn public_as(mut self, layer: &GateLayer) -> HttpGate<H> {
        self.layer = layer.clone();
        self
    }

    /// Checks requests for `path` under the scope rules of `method`
    /// (`/package.Service/Method`): `GET /` on `serve` is `GetPrivate`.
    pub(crate) fn check_as(mut self, path: &str, method: &str) -> HttpGate<H> {
        let mut checked_as = self.checked_as.to_vec();
        checked_as.push((path.into(), method.into()));
        self.checked_as = checked_as.into();
        self
    }
}

/// The answer to a plain HTTP request admitted by the gate whose deadline
/// passed before its answer began: the expired token's refusal, or 503 at a
/// public call's maximum age.
fn http_expired(deadline: Deadline) -> Response<Body> {
    match deadline.refusal() {
        Some(error) => refusal_response(&error),
        None => detail_response(StatusCode::SERVICE_UNAVAILABLE, deadline.status().message()),
    }
}

type Boxed = fn(Response<ExpiringBody<Body>>) -> Response<Body>;

impl<H> tower_service::Service<Request<Body>> for HttpGate<H>
where
    H: tower_service::Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = H::Error;
    type Future = MapOk<GateFuture<H::Future, Body>, Boxed>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), H::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let path = request.uri().path();
        let checked_as = self.checked_as.iter().find(|(p, _)| **p == *path);
        let rules_path = checked_as.map(|(_, method)| &**method);
        let future = match self.layer.admit(&mut request, false, rules_path) {
            Ok(deadline) => GateFuture::new(
                self.inner.call(expiring_request(request, deadline)),
                deadline,
                http_expired,
            ),
            Err(refusal) => GateFuture::refused(refusal_response(&refusal.error)),
        };
        // An answer whose body may end early is one more box: plain HTTP
        // shares its body type with gRPC-Web's on the port.
        future.map_ok(|response| response.map(Body::new))
    }
}

/// The RFC 6750 answer to a plain HTTP request the gate refused: its
/// status, challenge and `{"detail": "<the gRPC message>"}`. Messages never
/// hold the token, so neither does this.
pub(crate) fn refusal_response(error: &AuthError) -> Response<Body> {
    let (status, headers, body) = refusal_parts(error);
    let mut response = Response::new(Body::new(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// [`refusal_response`] in parts: its status, headers (`content-type`,
/// and `www-authenticate` or `retry-after`) and body, for a front that
/// writes them in its own protocol (`authz`'s `Check`).
pub(crate) fn refusal_parts(error: &AuthError) -> (StatusCode, http::HeaderMap, String) {
    let status = match error.code() {
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut headers = http::HeaderMap::with_capacity(2);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(challenge) = challenge(error) {
        headers.insert(header::WWW_AUTHENTICATE, challenge);
    } else if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    (status, headers, detail(&error.to_string()))
}

/// A plain HTTP error as FastAPI writes one: `status`, `application/json`,
/// `{"detail": "<message>"}`.
pub(crate) fn detail_response(status: StatusCode, message: &str) -> Response<Body> {
    json_response(status, &detail(message))
}

/// `{"detail": "<message>"}`, the message escaped as JSON.
fn detail(message: &str) -> String {
    let quoted = serde_json::to_string(message).expect("a string serializes");
    format!("{{\"detail\": {quoted}}}")
}

fn json_response(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(Body::new(body.to_owned()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// What `serve` answers to plain HTTP that passed the gate: `GET /` (with
/// the demo service) is the seed's route; any other path is 404, any other
/// method on `/` is 405.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HttpRoutes {
    /// Whether `GET /` answers `{"message": "This is private"}`.
    private_root: bool,
}

impl HttpRoutes {
    /// Routes that answer 404 to everything.
    pub(crate) fn not_found() -> HttpRoutes {
        HttpRoutes {
            private_root: false,
        }
    }

    /// `GET /` answers as the seed's FastAPI route does.
    pub(crate) fn private_root() -> HttpRoutes {
        HttpRoutes { private_root: true }
    }
}

impl<B> tower_service::Service<Request<B>> for HttpRoutes {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let response = if !self.private_root || request.uri().path() != "/" {
            json_response(StatusCode::NOT_FOUND, &detail("Not Found"))
        } else if request.method() == Method::GET || request.method() == Method::HEAD {
            json_response(StatusCode::OK, PRIVATE_ROOT_BODY)
        } else {
            let mut response = json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &detail("Method Not Allowed"),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        };
        ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(error: &AuthError) -> (u16, Option<String>) {
        let response = refusal_response(error);
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        (response.status().as_u16(), challenge)
    }

    #[test]
    fn each_refusal_takes_its_rfc_6750_form() {
        assert_eq!(
            challenge(&AuthError::MissingAuthorization),
            (401, Some(r#"Bearer realm="authgate""#.into()))
        );
        assert_eq!(
            challenge(&AuthError::NotBearer),
            (401, Some(r#"Bearer realm="authgate""#.into()))
        );
        assert_eq!(
            challenge(&AuthError::Expired),
            (
                401,
                Some(
                    r#"Bearer realm="authgate", error="invalid_token", error_description="token has expired""#
                        .into()
                )
            )
        );
        assert_eq!(
            challenge(&AuthError::MissingScope(["a".into(), "b".into()].into())),
            (
                403,
                Some(r#"Bearer realm="authgate", error="insufficient_scope", scope="a""#.into())
            )
        );
        let unavailable = refusal_response(&AuthError::KeysNotLoaded("i".into()));
        assert_eq!(unavailable.status(), 503);
        assert_eq!(unavailable.headers()[header::RETRY_AFTER], "5");
        assert!(
            unavailable
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .is_none()
        );
    }

    #[test]
    fn quoted_strings_stay_quoted() {
        assert_eq!(detail(r#"say "hi""#), r#"{"detail": "say \"hi\""}"#);
    }
}

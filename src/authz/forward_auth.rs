//! HTTP forward auth (nginx `auth_request`, Traefik `forwardAuth`, Caddy
//! `forward_auth`, Envoy's HTTP ext_authz): each request asks about the
//! original one, named by the headers these proxies set, and is answered
//! 200 with the identity headers, or with the refusal the caller gets.

use std::{
    convert::Infallible,
    future::{Ready, ready},
    sync::Arc,
    task::{Context, Poll},
};

use http::{HeaderName, Request, Response};
use tonic::{body::Body, transport::server::TcpConnectInfo};

use super::original::{Original, decide};
use crate::{GateLayer, proxy::identity::identity};

/// Where the original method is said, first found first.
const METHOD_HEADERS: [HeaderName; 2] = [
    HeaderName::from_static("x-forwarded-method"),
    HeaderName::from_static("x-original-method"),
];

/// Where the original path (and query) is said, first found first.
const URI_HEADERS: [HeaderName; 2] = [
    HeaderName::from_static("x-forwarded-uri"),
    HeaderName::from_static("x-original-uri"),
];

/// The forward auth service: every request is a question.
#[derive(Debug, Clone)]
pub(crate) struct ForwardAuth {
    /// The decision, as the server configured it.
    pub(crate) layer: GateLayer,
    /// What stands before the original path in a request's own path
    /// (Envoy's `path_prefix`), when no header names it.
    pub(crate) path_prefix: Arc<str>,
}

impl<B> tower_service::Service<Request<B>> for ForwardAuth {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let asker = request.extensions().get::<TcpConnectInfo>().cloned();
        let (parts, _) = request.into_parts();
        let original = original(parts, &self.path_prefix);
        let response = match decide(&self.layer, original, asker) {
            Ok(principal) => {
                let mut response = Response::new(Body::empty());
                if let Some(principal) = principal {
                    response.headers_mut().extend(identity(&principal));
                }
                response
            }
            Err(error) => crate::server::refusal_response(&error),
        };
        ready(Ok(response))
    }
}

/// The original request: its method and path from the first header that
/// names them, else this request's own (the path less `path_prefix`); its
/// credentials from this request's own headers.
fn original(parts: http::request::Parts, path_prefix: &str) -> Original {
    let said = |names: &[HeaderName]| {
        names
            .iter()
            .filter_map(|name| parts.headers.get(name))
            .find(|value| !value.is_empty())
            // Bytes that are not text make a path the gate refuses.
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
    };
    let method = said(&METHOD_HEADERS).unwrap_or_else(|| parts.method.as_str().to_owned());
    let path = said(&URI_HEADERS).unwrap_or_else(|| {
        let own = parts.uri.path();
        // A path outside the prefix names no original: "" is refused.
        own.strip_prefix(path_prefix).unwrap_or("").to_owned()
    });
    Original {
        method,
        path,
        // The proxies that ask copy the original's headers into the question.
        headers: parts.headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(path: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut request = Request::builder().method("GET").uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn each_header_source_in_its_order() {
        let forwarded = [("x-forwarded-uri", "/a?q"), ("x-original-uri", "/b")];
        let o = original(parts("/auth", &forwarded), "");
        assert_eq!(o.path, "/a?q");
        let o = original(parts("/auth", &[("x-original-uri", "/b")]), "");
        assert_eq!(o.path, "/b");
        let o = original(parts("/authz/items/1", &[]), "/authz");
        assert_eq!(o.path, "/items/1");
        let o = original(parts("/elsewhere", &[]), "/authz");
        assert_eq!(o.path, "");
        let methods = [("x-forwarded-method", "POST"), ("x-original-method", "PUT")];
        assert_eq!(original(parts("/", &methods), "").method, "POST");
        let o = original(parts("/", &[("x-original-method", "PUT")]), "");
        assert_eq!(o.method, "PUT");
        assert_eq!(original(parts("/", &[]), "").method, "GET");
    }
}

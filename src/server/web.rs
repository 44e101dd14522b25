//! One port for gRPC, gRPC-Web and plain HTTP: [`OnePortLayer`] answers
//! browsers' CORS for the allowed origins outermost (so that preflights need
//! no token and refusals carry `Access-Control-Allow-Origin`), sends plain
//! HTTP to its own gated handler, and translates gRPC-Web into gRPC for the
//! metrics, the gate and the services inside it.

use std::{
    future::{Ready, ready},
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures_util::future::{Either, MapOk, TryFutureExt};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use tonic_web::{GrpcWebLayer, GrpcWebService};
use tower_http::cors::{AllowOrigin, Cors, CorsLayer};
use tower_layer::Layer;
use tower_service::Service;

use crate::StartupError;

/// The request headers a browser may send: the token, gRPC-Web's own, and
/// the deadline.
const CORS_ALLOW_HEADERS: [&str; 5] = [
    "authorization",
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
];

/// The response headers a page may read: a trailers-only refusal's status
/// and message, and the plain HTTP challenge.
const CORS_EXPOSE_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "www-authenticate"];

/// What `Vary` says on the answers outside CORS while CORS is on: that
/// another `Origin` could have had another answer (CORS headers, or a
/// preflight answered), so a shared cache must not serve this one to it.
/// tower-http's CORS layer writes its own on the answers it makes.
const VARY_ORIGIN: HeaderValue = HeaderValue::from_static("origin");

/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The origins whose pages may call the server: exact origins
/// (`https://app.example.com`), or `*` for any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CorsOrigins {
    /// Any origin (`*`).
    Any,
    /// These origins exactly.
    Exact(Arc<[HeaderValue]>),
}

impl CorsOrigins {
    /// The origins [`ServerConfig::cors_allow_origins`](super::ServerConfig)
    /// lists; `None` when it lists none (CORS off). Each must be `*` or an
    /// origin: scheme, host and port as a browser sends them, with no path
    /// or trailing slash.
    pub(crate) fn parse(origins: &[String]) -> Result<Option<CorsOrigins>, StartupError> {
        if origins.is_empty() {
            return Ok(None);
        }
        if origins.iter().any(|o| o == "*") {
            return Ok(Some(CorsOrigins::Any));
        }
        let exact = origins
            .iter()
            .map(|origin| {
                let serialized = url::Url::parse(origin)
                    .ok()
                    .map(|url| url.origin().ascii_serialization());
                match serialized {
                    Some(s) if s == *origin => HeaderValue::try_from(s).ok(),
                    _ => None,
                }
                .ok_or_else(|| {
                    StartupError::Config(format!(
                        "`ServerConfig::cors_allow_origins`: `{origin}` is not an origin such as \
                         https://app.example.com (scheme, host and port only, lower case, no \
                         path or trailing slash) or `*`"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(CorsOrigins::Exact(exact.into())))
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        match self {
            CorsOrigins::Any => true,
            CorsOrigins::Exact(origins) => origins.iter().any(|o| o == origin),
        }
    }

    fn layer(&self) -> CorsLayer {
        let allow_origin = match self {
            CorsOrigins::Any => AllowOrigin::any(),
            CorsOrigins::Exact(origins) => AllowOrigin::list(origins.iter().cloned()),
        };
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers(CORS_ALLOW_HEADERS.map(HeaderName::from_static))
            .expose_headers(CORS_EXPOSE_HEADERS.map(HeaderName::from_static))
            .max_age(PREFLIGHT_MAX_AGE)
    }
}

/// The size of a header list as HTTP/2 counts it (RFC 9113 §6.5.2).
fn header_list_size(headers: &http::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum()
}

/// Whether a request is gRPC or gRPC-Web (`application/grpc...`, in any
/// case, as media types are and as gRPC servers read them): the rest is
/// plain HTTP.
pub(crate) fn is_grpc<B>(request: &Request<B>) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|ct| ct.as_bytes().get(..GRPC.len()))
        .is_some_and(|ct| ct.eq_ignore_ascii_case(GRPC))
}

/// The media type in lowercase, as tonic-web and tonic compare it: a
/// client may write it in any case (RFC 9110 8.3.1), and must get the same
/// gRPC or gRPC-Web answer.
fn lowercase_media_type(headers: &mut http::HeaderMap) {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return;
    };
    if value.as_bytes().iter().any(u8::is_ascii_uppercase)
        && let Ok(lower) = HeaderValue::from_bytes(&value.as_bytes().to_ascii_lowercase())
    {
        headers.insert(header::CONTENT_TYPE, lower);
    }
}

/// The front of the port: CORS for the allowed origins, plain HTTP to
/// `http` (an [`HttpGate`](super::HttpGate) around what answers it), and
/// gRPC and gRPC-Web to the server inside, gRPC-Web translated.
#[derive(Debug, Clone)]
pub(crate) struct OnePortLayer<H> {
    http: H,
    cors: Option<CorsOrigins>,
    /// The header list HTTP/1 requests may send, as HTTP/2's
    /// `SETTINGS_MAX_HEADER_LIST_SIZE` bounds it for HTTP/2.
    max_header_list_bytes: usize,
    /// When set, only gRPC calls under these path prefixes are gRPC's.
    grpc_under: Option<Arc<[String]>>,
}

impl<H> OnePortLayer<H> {
    /// Plain HTTP goes to `http`; CORS is answered for `cors`, or off.
    pub(crate) fn new(http: H, cors: Option<CorsOrigins>) -> OnePortLayer<H> {
        OnePortLayer {
            http,
            cors,
            max_header_list_bytes: usize::MAX,
            grpc_under: None,
        }
    }

    /// Sends to the gRPC side only the gRPC calls under one of `prefixes`
    /// (`/package.Service/`); every other request goes to `http`, whatever
    /// its media type: for a server that answers about other requests
    /// (`authz`'s forward auth), whose questions arrive with the original
    /// request's headers, `content-type: application/grpc` included.
    pub(crate) fn grpc_only_under(mut self, prefixes: Vec<String>) -> OnePortLayer<H> {
        self.grpc_under = Some(prefixes.into());
        self
    }

    /// Answers 431 to an HTTP/1 request whose headers, counted as HTTP/2
    /// counts them (name, value and 32 bytes each), exceed `bytes`: the
    /// limit HTTP/2 callers already have.
    pub(crate) fn max_header_list_bytes(mut self, bytes: usize) -> OnePortLayer<H> {
        self.max_header_list_bytes = bytes;
        self
    }
}

impl<S: Clone, H: Clone> Layer<S> for OnePortLayer<H> {
    type Service = OnePort<S, H>;

    fn layer(&self, inner: S) -> OnePort<S, H> {
        let split = Split {
            grpc: GrpcWebLayer::new().layer(inner),
            http: self.http.clone(),
            grpc_under: self.grpc_under.clone(),
        };
        OnePort {
            max_header_list_bytes: self.max_header_list_bytes,
            cors: self
                .cors
                .as_ref()
                .map(|origins| (origins.clone(), origins.layer().layer(split.clone()))),
            plain: split,
        }
    }
}

/// What the answers outside CORS go through: [`vary_origin`] with CORS on,
/// [`as_it_is`] with it off. A function pointer, chosen once per request,
/// so that the future has one type and costs no allocation.
type Finish<R> = fn(Response<R>) -> Response<R>;

/// Adds `Vary: Origin` to an answer, beside any `Vary` it has.
fn vary_origin<R>(mut response: Response<R>) -> Response<R> {
    response.headers_mut().append(header::VARY, VARY_ORIGIN);
    response
}

fn as_it_is<R>(response: Response<R>) -> Response<R> {
    response
}

/// The service [`OnePortLayer`] makes.
#[derive(Debug, Clone)]
pub(crate) struct OnePort<S, H> {
    /// For requests from no origin, or one not allowed: no CORS headers,
    /// but `Vary: Origin` while CORS is on.
    plain: Split<S, H>,
    /// For requests from an allowed origin.
    cors: Option<(CorsOrigins, Cors<Split<S, H>>)>,
    max_header_list_bytes: usize,
}

impl<S, H, B, R> Service<Request<B>> for OnePort<S, H>
where
    Split<S, H>: Service<Request<B>, Response = Response<R>>,
    R: Default,
{
    type Response = Response<R>;
    type Error = <Split<S, H> as Service<Request<B>>>::Error;
    type Future = Either<
        Ready<Result<Response<R>, Self::Error>>,
        Either<
            MapOk<<Split<S, H> as Service<Request<B>>>::Future, Finish<R>>,
            <Cors<Split<S, H>> as Service<Request<B>>>::Future,
        >,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if let Some((_, cors)) = &mut self.cors
            && cors.poll_ready(cx)?.is_pending()
        {
            return Poll::Pending;
        }
        self.plain.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let finish: Finish<R> = match &self.cors {
            Some(_) => vary_origin,
            None => as_it_is,
        };
        if request.version() < Version::HTTP_2
            && header_list_size(request.headers()) > self.max_header_list_bytes
        {
            let mut response = Response::new(R::default());
            *response.status_mut() = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
            return Either::Left(ready(Ok(finish(response))));
        }
        let origin = request.headers().get(header::ORIGIN);
        Either::Right(match &mut self.cors {
            Some((origins, cors)) if origin.is_some_and(|o| origins.allows(o)) => {
                Either::Right(cors.call(request))
            }
            _ => Either::Left(self.plain.call(request).map_ok(finish)),
        })
    }
}

/// gRPC and gRPC-Web to `grpc`, the rest to `http`.
#[derive(Debug, Clone)]
pub(crate) struct Split<S, H> {
    grpc: GrpcWebService<S>,
    http: H,
    /// When set, only gRPC calls under these path prefixes are gRPC's.
    grpc_under: Option<Arc<[String]>>,
}

impl<S, H, B> Service<Request<B>> for Split<S, H>
where
    GrpcWebService<S>: Service<Request<B>>,
    H: Service<
            Request<B>,
            Response = <GrpcWebService<S> as Service<Request<B>>>::Response,
            Error = <GrpcWebService<S> as Service<Request<B>>>::Error,
        >,
{
    type Response = H::Response;
    type Error = H::Error;
    type Future = Either<<GrpcWebService<S> as Service<Request<B>>>::Future, H::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.http.poll_ready(cx)?.is_pending() {
            return Poll::Pending;
        }
        self.grpc.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let ours = |path: &str| match &self.grpc_under {
            Some(prefixes) => prefixes.iter().any(|p| path.starts_with(&**p)),
            None => true,
        };
        if is_grpc(&request) && ours(request.uri().path()) {
            lowercase_media_type(request.headers_mut());
            Either::Left(self.grpc.call(request))
        } else {
            Either::Right(self.http.call(request))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_is_told_by_its_media_type_in_any_case() {
        let with = |ct: &'static str| {
            let mut request = Request::new(());
            request
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            is_grpc(&request)
        };
        for ct in [
            "application/grpc",
            "application/grpc+proto",
            "Application/GRPC",
            "application/grpc-web-text",
            "APPLICATION/GRPC-WEB+proto",
        ] {
            assert!(with(ct), "{ct}");
        }
        for ct in ["application/json", "application/grp", "text/plain"] {
            assert!(!with(ct), "{ct}");
        }
        assert!(!is_grpc(&Request::new(())));
    }

    #[test]
    fn origins_are_exact_or_any() {
        assert_eq!(CorsOrigins::parse(&[]).unwrap(), None);
        let any = CorsOrigins::parse(&["https://a.example".into(), "*".into()]).unwrap();
        assert_eq!(any, Some(CorsOrigins::Any));
        let exact = CorsOrigins::parse(&["http://127.0.0.1:8080".into()])
            .unwrap()
            .unwrap();
        assert!(exact.allows(&HeaderValue::from_static("http://127.0.0.1:8080")));
        assert!(!exact.allows(&HeaderValue::from_static("http://127.0.0.1:8081")));
        assert!(!exact.allows(&HeaderValue::from_static("http://127.0.0.1:8080.evil")));
        for bad in [
            "https://a.example/",
            "https://a.example/app",
            "a.example",
            "HTTPS://A.example",
            "null",
        ] {
            assert!(CorsOrigins::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }
}

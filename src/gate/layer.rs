//! [`GateLayer`]: the gate in front of a whole server, deny by default,
//! health and reflection open to gRPC (for a time, when given a maximum
//! age). [`GateLayer::admit`] is the one decision every front makes (the
//! gRPC layer here, plain HTTP in the server's `HttpGate`): the public-path
//! rule, the token and the scope rules, the count, the refusal log and the
//! call's deadline. The fronts only render its answer in their protocol.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::time::{Instant, Sleep};

use tonic::{
    Status,
    body::Body,
    transport::server::{TcpConnectInfo, TlsConnectInfo},
};

use super::public::{PublicPath, parse_public_path};
use super::{Gate, Refusal};
use crate::{
    AuthError,
    gate::{
        expiry::{Deadline, ExpiringBody, ExpiringRequest},
        path::ambiguity,
    },
};

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
    /// Whether paths a service may read as another are refused.
    refuse_ambiguous: bool,
}

impl GateLayer {
    /// Guards everything but [`PUBLIC_SERVICES`].
    pub fn new(interceptor: Gate) -> GateLayer {
        GateLayer {
            interceptor,
            public: PUBLIC_SERVICES
                .iter()
                .map(|s| PublicPath::grpc_service(s))
                .collect(),
            public_max_age: None,
            refuse_ambiguous: false,
        }
    }

    /// Refuses, before any token is read, a request whose path the service
    /// behind may read as another path than the gate does: a dot or empty
    /// segment, `\`, `;`, a byte that is not ASCII, a needless
    /// percent-escape (`/%61dmin` is `/admin` to uvicorn), or an escape of
    /// `/`, `\`, `%` or a control character. `INVALID_ARGUMENT` (400 for
    /// plain HTTP), counted and logged as refusals are. For a proxy (the
    /// server assembly sets it for one) and for authorization answered for
    /// another proxy: tonic's own router matches paths exactly, so a
    /// server of its own needs none of it.
    pub fn refuse_ambiguous_paths(mut self) -> GateLayer {
        self.refuse_ambiguous = true;
        self
    }

    /// Ends each call to a public method (a health `Watch`, a reflection
    /// stream, a public plain HTTP stream) `max_age` after it starts, with
    /// `UNAVAILABLE` (`stream reached its maximum age`), on which their
    /// clients call again; by default such calls last as long as the client
    /// likes. The server assembly sets this from its `Limits`.
    pub fn public_stream_max_age(mut self, max_age: Duration) -> GateLayer {
        self.public_max_age = Some(max_age);
        self
    }

    /// Also leaves the gRPC service `service` (`package.Service`) open
    /// without a token, to gRPC and gRPC-Web calls (plain HTTP to its paths
    /// still needs one).
    pub fn allow_unauthenticated(self, service: &str) -> GateLayer {
        self.allow(PublicPath::grpc_service(service))
    }

    /// Also leaves `path` open without a token, to every protocol: a path
    /// exactly (`/echo.v1.Echo/Unary`, `/healthz`), or, ending in `/*`,
    /// every path under it (`/docs/*` opens `/docs/` and everything below;
    /// `/*` opens every path). Fails on a pattern that is neither.
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

    /// Whether `path` is open without a token to a call that is gRPC (or
    /// gRPC-Web), or not.
    fn is_public(&self, path: &str, grpc: bool) -> bool {
        self.public.iter().any(|public| public.matches(path, grpc))
    }

    /// The one decision, for every front: whether `request` may pass, and
    /// until when. A public path passes without a token (until the public
    /// maximum age); any other needs a valid token that meets the scope
    /// rules of `rules_path` (the request's path unless given), and then
    /// carries the caller's [`Principal`](crate::Principal) in its
    /// extensions and ends when the token does. Scope rules with an HTTP
    /// method bind by the request's (gRPC's is `POST`). The decision is counted,
    /// and a refusal logged (rate-limited); the caller renders it.
    pub(crate) fn admit<B>(
        &self,
        request: &mut http::Request<B>,
        grpc: bool,
        rules_path: Option<&str>,
    ) -> Result<Option<Deadline>, Refusal> {
        // A clone of the URI shares its bytes: no allocation per call.
        let uri = request.uri().clone();
        self.admit_at(request, uri.path(), grpc, rules_path)
    }

    /// [`GateLayer::admit`] for a request whose path is `path`, not its
    /// URI's: a request a proxy asks about (`authz`), whose path arrives as
    /// text that need not parse as a URI. `request` gives the method, the
    /// headers and the extensions.
    pub(crate) fn admit_at<B>(
        &self,
        request: &mut http::Request<B>,
        path: &str,
        grpc: bool,
        rules_path: Option<&str>,
    ) -> Result<Option<Deadline>, Refusal> {
        if self.refuse_ambiguous
            && let Some(why) = ambiguity(path)
        {
            let refusal = Refusal {
                error: AuthError::AmbiguousPath(why),
                subject: None,
            };
            self.interceptor.shared.stats.count(Some(&refusal.error));
            // The path is the caller's own: the log names the reason only.
            self.interceptor.log_refusal("", peer(request), &refusal);
            return Err(refusal);
        }
        if self.is_public(path, grpc) {
            let max_age = self.public_max_age;
            // An age too far ahead for the clock to hold is no deadline.
            let at = max_age.and_then(|age| Instant::now().checked_add(age));
            return Ok(at.map(|at| Deadline::max_age(at, grpc)));
        }
        let values = request.headers().get_all(http::header::AUTHORIZATION);
        let values = values.iter().map(|v| v.as_bytes());
        let checked = match rules_path {
            // Checked as a gRPC method is: `POST`.
            Some(rules_path) => self.interceptor.check(rules_path, values),
            // A gRPC call is `POST`, whatever method it came with: tonic's
            // router serves any, so a `GET` must not escape a `POST` rule.
            None if grpc => self.interceptor.check(path, values),
            None => {
                let http_method = request.method().as_str();
                self.interceptor.check_request(http_method, path, values)
            }
        };
        match checked {
            Ok(principal) => {
                let deadline = Deadline::token_expiry(self.interceptor.deadline(&principal), grpc);
                request.extensions_mut().insert(principal);
                Ok(Some(deadline))
            }
            Err(refusal) => {
                self.interceptor.log_refusal(path, peer(request), &refusal);
                Err(refusal)
            }
        }
    }
}

impl Gate {
    /// A layer that guards every method of a tonic server but health and
    /// reflection.
    pub fn layer(&self) -> GateLayer {
        GateLayer::new(self.clone())
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

/// The service [`GateLayer`] wraps around a server: the gRPC front of the
/// decision (gRPC-Web arrives here translated).
#[derive(Clone, Debug)]
pub struct GateService<S> {
    inner: S,
    layer: GateLayer,
}

impl<S, R> tower_service::Service<http::Request<Body>> for GateService<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<R>>,
    R: Default,
{
    type Response = http::Response<ExpiringBody<R>>;
    type Error = S::Error;
    type Future = GateFuture<S::Future, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        match self.layer.admit(&mut request, true, None) {
            Ok(deadline) => GateFuture::new(
                self.inner.call(expiring_request(request, deadline)),
                deadline,
                grpc_expired,
            ),
            Err(refusal) => GateFuture::refused(Status::from(&refusal.error).into_http()),
        }
    }
}

/// `request`, whose body fails at `deadline`: a client stream stops
/// feeding the service (or the upstream) when its token expires.
pub(crate) fn expiring_request(
    request: http::Request<Body>,
    deadline: Option<Deadline>,
) -> http::Request<Body> {
    match deadline {
        // A body already at its end (a GET, a HEADERS frame with
        // END_STREAM) has nothing left to cut.
        Some(deadline) if !http_body::Body::is_end_stream(request.body()) => {
            request.map(|body| Body::new(ExpiringRequest::new(body, deadline)))
        }
        _ => request,
    }
}

/// A gRPC call's answer at its deadline before its response began: a
/// trailers-only answer with the deadline's status.
fn grpc_expired<R: Default>(deadline: Deadline) -> http::Response<R> {
    deadline.status().into_http()
}

/// The caller's address, as tonic's server records it.
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
    /// The response of a front of the gate: the inner call, cut at the
    /// call's deadline (the caller then gets the deadline's refusal and the
    /// inner call is dropped, so cancelled), its body ending there too; or
    /// a refusal.
    pub struct GateFuture<F, R> {
        #[pin]
        inner: Option<F>,
        deadline: Option<Deadline>,
        // Armed when the call first waits, in place: no allocation.
        #[pin]
        timer: Option<Sleep>,
        // The answer at the deadline, in the front's protocol.
        expired: fn(Deadline) -> http::Response<R>,
        // The refusal, when the call was refused.
        refused: Option<http::Response<R>>,
    }
}

impl<F, R> GateFuture<F, R> {
    /// The call `inner`, cut at `deadline` with `expired`'s answer.
    pub(crate) fn new(
        inner: F,
        deadline: Option<Deadline>,
        expired: fn(Deadline) -> http::Response<R>,
    ) -> GateFuture<F, R> {
        GateFuture {
            inner: Some(inner),
            deadline,
            timer: None,
            expired,
            refused: None,
        }
    }

    /// A refusal: `response`, at once.
    pub(crate) fn refused(response: http::Response<R>) -> GateFuture<F, R> {
        GateFuture {
            inner: None,
            deadline: None,
            timer: None,
            expired: |_| unreachable!("a refusal has no deadline"),
            refused: Some(response),
        }
    }
}

impl<F, R> std::fmt::Debug for GateFuture<F, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateFuture")
            .field("deadline", &self.deadline)
            .field("refused", &self.refused.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, R, E> Future for GateFuture<F, R>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = Result<http::Response<ExpiringBody<R>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let deadline = *this.deadline;
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            let refused = this.refused.take().expect("polled after completion");
            return Poll::Ready(Ok(refused.map(|body| ExpiringBody::new(body, None))));
        };
        // An answer that comes at the deadline is one the deadline may have
        // caused (a request body cut off): the caller is told why.
        let passed = match inner.poll(cx) {
            Poll::Ready(answer) => match deadline {
                Some(deadline) if deadline.is_past() => deadline,
                _ => {
                    let answer = answer.map(|r| r.map(|body| ExpiringBody::new(body, deadline)));
                    return Poll::Ready(answer);
                }
            },
            Poll::Pending => match deadline {
                Some(deadline) if deadline.is_past() => deadline,
                Some(deadline) => {
                    if this.timer.is_none() {
                        this.timer.set(Some(deadline.sleep()));
                    }
                    let timer = this.timer.as_mut().as_pin_mut().expect("set above");
                    if timer.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    deadline
                }
                None => return Poll::Pending,
            },
        };
        // Dropping the call cancels it, upstream too.
        this.inner.set(None);
        let response = (this.expired)(passed);
        Poll::Ready(Ok(response.map(|body| ExpiringBody::new(body, None))))
    }
}

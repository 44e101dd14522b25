//! [`GrpcTimeout`] and [`HttpTimeout`]: a request whose answer has not begun within the
//! server's request timeout (for gRPC, or the call's own `grpc-timeout`
//! when it is shorter) is answered by the server and the call is dropped:
//! gRPC and gRPC-Web with `CANCELLED` (`Timeout expired`, as tonic's server
//! says), plain HTTP with `504` and `{"detail": "request timed out"}`, so
//! that a plain client does not read a gRPC status under `200` as success.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http::{HeaderMap, Request, Response, StatusCode};
use tokio::time::{Instant, Sleep};
use tonic::{Status, body::Body};

use super::http::detail_response;

/// Bounds how long a gRPC call waits for its answer to begin: the
/// server's timeout, or the call's `grpc-timeout` when shorter.
#[derive(Debug, Clone)]
pub(super) struct GrpcTimeout<S> {
    inner: S,
    timeout: Duration,
}

/// A layer making [`GrpcTimeout`]s.
#[derive(Debug, Clone, Copy)]
pub(super) struct GrpcTimeoutLayer(pub(super) Duration);

impl<S> tower_layer::Layer<S> for GrpcTimeoutLayer {
    type Service = GrpcTimeout<S>;
    fn layer(&self, inner: S) -> GrpcTimeout<S> {
        GrpcTimeout {
            inner,
            timeout: self.0,
        }
    }
}

impl<S, R> tower_service::Service<Request<Body>> for GrpcTimeout<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<R>>,
    R: Default,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = TimeoutFuture<S::Future, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let timeout = grpc_timeout(request.headers()).map_or(self.timeout, |t| t.min(self.timeout));
        TimeoutFuture::new(self.inner.call(request), timeout, || {
            Status::cancelled(TIMEOUT_MESSAGE).into_http()
        })
    }
}

/// Bounds how long a plain HTTP request waits for its answer to begin.
#[derive(Debug, Clone)]
pub(super) struct HttpTimeout<S> {
    inner: S,
    timeout: Duration,
}

impl<S> HttpTimeout<S> {
    pub(super) fn new(inner: S, timeout: Duration) -> HttpTimeout<S> {
        HttpTimeout { inner, timeout }
    }
}

impl<S> tower_service::Service<Request<Body>> for HttpTimeout<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = TimeoutFuture<S::Future, Body>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        TimeoutFuture::new(self.inner.call(request), self.timeout, || {
            detail_response(StatusCode::GATEWAY_TIMEOUT, "request timed out")
        })
    }
}

pin_project_lite::pin_project! {
    /// A request's answer, or the timeout's.
    pub(super) struct TimeoutFuture<F, R> {
        #[pin]
        inner: F,
        // `None`: too far ahead for the clock to hold, so never.
        at: Option<Instant>,
        // Armed when the answer first waits: answers ready at once pay
        // nothing for it.
        timer: Option<Pin<Box<Sleep>>>,
        expired: fn() -> Response<R>,
    }
}

impl<F, R> TimeoutFuture<F, R> {
    fn new(inner: F, timeout: Duration, expired: fn() -> Response<R>) -> TimeoutFuture<F, R> {
        TimeoutFuture {
            inner,
            at: Instant::now().checked_add(timeout),
            timer: None,
            expired,
        }
    }
}

impl<F, R, E> Future for TimeoutFuture<F, R>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = Result<Response<R>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(answer) = this.inner.poll(cx) {
            return Poll::Ready(answer);
        }
        let Some(at) = *this.at else {
            return Poll::Pending;
        };
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(Ok((this.expired)()))
    }
}

/// What a gRPC call that timed out is told: tonic's server's words.
const TIMEOUT_MESSAGE: &str = "Timeout expired";

/// The deadline a gRPC call asks for in `grpc-timeout`: at most 8 digits
/// and a unit (`H`, `M`, `S`, `m`, `u`, `n`), as the gRPC spec writes it;
/// `None` when absent or not so written.
fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_read_as_the_spec_writes_them() {
        let read = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert("grpc-timeout", http::HeaderValue::from_static(value));
            grpc_timeout(&headers)
        };
        assert_eq!(read("5S"), Some(Duration::from_secs(5)));
        assert_eq!(read("250m"), Some(Duration::from_millis(250)));
        assert_eq!(
            read("99999999H"),
            Some(Duration::from_secs(99_999_999 * 3600))
        );
        assert_eq!(read("1n"), Some(Duration::from_nanos(1)));
        for bad in ["", "S", "5", "5s", "123456789S", "-1S", "1.5S"] {
            assert_eq!(read(bad), None, "{bad}");
        }
        assert_eq!(grpc_timeout(&HeaderMap::new()), None);
    }
}

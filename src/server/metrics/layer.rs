//! [`GrpcMetricsLayer`]: the tower layer in front of the whole server that
//! counts each call into its method's [`GrpcMetrics`] counters: started when
//! it arrives, handled by the code it ends with (from a trailers-only
//! answer's headers or the trailers), and its latency.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll},
    time::Instant,
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::grpc::{CANCELLED, CODE_NAMES, GrpcMetrics, UNKNOWN_CODE};

/// A tower layer that counts every call through a tonic server.
#[derive(Debug, Clone)]
pub struct GrpcMetricsLayer {
    metrics: Arc<GrpcMetrics>,
}

impl GrpcMetricsLayer {
    /// A layer counting into `metrics`.
    pub fn new(metrics: Arc<GrpcMetrics>) -> GrpcMetricsLayer {
        GrpcMetricsLayer { metrics }
    }
}

impl<S> tower_layer::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;
    fn layer(&self, inner: S) -> GrpcMetricsService<S> {
        GrpcMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`GrpcMetricsLayer`] wraps around a server.
#[derive(Debug, Clone)]
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: Arc<GrpcMetrics>,
}

impl<S, B, R> tower_service::Service<http::Request<B>> for GrpcMetricsService<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = http::Response<GrpcMetricsBody<R>>;
    type Error = S::Error;
    type Future = GrpcMetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let index = self.metrics.index(request.uri().path());
        self.metrics.methods()[index]
            .started
            .fetch_add(1, Ordering::Relaxed);
        let tracker = Tracker {
            metrics: self.metrics.clone(),
            index,
            started: Instant::now(),
            recorded: false,
        };
        GrpcMetricsFuture {
            inner: self.inner.call(request),
            tracker: Some(tracker),
        }
    }
}

/// One call being counted. Dropped unrecorded (the client went away, or the
/// server's timeout cut the call short), it counts as `Canceled`.
#[derive(Debug)]
struct Tracker {
    metrics: Arc<GrpcMetrics>,
    index: usize,
    started: Instant,
    recorded: bool,
}

impl Tracker {
    fn finish(mut self, code: usize) {
        self.metrics.methods()[self.index].record(code, self.started);
        self.recorded = true;
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if !self.recorded {
            self.metrics.methods()[self.index].record(CANCELLED, self.started);
        }
    }
}

/// `grpc-status` as a code index; anything unreadable is `Unknown`.
fn status_code(headers: &http::HeaderMap) -> Option<usize> {
    let value = headers.get("grpc-status")?.as_bytes();
    let mut code = 0usize;
    if value.is_empty() || value.len() > 2 {
        return Some(UNKNOWN_CODE);
    }
    for digit in value {
        if !digit.is_ascii_digit() {
            return Some(UNKNOWN_CODE);
        }
        code = code * 10 + usize::from(digit - b'0');
    }
    Some(if code < CODE_NAMES.len() {
        code
    } else {
        UNKNOWN_CODE
    })
}

pin_project_lite::pin_project! {
    /// The response future of [`GrpcMetricsService`].
    pub struct GrpcMetricsFuture<F> {
        #[pin]
        inner: F,
        tracker: Option<Tracker>,
    }
}

impl<F, R, E> Future for GrpcMetricsFuture<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = Result<http::Response<GrpcMetricsBody<R>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let tracker = this.tracker.take();
        Poll::Ready(match result {
            Ok(response) => {
                // A trailers-only answer (every refusal) ends here.
                let tracker = match (tracker, status_code(response.headers())) {
                    (Some(tracker), Some(code)) => {
                        tracker.finish(code);
                        None
                    }
                    (tracker, _) => tracker,
                };
                Ok(response.map(|inner| GrpcMetricsBody { inner, tracker }))
            }
            Err(error) => {
                if let Some(tracker) = tracker {
                    tracker.finish(UNKNOWN_CODE);
                }
                Err(error)
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that records its call when the trailers pass.
    pub struct GrpcMetricsBody<B> {
        #[pin]
        inner: B,
        tracker: Option<Tracker>,
    }
}

impl<B> Body for GrpcMetricsBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if let Some(tracker) = this.tracker.take() {
            match &frame {
                Some(Ok(frame)) => match frame.trailers_ref().map(status_code) {
                    Some(code) => tracker.finish(code.unwrap_or(UNKNOWN_CODE)),
                    None => *this.tracker = Some(tracker),
                },
                // The stream broke, or ended without trailers.
                Some(Err(_)) | None => tracker.finish(UNKNOWN_CODE),
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_status_reads_as_a_code_and_junk_as_unknown() {
        let headers = |v: &'static str| {
            let mut h = http::HeaderMap::new();
            h.insert("grpc-status", http::HeaderValue::from_static(v));
            h
        };
        assert_eq!(status_code(&http::HeaderMap::new()), None);
        assert_eq!(status_code(&headers("0")), Some(0));
        assert_eq!(status_code(&headers("16")), Some(16));
        for junk in ["17", "99", "-1", "", "1a", "123"] {
            assert_eq!(status_code(&headers(junk)), Some(UNKNOWN_CODE), "{junk}");
        }
    }
}

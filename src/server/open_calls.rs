//! [`OpenCallsLayer`]: counts the calls open on one connection, so that
//! [`OpenCalls::idle`] can tell when none has been for the idle timeout.
//! HTTP/2 keeps that to itself (a connection answering keep-alive pings
//! looks busy to the socket), so the count is kept where calls are seen:
//! from the moment the server's stack is called until the response body
//! has been sent in full or dropped.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

/// The calls open on one connection, and since when none has been.
#[derive(Debug)]
pub(super) struct OpenCalls {
    /// Calls whose response has not been sent in full (or dropped) yet.
    open: AtomicUsize,
    /// When the last call ended, in nanoseconds after `opened` (0: no call
    /// has ended, so the connection has been idle since it opened).
    idle_since: AtomicU64,
    /// When the connection was accepted.
    opened: Instant,
}

impl OpenCalls {
    /// A connection accepted now, with no call open.
    pub(super) fn new() -> Arc<OpenCalls> {
        Arc::new(OpenCalls {
            open: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            opened: Instant::now(),
        })
    }

    /// When the connection was accepted.
    pub(super) fn opened(&self) -> Instant {
        self.opened
    }

    fn started(&self) {
        self.open.fetch_add(1, Ordering::SeqCst);
    }

    fn ended(&self) {
        let now = u64::try_from(self.opened.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // Stored before the count falls, so that whoever reads no call open
        // also reads when the last one ended.
        self.idle_since.fetch_max(now, Ordering::SeqCst);
        self.open.fetch_sub(1, Ordering::SeqCst);
    }

    /// Resolves once no call has been open for `timeout`.
    ///
    /// It wakes at most once per `timeout` while calls are open, so a busy
    /// connection costs nothing on its request path but two atomic updates
    /// per call. A call that starts just as it resolves is not lost: the
    /// connection's shutdown is graceful (GOAWAY), and finishes the calls it
    /// has received.
    pub(super) async fn idle(&self, timeout: Duration) {
        let mut check = self.opened + timeout;
        loop {
            tokio::time::sleep_until(check).await;
            if self.open.load(Ordering::SeqCst) > 0 {
                // A call open now ends later than now, so the connection
                // cannot have been idle for `timeout` before then.
                check = Instant::now() + timeout;
                continue;
            }
            let idle_since =
                self.opened + Duration::from_nanos(self.idle_since.load(Ordering::SeqCst));
            let due = idle_since + timeout;
            if Instant::now() >= due {
                return;
            }
            check = due;
        }
    }
}

/// One call open on a connection, until dropped.
#[derive(Debug)]
struct OpenCall(Arc<OpenCalls>);

impl OpenCall {
    fn start(calls: &Arc<OpenCalls>) -> OpenCall {
        calls.started();
        OpenCall(calls.clone())
    }
}

impl Drop for OpenCall {
    fn drop(&mut self) {
        self.0.ended();
    }
}

/// A tower layer that counts the calls open on one connection into an
/// [`OpenCalls`]; the server puts it outermost, so that every call counts,
/// refusals included.
#[derive(Debug, Clone)]
pub(super) struct OpenCallsLayer {
    calls: Arc<OpenCalls>,
}

impl OpenCallsLayer {
    /// A layer counting into `calls`.
    pub(super) fn new(calls: Arc<OpenCalls>) -> OpenCallsLayer {
        OpenCallsLayer { calls }
    }
}

impl<S> tower_layer::Layer<S> for OpenCallsLayer {
    type Service = OpenCallsService<S>;
    fn layer(&self, inner: S) -> OpenCallsService<S> {
        OpenCallsService {
            inner,
            calls: self.calls.clone(),
        }
    }
}

/// The service [`OpenCallsLayer`] wraps around a connection's stack.
#[derive(Debug, Clone)]
pub(super) struct OpenCallsService<S> {
    inner: S,
    calls: Arc<OpenCalls>,
}

impl<S, B, R> tower_service::Service<http::Request<B>> for OpenCallsService<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = http::Response<OpenCallBody<R>>;
    type Error = S::Error;
    type Future = OpenCallsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let call = OpenCall::start(&self.calls);
        OpenCallsFuture {
            inner: self.inner.call(request),
            call: Some(call),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`OpenCallsService`]: the call stays open
    /// in its response body.
    pub(super) struct OpenCallsFuture<F> {
        #[pin]
        inner: F,
        call: Option<OpenCall>,
    }
}

impl<F, R, E> Future for OpenCallsFuture<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = Result<http::Response<OpenCallBody<R>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        this.inner.poll(cx).map_ok(|response| {
            let call = this.call.take();
            response.map(|inner| OpenCallBody { inner, call })
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that holds its call open until it has been sent in
    /// full or dropped.
    pub(super) struct OpenCallBody<B> {
        #[pin]
        inner: B,
        call: Option<OpenCall>,
    }
}

impl<B: Body> Body for OpenCallBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = this.inner.poll_frame(cx);
        if let Poll::Ready(None) = frame {
            this.call.take();
        }
        frame
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

    #[tokio::test(start_paused = true)]
    async fn idle_counts_from_the_last_call_and_never_while_one_is_open() {
        let timeout = Duration::from_secs(10);
        let calls = OpenCalls::new();
        let opened = calls.opened();
        // Open from 5 s to 30 s, then idle.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let call = OpenCall::start(&calls);
        let idle = tokio::spawn({
            let calls = calls.clone();
            async move {
                calls.idle(timeout).await;
                Instant::now()
            }
        });
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert!(!idle.is_finished(), "idle while a call was open");
        drop(call);
        let at = idle.await.unwrap();
        assert_eq!(at - opened, Duration::from_secs(40));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_with_no_call_is_idle_from_when_it_opened() {
        let calls = OpenCalls::new();
        let opened = calls.opened();
        calls.idle(Duration::from_secs(7)).await;
        assert_eq!(Instant::now() - opened, Duration::from_secs(7));
    }
}

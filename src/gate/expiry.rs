//! Calls that outlive their token: [`ExpiringBody`] ends a response stream
//! with `UNAUTHENTICATED` (`token has expired`) once the token that opened it
//! has expired, leeway included. A server-streaming or bidirectional call is
//! checked once, at its start; without this it could run for hours on a
//! token that stopped being valid long ago.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tonic::Status;

use crate::error::AuthError;

pin_project_lite::pin_project! {
    /// A response body that ends with `UNAUTHENTICATED` at its deadline.
    ///
    /// Unary calls, whose body is ready as soon as it is polled, never start
    /// a timer: one is armed only when the stream first waits, so the cost is
    /// paid by streams alone.
    #[derive(Debug)]
    pub struct ExpiringBody<B> {
        #[pin]
        inner: B,
        deadline: Option<Instant>,
        timer: Option<Pin<Box<Sleep>>>,
        expired: bool,
    }
}

impl<B> ExpiringBody<B> {
    /// A body that ends at `deadline`; with none (public services,
    /// refusals), it is never cut short.
    pub fn new(inner: B, deadline: Option<Instant>) -> ExpiringBody<B> {
        ExpiringBody {
            inner,
            deadline,
            timer: None,
            expired: false,
        }
    }
}

impl<B: Default> Default for ExpiringBody<B> {
    fn default() -> Self {
        ExpiringBody::new(B::default(), None)
    }
}

/// The trailers that end an expired stream: the same status and message a
/// call with the expired token would get from the gate.
fn expired_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    // The status is made from fixed ASCII text, so it always encodes.
    let _ = Status::from(&AuthError::Expired).add_header(&mut trailers);
    trailers
}

impl<B> Body for ExpiringBody<B>
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
        if *this.expired {
            return Poll::Ready(None);
        }
        let Some(deadline) = *this.deadline else {
            return this.inner.poll_frame(cx);
        };
        // A stream that never waits still stops at its deadline.
        if Instant::now() >= deadline {
            *this.expired = true;
            return Poll::Ready(Some(Ok(Frame::trailers(expired_trailers()))));
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame),
            Poll::Pending => {
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_ready() {
                    *this.expired = true;
                    return Poll::Ready(Some(Ok(Frame::trailers(expired_trailers()))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.deadline.is_some() {
            // It may end early, with trailers of its own.
            SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}

//! Calls that outlive their welcome: [`ExpiringBody`] ends a response
//! stream at a deadline. A guarded call's deadline is its token's expiry,
//! leeway included, and it ends with `UNAUTHENTICATED` (`token has expired`):
//! a server-streaming or bidirectional call is checked once, at its start,
//! and without this could run for hours on a token that stopped being valid
//! long ago. A public call's deadline is its maximum age, and it ends with
//! `UNAVAILABLE`, which health and reflection clients answer by calling
//! again: without it, anyone could hold a `Watch` open forever.

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

/// When a call must end, and how.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    ending: Ending,
}

#[derive(Debug, Clone, Copy)]
enum Ending {
    /// The token that opened the call has expired.
    TokenExpired,
    /// A public call has reached its maximum age.
    MaxAge,
}

impl Deadline {
    /// At `at`, the call's token has expired.
    pub(crate) fn token_expiry(at: Instant) -> Deadline {
        Deadline {
            at,
            ending: Ending::TokenExpired,
        }
    }

    /// At `at`, a public call has lasted long enough.
    pub(crate) fn max_age(at: Instant) -> Deadline {
        Deadline {
            at,
            ending: Ending::MaxAge,
        }
    }

    /// The trailers that end the call.
    fn trailers(self) -> HeaderMap {
        let status = match self.ending {
            // The same status and message a call with the expired token
            // would get from the gate.
            Ending::TokenExpired => Status::from(&AuthError::Expired),
            Ending::MaxAge => Status::unavailable(MAX_AGE_MESSAGE),
        };
        let mut trailers = HeaderMap::new();
        // The status is made from fixed ASCII text, so it always encodes.
        let _ = status.add_header(&mut trailers);
        trailers
    }
}

/// The message of a public call ended at its maximum age.
const MAX_AGE_MESSAGE: &str = "stream reached its maximum age";

pin_project_lite::pin_project! {
    /// A response body that ends at its deadline with the deadline's status.
    ///
    /// Unary calls, whose body is ready as soon as it is polled, never start
    /// a timer: one is armed only when the stream first waits, so the cost is
    /// paid by streams alone.
    #[derive(Debug)]
    pub struct ExpiringBody<B> {
        #[pin]
        inner: B,
        deadline: Option<Deadline>,
        timer: Option<Pin<Box<Sleep>>>,
        expired: bool,
    }
}

impl<B> ExpiringBody<B> {
    /// A body that ends at `deadline`; with none (refusals, public calls
    /// with no maximum age), it is never cut short.
    pub(crate) fn new(inner: B, deadline: Option<Deadline>) -> ExpiringBody<B> {
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
        if Instant::now() >= deadline.at {
            *this.expired = true;
            return Poll::Ready(Some(Ok(Frame::trailers(deadline.trailers()))));
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame),
            Poll::Pending => {
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.at)));
                if timer.as_mut().poll(cx).is_ready() {
                    *this.expired = true;
                    return Poll::Ready(Some(Ok(Frame::trailers(deadline.trailers()))));
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

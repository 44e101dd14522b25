//! Calls that outlive their welcome: one [`Deadline`] per call, set when the
//! gate lets the call in, ends it in every direction. A guarded call's
//! deadline is its token's expiry, leeway included; a public call's is its
//! maximum age. At the deadline:
//!
//! - a response not yet begun is answered as a refusal
//!   ([`GateFuture`](super::GateFuture)): the service's or upstream's call
//!   is dropped, and so cancelled;
//! - a response body ([`ExpiringBody`]) ends: gRPC with trailers
//!   (`UNAUTHENTICATED`, `token has expired`; `UNAVAILABLE` for a public
//!   call, which health and reflection clients answer by calling again),
//!   plain HTTP with an error, so that HTTP/2 resets the stream and
//!   HTTP/1.1 closes the connection (a clean end would read as a complete
//!   answer);
//! - the request body ([`ExpiringRequest`]) fails, so that a client stream
//!   stops feeding the service or the upstream.
//!
//! A streaming call is checked once, at its start: without this, it could
//! run for hours on a token that stopped being valid long ago, and anyone
//! could hold a public `Watch` open forever.

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
pub(crate) struct Deadline {
    at: Instant,
    ending: Ending,
    /// Whether the call is gRPC (ended with trailers) or plain HTTP (ended
    /// by an error: a reset stream or a closed connection).
    grpc: bool,
}

#[derive(Debug, Clone, Copy)]
enum Ending {
    /// The token that opened the call has expired.
    TokenExpired,
    /// A public call has reached its maximum age.
    MaxAge,
}

/// The message of a public call ended at its maximum age.
const MAX_AGE_MESSAGE: &str = "stream reached its maximum age";

impl Deadline {
    /// At `at`, the call's token has expired.
    pub(crate) fn token_expiry(at: Instant, grpc: bool) -> Deadline {
        Deadline {
            at,
            ending: Ending::TokenExpired,
            grpc,
        }
    }

    /// At `at`, a public call has lasted long enough.
    pub(crate) fn max_age(at: Instant, grpc: bool) -> Deadline {
        Deadline {
            at,
            ending: Ending::MaxAge,
            grpc,
        }
    }

    /// The refusal a call gets at its deadline, `None` at a public call's
    /// maximum age: the one the gate would give the expired token now.
    #[cfg(feature = "server")]
    pub(crate) fn refusal(self) -> Option<AuthError> {
        match self.ending {
            Ending::TokenExpired => Some(AuthError::Expired),
            Ending::MaxAge => None,
        }
    }

    /// The status that ends the call: the gate's for an expired token, or
    /// `UNAVAILABLE` at a public call's maximum age.
    pub(crate) fn status(self) -> Status {
        match self.ending {
            Ending::TokenExpired => Status::from(&AuthError::Expired),
            Ending::MaxAge => Status::unavailable(MAX_AGE_MESSAGE),
        }
    }

    /// The trailers that end a gRPC call.
    fn trailers(self) -> HeaderMap {
        let mut trailers = HeaderMap::new();
        // The status is made from fixed ASCII text, so it always encodes.
        let _ = self.status().add_header(&mut trailers);
        trailers
    }

    /// Whether the deadline has passed, by the runtime's clock.
    pub(crate) fn is_past(self) -> bool {
        Instant::now() >= self.at
    }

    /// Whether the deadline has passed, with a timer armed only when first
    /// asked while it has not: calls that end before they ever wait pay
    /// nothing for it.
    pub(crate) fn passed(self, timer: &mut Option<Pin<Box<Sleep>>>, cx: &mut Context<'_>) -> bool {
        if self.is_past() {
            return true;
        }
        timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(self.at)))
            .as_mut()
            .poll(cx)
            .is_ready()
    }
}

pin_project_lite::pin_project! {
    /// A response body that ends at its deadline: with the deadline's
    /// status in trailers (gRPC), or an error (plain HTTP).
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
        // Ended: at its deadline, or with the inner body's own end.
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
    B::Error: From<Status>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        if *this.expired {
            return Poll::Ready(None);
        }
        let Some(deadline) = *this.deadline else {
            return this.inner.poll_frame(cx);
        };
        // A stream that never waits still stops at its deadline; one that
        // has ended (its trailers sent, or its last frame) ends as it is: no
        // second status after the first, no reset of a complete answer.
        if Instant::now() < deadline.at || this.inner.is_end_stream() {
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(frame) => {
                    let last = match &frame {
                        None => true,
                        Some(Ok(frame)) => frame.is_trailers(),
                        Some(Err(_)) => false,
                    };
                    *this.expired |= last;
                    return Poll::Ready(frame);
                }
                Poll::Pending if !deadline.passed(this.timer, cx) => return Poll::Pending,
                Poll::Pending => {}
            }
        }
        *this.expired = true;
        if deadline.grpc {
            Poll::Ready(Some(Ok(Frame::trailers(deadline.trailers()))))
        } else {
            Poll::Ready(Some(Err(deadline.status().into())))
        }
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match self.deadline {
            // It may end early, with trailers of its own.
            Some(deadline) if deadline.grpc => SizeHint::default(),
            // It may end early only with an error: its length stands.
            _ => self.inner.size_hint(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request body that fails at its deadline, so that the service (or
    /// the upstream, whose stream is then reset) stops receiving what a
    /// caller whose token has expired still sends.
    #[derive(Debug)]
    pub(crate) struct ExpiringRequest<B> {
        #[pin]
        inner: B,
        deadline: Deadline,
        timer: Option<Pin<Box<Sleep>>>,
    }
}

impl<B> ExpiringRequest<B> {
    pub(crate) fn new(inner: B, deadline: Deadline) -> ExpiringRequest<B> {
        ExpiringRequest {
            inner,
            deadline,
            timer: None,
        }
    }
}

impl<B> Body for ExpiringRequest<B>
where
    B: Body<Data = Bytes>,
    B::Error: From<Status>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        if Instant::now() < this.deadline.at {
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(frame) => return Poll::Ready(frame),
                Poll::Pending if !this.deadline.passed(this.timer, cx) => return Poll::Pending,
                Poll::Pending => {}
            }
        }
        if this.inner.is_end_stream() {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Err(this.deadline.status().into())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

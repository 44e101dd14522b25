//! Request trailers, which a caller may send after its body: for gRPC
//! calls they reach the upstream with the same removals as headers (the
//! caller's own `x-authgate-*`, and `authorization` unless it is
//! forwarded), since an upstream may read them as metadata; a plain HTTP
//! request's are dropped, as most proxies drop them. A body the caller
//! breaks (a bad chunk, a reset stream) fails with a status saying so, for
//! the forwarder to tell from an upstream that failed.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::header;
use http_body::{Body, Frame, SizeHint};

use tonic::Status;

use super::identity::remove_identity;

/// What a caller is told of a request body it broke (a bad chunk, a reset
/// stream) before it was all forwarded.
pub(super) const MALFORMED_BODY: &str = "malformed request body";

/// What becomes of a request's trailers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trailers {
    /// Dropped: plain HTTP.
    Drop,
    /// Forwarded without the caller's identity headers, and without
    /// `authorization` unless `keep_authorization`.
    Filter { keep_authorization: bool },
}

pin_project_lite::pin_project! {
    /// A request body whose trailers are filtered or dropped, and whose
    /// failure, when the caller breaks it, says so.
    #[derive(Debug)]
    pub(crate) struct FilteredTrailers<B> {
        #[pin]
        inner: B,
        trailers: Trailers,
    }
}

impl<B> FilteredTrailers<B> {
    pub(crate) fn new(inner: B, trailers: Trailers) -> FilteredTrailers<B> {
        FilteredTrailers { inner, trailers }
    }
}

impl<B> Body for FilteredTrailers<B>
where
    B: Body<Data = Bytes, Error = Status>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let frame = match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            // A token that expired meanwhile ends the body too; the gate
            // answers that call itself, whatever the forwarder says.
            Poll::Ready(Some(Err(_))) => {
                return Poll::Ready(Some(Err(Status::invalid_argument(MALFORMED_BODY))));
            }
            other => return other,
        };
        let mut trailers = match frame.into_trailers() {
            Ok(trailers) => trailers,
            Err(data) => return Poll::Ready(Some(Ok(data))),
        };
        match *this.trailers {
            // Trailers end a body: nothing follows them.
            Trailers::Drop => Poll::Ready(None),
            Trailers::Filter { keep_authorization } => {
                remove_identity(&mut trailers);
                if !keep_authorization {
                    trailers.remove(header::AUTHORIZATION);
                }
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

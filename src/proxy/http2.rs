//! [`Http2Upstream`]: one HTTP/2 connection to the upstream, opened by the
//! first call and again by the first call after it closes; every forwarded
//! call is a stream on it.
//!
//! Our own rather than tonic's `Channel`, which sets every request's
//! `:authority` to the upstream's (so `--preserve-host` could not reach an
//! HTTP/2 upstream) and sends each call through a queue to a worker task.
//! Here a call takes the live connection from an [`ArcSwapOption`] (no lock)
//! and sends on it; only opening a connection is serialised, so an upstream
//! that is down gets one attempt at a time, and the calls that waited on a
//! failed attempt fail with it rather than each trying in turn.

use std::{sync::Arc, time::Duration};

use arc_swap::ArcSwapOption;
use http::uri::{Authority, Scheme};
use hyper::{body::Incoming, client::conn::http2::SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::{sync::Mutex, time::Instant};
use tonic::body::Body;

use super::{UpstreamConfig, dial::Dial};
use crate::{StartupError, error::error_chain};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The HTTP/2 client of one upstream. Cheap to clone: clones share the
/// connection.
#[derive(Clone)]
pub(super) struct Http2Upstream {
    shared: Arc<Shared>,
}

struct Shared {
    dial: Dial,
    scheme: Scheme,
    authority: Authority,
    live: ArcSwapOption<SendRequest<Body>>,
    /// Held while a connection is opened; holds when and how the last
    /// attempt failed.
    opening: Mutex<Option<(Instant, Arc<str>)>>,
}

impl Http2Upstream {
    /// A client of `upstream`; connects on the first call.
    pub(super) fn new(upstream: &UpstreamConfig) -> Result<Http2Upstream, StartupError> {
        let url = &upstream.url;
        let authority = url.authority().cloned().ok_or_else(|| {
            StartupError::Config(format!("upstream {}: no host", upstream.display()))
        })?;
        Ok(Http2Upstream {
            shared: Arc::new(Shared {
                dial: Dial::new(upstream, b"h2")?,
                scheme: url.scheme().cloned().unwrap_or(Scheme::HTTP),
                authority,
                live: ArcSwapOption::empty(),
                opening: Mutex::new(None),
            }),
        })
    }

    /// Sends `request` (its path; the scheme is the upstream's, the
    /// authority `authority` or else the upstream's) as a stream on the
    /// connection, opening one when there is none.
    pub(super) async fn send(
        &self,
        mut request: http::Request<Body>,
        authority: Option<Authority>,
    ) -> Result<http::Response<Incoming>, BoxError> {
        let shared = &self.shared;
        let mut uri = std::mem::take(request.uri_mut()).into_parts();
        uri.scheme = Some(shared.scheme.clone());
        uri.authority = Some(authority.unwrap_or_else(|| shared.authority.clone()));
        if uri.path_and_query.is_none() {
            uri.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        *request.uri_mut() = http::Uri::from_parts(uri)?;
        *request.version_mut() = http::Version::HTTP_2;
        // A connection that closed between the check and the send gives the
        // request back unsent: once more, on a new connection.
        let mut sender = self.sender().await?;
        match sender.try_send_request(request).await {
            Ok(response) => Ok(response),
            Err(mut failed) => match failed.take_message() {
                Some(request) => Ok(self.sender().await?.send_request(request).await?),
                None => Err(failed.into_error().into()),
            },
        }
    }

    /// The live connection, or a new one.
    async fn sender(&self) -> Result<SendRequest<Body>, BoxError> {
        let shared = &self.shared;
        if let Some(live) = live(&shared.live) {
            return Ok(live);
        }
        let asked = Instant::now();
        let mut last_failure = shared.opening.lock().await;
        if let Some(live) = live(&shared.live) {
            return Ok(live);
        }
        if let Some((at, why)) = &*last_failure
            && *at >= asked
        {
            // An attempt made while this call waited has just failed.
            return Err(why.to_string().into());
        }
        match self.connect().await {
            Ok(sender) => {
                shared.live.store(Some(Arc::new(sender.clone())));
                *last_failure = None;
                Ok(sender)
            }
            Err(error) => {
                let why: Arc<str> = error_chain(&*error).into();
                *last_failure = Some((Instant::now(), why));
                Err(error)
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<Body>, BoxError> {
        let io = self.shared.dial.connect().await?;
        let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10));
        let (sender, connection) = builder.handshake(TokioIo::new(io)).await?;
        tokio::spawn(connection);
        Ok(sender)
    }
}

/// The connection in `live`, unless it has closed.
fn live(live: &ArcSwapOption<SendRequest<Body>>) -> Option<SendRequest<Body>> {
    live.load()
        .as_deref()
        .filter(|sender| !sender.is_closed())
        .cloned()
}

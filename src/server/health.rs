//! Health as load balancers and kubelets read it: `""` and every guarded
//! service `SERVING` exactly while some issuer's key set can check tokens
//! and the server is not draining; [`LIVENESS_SERVICE`] `SERVING` while the
//! process runs.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::{
    sync::{Notify, watch},
    task::JoinHandle,
};
use tonic::{Request, Response, Status, body::Body};
use tonic_health::{
    ServingStatus,
    pb::{HealthCheckRequest, HealthCheckResponse, health_check_response, health_server},
    server::HealthReporter,
};

use crate::keys::KeyStore;

/// The health service name that answers SERVING while the process runs: the
/// one liveness probes ask for (`""` and the guarded services follow the
/// keys and the drain, for readiness).
pub const LIVENESS_SERVICE: &str = "grpc.health.v1.Health";

/// The readiness half of health: `""` and each guarded service.
#[derive(Clone)]
pub(super) struct Readiness {
    reporter: HealthReporter,
    guarded: Arc<[&'static str]>,
    /// The same state for [`HealthGate`], which answers for a proxy.
    ready: Arc<watch::Sender<bool>>,
}

impl Readiness {
    /// Readiness for `guarded`, starting `NOT_SERVING` (before the first key
    /// set every guarded call would be refused with `UNAVAILABLE`), and
    /// liveness `SERVING`: a pod whose issuer is down must not be restarted,
    /// or it would lose its last good key set.
    pub(super) async fn new(reporter: HealthReporter, guarded: Arc<[&'static str]>) -> Readiness {
        let readiness = Readiness {
            reporter,
            guarded,
            ready: Arc::new(watch::channel(false).0),
        };
        readiness.set(false).await;
        readiness
            .reporter
            .set_service_status(LIVENESS_SERVICE, ServingStatus::Serving)
            .await;
        readiness
    }

    /// Reports `""` and every guarded service as serving, or not.
    pub(super) async fn set(&self, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for name in std::iter::once(&"").chain(self.guarded.iter()) {
            self.reporter.set_service_status(*name, status).await;
        }
        self.ready.send_replace(serving);
    }

    /// Follows readiness: true while serving, false before the first key
    /// set, while no issuer has a usable one, and from the drain on.
    pub(super) fn subscribe(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// Follows the key stores: serving from the first usable set, not while
    /// every issuer lists no usable key or has gone stale, and again once
    /// keys are back. A change in any store wakes the task, which then looks
    /// at them all. Abort the task before draining, so that nothing turns
    /// health back to `SERVING`.
    pub(super) fn follow(self, stores: Vec<Arc<KeyStore>>) -> JoinHandle<()> {
        let changed = Arc::new(Notify::new());
        let mut watchers = tokio::task::JoinSet::new();
        for store in &stores {
            let (mut availability, changed) = (store.watch(), changed.clone());
            watchers.spawn(async move {
                // The sender lives in the key store, which `stores` holds.
                while availability.changed().await.is_ok() {
                    changed.notify_one();
                }
            });
        }
        tokio::spawn(async move {
            // Dropping the set (when this task is aborted) stops the watchers.
            let _watchers = watchers;
            let mut serving = false;
            loop {
                let usable = stores.iter().any(|s| s.availability().is_usable());
                if usable != serving {
                    serving = usable;
                    self.set(usable).await;
                }
                changed.notified().await;
            }
        })
    }
}

/// In front of health calls that a proxy forwards to its upstream: while
/// the proxy itself is not ready (no usable key set, or draining) it answers
/// them itself, `NOT_SERVING` (and [`LIVENESS_SERVICE`] `SERVING`), since
/// every guarded call would be refused or is about to go elsewhere;
/// otherwise the upstream's own health answers.
#[derive(Clone)]
pub(super) struct HealthGate<S> {
    inner: S,
    local: health_server::HealthServer<NotReady>,
    ready: watch::Receiver<bool>,
}

impl<S> HealthGate<S> {
    pub(super) fn new(inner: S, ready: watch::Receiver<bool>) -> HealthGate<S> {
        HealthGate {
            inner,
            local: health_server::HealthServer::new(NotReady {
                ready: ready.clone(),
            }),
            ready,
        }
    }
}

/// The health path prefix [`HealthGate`] answers for.
const HEALTH_PATH: &str = "/grpc.health.v1.Health/";

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> tower_service::Service<http::Request<Body>> for HealthGate<S>
where
    S: tower_service::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = Infallible,
        >,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path();
        if path.starts_with(HEALTH_PATH) && !*self.ready.borrow() {
            // The generated server is always ready.
            return Box::pin(tower_service::Service::call(&mut self.local, request));
        }
        if path.strip_prefix(HEALTH_PATH) != Some("Watch") {
            return Box::pin(self.inner.call(request));
        }
        // The upstream's Watch, for as long as the proxy stays ready: a
        // watcher must learn that it drains or lost its keys as a new
        // caller would.
        let mut ready = self.ready.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            let not_ready = Box::pin(async move {
                // An error means the server is gone: end the stream as well.
                let _ = ready.wait_for(|ready| !*ready).await;
            });
            Ok(response.map(|inner| {
                Body::new(WhileReady {
                    inner,
                    not_ready,
                    ended: false,
                })
            }))
        })
    }
}

pin_project_lite::pin_project! {
    /// A forwarded Watch's response, ended with `UNAVAILABLE` once the proxy
    /// is not ready, so that the caller watches again and hears
    /// `NOT_SERVING` from the proxy itself.
    struct WhileReady {
        #[pin]
        inner: Body,
        not_ready: Pin<Box<dyn Future<Output = ()> + Send>>,
        ended: bool,
    }
}

impl http_body::Body for WhileReady {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Status>>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        if this.not_ready.as_mut().poll(cx).is_ready() {
            *this.ended = true;
            let mut trailers = http::HeaderMap::new();
            // Fixed ASCII text: it always encodes.
            let _ = Status::unavailable(NOT_READY_MESSAGE).add_header(&mut trailers);
            return Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))));
        }
        this.inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }
}

/// How a forwarded Watch ends when the proxy stops being ready.
const NOT_READY_MESSAGE: &str =
    "authgate proxy is not ready (draining, or no usable keys): watch again";

/// The health a proxy that is not ready answers with.
struct NotReady {
    ready: watch::Receiver<bool>,
}

fn not_ready_status(service: &str) -> HealthCheckResponse {
    let status = if service == LIVENESS_SERVICE {
        health_check_response::ServingStatus::Serving
    } else {
        health_check_response::ServingStatus::NotServing
    };
    HealthCheckResponse {
        status: status.into(),
    }
}

#[tonic::async_trait]
impl health_server::Health for NotReady {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(not_ready_status(&request.get_ref().service)))
    }

    type WatchStream = BoxStream;

    /// The status now; the stream ends (`UNAVAILABLE`) once the proxy is
    /// ready again, so that the caller watches again, then the upstream.
    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<BoxStream>, Status> {
        let now = not_ready_status(&request.get_ref().service);
        let mut ready = self.ready.clone();
        let ended = async move {
            // An error means the server is gone: end the stream as well.
            let _ = ready.wait_for(|ready| *ready).await;
            Err(Status::unavailable(
                "authgate proxy is ready again: watch again for the upstream's health",
            ))
        };
        let stream = futures_util::stream::StreamExt::chain(
            futures_util::stream::once(std::future::ready(Ok(now))),
            futures_util::stream::once(ended),
        );
        Ok(Response::new(Box::pin(stream)))
    }
}

type BoxStream =
    Pin<Box<dyn futures_util::Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

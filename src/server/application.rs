//! [`Application`]: a bound server, serving until shutdown, then draining
//! in steps.

use std::{future::Future, net::SocketAddr, sync::Arc};

use tokio::net::TcpListener;
use tonic::service::Routes;

use super::{
    CorsOrigins, Drain, GrpcMetrics, HttpRoutes, Limits, ServerConfig, connections,
    decider::Decider,
    fallback::{self, Fallback, fallback},
    health::{HealthGate, Readiness},
    incoming,
    metrics::{self, Metrics},
    serve::Serving,
    stack::{Front, Stack, local_public_services},
};
use crate::{Clock, Gate, StartupError, keys::KeyStore, keys::Refresher};

/// A bound, not yet serving authgate server.
#[derive(Debug)]
pub struct Application {
    pub(super) listener: TcpListener,
    pub(super) local_addr: SocketAddr,
    /// The metrics listener and its address, when metrics are on.
    pub(super) metrics_listener: Option<(TcpListener, SocketAddr)>,
    /// The refreshers of a gate built here, started when serving starts and
    /// stopped when it ends (a gate given to the builder refreshes itself).
    pub(super) refreshers: Vec<Refresher>,
    pub(super) gate: Gate,
    pub(super) routes: Routes,
    pub(super) guarded: Arc<[&'static str]>,
    pub(super) descriptor_sets: Vec<&'static [u8]>,
    pub(super) grpc_metrics: Arc<GrpcMetrics>,
    pub(super) tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    pub(super) limits: Limits,
    pub(super) drain: Drain,
    pub(super) cors: Option<CorsOrigins>,
    pub(super) private_root: bool,
    /// Where requests no service claims go: set, the server is a proxy.
    pub(super) forward: Option<Fallback>,
    /// What answers for other proxies: set, the server decides for them.
    pub(super) decider: Option<Decider>,
    /// Paths open without a token besides health and reflection, checked.
    pub(super) public: Vec<String>,
}

impl Application {
    /// The demo server: `authgate.v1.PrivateService` and nothing else.
    #[deprecated(
        since = "0.2.0",
        note = "use `Application::builder(config).add_demo_service().bind()`"
    )]
    pub async fn build(config: ServerConfig) -> Result<Application, StartupError> {
        Application::builder(config).add_demo_service().bind().await
    }

    /// The demo server on a listener the caller bound.
    #[deprecated(
        since = "0.2.0",
        note = "use `Application::builder(config).add_demo_service().with_listener(listener)`"
    )]
    pub fn with_listener(
        listener: TcpListener,
        config: ServerConfig,
    ) -> Result<Application, StartupError> {
        Application::builder(config)
            .add_demo_service()
            .with_listener(listener)
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The key store the gate reads for the first issuer configured.
    pub fn keys(&self) -> Arc<KeyStore> {
        self.gate.issuers()[0].keys().clone()
    }

    /// Each issuer configured, with the key store the gate reads for it.
    pub fn key_stores(&self) -> impl Iterator<Item = (&str, &Arc<KeyStore>)> {
        self.gate
            .issuers()
            .iter()
            .map(|issuer| (issuer.issuer(), issuer.keys()))
    }

    /// Where metrics are served, when they are (useful with port 0).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|(_, addr)| *addr)
    }

    /// The gate, whose [`stats`](Gate::stats) count its decisions.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The gate.
    #[deprecated(since = "0.2.0", note = "renamed to `gate`")]
    pub fn interceptor(&self) -> &Gate {
        &self.gate
    }

    /// Makes the gate read the time from `clock`: for tests of expiry edges.
    pub fn with_clock(mut self, clock: Clock) -> Application {
        self.gate = self.gate.with_clock(clock);
        self
    }

    /// Serves until `shutdown` resolves, then drains as the configuration's
    /// [`Drain`] says: `NOT_SERVING` at once, serving on for its delay, then
    /// no new connections and calls in flight given its timeout.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), StartupError> {
        let delay = self.drain.delay;
        self.run_draining(shutdown, async move { tokio::time::sleep(delay).await })
            .await
    }

    /// Serves until `drain` resolves; then reports `NOT_SERVING` and serves
    /// on until `stop` resolves; then stops accepting and gives calls in
    /// flight the drain timeout to finish. [`Application::run_until`] with
    /// the stop chosen by the caller, so tests can wait on events instead of
    /// a delay.
    pub async fn run_draining(
        self,
        drain: impl Future<Output = ()>,
        stop: impl Future<Output = ()>,
    ) -> Result<(), StartupError> {
        let stores: Vec<Arc<KeyStore>> = self
            .gate
            .issuers()
            .iter()
            .map(|issuer| issuer.keys().clone())
            .collect();
        let metrics_server = self.metrics_listener.map(|(listener, _)| {
            let metrics =
                Metrics::new(self.grpc_metrics.clone(), self.gate.clone(), stores.clone());
            tokio::spawn(metrics::listener::serve(
                listener,
                Arc::new(metrics),
                std::future::pending(),
            ))
        });

        // Health: NOT_SERVING until a key set can check tokens.
        let (reporter, health) = tonic_health::server::health_reporter();
        let readiness = Readiness::new(reporter, self.guarded.clone()).await;
        let ready_now = readiness.subscribe();
        let built_here = !self.refreshers.is_empty();
        self.gate.start(self.refreshers);
        let ready = readiness.clone().follow(stores);

        // Told when the listener has closed: the shutdown timeout runs from then.
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = drain_in_steps(
            drain,
            stop,
            readiness,
            ready.abort_handle(),
            self.drain,
            closed_tx,
        );

        let stack = Stack {
            gate: &self.gate,
            public: &self.public,
            limits: &self.limits,
            cors: self.cors,
            metrics: self.grpc_metrics,
        };
        let app = match (self.forward, self.decider) {
            // A proxy: health and reflection are the upstream's, but for
            // health while this side is not ready.
            (Some(forward), _) => {
                let health_gate = fallback(HealthGate::new(forward.clone(), ready_now));
                let routes = self
                    .routes
                    .into_axum_router()
                    .fallback_service(fallback::for_axum(health_gate));
                stack.build(Routes::from(routes), Front::Proxy(forward))?
            }
            // Answering for other proxies: health and reflection are ours.
            (None, Some(decider)) => {
                let routes = local_public_services(
                    self.routes,
                    health,
                    &self.descriptor_sets,
                    &self.limits,
                )?;
                stack.build(routes, Front::Decide(decider))?
            }
            (None, None) => {
                let routes = local_public_services(
                    self.routes,
                    health,
                    &self.descriptor_sets,
                    &self.limits,
                )?;
                let root = if self.private_root {
                    HttpRoutes::private_root()
                } else {
                    HttpRoutes::not_found()
                };
                stack.build(routes, Front::Serve(fallback(root)))?
            }
        };

        let serving = Serving::new(&self.limits, self.tls);
        let serving = connections::serve_each(
            incoming::Incoming::new(self.listener, &self.limits),
            connections::Lifetimes::new(&self.limits),
            shutdown,
            move |stream, open_calls, close| {
                let app = tower_layer::Layer::layer(&open_calls, app.clone());
                serving.serve(stream, app, close)
            },
        );
        let timeout = self.drain.timeout;
        let timed_out = async move {
            if closed_rx.await.is_err() {
                // The server ended before closing: nothing to time.
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(timeout).await;
        };
        tokio::select! {
            () = serving => {}
            () = timed_out => {
                tracing::warn!(
                    shutdown_timeout = ?timeout,
                    "calls still in flight at the shutdown timeout; closing them"
                );
            }
        }
        if built_here {
            self.gate.stop_refreshing();
        }
        ready.abort();
        if let Some(metrics_server) = metrics_server {
            metrics_server.abort();
        }
        Ok(())
    }
}

/// The drain, step by step: when `drain` resolves, health turns
/// `NOT_SERVING` for good (nothing may turn it back: `follow` is aborted);
/// calls are served on until `stop` resolves; then the listener closes
/// (this future resolving) and `closed` tells the shutdown timeout to start.
async fn drain_in_steps(
    drain: impl Future<Output = ()>,
    stop: impl Future<Output = ()>,
    readiness: Readiness,
    follow: tokio::task::AbortHandle,
    config: Drain,
    closed: tokio::sync::oneshot::Sender<()>,
) {
    drain.await;
    follow.abort();
    readiness.set(false).await;
    tracing::info!(
        drain_delay = ?config.delay,
        "draining: health reports NOT_SERVING; still serving calls"
    );
    stop.await;
    tracing::info!(
        shutdown_timeout = ?config.timeout,
        "shutting down: no new connections; finishing the calls in flight"
    );
    let _ = closed.send(());
}

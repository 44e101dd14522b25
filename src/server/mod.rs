//! Server assembly: health, reflection, TLS, limits, metrics and draining
//! around any tonic services, behind the gate, on one port that answers
//! gRPC, gRPC-Web and plain HTTP (with CORS for the origins allowed). It
//! binds first (so port 0 works), then serves until a shutdown future
//! resolves.
//!
//! ```no_run
//! # use authgate::{Gate, server::{Application, ServerConfig}};
//! # async fn run(my_service: authgate::pb::private_service_server::PrivateServiceServer<authgate::server::PrivateService>) -> Result<(), authgate::StartupError> {
//! let gate = Gate::from_oidc("https://tenant.auth0.com/", "https://api.example.com")?;
//! Application::builder(ServerConfig::default())
//!     .gate(gate)
//!     .add_service(my_service)
//!     .serve(authgate::server::shutdown_signal())
//!     .await
//! # }
//! ```

use std::{future::Future, net::SocketAddr, sync::Arc};

use tokio::net::TcpListener;
use tonic::service::{Routes, RoutesBuilder};

mod builder;
mod config;
mod connections;
mod decider;
mod fallback;
mod health;
mod http;
mod incoming;
mod metrics;
mod open_calls;
mod serve;
mod service;
mod signals;
mod stack;
mod timeout;
mod tls;
mod web;

pub use builder::ApplicationBuilder;
pub use config::{Drain, Limits, ServerConfig};
pub use health::LIVENESS_SERVICE;
#[cfg(feature = "proxy")]
pub(crate) use http::detail_response;
#[cfg(feature = "authz")]
pub(crate) use http::refusal_parts;
pub use http::{
    HttpGate, HttpRoutes, PRIVATE_ROOT_BODY, REALM, RETRY_AFTER_SECS, refusal_response,
};
pub use metrics::{GrpcMetrics, GrpcMetricsLayer};
pub use service::{GET_PRIVATE_METHOD, PRIVATE_MESSAGE, PrivateService};
pub use signals::{shutdown_signal, stop_signals};
pub use tls::TlsFiles;
#[cfg(feature = "proxy")]
pub(crate) use web::is_grpc;
pub use web::{CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS, CorsOrigins, OnePort, OnePortLayer, Split};

use crate::{Clock, Gate, StartupError, keys::KeyStore, keys::Refresher};
#[cfg(not(feature = "authz"))]
use decider::Decider;
#[cfg(feature = "authz")]
pub(crate) use decider::{BuildDecider, Decider};
#[cfg(feature = "authz")]
pub(crate) use fallback::{Fallback, fallback};
#[cfg(not(feature = "authz"))]
use fallback::{Fallback, fallback};
use health::{HealthGate, Readiness};
use metrics::Metrics;
#[cfg(feature = "proxy")]
pub(crate) use serve::ArrivedOverTls;
use serve::Serving;
use stack::{Front, Stack, local_public_services};

/// A bound, not yet serving authgate server.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    /// The metrics listener and its address, when metrics are on.
    metrics_listener: Option<(TcpListener, SocketAddr)>,
    /// The refreshers of a gate built here, started when serving starts and
    /// stopped when it ends (a gate given to the builder refreshes itself).
    refreshers: Vec<Refresher>,
    gate: Gate,
    routes: Routes,
    guarded: Arc<[&'static str]>,
    descriptor_sets: Vec<&'static [u8]>,
    grpc_metrics: Arc<GrpcMetrics>,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    limits: Limits,
    drain: Drain,
    cors: Option<CorsOrigins>,
    private_root: bool,
    /// Where requests no service claims go: set, the server is a proxy.
    forward: Option<Fallback>,
    /// What answers for other proxies: set, the server decides for them.
    decider: Option<Decider>,
    /// Paths open without a token besides health and reflection, checked.
    public: Vec<String>,
}

impl Application {
    /// A server for `config`, to which you add your services.
    pub fn builder(config: ServerConfig) -> ApplicationBuilder {
        ApplicationBuilder {
            config,
            gate: None,
            routes: RoutesBuilder::default(),
            guarded: Vec::new(),
            descriptor_sets: Vec::new(),
            clock: None,
            warn_unknown_rules: false,
            private_root: false,
            forward: None,
            decider: None,
            public: Vec::new(),
            metrics_sets: Vec::new(),
        }
    }

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
            tokio::spawn(metrics::serve(
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
                let serving = serving.clone();
                async move { serving.serve(stream, app, close).await }
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

/// Binds `addr` from synchronous code, for the tokio runtime it runs in.
fn bind_now(addr: SocketAddr, what: &str) -> Result<(TcpListener, SocketAddr), StartupError> {
    let bind_error = |source| StartupError::Bind {
        addr: format!("{addr} ({what})"),
        source,
    };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    let listener = TcpListener::from_std(listener).map_err(bind_error)?;
    Ok((listener, local))
}

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

use std::{future::Future, io, net::SocketAddr, sync::Arc};

use futures_util::StreamExt;
use tokio::net::TcpListener;
use tonic::{
    service::{Routes, RoutesBuilder},
    transport::{Server, ServerTlsConfig},
};

mod builder;
mod config;
mod connections;
mod fallback;
mod health;
mod http;
mod incoming;
mod metrics;
mod open_calls;
mod service;
mod signals;
mod tls;
mod web;

pub use builder::ApplicationBuilder;
pub use config::{Drain, Limits, ServerConfig, TlsFiles};
pub use health::LIVENESS_SERVICE;
#[cfg(feature = "proxy")]
pub(crate) use http::detail_response;
pub use http::{
    HttpGate, HttpRoutes, PRIVATE_ROOT_BODY, REALM, RETRY_AFTER_SECS, refusal_response,
};
pub use metrics::{GrpcMetrics, GrpcMetricsLayer};
pub use service::{GET_PRIVATE_METHOD, PRIVATE_MESSAGE, PrivateService};
pub use signals::{shutdown_signal, stop_signals};
#[cfg(feature = "proxy")]
pub(crate) use web::is_grpc;
pub use web::{CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS, CorsOrigins, OnePort, OnePortLayer, Split};

use crate::{Clock, Gate, StartupError, keys::KeyStore, keys::Refresher};
use fallback::Fallback;
use health::{HealthGate, Readiness};
use metrics::Metrics;

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
    tls: Option<ServerTlsConfig>,
    limits: Limits,
    drain: Drain,
    cors: Option<CorsOrigins>,
    private_root: bool,
    /// Where requests no service claims go: set, the server is a proxy.
    forward: Option<Fallback>,
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
        let Application {
            listener,
            metrics_listener,
            refreshers,
            gate,
            routes,
            guarded,
            descriptor_sets,
            grpc_metrics,
            tls,
            limits,
            drain: drain_config,
            cors,
            private_root,
            forward,
            public,
            ..
        } = self;

        let stores: Vec<Arc<KeyStore>> = gate
            .issuers()
            .iter()
            .map(|issuer| issuer.keys().clone())
            .collect();
        let metrics_server = metrics_listener.map(|(listener, _)| {
            let metrics = Arc::new(Metrics::new(
                grpc_metrics.clone(),
                gate.clone(),
                stores.clone(),
            ));
            tokio::spawn(metrics::serve(listener, metrics, std::future::pending()))
        });

        let (reporter, health) = tonic_health::server::health_reporter();
        let readiness = Readiness::new(reporter, guarded).await;
        let ready_now = readiness.subscribe();
        let built_here = !refreshers.is_empty();
        gate.start(refreshers);
        let ready = readiness.clone().follow(stores);
        let ready_abort = ready.abort_handle();
        // Told when the listener has closed: the shutdown timeout runs from then.
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            drain.await;
            // Nothing may turn health back to SERVING from here on.
            ready_abort.abort();
            readiness.set(false).await;
            tracing::info!(
                drain_delay = ?drain_config.delay,
                "draining: health reports NOT_SERVING; still serving calls"
            );
            stop.await;
            tracing::info!(
                shutdown_timeout = ?drain_config.timeout,
                "shutting down: no new connections; finishing the calls in flight"
            );
            let _ = closed_tx.send(());
        };

        let gate_layer = public
            .iter()
            .try_fold(gate.layer(), |layer, path| layer.allow_path(path))
            .map_err(|e| StartupError::Config(format!("public path: {e}")))?
            .public_stream_max_age(limits.public_stream_max_age);
        // What a proxy forwards, its upstream may route by another reading
        // of the path: such paths are refused before the gate reads a token.
        let gate_layer = if forward.is_some() {
            gate_layer.refuse_ambiguous_paths()
        } else {
            gate_layer
        };
        // Plain HTTP passes the same gate, answered as RFC 6750 says: to the
        // upstream for a proxy, else to the seed's route (with the demo).
        let (routes, http) = match forward {
            // A proxy: health and reflection are the upstream's, but for
            // health while this side is not ready.
            Some(forward) => {
                let fallback = Fallback::new(HealthGate::new(forward.clone(), ready_now));
                let routes = routes.into_axum_router().fallback_service(fallback);
                (Routes::from(routes), HttpGate::new(gate.clone(), forward))
            }
            None => {
                let routes = local_public_services(routes, health, &descriptor_sets, &limits)?;
                let http = if private_root {
                    HttpGate::new(gate.clone(), Fallback::new(HttpRoutes::private_root()))
                        .check_as("/", GET_PRIVATE_METHOD)
                } else {
                    HttpGate::new(gate.clone(), Fallback::new(HttpRoutes::not_found()))
                };
                (routes, http)
            }
        };
        let http = http.public_as(&gate_layer);
        let mut server = Server::builder()
            .accept_http1(true)
            .timeout(limits.request_timeout)
            .http2_max_header_list_size(limits.max_header_list_bytes)
            .max_concurrent_streams(limits.max_concurrent_streams)
            .http2_keepalive_interval(Some(limits.keepalive_interval))
            .http2_keepalive_timeout(Some(limits.keepalive_timeout));
        if let Some(tls) = tls {
            server = server
                .tls_config(tls)
                .map_err(|e| StartupError::Tls(e.to_string()))?;
        }
        let incoming = incoming::bounded(listener, &limits);
        // CORS and plain HTTP outermost (after the call count), then
        // gRPC-Web made gRPC; then metrics, so that gRPC-Web calls are
        // counted as gRPC ones and refusals with their code; then the gate.
        let one_port = OnePortLayer::new(http, cors)
            .max_header_list_bytes(limits.max_header_list_bytes as usize);
        let metrics_layer = GrpcMetricsLayer::new(grpc_metrics);
        // One tonic server per connection, each with the same settings and
        // layers (all shared, nothing rebuilt), so that each connection can
        // be closed with GOAWAY on its own. Calls are counted outermost, then
        // metrics, so that refusals are counted with their code.
        let serve_one = move |stream, open_calls, close| {
            let router = server
                .clone()
                .layer(open_calls)
                .layer(one_port.clone())
                .layer(metrics_layer.clone())
                .layer(gate_layer.clone())
                .add_routes(routes.clone());
            // The one connection, then nothing more: a stream that ended
            // would make the server close the connection at once.
            let incoming = futures_util::stream::once(async { Ok::<_, io::Error>(stream) })
                .chain(futures_util::stream::pending());
            async move {
                if let Err(error) = router.serve_with_incoming_shutdown(incoming, close).await {
                    tracing::debug!(%error, "serving a connection failed");
                }
            }
        };
        let serving = connections::serve_each(
            incoming,
            connections::Lifetimes::new(&limits),
            shutdown,
            serve_one,
        );
        let timeout = drain_config.timeout;
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
            gate.stop_refreshing();
        }
        ready.abort();
        if let Some(metrics_server) = metrics_server {
            metrics_server.abort();
        }
        Ok(())
    }
}

/// `routes` with this server's own health and reflection added, each with
/// the message limit of the guarded services: they are the ones anyone may
/// call.
fn local_public_services(
    routes: Routes,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    descriptor_sets: &[&'static [u8]],
    limits: &Limits,
) -> Result<Routes, StartupError> {
    let reflection = || {
        descriptor_sets.iter().fold(
            tonic_reflection::server::Builder::configure(),
            |builder, set| builder.register_encoded_file_descriptor_set(set),
        )
    };
    let max_message = limits.max_message_bytes;
    let health = health.max_decoding_message_size(max_message);
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| StartupError::Config(format!("reflection: {e}")))?
        .max_decoding_message_size(max_message);
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| StartupError::Config(format!("reflection: {e}")))?
        .max_decoding_message_size(max_message);
    Ok(routes
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha))
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

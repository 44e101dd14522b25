//! Server assembly: binds first (so port 0 works), then serves the guarded
//! service with health and reflection, the refresher in the background, until
//! a shutdown future resolves.

use std::{future::Future, net::SocketAddr, sync::Arc};

use tokio::net::TcpListener;
use tonic::transport::{Server, ServerTlsConfig};
use tonic_health::ServingStatus;

mod config;
pub mod incoming;
pub mod metrics;
pub mod service;
mod signals;
mod tls;

pub use config::{Drain, IssuerConfig, Limits, ServerConfig, TlsFiles};
pub use signals::{shutdown_signal, stop_signals};

/// Code generated from `proto/authgate/v1/private.proto`.
#[allow(missing_docs, unreachable_pub, missing_debug_implementations)]
pub mod pb {
    tonic::include_proto!("authgate.v1");

    /// The encoded descriptor set that reflection serves.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/authgate_descriptor.bin"));
}

use crate::{
    error::StartupError,
    gate::auth::{AuthInterceptor, Clock, TrustedIssuer},
    gate::validate::Validator,
    keys::{KeyStore, Refresher},
    server::metrics::{GrpcMetrics, GrpcMetricsLayer, Metrics},
    server::pb::private_service_server::PrivateServiceServer,
    server::service::PrivateService,
};

/// A bound, not yet serving authgate server.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    /// The metrics listener and its address, when metrics are on.
    metrics_listener: Option<(TcpListener, SocketAddr)>,
    /// Each issuer's refresher, which alone writes its key store.
    refreshers: Vec<(String, Refresher)>,
    interceptor: AuthInterceptor,
    grpc_metrics: Arc<GrpcMetrics>,
    tls: Option<ServerTlsConfig>,
    limits: Limits,
    drain: Drain,
}

/// The health service name that answers SERVING while the process runs: the
/// one liveness probes ask for (`""` and the guarded service follow the keys
/// and the drain, for readiness).
pub const LIVENESS_SERVICE: &str = "grpc.health.v1.Health";

/// The descriptor sets of every service the server has: reflection serves
/// them, and the gRPC metrics know each method from them.
fn descriptor_sets() -> [&'static [u8]; 4] {
    [
        pb::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ]
}

impl Application {
    /// Binds `config.listen` and prepares everything; fails on bad TLS files.
    pub async fn build(config: ServerConfig) -> Result<Application, StartupError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: config.listen.to_string(),
                    source,
                })?;
        Application::with_listener(listener, config)
    }

    /// Prepares to serve on a listener the caller bound.
    pub fn with_listener(
        listener: TcpListener,
        config: ServerConfig,
    ) -> Result<Application, StartupError> {
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.listen.to_string(),
            source,
        })?;
        let tls = config.check_and_load_tls()?;
        let metrics_listener = config
            .metrics_listen
            .map(|addr| bind_now(addr, "metrics"))
            .transpose()?;
        let grpc_metrics = GrpcMetrics::from_descriptor_sets(&descriptor_sets())
            .map_err(|e| StartupError::Config(format!("descriptor sets: {e}")))?;
        let mut refreshers = Vec::with_capacity(config.issuers.len());
        let mut trusted = Vec::with_capacity(config.issuers.len());
        for issuer in &config.issuers {
            let keys = KeyStore::for_issuer(&issuer.validation.issuer);
            let refresher =
                Refresher::new(keys.clone(), issuer.jwks.clone(), config.refresh.clone())
                    .map_err(StartupError::HttpClient)?;
            refreshers.push((issuer.validation.issuer.clone(), refresher));
            trusted.push(TrustedIssuer::new(
                Validator::new(issuer.validation.clone()),
                keys,
            ));
        }
        let interceptor = AuthInterceptor::with_issuers(
            trusted,
            config.policy.clone(),
            config.token_cache_entries,
        );
        Ok(Application {
            listener,
            local_addr,
            metrics_listener,
            refreshers,
            interceptor,
            grpc_metrics: Arc::new(grpc_metrics),
            tls,
            limits: config.limits,
            drain: config.drain,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The key store the gate reads for the first issuer configured.
    pub fn keys(&self) -> Arc<KeyStore> {
        self.interceptor.issuers()[0].keys().clone()
    }

    /// Each issuer configured, with the key store the gate reads for it.
    pub fn key_stores(&self) -> impl Iterator<Item = (&str, &Arc<KeyStore>)> {
        self.interceptor
            .issuers()
            .iter()
            .map(|issuer| (issuer.issuer(), issuer.keys()))
    }

    /// Where metrics are served, when they are (useful with port 0).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|(_, addr)| *addr)
    }

    /// The gate, whose [`stats`](AuthInterceptor::stats) count its decisions.
    pub fn interceptor(&self) -> &AuthInterceptor {
        &self.interceptor
    }

    /// Makes the gate read the time from `clock`: for tests of expiry edges.
    pub fn with_clock(mut self, clock: Clock) -> Application {
        self.interceptor = self.interceptor.with_clock(clock);
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
            interceptor,
            grpc_metrics,
            tls,
            limits,
            drain: drain_config,
            ..
        } = self;

        let stores: Vec<Arc<KeyStore>> = interceptor
            .issuers()
            .iter()
            .map(|issuer| issuer.keys().clone())
            .collect();
        let metrics_server = metrics_listener.map(|(listener, _)| {
            let metrics = Arc::new(Metrics::new(
                grpc_metrics.clone(),
                interceptor.clone(),
                stores.clone(),
            ));
            tokio::spawn(metrics::serve(listener, metrics, std::future::pending()))
        });

        let (reporter, health) = tonic_health::server::health_reporter();
        // Not serving until the first key set has loaded: before that every
        // guarded call would be refused with UNAVAILABLE.
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        reporter
            .set_not_serving::<PrivateServiceServer<PrivateService>>()
            .await;
        // For liveness probes: SERVING for as long as the process answers,
        // whatever the keys and the drain. A pod whose issuer is down must
        // not be restarted: it would lose the last good key set.
        reporter
            .set_service_status(LIVENESS_SERVICE, ServingStatus::Serving)
            .await;
        let refreshers: Vec<_> = refreshers
            .into_iter()
            .map(|(issuer, refresher)| {
                let span = tracing::info_span!("jwks", issuer = %issuer);
                tokio::spawn(tracing::Instrument::instrument(refresher.run(), span))
            })
            .collect();
        // Serving exactly while some issuer's key set can check tokens: from
        // the first usable set, not while every issuer lists no usable key or
        // has gone stale, and again once keys are back. A change in any
        // store wakes the task, which then looks at them all.
        let changed = Arc::new(tokio::sync::Notify::new());
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
        let ready = {
            let reporter = reporter.clone();
            tokio::spawn(async move {
                // Dropping the set (when this task is aborted) stops the watchers.
                let _watchers = watchers;
                let mut serving = false;
                loop {
                    let usable = stores.iter().any(|s| s.availability().is_usable());
                    if usable != serving {
                        serving = usable;
                        type Guarded = PrivateServiceServer<PrivateService>;
                        if usable {
                            reporter.set_serving::<Guarded>().await;
                            reporter
                                .set_service_status("", ServingStatus::Serving)
                                .await;
                        } else {
                            reporter.set_not_serving::<Guarded>().await;
                            reporter
                                .set_service_status("", ServingStatus::NotServing)
                                .await;
                        }
                    }
                    changed.notified().await;
                }
            })
        };
        let ready_abort = ready.abort_handle();
        // Told when the listener has closed: the shutdown timeout runs from then.
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            drain.await;
            // Nothing may turn health back to SERVING from here on.
            ready_abort.abort();
            reporter
                .set_service_status("", ServingStatus::NotServing)
                .await;
            reporter
                .set_not_serving::<PrivateServiceServer<PrivateService>>()
                .await;
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

        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        // The public services get the same message limit as the guarded one:
        // they are the ones anyone may call.
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

        let mut server = Server::builder()
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
        let incoming =
            incoming::bounded(listener, limits.max_connections, limits.handshake_timeout);
        // Metrics outermost, so that refusals are counted with their code.
        let serving = server
            .layer(GrpcMetricsLayer::new(grpc_metrics))
            .layer(interceptor.layer())
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(
                PrivateServiceServer::new(PrivateService).max_decoding_message_size(max_message),
            )
            .serve_with_incoming_shutdown(incoming, shutdown);
        let timeout = drain_config.timeout;
        let timed_out = async move {
            if closed_rx.await.is_err() {
                // The server ended before closing: nothing to time.
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(timeout).await;
        };
        let result = tokio::select! {
            result = serving => result,
            () = timed_out => {
                tracing::warn!(
                    shutdown_timeout = ?timeout,
                    "calls still in flight at the shutdown timeout; closing them"
                );
                Ok(())
            }
        };
        for refresher in refreshers {
            refresher.abort();
        }
        ready.abort();
        if let Some(metrics_server) = metrics_server {
            metrics_server.abort();
        }
        result.map_err(StartupError::Serve)
    }
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

//! Server assembly: binds first (so port 0 works), then serves the guarded
//! service with health and reflection, the refresher in the background, until
//! a shutdown future resolves.

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;

pub mod incoming;
pub mod metrics;
pub mod service;

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
    gate::auth::{AuthInterceptor, Clock, ScopePolicy, TrustedIssuer},
    gate::validate::{ValidationConfig, Validator},
    keys::{JwksSource, KeyStore, RefreshConfig, Refresher},
    server::metrics::{GrpcMetrics, GrpcMetricsLayer, Metrics},
    server::pb::private_service_server::PrivateServiceServer,
    server::service::PrivateService,
};

/// Everything `authgate serve` needs, parsed and checked at the edge.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where gRPC is served.
    pub listen: SocketAddr,
    /// The issuers trusted, each with its own key set; at least one.
    pub issuers: Vec<IssuerConfig>,
    /// How each issuer's key set is refreshed.
    pub refresh: RefreshConfig,
    /// Which scopes each method needs.
    pub policy: ScopePolicy,
    /// Serve TLS with this certificate chain and key (PEM files).
    pub tls: Option<TlsFiles>,
    /// Bounds a client cannot push the server past.
    pub limits: Limits,
    /// How many verified tokens to remember (0: verify every call).
    pub token_cache_entries: usize,
    /// Serve Prometheus metrics at `GET /metrics` on this address.
    pub metrics_listen: Option<SocketAddr>,
    /// How the server stops.
    pub drain: Drain,
}

/// One trusted issuer: what its tokens must say, and where its keys come from.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// The exact `iss`, the audiences accepted and the leeway.
    pub validation: ValidationConfig,
    /// Where its key set comes from.
    pub jwks: JwksSource,
}

impl IssuerConfig {
    /// An issuer whose keys come through its OIDC discovery (the usual
    /// `{issuer}.well-known/jwks.json` when it has none).
    pub fn discovered(
        issuer: &str,
        audiences: Vec<String>,
        leeway: Duration,
    ) -> Result<IssuerConfig, crate::error::UrlError> {
        let url = crate::net::parse_issuer_url("issuer", issuer)?;
        Ok(IssuerConfig {
            validation: ValidationConfig {
                issuer: issuer.to_owned(),
                audiences,
                leeway,
                require_typ: None,
            },
            jwks: JwksSource::Discovery {
                issuer: issuer.to_owned(),
                url,
            },
        })
    }
}

impl ServerConfig {
    /// Checks what can be checked without the network or binding: the
    /// issuers (at least one, none twice, each with an audience), the
    /// refresh intervals, and the TLS files, which are read and parsed.
    pub fn check(&self) -> Result<(), StartupError> {
        self.check_and_load_tls().map(drop)
    }

    fn check_and_load_tls(&self) -> Result<Option<ServerTlsConfig>, StartupError> {
        if self.refresh.min_interval > self.refresh.interval {
            return Err(StartupError::Config(format!(
                "--jwks-min-refresh-interval ({:?}) exceeds --jwks-refresh-interval ({:?})",
                self.refresh.min_interval, self.refresh.interval
            )));
        }
        if self.refresh.max_stale < self.refresh.interval.saturating_mul(2) {
            return Err(StartupError::Config(format!(
                "--jwks-max-stale ({:?}) must be at least twice --jwks-refresh-interval ({:?}), \
                 or one late refresh would drop the key set",
                self.refresh.max_stale, self.refresh.interval
            )));
        }
        if self.issuers.is_empty() {
            return Err(StartupError::Config(
                "at least one issuer is required".into(),
            ));
        }
        for (i, issuer) in self.issuers.iter().enumerate() {
            let name = &issuer.validation.issuer;
            if self.issuers[..i]
                .iter()
                .any(|o| o.validation.issuer == *name)
            {
                return Err(StartupError::Config(format!(
                    "issuer `{name}` is configured twice"
                )));
            }
            if issuer.validation.audiences.is_empty() {
                return Err(StartupError::Config(format!(
                    "at least one audience is required (issuer `{name}` has none)"
                )));
            }
        }
        self.tls
            .as_ref()
            .map(|files| load_tls(files, self.limits.handshake_timeout))
            .transpose()
    }
}

/// How the server stops once asked: health turns `NOT_SERVING` at once,
/// calls keep being served for `delay` so that load balancers and kubelets
/// see it and send no more, then the listener closes and calls in flight
/// have `timeout` to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drain {
    /// How long to keep serving while reporting `NOT_SERVING`.
    pub delay: Duration,
    /// How long calls in flight may take once the listener has closed.
    pub timeout: Duration,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            delay: Duration::ZERO,
            timeout: Duration::from_secs(30),
        }
    }
}

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// Server limits, each a defence against a client that would exhaust us.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once; past it, accepting waits for one to close.
    pub max_connections: usize,
    /// How long a new connection may stay silent before it is closed.
    pub handshake_timeout: Duration,
    /// Largest header block a client may send (HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`).
    pub max_header_list_bytes: u32,
    /// Largest request message decoded.
    pub max_message_bytes: usize,
    /// Streams a connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Longest a call may run before it is cancelled.
    pub request_timeout: Duration,
    /// HTTP/2 ping interval on idle connections; a peer that does not answer
    /// within `keepalive_timeout` is dropped.
    pub keepalive_interval: Duration,
    /// How long to wait for a ping's answer.
    pub keepalive_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            handshake_timeout: Duration::from_secs(10),
            max_header_list_bytes: 16 * 1024,
            max_message_bytes: 64 * 1024,
            max_concurrent_streams: 256,
            request_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
        }
    }
}

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

fn load_tls(
    files: &TlsFiles,
    handshake_timeout: Duration,
) -> Result<ServerTlsConfig, StartupError> {
    let read = |path: &PathBuf| {
        std::fs::read(path)
            .map_err(|e| StartupError::Tls(format!("cannot read {}: {e}", path.display())))
    };
    let identity = Identity::from_pem(read(&files.cert)?, read(&files.key)?);
    let config = ServerTlsConfig::new()
        .identity(identity)
        .timeout(handshake_timeout);
    // Parse the certificate and key now, so a bad file stops start-up
    // instead of the first handshake.
    Server::builder()
        .tls_config(config.clone())
        .map_err(|e| StartupError::Tls(e.to_string()))?;
    Ok(config)
}

/// The first and the second SIGTERM or SIGINT (Ctrl-C), for
/// [`Application::run_draining`]: the first starts the drain, and a second
/// ends its delay at once (`stop` = the delay or the second signal, whichever
/// comes first). Both signals are listened for from this call on, so a
/// second that follows quickly is not lost. Call it within a Tokio runtime.
pub fn stop_signals() -> (
    impl Future<Output = ()> + Send + 'static,
    impl Future<Output = ()> + Send + 'static,
) {
    let (each_tx, mut each) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    let mut listeners = Vec::new();
    #[cfg(unix)]
    for (kind, name) in [
        (tokio::signal::unix::SignalKind::terminate(), "SIGTERM"),
        (tokio::signal::unix::SignalKind::interrupt(), "SIGINT"),
    ] {
        match tokio::signal::unix::signal(kind) {
            Ok(mut signal) => {
                let each_tx = each_tx.clone();
                listeners.push(tokio::spawn(async move {
                    while signal.recv().await.is_some() && each_tx.send(name).is_ok() {}
                }));
            }
            Err(error) => tracing::warn!(%error, "cannot listen for {name}"),
        }
    }
    #[cfg(not(unix))]
    {
        let each_tx = each_tx.clone();
        listeners.push(tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() && each_tx.send("Ctrl-C").is_ok() {}
        }));
    }
    drop(each_tx);
    let (first_tx, first) = tokio::sync::oneshot::channel::<()>();
    let (second_tx, second) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        if let Some(name) = each.recv().await {
            tracing::info!(signal = name, "asked to stop");
            let _ = first_tx.send(());
        }
        if let Some(name) = each.recv().await {
            tracing::info!(signal = name, "asked again: ending the drain delay now");
            let _ = second_tx.send(());
        }
        for listener in listeners {
            listener.abort();
        }
    });
    // A sender dropped unsent (no signal can be listened for) never resolves.
    let resolve = |rx: tokio::sync::oneshot::Receiver<()>| async move {
        if rx.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    (resolve(first), resolve(second))
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("asked to stop");
}

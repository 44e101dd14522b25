//! [`ApplicationBuilder`]: your services, their descriptor sets and the
//! gate, checked (every scope rule must name a method the server has) and
//! bound into an [`Application`].

use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc};

use tokio::net::TcpListener;
use tonic::{body::Body, server::NamedService, service::RoutesBuilder};

use super::{
    Application, CorsOrigins, GrpcMetrics, PrivateService, ServerConfig,
    decider::Decider,
    fallback::{self, Fallback},
    rules::check_rules,
};
use crate::{Clock, Gate, StartupError};

/// Reflection's own descriptor sets, for the metrics' method table.
const REFLECTION_SETS: [&[u8]; 2] = [
    tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
];

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
}

/// Assembles a server around your services; see the [`server`](crate::server) module.
#[derive(Debug)]
pub struct ApplicationBuilder {
    pub(super) config: ServerConfig,
    /// A gate built elsewhere, instead of one from `config.gate`.
    pub(super) gate: Option<Gate>,
    pub(super) routes: RoutesBuilder,
    /// The guarded services' names, whose health follows the keys.
    pub(super) guarded: Vec<&'static str>,
    pub(super) descriptor_sets: Vec<&'static [u8]>,
    pub(super) clock: Option<Clock>,
    /// Whether a scope rule for a method this server lacks is only warned
    /// about (a proxy's upstream, `authgate dev`'s rules for your service).
    pub(super) warn_unknown_rules: bool,
    /// Whether plain `GET /` answers as the demo's `GetPrivate` does.
    pub(super) private_root: bool,
    /// Where requests no service claims go: set, the server is a proxy.
    pub(super) forward: Option<Fallback>,
    /// What answers for other proxies: set, the server decides for them.
    pub(super) decider: Option<Decider>,
    /// Paths open without a token besides health and reflection, as written.
    pub(super) public: Vec<String>,
    /// Descriptor sets that name methods for the metrics alone.
    pub(super) metrics_sets: Vec<Vec<u8>>,
}

impl ApplicationBuilder {
    /// Warns about, rather than refuses, scope rules for methods this
    /// server does not have: for a server whose methods are not all known
    /// here (a proxy), or whose rules serve another purpose (`authgate
    /// dev` grants the scopes its rules name).
    pub fn warn_on_unknown_rules(mut self) -> Self {
        self.warn_unknown_rules = true;
        self
    }

    /// Serves `service` behind the gate; its health (by its full name)
    /// follows the keys and the drain.
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: tower_service::Service<::http::Request<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.guarded.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    /// Adds authgate's demo service, `authgate.v1.PrivateService`, with its
    /// descriptor set and the configured message size limit, and the seed's
    /// plain HTTP route: `GET /` answers `{"message": "This is private"}`
    /// under `GetPrivate`'s scope rules. What `authgate serve` serves.
    pub fn add_demo_service(mut self) -> Self {
        let demo = PrivateService::server(&self.config.limits);
        self.private_root = true;
        self.add_service(demo)
            .descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
    }

    /// An encoded `FileDescriptorSet` of your services (what
    /// `tonic_prost_build`'s `file_descriptor_set_path` writes): reflection
    /// serves it, so grpcurl needs no `.proto`, and the metrics name each
    /// method from it.
    pub fn descriptor_set(mut self, encoded: &'static [u8]) -> Self {
        self.descriptor_sets.push(encoded);
        self
    }

    /// Guards with `gate`, built elsewhere (and already refreshing its
    /// keys), instead of building one from the configuration's `gate`.
    pub fn gate(mut self, gate: Gate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Makes the gate read the time from `clock`: for tests of expiry edges.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Sends every request that no added service claims to `service`,
    /// behind the same gate, limits and metrics, plain HTTP too: a reverse
    /// proxy (what `authgate proxy` builds). Health and reflection are then
    /// `service`'s, not served here, except that while no issuer has a
    /// usable key set, and while draining, health calls are answered here:
    /// `NOT_SERVING`. The gate puts the caller's [`Principal`](crate::Principal)
    /// in the request's extensions. Scope rules for methods not known here
    /// are warned about, not refused.
    pub fn forward_to<S>(mut self, service: S) -> Self
    where
        S: tower_service::Service<
                ::http::Request<Body>,
                Response = ::http::Response<Body>,
                Error = Infallible,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.forward = Some(fallback::fallback(service));
        self.warn_unknown_rules = true;
        self
    }

    /// Makes this server answer for other proxies (`authgate authz`):
    /// `decider`'s gRPC services beside health and reflection, its own
    /// service for every other request. Scope rules may then name any path.
    #[cfg_attr(not(feature = "authz"), allow(dead_code))]
    pub(crate) fn decide_for_others(mut self, decider: Decider) -> Self {
        self.guarded.extend(decider.services);
        self.decider = Some(decider);
        self
    }

    /// Also lets requests for `path` through without a token: a path
    /// exactly, or `/prefix/*` for every path under it (see
    /// [`GateLayer::allow_path`](crate::GateLayer::allow_path)). A pattern
    /// that is neither fails [`ApplicationBuilder::check`] and `bind`.
    pub fn public_path(mut self, path: impl Into<String>) -> Self {
        self.public.push(path.into());
        self
    }

    /// An encoded `FileDescriptorSet` whose methods the metrics name (and
    /// the scope rules are checked against), for services that this server
    /// does not serve itself (a proxy's upstream's): reflection does not
    /// serve it.
    pub fn metrics_descriptor_set(mut self, encoded: Vec<u8>) -> Self {
        self.metrics_sets.push(encoded);
        self
    }

    /// Binds `config.listen` and prepares everything; fails on bad TLS
    /// files and on anything the configuration cannot mean.
    pub async fn bind(self) -> Result<Application, StartupError> {
        let listen = self.config.listen;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| StartupError::Bind {
                addr: listen.to_string(),
                source,
            })?;
        self.with_listener(listener)
    }

    /// Binds, then serves until `shutdown` resolves and drains as the
    /// configuration says: [`ApplicationBuilder::bind`], then
    /// [`Application::run_until`].
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), StartupError> {
        self.bind().await?.run_until(shutdown).await
    }

    /// Checks everything that can be checked without binding or the
    /// network: the configuration, the TLS files, and that every scope rule
    /// names a method this server has (a typo such as `GetPrivat` would
    /// otherwise leave the real method open to any valid token). Returns
    /// what start-up would warn about.
    pub fn check(&self) -> Result<Vec<String>, StartupError> {
        let policy = match &self.gate {
            Some(gate) => gate.scope_policy().clone(),
            None => {
                self.config.check()?;
                self.config.policy.clone()
            }
        };
        self.config.check_and_load_tls()?;
        for path in &self.public {
            crate::GateLayer::check_path(path)
                .map_err(|e| StartupError::Config(format!("public path: {e}")))?;
        }
        // The methods known, not those the rules name.
        let methods = GrpcMetrics::from_descriptor_sets(&self.all_sets())
            .map_err(|e| StartupError::Config(format!("descriptor sets: {e}")))?;
        let mut warnings = self.warnings();
        let upstream_described = self.forward.is_some() && !self.metrics_sets.is_empty();
        if self.decider.is_some() {
            // Its rules are about another proxy's paths, which it cannot know.
            return Ok(warnings);
        }
        match check_rules(&policy, &self.guarded, &methods, upstream_described) {
            Err(StartupError::Config(why)) if self.warn_unknown_rules => warnings.push(why),
            checked => checked?,
        }
        Ok(warnings)
    }

    /// Every descriptor set: the services', health's, reflection's, and
    /// those for the metrics alone.
    fn all_sets(&self) -> Vec<&[u8]> {
        self.descriptor_sets
            .iter()
            .copied()
            .chain(REFLECTION_SETS)
            .chain([tonic_health::pb::FILE_DESCRIPTOR_SET])
            .chain(self.metrics_sets.iter().map(Vec::as_slice))
            .collect()
    }

    /// The method table of the metrics: every descriptor set's methods, and
    /// for a proxy, the paths its scope rules and public paths name.
    fn grpc_metrics(&self, policy: &crate::ScopePolicy) -> Result<GrpcMetrics, StartupError> {
        let named: Vec<&str> = if self.forward.is_some() {
            let public = self.public.iter().map(String::as_str);
            policy.method_paths().chain(public).collect()
        } else {
            Vec::new()
        };
        GrpcMetrics::from_descriptor_sets_and_paths(&self.all_sets(), named)
            .map_err(|e| StartupError::Config(format!("descriptor sets: {e}")))
    }

    /// What is allowed but likely a mistake.
    fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let listen = self.config.listen;
        if self.config.tls.is_none() && !listen.ip().is_loopback() {
            warnings.push(format!(
                "serving plaintext on {listen}, a non-loopback address: bearer tokens cross \
                 the network unencrypted; use --tls-cert/--tls-key or a TLS-terminating proxy"
            ));
        }
        if let Some(metrics) = self.config.metrics_listen.filter(|m| !m.ip().is_loopback()) {
            warnings.push(format!(
                "metrics on {metrics}, a non-loopback address: anyone who reaches it reads \
                 them without a token; bind it to loopback or a private network"
            ));
        }
        warnings
    }

    /// Prepares to serve on a listener the caller bound.
    pub fn with_listener(self, listener: TcpListener) -> Result<Application, StartupError> {
        for warning in self.check()? {
            tracing::warn!("{warning}");
        }
        let policy = match &self.gate {
            Some(gate) => gate.scope_policy().clone(),
            None => self.config.policy.clone(),
        };
        let grpc_metrics = self.grpc_metrics(&policy)?;
        let ApplicationBuilder {
            config,
            gate,
            routes,
            guarded,
            mut descriptor_sets,
            clock,
            private_root,
            forward,
            decider,
            public,
            ..
        } = self;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.listen.to_string(),
            source,
        })?;
        let tls = config.check_and_load_tls()?;
        let cors = CorsOrigins::parse(&config.cors_allow_origins)?;
        let (gate, refreshers) = match gate {
            Some(gate) => (gate, Vec::new()),
            None => config.gate().build_unstarted()?,
        };
        let gate = match clock {
            Some(clock) => gate.with_clock(clock),
            None => gate,
        };
        let metrics_listener = config
            .metrics_listen
            .map(|addr| bind_now(addr, "metrics"))
            .transpose()?;
        // Reflection lists your services and health.
        descriptor_sets.push(tonic_health::pb::FILE_DESCRIPTOR_SET);
        Ok(Application {
            listener,
            local_addr,
            metrics_listener,
            refreshers,
            gate,
            routes: routes.routes(),
            guarded: guarded.into(),
            descriptor_sets,
            grpc_metrics: Arc::new(grpc_metrics),
            tls,
            limits: config.limits,
            drain: config.drain,
            cors,
            private_root,
            forward,
            decider,
            public,
        })
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

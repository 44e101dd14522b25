//! The stack every connection of the server serves, built once with its
//! layer order written once ([`Stack::build`]), and the server's own
//! health and reflection beside the services.

use std::sync::Arc;

use tonic::service::Routes;
use tower::util::Either;
use tower_layer::Layer;

use super::{
    CorsOrigins, GET_PRIVATE_METHOD, GrpcMetrics, GrpcMetricsLayer, HttpGate, Limits, OnePort,
    OnePortLayer,
    decider::Decider,
    fallback::Fallback,
    timeout::{GrpcTimeout, GrpcTimeoutLayer, HttpTimeout},
};
use crate::{Gate, GateLayer, StartupError};

/// What the server's stack is built from.
pub(super) struct Stack<'a> {
    pub(super) gate: &'a Gate,
    pub(super) public: &'a [String],
    pub(super) limits: &'a Limits,
    pub(super) cors: Option<CorsOrigins>,
    pub(super) metrics: Arc<GrpcMetrics>,
}

/// The stack every connection serves (each adds its own call count in
/// front, for the idle timeout).
pub(super) type App = OnePort<
    super::metrics::layer::GrpcMetricsService<GrpcTimeout<crate::GateService<Routes>>>,
    HttpTimeout<Either<HttpGate<Fallback>, Fallback>>,
>;

/// What answers besides the gRPC routes, and so how the gate is set.
pub(super) enum Front {
    /// `serve`: plain HTTP to these routes, behind the gate.
    Serve(Fallback),
    /// A proxy: everything no route claims to this, behind the gate, with
    /// paths its upstream may read otherwise refused first.
    Proxy(Fallback),
    /// A server that answers for other proxies: its routes and its plain
    /// HTTP make the decision themselves, about the requests asked about.
    Decide(Decider),
}

impl Stack<'_> {
    /// The layers in front of `routes` (gRPC) and `front` (plain HTTP),
    /// outermost first:
    ///
    /// 1. CORS for the allowed origins, so that preflights need no token
    ///    and refusals carry `Access-Control-Allow-Origin`; then plain HTTP
    ///    split off to its front, and gRPC-Web made gRPC (`OnePort`);
    /// 2. gRPC: the metrics, which so count gRPC-Web calls as gRPC ones and
    ///    refusals with their code;
    /// 3. gRPC: the request timeout (the call's own `grpc-timeout` if
    ///    shorter), plain HTTP: the request timeout;
    /// 4. the gate's one decision, rendered for gRPC or plain HTTP; for a
    ///    proxy, refusing first the paths its upstream may read otherwise;
    ///    a decider renders it itself, for the requests it is asked about;
    /// 5. the services, or what answers plain HTTP.
    pub(super) fn build(self, routes: Routes, front: Front) -> Result<App, StartupError> {
        let gate = self
            .public
            .iter()
            .try_fold(self.gate.layer(), |layer, path| layer.allow_path(path))
            .map_err(|e| StartupError::Config(format!("public path: {e}")))?
            .public_stream_max_age(self.limits.public_stream_max_age);
        let http_gate =
            |http, gate: &GateLayer| HttpGate::new(self.gate.clone(), http).public_as(gate);
        let (grpc_gate, routes, http, grpc_under) = match front {
            Front::Serve(http) => {
                // `GET /` is the seed's `GetPrivate` (the routes answer 404
                // to other paths and without the demo service).
                let http = http_gate(http, &gate).check_as("/", GET_PRIVATE_METHOD);
                (gate, routes, Either::Left(http), None)
            }
            Front::Proxy(http) => {
                let gate = gate.refuse_ambiguous_paths();
                let http = http_gate(http, &gate);
                (gate, routes, Either::Left(http), None)
            }
            Front::Decide(decider) => {
                // The requests asked about are another proxy's: paths it
                // may read otherwise are refused, as a proxy's are.
                let decision = gate.clone().refuse_ambiguous_paths();
                let (routes, http) = (decider.build)(&decision, routes, self.limits);
                // Only the decider's own services and health and
                // reflection are gRPC here; any other call is a question.
                let services = decider.services.iter().chain(&crate::PUBLIC_SERVICES);
                let under = services.clone().map(|s| format!("/{s}/")).collect();
                let gate = decider
                    .services
                    .iter()
                    .fold(gate, |gate, service| gate.allow_unauthenticated(service));
                (gate, routes, Either::Right(http), Some(under))
            }
        };
        let timeout = self.limits.request_timeout;
        let grpc = GrpcMetricsLayer::new(self.metrics)
            .layer(GrpcTimeoutLayer(timeout).layer(grpc_gate.layer(routes)));
        let http = HttpTimeout::new(http, timeout);
        let one_port = OnePortLayer::new(http, self.cors)
            .max_header_list_bytes(self.limits.max_header_list_bytes as usize);
        let one_port = match grpc_under {
            Some(under) => one_port.grpc_only_under(under),
            None => one_port,
        };
        Ok(one_port.layer(grpc))
    }
}

/// `routes` with this server's own health and reflection added, each with
/// the message limit of the guarded services: they are the ones anyone may
/// call.
pub(super) fn local_public_services(
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

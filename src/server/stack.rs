//! The stack every connection of the server serves, built once with its
//! layer order written once ([`Stack::build`]), and the server's own
//! health and reflection beside the services.

use std::sync::Arc;

use tonic::service::Routes;
use tower_layer::Layer;

use super::{
    CorsOrigins, GET_PRIVATE_METHOD, GrpcMetrics, GrpcMetricsLayer, HttpGate, Limits, OnePort,
    OnePortLayer,
    fallback::Fallback,
    timeout::{GrpcTimeout, GrpcTimeoutLayer, HttpTimeout},
};
use crate::{Gate, StartupError};

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
    HttpTimeout<HttpGate<Fallback>>,
>;

impl Stack<'_> {
    /// The layers in front of `routes` (gRPC) and `http` (plain HTTP),
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
    /// 5. the services, or what answers plain HTTP.
    pub(super) fn build(
        self,
        routes: Routes,
        http: Fallback,
        proxy: bool,
    ) -> Result<App, StartupError> {
        let gate = self
            .public
            .iter()
            .try_fold(self.gate.layer(), |layer, path| layer.allow_path(path))
            .map_err(|e| StartupError::Config(format!("public path: {e}")))?
            .public_stream_max_age(self.limits.public_stream_max_age);
        let gate = if proxy {
            gate.refuse_ambiguous_paths()
        } else {
            gate
        };
        let mut http = HttpGate::new(self.gate.clone(), http).public_as(&gate);
        if !proxy {
            // `GET /` is the seed's `GetPrivate` (the routes answer 404 to
            // other paths and without the demo service).
            http = http.check_as("/", GET_PRIVATE_METHOD);
        }
        let timeout = self.limits.request_timeout;
        let grpc = GrpcMetricsLayer::new(self.metrics)
            .layer(GrpcTimeoutLayer(timeout).layer(gate.layer(routes)));
        let http = HttpTimeout::new(http, timeout);
        Ok(OnePortLayer::new(http, self.cors)
            .max_header_list_bytes(self.limits.max_header_list_bytes as usize)
            .layer(grpc))
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

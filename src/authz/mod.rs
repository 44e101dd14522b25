//! `authgate authz`: the gate's decision for the proxy a team already runs.
//! One port answers Envoy's ext_authz v3 `Check` (with health and
//! reflection) and HTTP forward auth (every other request), each about the
//! original request the proxy received: the same keys, scope rules, public
//! paths and ambiguous-path refusal as `proxy`, the caller named in the
//! same `x-authgate-*` headers, refusals as the same RFC 6750 answers.
//!
//! ```no_run
//! # use authgate::{authz::Authz, server::{Application, ServerConfig}};
//! # async fn run(config: ServerConfig) -> Result<(), authgate::StartupError> {
//! Authz::new()
//!     .install(Application::builder(config))
//!     .serve(authgate::server::shutdown_signal())
//!     .await
//! # }
//! ```
//!
//! The parts: `original` reads nothing but builds the request asked about
//! and asks the gate ([`GateLayer::admit`](crate::GateLayer)); `check` and
//! `forward_auth` read their protocol's question into it and render the
//! answer.

use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::AuthorizationServer;

use crate::server::{ApplicationBuilder, Decider, fallback};

mod check;
mod forward_auth;
mod original;

pub use check::AUTHORIZATION_SERVICE;

/// What `authz` answers, beside the gate's own settings.
#[derive(Debug, Clone, Default)]
pub struct Authz {
    forward_authorization: bool,
    path_prefix: String,
}

impl Authz {
    /// Answers with `authorization` removed from what reaches the upstream,
    /// and the original path of HTTP forward auth taken whole.
    pub fn new() -> Authz {
        Authz::default()
    }

    /// Keeps the caller's `authorization` for the upstream (`Check` asks
    /// Envoy to remove it by default).
    pub fn forward_authorization(mut self, forward: bool) -> Authz {
        self.forward_authorization = forward;
        self
    }

    /// What stands before the original path in a forward auth request's
    /// own path when no `X-Forwarded-Uri` or `X-Original-URI` says it
    /// (Envoy's HTTP ext_authz `path_prefix`); none by default.
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Authz {
        self.path_prefix = prefix.into();
        self
    }

    /// Makes `app` answer for the proxy in front instead of serving:
    /// `Check`, health and reflection over gRPC, forward auth for every
    /// other request. Its scope rules and public paths are about the
    /// proxy's requests, so may name any path.
    pub fn install(self, app: ApplicationBuilder) -> ApplicationBuilder {
        let Authz {
            forward_authorization,
            path_prefix,
        } = self;
        let build: crate::server::BuildDecider = Box::new(move |layer, routes, limits| {
            let check = check::CheckService {
                layer: layer.clone(),
                forward_authorization,
            };
            let forward = forward_auth::ForwardAuth {
                layer: layer.clone(),
                path_prefix: Arc::from(path_prefix),
            };
            (
                // The message limit of every service on the port.
                routes.add_service(
                    AuthorizationServer::new(check)
                        .max_decoding_message_size(limits.max_message_bytes),
                ),
                fallback(forward),
            )
        });
        app.descriptor_set(DESCRIPTOR_SET)
            .decide_for_others(Decider {
                services: &[AUTHORIZATION_SERVICE],
                build,
            })
    }
}

/// Envoy's `external_auth.proto` and its imports, compiled by `build.rs`:
/// reflection serves it and the metrics name `Check` from it.
const DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/envoy_authz_descriptor.bin"));

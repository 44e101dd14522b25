//! [`Decider`]: what a server serves when it answers for another proxy
//! instead of serving or forwarding (`authgate authz`): gRPC services of its
//! own that proxies ask, and a service for every other request, both built
//! around the gate's one decision as this server configures it.

use tonic::service::Routes;

use super::{Limits, fallback::Fallback};
use crate::GateLayer;

/// Builds a decider's gRPC routes (given health and reflection) and the
/// service that answers every other request, from the decision and the
/// server's limits.
pub(crate) type BuildDecider =
    Box<dyn FnOnce(&GateLayer, Routes, &Limits) -> (Routes, Fallback) + Send + Sync>;

/// A server's answers about requests that other proxies receive.
pub(crate) struct Decider {
    /// The gRPC services it adds, by full name: open to gRPC without a
    /// token (their callers are proxies, whose questions carry the token),
    /// their health following the keys as a guarded service's does.
    pub(crate) services: &'static [&'static str],
    /// Its routes and its other requests' service.
    pub(crate) build: BuildDecider,
}

impl std::fmt::Debug for Decider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decider")
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

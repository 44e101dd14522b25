//! The start-up check that every scope rule names a method the server
//! has: a typo such as `GetPrivat` would otherwise leave the real method
//! open to any valid token.

use super::GrpcMetrics;
use crate::StartupError;

/// Refuses a scope rule for a method this server does not have: one of a
/// known service (its descriptor set given) that lists no such method, a
/// service that is neither served nor public, or, for a proxy whose
/// upstream described itself, a gRPC service (`/package.Service/...`) the
/// upstream does not list.
pub(super) fn check_rules(
    policy: &crate::ScopePolicy,
    guarded: &[&str],
    methods: &GrpcMetrics,
    upstream_described: bool,
) -> Result<(), StartupError> {
    let known = |service: &str| methods.methods().iter().any(|m| *m.service == *service);
    let service_of = |path: &str| {
        let rest = path.strip_prefix('/').unwrap_or(path);
        rest.split_once('/')
            .map_or(rest, |(service, _)| service)
            .to_owned()
    };
    for (http_method, path) in policy.bound_methods() {
        let service = service_of(path);
        let grpc = known(&service)
            || guarded.contains(&service.as_str())
            || crate::PUBLIC_SERVICES.contains(&service.as_str());
        if grpc && http_method != "POST" {
            return Err(StartupError::Config(format!(
                "the scope rule for `{http_method} {path}` binds {http_method} requests to a gRPC \
                 service, whose calls are all POST: it would guard nothing (write it without a \
                 method, or with POST)"
            )));
        }
    }
    for path in policy.paths() {
        if path == "/*" {
            continue; // every path: it guards whatever there is
        }
        let rest = path.strip_prefix('/').unwrap_or(&path);
        let (service, method) = rest.split_once('/').unwrap_or((rest, ""));
        let hosted = guarded.contains(&service) || crate::PUBLIC_SERVICES.contains(&service);
        let missing = if known(service) {
            method != "*"
                && !methods
                    .methods()
                    .iter()
                    .any(|m| *m.service == *service && *m.method == *method)
        } else if upstream_described {
            // An HTTP path is the upstream's business; a gRPC service's
            // name has a package.
            service.contains('.') && !hosted
        } else {
            !guarded.is_empty() && !hosted
        };
        if missing {
            let listed = |service: &str| {
                if upstream_described {
                    !crate::PUBLIC_SERVICES.contains(&service)
                } else {
                    guarded.contains(&service)
                }
            };
            let have: Vec<String> = methods
                .methods()
                .iter()
                .filter(|m| listed(&m.service))
                .map(|m| format!("/{}/{}", m.service, m.method))
                .collect();
            let whose = if upstream_described {
                "the upstream's reflection does not list"
            } else {
                "this server does not have"
            };
            return Err(StartupError::Config(format!(
                "the scope rule for `{path}` names a method {whose}, so it would guard \
                 nothing (its methods: {})",
                if have.is_empty() {
                    "none known".into()
                } else {
                    have.join(", ")
                }
            )));
        }
    }
    Ok(())
}

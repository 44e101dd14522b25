//! Paths open without a token: health and reflection to gRPC alone, and
//! what a server opens (`--public`) to every protocol; exactly, or every
//! path under a prefix.

use super::pattern::PathPattern;

/// A path open without a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PublicPath {
    pattern: PathPattern,
    /// Open to gRPC and gRPC-Web calls only: health and reflection, whose
    /// paths, asked by plain HTTP, would reach an HTTP upstream's own routes.
    grpc_only: bool,
}

impl PublicPath {
    /// Every method of a gRPC service, to gRPC calls only.
    pub(super) fn grpc_service(service: &str) -> PublicPath {
        PublicPath {
            pattern: PathPattern::Prefix(format!("/{service}/").into()),
            grpc_only: true,
        }
    }

    pub(super) fn matches(&self, path: &str, grpc: bool) -> bool {
        if self.grpc_only && !grpc {
            return false;
        }
        self.pattern.matches(path)
    }
}

/// A public path as `--public` takes it: `/exact/path` or `/prefix/*`,
/// open to every protocol.
pub(super) fn parse_public_path(path: &str) -> Result<PublicPath, String> {
    let wrong = || {
        format!(
            "`{path}` is not a path such as /echo.v1.Echo/Unary, or /prefix/* for every path under it"
        )
    };
    if !path.starts_with('/') || path.contains(char::is_whitespace) {
        return Err(wrong());
    }
    let pattern = PathPattern::parse(path);
    // No `*` but the one that ends `/prefix/*`.
    let stars = usize::from(matches!(pattern, PathPattern::Prefix(_)));
    if path.matches('*').count() > stars {
        return Err(wrong());
    }
    Ok(PublicPath {
        pattern,
        grpc_only: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_paths_are_exact_or_a_prefix() {
        let exact = parse_public_path("/echo.v1.Echo/Unary").unwrap();
        assert!(exact.matches("/echo.v1.Echo/Unary", true));
        assert!(exact.matches("/echo.v1.Echo/Unary", false));
        assert!(!exact.matches("/echo.v1.Echo/UnaryX", true));
        let prefix = parse_public_path("/docs/*").unwrap();
        assert!(prefix.matches("/docs/", false));
        assert!(prefix.matches("/docs/a/b", false));
        assert!(!prefix.matches("/docs", false));
        assert!(!prefix.matches("/docsx/a", false));
        assert!(parse_public_path("/*").unwrap().matches("/anything", false));
        for bad in ["docs/*", "/docs*", "/a/*/b", "/a b", "", "/a/**"] {
            assert!(parse_public_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn health_and_reflection_are_public_to_grpc_only() {
        let health = PublicPath::grpc_service("grpc.health.v1.Health");
        assert!(health.matches("/grpc.health.v1.Health/Check", true));
        assert!(!health.matches("/grpc.health.v1.Health/Check", false));
        assert!(!health.matches("/grpc.health.v1.Health/orders", false));
    }
}

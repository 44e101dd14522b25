//! The request a proxy asks about, read from its question, and the gate's
//! one decision on it: the same [`GateLayer::admit`](crate::GateLayer) as
//! every other front, on a request built from what the proxy says the
//! original was.

use http::{HeaderMap, Method, Request};
use tonic::transport::server::TcpConnectInfo;

use crate::{AuthError, GateLayer, Principal};

/// The request a proxy received and asks about.
#[derive(Debug)]
pub(crate) struct Original {
    /// Its method, as the proxy wrote it.
    pub(crate) method: String,
    /// Its path, with any query and fragment: they are cut here.
    pub(crate) path: String,
    /// Its headers: the credentials, and the media type that tells gRPC.
    pub(crate) headers: HeaderMap,
}

impl Original {
    /// The path that rules match: without the query or the fragment.
    fn path(&self) -> &str {
        let end = self.path.find(['?', '#']).unwrap_or(self.path.len());
        &self.path[..end]
    }
}

/// The gate's decision on `original`: the caller's [`Principal`] when it
/// may pass (`None` on a public path), or the refusal. Counted and logged
/// as every front's decision is; `asker` (the proxy's address) is what the
/// refusal log names.
pub(crate) fn decide(
    layer: &GateLayer,
    original: Original,
    asker: Option<TcpConnectInfo>,
) -> Result<Option<Principal>, AuthError> {
    let path = original.path().to_owned();
    let Ok(method) = Method::from_bytes(original.method.as_bytes()) else {
        // No proxy forwards a request whose method is not a token; a
        // question that says so is not one about a request it received.
        return Err(AuthError::AmbiguousPath("the method is not an HTTP method"));
    };
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.headers_mut() = original.headers;
    if let Some(asker) = asker {
        request.extensions_mut().insert(asker);
    }
    let grpc = crate::server::is_grpc(&request);
    match layer.admit_at(&mut request, &path, grpc, None) {
        Ok(_) => Ok(request.extensions_mut().remove::<Principal>()),
        Err(refusal) => Err(refusal.error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_and_fragment_are_not_the_path() {
        let original = |path: &str| Original {
            method: "GET".into(),
            path: path.into(),
            headers: HeaderMap::new(),
        };
        assert_eq!(original("/a/b?x=/public").path(), "/a/b");
        assert_eq!(original("/a#/public").path(), "/a");
        assert_eq!(original("/a").path(), "/a");
        assert_eq!(original("").path(), "");
    }
}

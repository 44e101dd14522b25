//! Envoy's ext_authz v3 `Check`: the question read from
//! `attributes.request.http`, the answer written as Envoy applies it
//! (headers to set and remove when allowed; the RFC 6750 answer, which
//! Envoy sends the caller, when refused).

use envoy_types::ext_authz::v3::pb::{
    Authorization, CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction,
    HeaderValue, HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::google::rpc;
use http::{HeaderMap, HeaderName};
use tonic::{Request, Response, Status, transport::server::TcpConnectInfo};

use super::original::{Original, decide};
use crate::{
    AuthError, GateLayer, Principal,
    proxy::identity::{identity, is_identity_header},
};

/// Envoy's ext_authz service, by its full name.
pub const AUTHORIZATION_SERVICE: &str = "envoy.service.auth.v3.Authorization";

/// `Check`, answered by the gate.
#[derive(Debug, Clone)]
pub(crate) struct CheckService {
    /// The decision, as the server configured it.
    pub(crate) layer: GateLayer,
    /// Whether the original's `authorization` reaches the upstream.
    pub(crate) forward_authorization: bool,
}

#[tonic::async_trait]
impl Authorization for CheckService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let asker = request.extensions().get::<TcpConnectInfo>().cloned();
        let original = original(request.into_inner())?;
        let removed = to_remove(&original.headers, self.forward_authorization);
        let answer = match decide(&self.layer, original, asker) {
            Ok(principal) => allowed(principal.as_ref(), removed),
            Err(error) => refused(&error),
        };
        Ok(Response::new(answer))
    }
}

/// The request Envoy asks about, from `attributes.request.http`; without
/// it, the question is malformed.
fn original(check: CheckRequest) -> Result<Original, Status> {
    let http = check
        .attributes
        .and_then(|a| a.request)
        .and_then(|r| r.http)
        .ok_or_else(|| Status::invalid_argument("Check without attributes.request.http"))?;
    let mut headers = HeaderMap::new();
    // `header_map` (Envoy's `encode_raw_headers`) keeps each value apart,
    // in bytes; `headers` joins repeated ones with a comma.
    match http.header_map.filter(|m| !m.headers.is_empty()) {
        Some(map) => {
            for header in map.headers {
                let value = if header.raw_value.is_empty() {
                    header.value.into_bytes()
                } else {
                    header.raw_value
                };
                append(&mut headers, &header.key, &value);
            }
        }
        None => {
            for (name, value) in &http.headers {
                append(&mut headers, name, value.as_bytes());
            }
        }
    }
    Ok(Original {
        method: http.method,
        path: http.path,
        headers,
    })
}

/// Adds a header Envoy sent, leaving out its pseudo-headers (`:path`, said
/// apart) and what is not a header at all.
fn append(headers: &mut HeaderMap, name: &str, value: &[u8]) {
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        http::HeaderValue::from_bytes(value),
    ) {
        headers.append(name, value);
    }
}

/// What Envoy removes from the original before it goes upstream: every
/// `x-authgate-*` header the caller sent (those the answer sets are
/// overwritten, and named here only when the path is public, where none is
/// set) and, unless forwarded, `authorization`.
fn to_remove(headers: &HeaderMap, forward_authorization: bool) -> Vec<String> {
    let mut names: Vec<String> = headers
        .keys()
        .filter(|name| is_identity_header(name))
        .map(|name| name.as_str().to_owned())
        .collect();
    if !forward_authorization {
        names.push(http::header::AUTHORIZATION.as_str().to_owned());
    }
    names
}

/// `OK`, with the identity headers to set (overwriting the caller's), and
/// the caller's own to remove.
fn allowed(principal: Option<&Principal>, mut headers_to_remove: Vec<String>) -> CheckResponse {
    let headers = match principal {
        Some(principal) => identity(principal)
            .into_iter()
            .map(|(name, value)| HeaderValueOption {
                header: Some(HeaderValue {
                    key: name.as_str().to_owned(),
                    // Printable ASCII: `value` and `raw_value` say the same.
                    value: value.to_str().unwrap_or_default().to_owned(),
                    raw_value: Vec::new(),
                }),
                append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
                ..Default::default()
            })
            .collect(),
        None => Vec::new(),
    };
    if principal.is_some() {
        // Set above with OVERWRITE_IF_EXISTS_OR_ADD: removing them too
        // would remove what was set.
        headers_to_remove.retain(|name| !crate::proxy::IDENTITY_HEADERS.contains(&name.as_str()));
    }
    CheckResponse {
        status: Some(rpc::Status {
            code: tonic::Code::Ok as i32,
            ..Default::default()
        }),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers,
            headers_to_remove,
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// The gate's code and message, and the plain HTTP answer of the one-port
/// rules for Envoy to send the caller (or turn into a gRPC status).
fn refused(error: &AuthError) -> CheckResponse {
    let (status, headers, body) = crate::server::refusal_parts(error);
    let headers = headers
        .iter()
        .map(|(name, value)| HeaderValueOption {
            header: Some(HeaderValue {
                key: name.as_str().to_owned(),
                value: value.to_str().unwrap_or_default().to_owned(),
                raw_value: Vec::new(),
            }),
            append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
            ..Default::default()
        })
        .collect();
    CheckResponse {
        status: Some(rpc::Status {
            code: error.code() as i32,
            message: error.to_string(),
            ..Default::default()
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(status.as_u16()),
            }),
            headers,
            body,
        })),
        ..Default::default()
    }
}

//! The dev issuer's HTTP routes: discovery, the JWKS (with its faults) and
//! the client-credentials `/oauth/token`.

use std::sync::{Arc, atomic::Ordering};

use aws_lc_rs::constant_time;
use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};

use super::{
    JwksFault,
    state::{IssuerState, unix_now},
};
use crate::keys::Algorithm;
use crate::util::lock;

pub(super) fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub(super) async fn discovery(State(state): State<Arc<IssuerState>>) -> Response {
    state.discovery_hits.fetch_add(1, Ordering::SeqCst);
    if !*lock(&state.discovery_enabled) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let algs: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
    let mut document = json!({
            "issuer": state.issuer,
            "jwks_uri": format!("{}.well-known/jwks.json", state.issuer),
            "token_endpoint": format!("{}oauth/token", state.issuer),
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": ["token"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "id_token_signing_alg_values_supported": algs,
    });
    for (member, value) in lock(&state.discovery_overrides).iter() {
        document[member] = value.clone();
    }
    json_response(StatusCode::OK, &document)
}

pub(super) async fn jwks(
    State(state): State<Arc<IssuerState>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let hop = query
        .as_deref()
        .and_then(|query| query.strip_prefix("hop="))
        .and_then(|n| n.parse::<usize>().ok());
    if hop.is_none() {
        state.jwks_hits.fetch_add(1, Ordering::SeqCst);
    }
    let fault = lock(&state.jwks_fault).clone();
    match fault {
        JwksFault::Redirects(hops) if hop.unwrap_or(0) < hops => {
            let next = format!("/.well-known/jwks.json?hop={}", hop.unwrap_or(0) + 1);
            return (StatusCode::FOUND, [(header::LOCATION, next)]).into_response();
        }
        JwksFault::None
        | JwksFault::Delay(_)
        | JwksFault::Redirects(_)
        | JwksFault::Padded(_)
        | JwksFault::PaddedChunked(_) => {}
        JwksFault::DeclaredLengthOnly(length) => {
            let never = futures_util::stream::pending::<Result<Bytes, std::convert::Infallible>>();
            return (
                StatusCode::OK,
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    ),
                    (header::CONTENT_LENGTH, HeaderValue::from(length)),
                ],
                axum::body::Body::from_stream(never),
            )
                .into_response();
        }
        JwksFault::Status(code) => {
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (code, "the JWKS is unavailable").into_response();
        }
        JwksFault::Garbage => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "<html>not a key set</html>",
            )
                .into_response();
        }
        JwksFault::Empty => return json_response(StatusCode::OK, &json!({"keys": []})),
        JwksFault::Hang => std::future::pending::<()>().await,
        JwksFault::Redirect(to) => {
            return (StatusCode::FOUND, [(header::LOCATION, to)]).into_response();
        }
    }
    if let JwksFault::Delay(delay) = fault {
        tokio::time::sleep(delay).await;
    }
    let mut document = state.jwks_document();
    if let JwksFault::Padded(bytes) | JwksFault::PaddedChunked(bytes) = fault {
        document["padding"] = "".into();
        let short = bytes.saturating_sub(document.to_string().len());
        document["padding"] = "x".repeat(short).into();
    }
    let mut response = match fault {
        JwksFault::PaddedChunked(_) => {
            let body = Bytes::from(document.to_string());
            let chunks: Vec<Result<Bytes, std::convert::Infallible>> = (0..body.len())
                .step_by(16 * 1024)
                .map(|at| Ok(body.slice(at..body.len().min(at + 16 * 1024))))
                .collect();
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                axum::body::Body::from_stream(futures_util::stream::iter(chunks)),
            )
                .into_response()
        }
        _ => json_response(StatusCode::OK, &document),
    };
    let max_age = *lock(&state.jwks_max_age);
    if let Some(value) =
        max_age.and_then(|age| HeaderValue::from_str(&format!("public, max-age={age}")).ok())
    {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

/// An OAuth 2.0 error response (RFC 6749 §5.2).
pub(super) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

/// The parameters of a client-credentials request, from a JSON body (as
/// Auth0 takes them) or a form body, with client credentials in the body or
/// in HTTP Basic (RFC 6749 §2.3.1).
#[derive(Default)]
pub(super) struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    audience: Option<String>,
    scope: Option<String>,
}

impl TokenRequest {
    pub(super) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<TokenRequest, &'static str> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mut request = TokenRequest::default();
        if content_type.starts_with("application/json") {
            let value: Value = serde_json::from_slice(body).map_err(|_| "the body is not JSON")?;
            let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
            request.grant_type = field("grant_type");
            request.client_id = field("client_id");
            request.client_secret = field("client_secret");
            request.audience = field("audience");
            request.scope = field("scope");
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            for (name, value) in form_urlencoded::parse(body) {
                let slot = match &*name {
                    "grant_type" => &mut request.grant_type,
                    "client_id" => &mut request.client_id,
                    "client_secret" => &mut request.client_secret,
                    "audience" => &mut request.audience,
                    "scope" => &mut request.scope,
                    _ => continue,
                };
                *slot = Some(value.into_owned());
            }
        } else {
            return Err("the body must be application/json or application/x-www-form-urlencoded");
        }
        if let Some(basic) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
        {
            let decoded = STANDARD
                .decode(basic.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or("the Basic credentials are not base64")?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or("the Basic credentials have no `:`")?;
            let unescape = |s: &str| {
                form_urlencoded::parse(format!("v={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            request.client_id = unescape(id);
            request.client_secret = unescape(secret);
        }
        Ok(request)
    }
}

pub(super) async fn token(
    State(state): State<Arc<IssuerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.token_hits.fetch_add(1, Ordering::SeqCst);
    if let Some(fault) = lock(&state.token_faults).pop_front() {
        let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut response = oauth_error(status, "temporarily_unavailable", "injected fault");
        if let Some(secs) = fault.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        return response;
    }
    let request = match TokenRequest::parse(&headers, &body) {
        Ok(request) => request,
        Err(why) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", why),
    };
    if request.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only client_credentials is supported",
        );
    }
    let client = {
        let clients = lock(&state.clients);
        let id = request.client_id.as_deref().unwrap_or("");
        let secret = request.client_secret.as_deref().unwrap_or("");
        clients
            .iter()
            .find(|c| {
                c.id == id
                    && constant_time::verify_slices_are_equal(
                        c.secret.as_bytes(),
                        secret.as_bytes(),
                    )
                    .is_ok()
            })
            .cloned()
    };
    let Some(client) = client else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client or wrong secret",
        );
    };
    let audience = request.audience.unwrap_or_else(|| state.audience.clone());
    if audience != state.audience {
        return oauth_error(
            StatusCode::FORBIDDEN,
            "access_denied",
            "the client may not request tokens for this audience",
        );
    }
    // The scopes asked for, or all of the client's when it asks for none. A
    // scope the client may not be granted is refused, as RFC 6749 §5.2 says
    // (`invalid_scope`), rather than dropped from a token that then fails
    // every call that needs it.
    let scopes: Vec<&String> = match &request.scope {
        Some(asked) => {
            let asked: Vec<&str> = asked.split(' ').filter(|a| !a.is_empty()).collect();
            if let Some(refused) = asked
                .iter()
                .find(|a| !client.scopes.iter().any(|s| s == *a))
            {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    &format!("the client may not be granted scope `{refused}`"),
                );
            }
            client
                .scopes
                .iter()
                .filter(|s| asked.contains(&s.as_str()))
                .collect()
        }
        None => client.scopes.iter().collect(),
    };
    let scope = scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let ttl = lock(&state.token_ttl).as_secs();
    let now = unix_now();
    let claims = json!({
        "iss": state.issuer,
        "sub": format!("{}@clients", client.id),
        "aud": audience,
        "iat": now,
        "exp": now + ttl,
        "scope": scope,
        "azp": client.id,
        "gty": "client-credentials",
    });
    let access_token = {
        let keys = lock(&state.keys);
        let (kid, alg) = keys.current();
        let header = json!({"alg": alg.name(), "typ": "JWT", "kid": kid});
        keys.sign(
            kid,
            alg,
            header.to_string().as_bytes(),
            claims.to_string().as_bytes(),
        )
        .expect("the current key exists")
    };
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": scope,
        }),
    )
}

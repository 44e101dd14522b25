//! An access token as the issuer answers it, and the issuer's errors.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use reqwest::{StatusCode, header};
use serde::Deserialize;
use tonic::metadata::AsciiMetadataValue;

use crate::util::random_fraction;
use crate::{
    error::{FetchError, UrlError},
    net,
};

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The endpoint or issuer URL breaks the https-or-loopback rule.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The issuer refused the request: wrong credentials, audience or scope.
    /// Not retried: asking again would get the same answer.
    #[error("the token endpoint refused the request (HTTP {status}): {error}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The OAuth `error` code (`invalid_client`, `access_denied`, ...).
        error: String,
        /// The OAuth `error_description`.
        description: Option<String>,
    },
    /// 429, 5xx or the network, for every attempt.
    #[error("no token after {attempts} attempts; last: {last}")]
    Unavailable {
        /// How many requests were made.
        attempts: u32,
        /// What the last one got.
        last: String,
    },
    /// A 2xx answer that is not a token response.
    #[error("the token endpoint's answer is not a token response: {0}")]
    Invalid(String),
    /// Discovery of the token endpoint failed.
    #[error("discovering the token endpoint: {0}")]
    Discovery(#[source] FetchError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The token request this call waited on failed.
    #[error("{0}")]
    Shared(Arc<str>),
}

/// An access token and when it expires. `Debug` does not show the token.
#[derive(Clone)]
pub struct AccessToken {
    pub(super) token: Arc<str>,
    /// `Bearer <token>`, built once for every call that carries it.
    pub(super) header: AsciiMetadataValue,
    pub(super) expires_at: SystemTime,
    /// When the background task refreshes it: a little before `usable_until`.
    pub(super) refresh_at: SystemTime,
    /// Callers stop using it after this.
    pub(super) usable_until: SystemTime,
}

impl AccessToken {
    pub(super) fn new(
        token: String,
        expires_at: SystemTime,
        margin: Duration,
    ) -> Result<Self, TokenError> {
        let header = AsciiMetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
            TokenError::Invalid("the token has characters a header cannot carry".into())
        })?;
        let lifetime = expires_at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        let margin = margin.min(lifetime / 4);
        let usable_until = expires_at - margin;
        // Jitter, so that many clients given tokens together do not all
        // refresh in the same instant.
        let refresh_at = usable_until - margin.mul_f64(random_fraction() / 2.0);
        Ok(AccessToken {
            token: token.into(),
            header,
            expires_at,
            refresh_at,
            usable_until,
        })
    }

    /// The token itself.
    pub fn secret(&self) -> &str {
        &self.token
    }

    /// When the issuer said it expires.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// Whether callers may still use it: not within the margin of expiry.
    pub fn is_fresh(&self) -> bool {
        SystemTime::now() < self.usable_until
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

pub(super) fn parse_token_response(
    body: &[u8],
    margin: Duration,
) -> Result<AccessToken, TokenError> {
    #[derive(Deserialize)]
    struct TokenResponse {
        access_token: String,
        token_type: Option<String>,
        expires_in: Option<u64>,
    }
    let response: TokenResponse =
        serde_json::from_slice(body).map_err(|e| TokenError::Invalid(e.to_string()))?;
    if let Some(kind) = &response.token_type
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(TokenError::Invalid(format!(
            "token_type is {kind:?}, not Bearer"
        )));
    }
    // `expires_in` is optional (RFC 6749 §5.1); a JWT's own `exp` says it too.
    let lifetime = response
        .expires_in
        .map(Duration::from_secs)
        .or_else(|| jwt_lifetime(&response.access_token))
        .unwrap_or(Duration::from_secs(60));
    AccessToken::new(response.access_token, SystemTime::now() + lifetime, margin)
}

/// How long a JWT has left by its `exp`, read without verifying: only to
/// know when to ask again, never to trust it.
pub(super) fn jwt_lifetime(token: &str) -> Option<Duration> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    let exp = serde_json::from_slice::<serde_json::Value>(&payload).ok()?["exp"].as_u64()?;
    UNIX_EPOCH
        .checked_add(Duration::from_secs(exp))?
        .duration_since(SystemTime::now())
        .ok()
}

pub(super) async fn read_error_body(response: reqwest::Response) -> Vec<u8> {
    let url = response.url().clone();
    net::read_body(&url, response, 16 * 1024)
        .await
        .unwrap_or_default()
}

/// An OAuth error response (RFC 6749 §5.2) as a [`TokenError::Rejected`].
pub(super) fn rejected(status: StatusCode, body: &[u8]) -> TokenError {
    #[derive(Deserialize)]
    struct OAuthError {
        error: Option<String>,
        error_description: Option<String>,
    }
    let parsed = serde_json::from_slice::<OAuthError>(body).ok();
    TokenError::Rejected {
        status: status.as_u16(),
        error: parsed
            .as_ref()
            .and_then(|e| e.error.clone())
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
        description: parsed.and_then(|e| e.error_description),
    }
}

/// `Retry-After` as seconds or an HTTP date.
/// How long `Retry-After` asks to wait, in seconds or until a date, as seen
/// at `now`.
pub(super) fn retry_after(headers: &header::HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

//! The client side, for services that call an authgate-guarded service
//! machine to machine: a client-credentials [`TokenSource`] that reuses its
//! token until shortly before it expires and refreshes it ahead of time in
//! the background, and a [`BearerInterceptor`] that attaches it to calls.

use std::{
    fmt,
    path::PathBuf,
    sync::{Arc, Weak},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use arc_swap::ArcSwapOption;
use reqwest::{StatusCode, Url, header};
use serde::{Deserialize, Serialize};
use tonic::{Request, Status, metadata::AsciiMetadataValue};

use crate::{
    error::{FetchError, UrlError},
    net,
};

/// A client secret: kept out of `Debug`, logs and error messages.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where the token endpoint is.
#[derive(Debug, Clone)]
pub enum TokenEndpoint {
    /// The token endpoint itself (Auth0: `https://TENANT/oauth/token`).
    Url(Url),
    /// The issuer, whose discovery document names the token endpoint; an
    /// issuer without one is taken to be Auth0-like: `{issuer}/oauth/token`.
    Issuer(Url),
}

/// How the client authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ClientAuth {
    /// A JSON body holding `client_id` and `client_secret`, as Auth0 documents.
    #[default]
    Json,
    /// A form body, with the credentials in HTTP Basic (RFC 6749 §2.3.1).
    Basic,
}

/// What a [`TokenSource`] asks for, and how.
#[derive(Debug, Clone)]
pub struct TokenSourceConfig {
    /// Where to ask.
    pub endpoint: TokenEndpoint,
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`.
    pub client_secret: Secret,
    /// `audience`: the API identifier (Auth0 requires it).
    pub audience: Option<String>,
    /// `scope`, space-separated.
    pub scope: Option<String>,
    /// Body and credential style.
    pub auth: ClientAuth,
    /// Stop using a token this long before it expires (at most a quarter of
    /// its lifetime), and refresh it in the background a little earlier still.
    pub refresh_margin: Duration,
    /// How long one request to the token endpoint may take.
    pub timeout: Duration,
    /// How many times to ask, in all, when the endpoint answers 429 or 5xx.
    pub max_attempts: u32,
    /// The first retry delay; it doubles, with jitter. `Retry-After` wins.
    pub initial_backoff: Duration,
    /// The longest single wait between attempts, `Retry-After` included.
    pub max_backoff: Duration,
    /// Keep the token in a file here (mode 0600, no secret in it), so that
    /// separate processes, such as successive CLI runs, reuse it.
    pub cache_dir: Option<PathBuf>,
}

impl TokenSourceConfig {
    /// A config with the usual timing: a 60 s margin, 10 s requests, four
    /// attempts backing off from 500 ms to at most 30 s, no file cache.
    pub fn new(endpoint: TokenEndpoint, client_id: impl Into<String>, secret: Secret) -> Self {
        TokenSourceConfig {
            endpoint,
            client_id: client_id.into(),
            client_secret: secret,
            audience: None,
            scope: None,
            auth: ClientAuth::Json,
            refresh_margin: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            cache_dir: None,
        }
    }
}

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
    token: Arc<str>,
    /// `Bearer <token>`, built once for every call that carries it.
    header: AsciiMetadataValue,
    expires_at: SystemTime,
    /// When the background task refreshes it: a little before `usable_until`.
    refresh_at: SystemTime,
    /// Callers stop using it after this.
    usable_until: SystemTime,
}

impl AccessToken {
    fn new(token: String, expires_at: SystemTime, margin: Duration) -> Result<Self, TokenError> {
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

/// Client-credentials tokens for one client and audience: reused until
/// shortly before they expire, refreshed ahead of time in the background,
/// and fetched once however many callers ask at the same moment. Cheap to
/// clone; clones share the token.
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

struct Inner {
    config: TokenSourceConfig,
    client: reqwest::Client,
    /// The current token; readers never wait on it.
    current: ArcSwapOption<AccessToken>,
    /// Held by whoever is fetching: concurrent callers queue here and then
    /// find the token the first one fetched.
    fetching: tokio::sync::Mutex<()>,
    /// The token endpoint, once discovered.
    endpoint: tokio::sync::OnceCell<Url>,
    /// Whether the background refresher runs.
    refreshing: std::sync::atomic::AtomicBool,
    /// The last fetch's failure and when it ended: callers that queued
    /// behind that fetch get its answer rather than fetching again.
    last_failure: std::sync::Mutex<Option<(Instant, Arc<str>)>>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("config", &self.inner.config)
            .field("current", &self.inner.current.load().as_deref())
            .finish()
    }
}

impl TokenSource {
    /// A source for `config`. Nothing is fetched until a token is asked for.
    pub fn new(config: TokenSourceConfig) -> Result<TokenSource, TokenError> {
        match &config.endpoint {
            TokenEndpoint::Url(url) | TokenEndpoint::Issuer(url) => {
                net::parse_issuer_url("token endpoint", url.as_str())?;
            }
        }
        let client = net::issuer_client(config.timeout).map_err(TokenError::Client)?;
        let cached = config
            .cache_dir
            .as_ref()
            .and_then(|dir| file_cache::load(dir, &config));
        Ok(TokenSource {
            inner: Arc::new(Inner {
                current: ArcSwapOption::new(cached.map(Arc::new)),
                config,
                client,
                fetching: tokio::sync::Mutex::new(()),
                endpoint: tokio::sync::OnceCell::new(),
                refreshing: std::sync::atomic::AtomicBool::new(false),
                last_failure: std::sync::Mutex::new(None),
            }),
        })
    }

    /// The current token if it is fresh, without waiting: what an
    /// interceptor reads on every call.
    pub fn current(&self) -> Option<AccessToken> {
        self.inner
            .current
            .load()
            .as_deref()
            .filter(|t| t.is_fresh())
            .cloned()
    }

    /// A fresh token: the current one, or a new one from the issuer when it
    /// is missing or near expiry. Concurrent callers share one request. Also
    /// starts the background refresh that keeps later calls from waiting.
    pub async fn token(&self) -> Result<AccessToken, TokenError> {
        let token = match self.current() {
            Some(token) => token,
            None => self.refresh(|t| t.is_fresh()).await?,
        };
        self.start_background_refresh();
        Ok(token)
    }

    /// A new token in place of `refused`, which a server turned away as
    /// UNAUTHENTICATED (its issuer restarted with new keys, say): fetched
    /// from the issuer unless another caller already replaced it. The new
    /// token replaces the cached one.
    pub async fn renew(&self, refused: &AccessToken) -> Result<AccessToken, TokenError> {
        self.refresh(|t| t.is_fresh() && t.secret() != refused.secret())
            .await
    }

    /// Fetches unless, once the fetch lock is ours, `good_enough` holds for
    /// the token someone else just fetched.
    async fn refresh(
        &self,
        good_enough: impl Fn(&AccessToken) -> bool,
    ) -> Result<AccessToken, TokenError> {
        let asked = Instant::now();
        let _fetching = self.inner.fetching.lock().await;
        if let Some(token) = self.inner.current.load().as_deref()
            && good_enough(token)
        {
            return Ok(token.clone());
        }
        // A fetch that failed while we waited answers for us too: during an
        // outage, queued callers must not each retry in turn.
        if let Some((ended, reason)) = lock(&self.inner.last_failure).clone()
            && ended >= asked
        {
            return Err(TokenError::Shared(reason));
        }
        let token = match self.fetch().await {
            Ok(token) => token,
            Err(error) => {
                *lock(&self.inner.last_failure) = Some((Instant::now(), error.to_string().into()));
                return Err(error);
            }
        };
        self.inner.current.store(Some(Arc::new(token.clone())));
        if let Some(dir) = &self.inner.config.cache_dir {
            file_cache::store(dir, &self.inner.config, &token);
        }
        Ok(token)
    }

    fn start_background_refresh(&self) {
        use std::sync::atomic::Ordering;
        if self.inner.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner.refreshing.store(false, Ordering::Release);
            return;
        };
        // Weak: the task ends when the last TokenSource is dropped.
        runtime.spawn(background_refresh(Arc::downgrade(&self.inner)));
    }

    async fn endpoint(&self) -> Result<Url, TokenError> {
        let config = &self.inner.config;
        let url = self
            .inner
            .endpoint
            .get_or_try_init(|| async {
                match &config.endpoint {
                    TokenEndpoint::Url(url) => Ok(url.clone()),
                    TokenEndpoint::Issuer(issuer) => {
                        discover_token_endpoint(&self.inner.client, issuer).await
                    }
                }
            })
            .await?;
        Ok(url.clone())
    }

    /// One token request, retried on 429, 5xx and network errors.
    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        let config = &self.inner.config;
        let url = self.endpoint().await?;
        let mut last = String::new();
        for attempt in 1..=config.max_attempts.max(1) {
            let wait = match self.request(&url).await {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        let body = net::read_limited(&url, response, 64 * 1024)
                            .await
                            .map_err(|e| TokenError::Invalid(e.to_string()))?;
                        return parse_token_response(&body, config.refresh_margin);
                    }
                    if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
                        let body = read_error_body(response).await;
                        return Err(rejected(status, &body));
                    }
                    last = format!("HTTP {}", status.as_u16());
                    retry_after(response.headers(), SystemTime::now())
                }
                Err(error) => {
                    last = error.to_string();
                    None
                }
            };
            if attempt == config.max_attempts.max(1) {
                break;
            }
            let backoff = config
                .initial_backoff
                .saturating_mul(1 << (attempt - 1).min(20));
            let backoff = backoff / 2 + backoff.mul_f64(random_fraction() / 2.0);
            let delay = wait.unwrap_or(backoff).min(config.max_backoff);
            tracing::warn!(attempt, %last, retry_in = ?delay, "token request failed; retrying");
            tokio::time::sleep(delay).await;
        }
        Err(TokenError::Unavailable {
            attempts: config.max_attempts.max(1),
            last,
        })
    }

    async fn request(&self, url: &Url) -> reqwest::Result<reqwest::Response> {
        let config = &self.inner.config;
        let mut fields: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        if let Some(audience) = &config.audience {
            fields.push(("audience", audience));
        }
        if let Some(scope) = &config.scope {
            fields.push(("scope", scope));
        }
        let request = self
            .inner
            .client
            .post(url.clone())
            .header(header::ACCEPT, "application/json");
        let request = match config.auth {
            ClientAuth::Json => {
                fields.push(("client_id", &config.client_id));
                fields.push(("client_secret", config.client_secret.expose()));
                let body: serde_json::Map<String, serde_json::Value> = fields
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.into()))
                    .collect();
                request
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(serde_json::Value::Object(body).to_string())
            }
            ClientAuth::Basic => {
                // RFC 6749 §2.3.1: each part form-encoded, then Basic.
                let encode =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let body = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields)
                    .finish();
                request
                    .basic_auth(
                        encode(&config.client_id),
                        Some(encode(config.client_secret.expose())),
                    )
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
            }
        };
        request.send().await
    }
}

/// The shortest pause between two background refreshes, whatever lifetime
/// the issuer gives its tokens.
const MIN_REFRESH_PAUSE: Duration = Duration::from_secs(1);

/// Lowers the `refreshing` flag when the background task ends, including
/// when its runtime shuts down, so that a later call can start another.
struct RefreshingFlag(Weak<Inner>);

impl Drop for RefreshingFlag {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            inner
                .refreshing
                .store(false, std::sync::atomic::Ordering::Release);
        }
    }
}

/// Refreshes ahead of expiry for as long as any [`TokenSource`] clone lives.
async fn background_refresh(inner: Weak<Inner>) {
    let _flag = RefreshingFlag(inner.clone());
    let mut failures = 0u32;
    loop {
        let wait = {
            let Some(inner) = inner.upgrade() else { return };
            let refresh_at = inner.current.load().as_deref().map(|t| t.refresh_at);
            match refresh_at {
                Some(at) => at
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO),
                None => Duration::ZERO,
            }
        };
        let retry = Duration::from_secs(1).saturating_mul(1 << failures.min(5));
        let pause = if failures > 0 { retry } else { wait };
        tokio::time::sleep(pause.max(MIN_REFRESH_PAUSE)).await;
        let Some(inner) = inner.upgrade() else { return };
        let source = TokenSource { inner };
        let threshold = SystemTime::now();
        // Someone may have refreshed meanwhile: take theirs if it is not due.
        match source.refresh(|t| t.refresh_at > threshold).await {
            Ok(_) => failures = 0,
            Err(error) => {
                failures += 1;
                tracing::warn!(%error, "background token refresh failed; the current token is used until its margin");
            }
        }
    }
}

async fn discover_token_endpoint(
    client: &reqwest::Client,
    issuer: &Url,
) -> Result<Url, TokenError> {
    #[derive(Deserialize)]
    struct Discovery {
        token_endpoint: Option<String>,
    }
    let base = issuer.as_str().trim_end_matches('/');
    let url: Url = format!("{base}/.well-known/openid-configuration")
        .parse()
        .map_err(|e: url::ParseError| TokenError::Invalid(e.to_string()))?;
    let fallback = || -> Result<Url, TokenError> {
        Ok(net::parse_issuer_url(
            "token endpoint",
            &format!("{base}/oauth/token"),
        )?)
    };
    let response = client.get(url.clone()).send().await.map_err(|source| {
        TokenError::Discovery(FetchError::Http {
            url: url.to_string(),
            source,
        })
    })?;
    if response.status() == StatusCode::NOT_FOUND {
        return fallback();
    }
    let body = net::read_limited(&url, response, 1024 * 1024)
        .await
        .map_err(TokenError::Discovery)?;
    let doc: Discovery = serde_json::from_slice(&body).map_err(|e| {
        TokenError::Discovery(FetchError::Invalid {
            url: url.to_string(),
            what: "discovery",
            detail: e.to_string(),
        })
    })?;
    match doc.token_endpoint {
        Some(endpoint) => Ok(net::parse_issuer_url(
            "discovery's token_endpoint",
            &endpoint,
        )?),
        None => fallback(),
    }
}

fn parse_token_response(body: &[u8], margin: Duration) -> Result<AccessToken, TokenError> {
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
fn jwt_lifetime(token: &str) -> Option<Duration> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    let exp = serde_json::from_slice::<serde_json::Value>(&payload).ok()?["exp"].as_u64()?;
    UNIX_EPOCH
        .checked_add(Duration::from_secs(exp))?
        .duration_since(SystemTime::now())
        .ok()
}

async fn read_error_body(response: reqwest::Response) -> Vec<u8> {
    let url = response.url().clone();
    net::read_body(&url, response, 16 * 1024)
        .await
        .unwrap_or_default()
}

/// An OAuth error response (RFC 6749 §5.2) as a [`TokenError::Rejected`].
fn rejected(status: StatusCode, body: &[u8]) -> TokenError {
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
fn retry_after(headers: &header::HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn random_fraction() -> f64 {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// Attaches `authorization: Bearer <token>` from a [`TokenSource`] to every
/// call, reading the current token without waiting: the source's background
/// refresh keeps it fresh. Fetch the first token with
/// [`TokenSource::token`] before the first call.
#[derive(Debug, Clone)]
pub struct BearerInterceptor {
    source: TokenSource,
}

impl BearerInterceptor {
    /// An interceptor for `source`.
    pub fn new(source: TokenSource) -> BearerInterceptor {
        BearerInterceptor { source }
    }
}

impl tonic::service::Interceptor for BearerInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let token = self.source.current().ok_or_else(|| {
            Status::unauthenticated("no fresh access token: the token source could not get one")
        })?;
        request
            .metadata_mut()
            .insert("authorization", token.header.clone());
        Ok(request)
    }
}

pub mod file_cache;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let after = |value: &str| {
            let mut h = header::HeaderMap::new();
            h.insert(header::RETRY_AFTER, value.parse().unwrap());
            retry_after(&h, now)
        };
        assert_eq!(after("3"), Some(Duration::from_secs(3)));
        let date = |at| httpdate::fmt_http_date(at);
        assert_eq!(
            after(&date(now + Duration::from_secs(100))),
            Some(Duration::from_secs(100))
        );
        // A date gone by: retry now.
        assert_eq!(
            after(&date(now - Duration::from_secs(5))),
            Some(Duration::ZERO)
        );
        assert_eq!(after("soon"), None);
        assert_eq!(retry_after(&header::HeaderMap::new(), now), None);
    }

    #[test]
    fn secrets_and_tokens_stay_out_of_debug() {
        let mut config = TokenSourceConfig::new(
            TokenEndpoint::Url("https://t.auth0.com/oauth/token".parse().unwrap()),
            "id",
            Secret::new("hunter2-secret"),
        );
        config.audience = Some("aud".into());
        assert!(!format!("{config:?}").contains("hunter2"));
        let token = AccessToken::new(
            "eyJ.secret-token.sig".into(),
            SystemTime::now() + Duration::from_secs(600),
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(!format!("{token:?}").contains("secret-token"));
    }

    #[test]
    fn the_margin_is_at_most_a_quarter_of_the_lifetime() {
        let margin = |token: &AccessToken| token.expires_at.duration_since(token.usable_until);
        // A long lifetime: the margin asked for, exactly; the background
        // refresh comes up to half a margin before it.
        let expires_at = SystemTime::now() + Duration::from_secs(600);
        let token = AccessToken::new("t".into(), expires_at, Duration::from_secs(60)).unwrap();
        assert_eq!(margin(&token).unwrap(), Duration::from_secs(60));
        assert!(token.refresh_at <= token.usable_until);
        assert!(token.refresh_at >= token.usable_until - Duration::from_secs(30));
        assert!(token.is_fresh());
        // A short one: a quarter of what was left of it when it was made,
        // which lies between these two readings of the clock.
        let before = SystemTime::now();
        let expires_at = before + Duration::from_secs(8);
        let token = AccessToken::new("t".into(), expires_at, Duration::from_secs(60)).unwrap();
        let after = SystemTime::now();
        let quarter = |from: SystemTime| expires_at.duration_since(from).unwrap() / 4;
        let margin = margin(&token).unwrap();
        assert!(
            quarter(after) <= margin && margin <= quarter(before),
            "{margin:?}"
        );
        assert!(token.refresh_at <= token.usable_until);
    }

    #[test]
    fn oauth_errors_are_read_from_the_body() {
        let e = rejected(
            StatusCode::UNAUTHORIZED,
            br#"{"error":"invalid_client","error_description":"wrong secret"}"#,
        );
        assert_eq!(
            e.to_string(),
            "the token endpoint refused the request (HTTP 401): invalid_client: wrong secret"
        );
        let e = rejected(StatusCode::FORBIDDEN, b"<html>");
        assert!(e.to_string().contains("Forbidden"));
    }
}

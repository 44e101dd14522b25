//! The [`TokenSource`]: one token reused and refreshed ahead of expiry.

use std::{
    fmt,
    sync::{Arc, Weak},
    time::{Duration, Instant, SystemTime},
};

use arc_swap::ArcSwapOption;
use reqwest::{StatusCode, Url, header};

use super::token::{parse_token_response, read_error_body, rejected, retry_after};
use super::{AccessToken, ClientAuth, TokenEndpoint, TokenError, TokenSourceConfig, file_cache};
use crate::util::{lock, random_fraction};
use crate::{error::FetchError, net};

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
                    last = net::http_error(&url, error).to_string();
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
    let endpoint = match net::Discovery::fetch(client, issuer, 1024 * 1024).await {
        Ok(doc) => doc.token_endpoint,
        // No discovery document: the usual place (Auth0's).
        Err(FetchError::Status { status: 404, .. }) => None,
        Err(error) => return Err(TokenError::Discovery(error)),
    };
    let base = issuer.as_str().trim_end_matches('/');
    Ok(match endpoint {
        Some(endpoint) => net::parse_issuer_url("discovery's token_endpoint", &endpoint)?,
        None => net::parse_issuer_url("token endpoint", &format!("{base}/oauth/token"))?,
    })
}

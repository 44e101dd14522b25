//! Keeping the key set fresh: the [`KeyStore`] that the request path reads
//! without waiting, and the [`Refresher`] task that alone fetches the JWKS,
//! retries, backs off and publishes.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use arc_swap::{ArcSwapOption, Guard};
use reqwest::{Url, header};
use serde::Deserialize;
use tokio::{
    sync::{Notify, watch},
    time::{Instant, sleep_until},
};

use crate::{
    error::FetchError,
    keys::{JwksError, KeySet},
    net,
};

/// The key set as the request path sees it: published whole by the refresher,
/// read with one atomic load, never waited on.
#[derive(Debug)]
pub struct KeyStore {
    /// The last good key set; `None` until the first fetch succeeds.
    current: ArcSwapOption<KeySet>,
    /// Raised by a request that met an unknown `kid`, lowered by the refresher
    /// when it fetches: however many requests miss, only the first one since
    /// the last fetch wakes the refresher.
    refresh_asked: AtomicBool,
    /// Wakes the refresher for an early fetch.
    wake: Notify,
    /// Turns true when the first key set is published; health waits on it.
    loaded: watch::Sender<bool>,
}

impl KeyStore {
    /// An empty store: every check answers `UNAVAILABLE` until a set is published.
    pub fn new() -> Arc<KeyStore> {
        Arc::new(KeyStore {
            current: ArcSwapOption::empty(),
            refresh_asked: AtomicBool::new(false),
            wake: Notify::new(),
            loaded: watch::Sender::new(false),
        })
    }

    /// The current key set, if one has loaded. Lock-free and without I/O.
    #[inline]
    pub fn load(&self) -> Guard<Option<Arc<KeySet>>> {
        self.current.load()
    }

    /// Replaces the key set: a key the new set lacks stops verifying at once.
    pub fn publish(&self, set: KeySet) {
        self.current.store(Some(Arc::new(set)));
        self.loaded.send_replace(true);
    }

    /// Asks the refresher to fetch early because a token named a `kid` the set
    /// lacks. Never waits; repeated asks coalesce into one fetch, and the
    /// refresher spaces such fetches by its minimum interval.
    #[inline]
    pub fn ask_refresh(&self) {
        if !self.refresh_asked.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }

    /// Resolves once the first key set has been published.
    pub async fn wait_loaded(&self) {
        let mut loaded = self.loaded.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = loaded.wait_for(|loaded| *loaded).await;
    }
}

/// Where the key set comes from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// A JWKS URL given outright.
    Url(Url),
    /// The issuer's OIDC discovery document names the JWKS URL; if there is no
    /// such document, `{issuer}/.well-known/jwks.json`.
    Discovery {
        /// The exact issuer, as tokens carry it in `iss` (checked against
        /// the document's `issuer`).
        issuer: String,
        /// The same, parsed, to fetch from.
        url: Url,
    },
}

/// The least time between two fetches, whatever the configuration says.
const MIN_PAUSE: Duration = Duration::from_millis(50);

/// How the refresher paces itself.
#[derive(Debug, Clone)]
pub struct RefreshConfig {
    /// The background refresh period. A shorter `Cache-Control: max-age`
    /// shortens it, never below `min_interval`.
    pub interval: Duration,
    /// The least time between two fetches that unknown `kid`s trigger, and
    /// the floor under `max-age`.
    pub min_interval: Duration,
    /// How long one HTTP request may take, body included.
    pub fetch_timeout: Duration,
    /// The first retry delay after a failed fetch; it doubles on each failure
    /// up to `interval`, with jitter.
    pub initial_backoff: Duration,
    /// The largest JWKS or discovery document read.
    pub max_document_bytes: usize,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        RefreshConfig {
            interval: Duration::from_secs(600),
            min_interval: Duration::from_secs(30),
            fetch_timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_secs(1),
            max_document_bytes: 1024 * 1024,
        }
    }
}

/// The background task that fetches the JWKS, publishes it to the
/// [`KeyStore`], and on failure keeps the last good set and retries.
#[derive(Debug)]
pub struct Refresher {
    store: Arc<KeyStore>,
    source: JwksSource,
    config: RefreshConfig,
    client: reqwest::Client,
    /// The JWKS URL that discovery named, once it has.
    discovered: Option<Url>,
}

impl Refresher {
    /// A refresher for `store`; nothing is fetched until [`Refresher::run`].
    pub fn new(
        store: Arc<KeyStore>,
        source: JwksSource,
        config: RefreshConfig,
    ) -> reqwest::Result<Refresher> {
        let client = net::issuer_client(config.fetch_timeout)?;
        Ok(Refresher {
            store,
            source,
            config,
            client,
            discovered: None,
        })
    }

    /// Fetches at once, then forever: on schedule, early when a request asks
    /// (at most once per `min_interval`), and after a failure with exponential
    /// backoff and jitter. Stop it by dropping or aborting its task.
    pub async fn run(mut self) {
        let mut deadline = Instant::now();
        let mut last_fetch: Option<Instant> = None;
        let mut failures: u32 = 0;
        loop {
            tokio::select! {
                () = sleep_until(deadline) => {}
                () = self.store.wake.notified() => {
                    let earliest = last_fetch
                        .map_or_else(Instant::now, |t| t + self.config.min_interval);
                    deadline = deadline.min(earliest.max(Instant::now()));
                    continue;
                }
            }
            // Lower the flag before fetching: a miss that happens during the
            // fetch may concern a key published after this fetch began.
            self.store.refresh_asked.store(false, Ordering::Release);
            last_fetch = Some(Instant::now());
            let delay = match self.fetch().await {
                Ok((set, max_age)) => {
                    failures = 0;
                    self.store.publish(set);
                    self.success_delay(max_age)
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let delay = self.backoff(failures);
                    if self.store.load().is_some() {
                        tracing::warn!(
                            %error,
                            failures,
                            retry_in = ?delay,
                            "JWKS fetch failed; keeping the last good key set"
                        );
                    } else {
                        tracing::warn!(
                            %error,
                            failures,
                            retry_in = ?delay,
                            "JWKS fetch failed; no key set has loaded yet, so guarded calls get UNAVAILABLE"
                        );
                    }
                    delay
                }
            };
            // A floor, so that no configuration can make this a busy loop.
            deadline = Instant::now() + delay.max(MIN_PAUSE);
        }
    }

    /// When to fetch again after a success: the refresh interval, or a
    /// shorter `max-age`, but never sooner than the minimum interval.
    fn success_delay(&self, max_age: Option<Duration>) -> Duration {
        let interval = self.config.interval;
        match max_age {
            Some(age) => age.max(self.config.min_interval).min(interval),
            None => interval,
        }
    }

    /// Exponential backoff with jitter, never longer than the refresh interval.
    fn backoff(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(30);
        let full = self
            .config
            .initial_backoff
            .saturating_mul(1u32 << exponent)
            .min(self.config.interval);
        // Equal jitter: half fixed, half random, so a fleet of gates that lost
        // the issuer together do not all come back in the same instant.
        full / 2 + full.mul_f64(random_fraction() / 2.0)
    }

    /// One fetch: discovery when needed, then the JWKS, parsed key by key.
    /// Returns the new set and the response's `max-age`, if any.
    pub async fn fetch(&mut self) -> Result<(KeySet, Option<Duration>), FetchError> {
        let url = self.jwks_url().await?;
        let result = self.fetch_from(&url).await;
        if result.is_err() {
            // The issuer may have moved its keys: ask discovery again next time.
            self.discovered = None;
        }
        result
    }

    async fn fetch_from(&mut self, url: &Url) -> Result<(KeySet, Option<Duration>), FetchError> {
        let url = url.clone();
        let response = self.get(&url).await?;
        let max_age = max_age(response.headers());
        let body = net::read_limited(&url, response, self.config.max_document_bytes).await?;
        let previous = self.store.load_full();
        let (set, skipped) =
            KeySet::from_jwks(&body, previous.as_deref()).map_err(|e| match e {
                JwksError::Invalid(detail) => FetchError::Invalid {
                    url: url.to_string(),
                    what: "JWKS",
                    detail,
                },
                JwksError::NoUsableKey(skipped) => {
                    log_skipped(&skipped);
                    FetchError::NoUsableKey {
                        url: url.to_string(),
                        skipped: skipped.len(),
                    }
                }
            })?;
        log_skipped(&skipped);
        let kids: Vec<&str> = set.keys().filter_map(|k| k.kid()).collect();
        tracing::info!(url = %url, keys = set.len(), ?kids, ?max_age, "fetched the JWKS");
        Ok((set, max_age))
    }

    async fn get(&self, url: &Url) -> Result<reqwest::Response, FetchError> {
        self.client
            .get(url.clone())
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|source| FetchError::Http {
                url: url.to_string(),
                source,
            })
    }

    /// Where the JWKS is: the configured URL, or the one discovery names
    /// (asked once and remembered until a fetch fails).
    pub async fn jwks_url(&mut self) -> Result<Url, FetchError> {
        let (issuer, issuer_url) = match &self.source {
            JwksSource::Url(url) => return Ok(url.clone()),
            JwksSource::Discovery { issuer, url } => (issuer.clone(), url.clone()),
        };
        if let Some(url) = &self.discovered {
            return Ok(url.clone());
        }
        let fallback = well_known(&issuer_url, "jwks.json");
        match self.discover(&issuer, &issuer_url).await {
            Ok(url) => {
                self.discovered = Some(url.clone());
                Ok(url)
            }
            // Not remembered: a 404 may be passing, and the next fetch asks
            // discovery again.
            Err(FetchError::Status { status: 404, .. }) => {
                tracing::info!(jwks_url = %fallback, "the issuer has no discovery document");
                Ok(fallback)
            }
            Err(
                error @ (FetchError::Invalid { .. }
                | FetchError::Url(_)
                | FetchError::IssuerMismatch { .. }),
            ) => Err(error),
            Err(error) => {
                tracing::warn!(%error, jwks_url = %fallback, "discovery failed; trying the usual JWKS URL");
                Ok(fallback)
            }
        }
    }

    async fn discover(&self, issuer: &str, issuer_url: &Url) -> Result<Url, FetchError> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let url = well_known(issuer_url, "openid-configuration");
        let response = self.get(&url).await?;
        let body = net::read_limited(&url, response, self.config.max_document_bytes).await?;
        let invalid = |detail: String| FetchError::Invalid {
            url: url.to_string(),
            what: "discovery",
            detail,
        };
        let doc: Discovery = serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))?;
        // OIDC Discovery §4.3: the document must name the issuer it was asked for.
        if doc.issuer != issuer {
            return Err(FetchError::IssuerMismatch {
                url: url.to_string(),
                named: doc.issuer,
                configured: issuer.to_owned(),
            });
        }
        Ok(net::parse_issuer_url(
            "discovery's jwks_uri",
            &doc.jwks_uri,
        )?)
    }
}

impl KeyStore {
    fn load_full(&self) -> Option<Arc<KeySet>> {
        self.current.load_full()
    }
}

/// `{issuer}/.well-known/{name}`, with exactly one slash between.
fn well_known(issuer: &Url, name: &str) -> Url {
    let base = issuer.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}/.well-known/{name}")).expect("an issuer URL extended by a path")
}

fn log_skipped(skipped: &[crate::keys::SkippedKey]) {
    for key in skipped {
        tracing::warn!(kid = ?key.kid, reason = %key.reason, "skipped a JWKS key");
    }
}

/// `Cache-Control: max-age` in seconds; `no-cache` and `no-store` count as 0,
/// which the minimum interval then raises.
fn max_age(headers: &header::HeaderMap) -> Option<Duration> {
    let mut age = None;
    for value in headers.get_all(header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',').map(str::trim) {
            let lower = directive.to_ascii_lowercase();
            if lower == "no-cache" || lower == "no-store" {
                return Some(Duration::ZERO);
            }
            if let Some(Ok(secs)) = lower
                .strip_prefix("max-age=")
                .map(|s| s.trim_matches('"').parse::<u64>())
            {
                age = Some(age.map_or(secs, |a: u64| a.min(secs)));
            }
        }
    }
    age.map(Duration::from_secs)
}

/// A number in [0, 1) from the system's random source, for jitter.
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> header::HeaderMap {
        let mut h = header::HeaderMap::new();
        h.insert(header::CACHE_CONTROL, value.parse().unwrap());
        h
    }

    #[test]
    fn max_age_reads_cache_control() {
        assert_eq!(max_age(&header::HeaderMap::new()), None);
        assert_eq!(
            max_age(&headers("public, max-age=15, stale-while-revalidate=15")),
            Some(Duration::from_secs(15))
        );
        assert_eq!(max_age(&headers("no-store")), Some(Duration::ZERO));
        assert_eq!(max_age(&headers("max-age=abc")), None);
    }

    #[test]
    fn well_known_joins_with_one_slash() {
        let with = Url::parse("https://t.auth0.com/").unwrap();
        let without = Url::parse("https://kc.example/realms/x").unwrap();
        assert_eq!(
            well_known(&with, "jwks.json").as_str(),
            "https://t.auth0.com/.well-known/jwks.json"
        );
        assert_eq!(
            well_known(&without, "openid-configuration").as_str(),
            "https://kc.example/realms/x/.well-known/openid-configuration"
        );
    }

    fn refresher(config: RefreshConfig) -> Refresher {
        let source = JwksSource::Url(Url::parse("http://127.0.0.1:9/").unwrap());
        Refresher::new(KeyStore::new(), source, config).unwrap()
    }

    #[test]
    fn success_delay_honours_a_shorter_max_age_above_the_floor() {
        let r = refresher(RefreshConfig::default());
        let s = Duration::from_secs;
        assert_eq!(r.success_delay(None), s(600));
        assert_eq!(r.success_delay(Some(s(120))), s(120));
        assert_eq!(r.success_delay(Some(s(5))), s(30));
        assert_eq!(r.success_delay(Some(s(86400))), s(600));
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped_by_the_interval() {
        let r = refresher(RefreshConfig::default());
        for failures in 1..40 {
            let full = Duration::from_secs(1)
                .saturating_mul(1 << (failures - 1).min(30))
                .min(Duration::from_secs(600));
            let d = r.backoff(failures);
            assert!(d >= full / 2 && d <= full, "{failures}: {d:?}");
        }
    }
}

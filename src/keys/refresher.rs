//! The [`Refresher`]: the background task that alone fetches the JWKS,
//! retries, backs off and publishes to the [`KeyStore`].

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use reqwest::{Url, header};
use tokio::time::{Instant, sleep_until};

use super::{Availability, KeyStore};
use crate::{
    StartupError,
    error::FetchError,
    keys::{JwksError, KeySet},
    net,
    util::random_fraction,
};

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
    /// The background refresh period. `Cache-Control` does not shorten it:
    /// Auth0 answers `max-age=15`, and honouring that would mean thousands of
    /// fetches a day from every replica against a rate-limited endpoint.
    pub interval: Duration,
    /// The least time between two fetches that unknown `kid`s trigger. They
    /// trigger none while fetches fail: the backoff paces the retries.
    pub min_interval: Duration,
    /// How long one HTTP request may take, body included.
    pub fetch_timeout: Duration,
    /// The first retry delay after a failed fetch; it doubles on each failure
    /// up to `interval`, with jitter.
    pub initial_backoff: Duration,
    /// The largest JWKS or discovery document read.
    pub max_document_bytes: usize,
    /// How long the last good key set outlives failed fetches: past this
    /// long without a successful fetch it is dropped, and calls are refused
    /// with `UNAVAILABLE` until a fetch succeeds.
    pub max_stale: Duration,
}

/// [`RefreshConfig::max_stale`]'s default: a day of failed fetches.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(24 * 60 * 60);

impl RefreshConfig {
    /// Refuses a minimum interval above the interval, and a `max_stale`
    /// under twice the interval (one late refresh would drop the keys).
    pub fn check(&self) -> Result<(), StartupError> {
        if self.min_interval > self.interval {
            return Err(StartupError::Config(format!(
                "`RefreshConfig::min_interval` ({:?}) exceeds `RefreshConfig::interval` ({:?})",
                self.min_interval, self.interval
            )));
        }
        if self.max_stale < self.interval.saturating_mul(2) {
            return Err(StartupError::Config(format!(
                "`RefreshConfig::max_stale` ({:?}) must be at least twice \
                 `RefreshConfig::interval` ({:?}), or one late refresh would drop the key set",
                self.max_stale, self.interval
            )));
        }
        Ok(())
    }
}

impl Default for RefreshConfig {
    fn default() -> Self {
        RefreshConfig {
            interval: Duration::from_secs(600),
            min_interval: Duration::from_secs(30),
            fetch_timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_secs(1),
            max_document_bytes: 1024 * 1024,
            max_stale: DEFAULT_MAX_STALE,
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

    /// The issuer whose key store this refresher writes.
    pub fn issuer(&self) -> &str {
        self.store.issuer()
    }

    /// Fetches at once, then forever: every `interval`, early when a request
    /// asks (at most once per `min_interval`), and after a failure with
    /// exponential backoff and jitter; while fetches fail, a request's ask
    /// waits for the backoff's next try. A key set that no fetch has renewed
    /// for `max_stale` is dropped. Stop it by dropping or aborting its task.
    pub async fn run(mut self) {
        let mut deadline = Instant::now();
        let mut last_fetch: Option<Instant> = None;
        // When the published key set was last renewed, while it still is.
        let mut renewed: Option<Instant> = None;
        let mut failures: u32 = 0;
        loop {
            let stale_at = renewed.and_then(|t| t.checked_add(self.config.max_stale));
            tokio::select! {
                () = sleep_until(deadline) => {}
                () = self.store.wake.notified() => {
                    // While the issuer fails, the backoff alone says when to
                    // try again: a flood of unknown kids would otherwise
                    // retry at every minimum interval. The ask stays raised,
                    // so the backoff's next try answers it.
                    if failures == 0 {
                        let earliest = last_fetch
                            .map_or_else(Instant::now, |t| t + self.config.min_interval);
                        deadline = deadline.min(earliest.max(Instant::now()));
                    }
                    continue;
                }
                () = sleep_until(stale_at.unwrap_or(deadline)), if stale_at.is_some() => {
                    self.drop_stale(failures);
                    renewed = None;
                    continue;
                }
            }
            // Lower the flag before fetching: a miss that happens during the
            // fetch may concern a key published after this fetch began.
            self.store.refresh_asked.store(false, Ordering::Release);
            last_fetch = Some(Instant::now());
            let delay = match self.fetch().await {
                Ok(set) => {
                    failures = 0;
                    renewed = Some(Instant::now());
                    self.publish(set);
                    // Cache-Control is not read: see `RefreshConfig::interval`.
                    self.config.interval
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
                    } else if self.store.availability() == Availability::Stale {
                        tracing::warn!(
                            %error,
                            failures,
                            retry_in = ?delay,
                            "JWKS fetch failed; the key set went stale, so guarded calls get UNAVAILABLE"
                        );
                    } else {
                        tracing::warn!(
                            %error,
                            failures,
                            retry_in = ?delay,
                            "JWKS fetch failed; no key set has loaded yet, so guarded calls get UNAVAILABLE"
                        );
                    }
                    // A fetch that hung past the deadline does not save it.
                    if stale_at.is_some_and(|at| Instant::now() >= at) {
                        self.drop_stale(failures);
                        renewed = None;
                    }
                    delay
                }
            };
            // A floor, so that no configuration can make this a busy loop.
            deadline = Instant::now() + delay.max(MIN_PAUSE);
        }
    }

    /// Publishes what the issuer listed, saying so loudly when that is no
    /// usable key, or when keys are back after none.
    fn publish(&self, set: KeySet) {
        let before = self.store.availability();
        if set.is_empty() {
            tracing::error!(
                "the JWKS lists no usable signing key: every key it listed before is withdrawn, \
                 and calls get UNAVAILABLE until it lists one"
            );
        } else if matches!(before, Availability::NoUsableKey | Availability::Stale) {
            tracing::info!(keys = set.len(), "usable signing keys again; serving");
        }
        self.store.publish(set);
    }

    fn drop_stale(&self, failures: u32) {
        tracing::error!(
            max_stale = ?self.config.max_stale,
            failures,
            "no JWKS fetch has succeeded within the maximum staleness: dropped the last good \
             key set, and calls get UNAVAILABLE until a fetch succeeds"
        );
        self.store.drop_stale();
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
    /// A JWKS that parses yields a set, even an empty one. Each fetch is
    /// counted in the store's [`KeyStatus`](super::KeyStatus).
    pub async fn fetch(&mut self) -> Result<KeySet, FetchError> {
        let result = self.try_fetch().await;
        match &result {
            Ok(_) => self.store.record_success(),
            Err(error) => self.store.record_failure(error),
        }
        result
    }

    async fn try_fetch(&mut self) -> Result<KeySet, FetchError> {
        let url = self.jwks_url().await?;
        let result = self.fetch_from(&url).await;
        if result.is_err() {
            // The issuer may have moved its keys: ask discovery again next time.
            self.discovered = None;
        }
        result
    }

    async fn fetch_from(&mut self, url: &Url) -> Result<KeySet, FetchError> {
        let url = url.clone();
        let response = self.get(&url).await?;
        let body = net::read_limited(&url, response, self.config.max_document_bytes).await?;
        let previous = self.store.load_full();
        let (set, skipped) =
            KeySet::from_jwks(&body, previous.as_deref()).map_err(|e| match e {
                JwksError::Invalid(detail) => FetchError::Invalid {
                    url: net::redact(url.as_str()),
                    what: "JWKS",
                    detail,
                },
            })?;
        log_skipped(&skipped);
        let kids: Vec<&str> = set.keys().filter_map(|k| k.kid()).collect();
        tracing::info!(
            url = %net::redact(url.as_str()),
            keys = set.len(),
            skipped = skipped.len(),
            ?kids,
            "fetched the JWKS"
        );
        Ok(set)
    }

    async fn get(&self, url: &Url) -> Result<reqwest::Response, FetchError> {
        self.client
            .get(url.clone())
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|source| net::http_error(url, source))
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
        let fallback = net::well_known(&issuer_url, "jwks.json");
        match self.discover(&issuer, &issuer_url).await {
            Ok(url) => {
                self.discovered = Some(url.clone());
                Ok(url)
            }
            // Not remembered: a 404 may be passing, and the next fetch asks
            // discovery again.
            Err(FetchError::Status { status: 404, .. }) => {
                tracing::info!(
                    jwks_url = %net::redact(fallback.as_str()),
                    "the issuer has no discovery document"
                );
                Ok(fallback)
            }
            Err(
                error @ (FetchError::Invalid { .. }
                | FetchError::Url(_)
                | FetchError::IssuerMismatch { .. }),
            ) => Err(error),
            Err(error) => {
                tracing::warn!(
                    %error,
                    jwks_url = %net::redact(fallback.as_str()),
                    "discovery failed; trying the usual JWKS URL"
                );
                Ok(fallback)
            }
        }
    }

    async fn discover(&self, issuer: &str, issuer_url: &Url) -> Result<Url, FetchError> {
        let doc =
            net::Discovery::fetch(&self.client, issuer_url, self.config.max_document_bytes).await?;
        // OIDC Discovery §4.3: the document must name the issuer it was asked for.
        let named = doc.required("issuer", &doc.issuer)?;
        if named != issuer {
            // Either could be a URL with a query: errors show it redacted.
            return Err(FetchError::IssuerMismatch {
                url: doc.url.clone(),
                named: net::redact(named),
                configured: net::redact(issuer),
            });
        }
        let jwks_uri = doc.required("jwks_uri", &doc.jwks_uri)?;
        Ok(net::parse_issuer_url("discovery's jwks_uri", jwks_uri)?)
    }
}

fn log_skipped(skipped: &[super::SkippedKey]) {
    for key in skipped {
        tracing::warn!(kid = ?key.kid, reason = %key.reason, "skipped a JWKS key");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refresher(config: RefreshConfig) -> Refresher {
        let source = JwksSource::Url(Url::parse("http://127.0.0.1:9/").unwrap());
        Refresher::new(KeyStore::new(), source, config).unwrap()
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

    /// Gates that lost their issuer together come back spread out: a
    /// hundred backoffs after the same failures are (nearly) all different.
    /// A constant fraction, 0 or 1, would bring the fleet back at once.
    #[test]
    fn backoff_jitter_spreads_retries() {
        let r = refresher(RefreshConfig::default());
        let draws: std::collections::HashSet<Duration> = (0..100).map(|_| r.backoff(5)).collect();
        assert!(draws.len() > 50, "{} distinct of 100", draws.len());
        for _ in 0..1000 {
            assert!((0.0..1.0).contains(&random_fraction()));
        }
    }
}

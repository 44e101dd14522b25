//! The gate's decision: the bearer token authenticated against its
//! issuer's key set, then the scope policy for the method.

use std::{
    fmt,
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use std::sync::Mutex;

use tokio::{task::AbortHandle, time::Instant};

use super::stats::LogBudget;
use super::{Clock, GateStats, ScopePolicy, TrustedIssuer, bearer::bearer_token, system_clock};
use crate::{
    error::AuthError,
    gate::cache::TokenCache,
    gate::validate::{Principal, Validator, claimed_issuer},
    keys::KeyStore,
    keys::Refresher,
    net,
};

/// Authenticates and authorizes calls. Cheap to clone: clones share the key
/// store, the validator and the policy.
#[derive(Clone)]
pub struct Gate {
    pub(super) shared: Arc<Shared>,
    /// Where `exp` and `nbf` are compared against: [`system_clock`] but in tests.
    clock: Clock,
}

pub(super) struct Shared {
    /// Every issuer trusted, in the order configured: a short slice, searched
    /// by exact comparison of the token's `iss` when it has more than one.
    pub(super) issuers: Box<[TrustedIssuer]>,
    pub(super) policy: ScopePolicy,
    /// Tokens that verified before; `None` when disabled.
    pub(super) cache: Option<TokenCache>,
    /// Bounds how many refusals are logged, so a flood of junk cannot flood
    /// the logs or stall on a slow log sink.
    pub(super) refusal_log: LogBudget,
    /// Decisions and cache lookups, counted for metrics.
    pub(super) stats: GateStats,
    /// The refreshers [`GateBuilder::build`](crate::GateBuilder::build) started, stopped with the gate.
    refreshers: Refreshers,
}

/// The background refreshers of a gate's issuers: aborted by
/// [`Gate::stop_refreshing`], or when the last clone of the gate goes.
#[derive(Default)]
struct Refreshers(Mutex<Vec<AbortHandle>>);

impl Refreshers {
    fn stop(&self) {
        for task in crate::util::lock(&self.0).drain(..) {
            task.abort();
        }
    }
}

impl Drop for Refreshers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How many verified tokens the gate remembers by default.
pub const DEFAULT_TOKEN_CACHE_ENTRIES: usize = 4096;

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("issuers", &self.shared.issuers)
            .field("policy", &self.shared.policy)
            .field("cache", &self.shared.cache)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// Spawns `refreshers`, each in a span that names its issuer; they stop
    /// with the gate.
    pub(crate) fn start(&self, refreshers: Vec<Refresher>) {
        let mut tasks = crate::util::lock(&self.shared.refreshers.0);
        for refresher in refreshers {
            let span = tracing::info_span!("jwks", issuer = %net::redact(refresher.issuer()));
            let task = tokio::spawn(tracing::Instrument::instrument(refresher.run(), span));
            tasks.push(task.abort_handle());
        }
    }

    /// Stops the key refreshers that [`GateBuilder::build`](crate::GateBuilder::build) started: the
    /// key sets stay as they are, and go stale in time.
    pub fn stop_refreshing(&self) {
        self.shared.refreshers.stop();
    }

    /// Waits until some issuer's key set can check tokens: the first fetch
    /// has succeeded with at least one usable key.
    pub async fn ready(&self) {
        let mut waits = tokio::task::JoinSet::new();
        for issuer in self.issuers() {
            let keys = issuer.keys().clone();
            waits.spawn(async move { keys.wait_for(|a| a.is_usable()).await });
        }
        waits.join_next().await;
    }

    /// A gate for one issuer: validates with `validator` against whatever key
    /// set `keys` holds at the time of each call, remembering up to
    /// [`DEFAULT_TOKEN_CACHE_ENTRIES`] verified tokens.
    pub fn new(validator: Validator, keys: Arc<KeyStore>, policy: ScopePolicy) -> Gate {
        Gate::with_token_cache(validator, keys, policy, DEFAULT_TOKEN_CACHE_ENTRIES)
    }

    /// As [`Gate::new`], remembering up to `entries` verified
    /// tokens (rounded up to a power of two; 0 verifies every call).
    pub fn with_token_cache(
        validator: Validator,
        keys: Arc<KeyStore>,
        policy: ScopePolicy,
        entries: usize,
    ) -> Gate {
        Gate::with_issuers(vec![TrustedIssuer::new(validator, keys)], policy, entries)
    }

    /// A gate for several issuers: a token is checked only with the key set
    /// and rules of the issuer its `iss` names exactly, and refused, before
    /// any key is looked up, when it names none of them. Should two have the
    /// same `iss`, the first counts. `entries` as for
    /// [`Gate::with_token_cache`].
    pub fn with_issuers(issuers: Vec<TrustedIssuer>, policy: ScopePolicy, entries: usize) -> Gate {
        Gate {
            shared: Arc::new(Shared {
                issuers: issuers.into_boxed_slice(),
                policy,
                cache: TokenCache::new(entries),
                refusal_log: LogBudget::new("refusals"),
                stats: GateStats::default(),
                refreshers: Refreshers::default(),
            }),
            clock: system_clock,
        }
    }

    /// The issuers this gate trusts.
    pub fn issuers(&self) -> &[TrustedIssuer] {
        &self.shared.issuers
    }

    /// The same gate, reading the time from `clock` instead of the system
    /// clock: for tests of expiry at the second it happens.
    pub fn with_clock(mut self, clock: Clock) -> Gate {
        self.clock = clock;
        self
    }

    /// Who is calling, from the call's `authorization` values. No I/O, no
    /// lock, no waiting: a `kid` the key set lacks only asks that issuer's
    /// refresher to look, and this call is refused.
    pub fn authenticate<'a>(
        &self,
        authorization: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Principal, AuthError> {
        let token = bearer_token(authorization)?;
        let now = (self.clock)();
        let cache = self.shared.cache.as_ref();
        if let Some(cache) = cache {
            if let Some(principal) = cache.get(token, now) {
                self.shared.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(principal);
            }
            self.shared
                .stats
                .cache_misses
                .fetch_add(1, Ordering::Relaxed);
        }
        let issuer = self.issuer_of(token)?;
        let store = &issuer.keys;
        let keys = store.load();
        let keys = match keys.as_deref() {
            Some(keys) if !keys.is_empty() => keys,
            // The issuer withdrew every key; every kid is unknown now, so ask
            // as an unknown kid does, in case it has published new ones.
            Some(_) => {
                store.ask_refresh();
                return Err(AuthError::NoUsableKey(issuer.name.clone()));
            }
            None => return Err(store.availability().refusal(issuer.name.clone())),
        };
        match issuer.validator.validate(token, keys, now) {
            Ok(verified) => {
                if let Some(cache) = cache {
                    cache.insert(token, &verified, &issuer.keys);
                }
                Ok(verified.principal)
            }
            Err(AuthError::UnknownKeyId) => {
                issuer.keys.ask_refresh();
                Err(AuthError::UnknownKeyId)
            }
            Err(e) => Err(e),
        }
    }

    /// The issuer whose keys check `token`. With one, that one: its `iss` is
    /// checked after the signature, as always. With several, the one its
    /// unverified `iss` names, by exact comparison over a short slice.
    #[inline]
    fn issuer_of(&self, token: &[u8]) -> Result<&TrustedIssuer, AuthError> {
        match &*self.shared.issuers {
            [only] => Ok(only),
            several => claimed_issuer(token, |iss| several.iter().find(|i| i.issuer() == iss)),
        }
    }

    /// Whether an authenticated `principal` may ask `path` with
    /// `http_method`: its issuer's list of methods, if it has one, then the
    /// scope policy.
    #[inline]
    fn authorize(
        &self,
        http_method: &str,
        path: &str,
        principal: &Principal,
    ) -> Result<(), AuthError> {
        principal.check_method(path)?;
        self.shared
            .policy
            .check_request(http_method, path, principal)
    }

    /// [`Gate::check_request`] for a gRPC call (`POST`) to `method`.
    pub fn check<'a>(
        &self,
        method: &str,
        authorization: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Principal, Refusal> {
        self.check_request("POST", method, authorization)
    }

    /// Authenticates, then applies the token's issuer's list of methods, if
    /// it has one, and the scope rules that bind `http_method` requests for
    /// `path`. The decision is counted in [`Gate::stats`].
    pub fn check_request<'a>(
        &self,
        http_method: &str,
        path: &str,
        authorization: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Principal, Refusal> {
        self.decide(authorization, |principal| {
            self.authorize(http_method, path, principal)
        })
    }

    /// The decision when the method is not known (tonic does not tell an
    /// interceptor which method is called): a valid token, and no scope
    /// rule or issuer's list of methods that the call could be under, since
    /// those cannot be checked; counted as [`Gate::check_request`] counts.
    pub(crate) fn check_unknown_method<'a>(
        &self,
        authorization: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Principal, Refusal> {
        self.decide(authorization, |principal| {
            if self.shared.policy.is_empty() && !principal.is_limited_to_methods() {
                Ok(())
            } else {
                Err(AuthError::UnknownMethod)
            }
        })
    }

    /// Authenticates, then `authorize`s; the one place a decision is
    /// counted.
    fn decide<'a>(
        &self,
        authorization: impl IntoIterator<Item = &'a [u8]>,
        authorize: impl FnOnce(&Principal) -> Result<(), AuthError>,
    ) -> Result<Principal, Refusal> {
        let decision = self
            .authenticate(authorization)
            .map_err(|error| Refusal {
                error,
                subject: None,
            })
            .and_then(|principal| match authorize(&principal) {
                Ok(()) => Ok(principal),
                Err(error) => Err(Refusal {
                    error,
                    subject: Some(principal.subject().into()),
                }),
            });
        self.shared
            .stats
            .count(decision.as_ref().err().map(|r| &r.error));
        decision
    }

    /// The scope rules this gate applies.
    pub fn scope_policy(&self) -> &ScopePolicy {
        &self.shared.policy
    }

    /// What this gate has decided so far.
    pub fn stats(&self) -> &GateStats {
        &self.shared.stats
    }

    /// Logs a refusal at `info` (who, why, never the token), at most
    /// [`REFUSALS_LOGGED_PER_SECOND`](crate::REFUSALS_LOGGED_PER_SECOND) a second.
    pub fn log_refusal(&self, method: &str, peer: Option<SocketAddr>, refusal: &Refusal) {
        if self.shared.refusal_log.admit((self.clock)()) {
            tracing::info!(
                method,
                peer = ?peer,
                subject = refusal.subject.as_deref(),
                reason = refusal.error.reason(),
                code = ?refusal.error.code(),
                "refused: {}",
                refusal.error
            );
        }
    }

    /// When a call made with `principal`'s token must end: its `exp` plus
    /// the leeway of its issuer, as an instant of the async runtime's clock.
    pub fn deadline(&self, principal: &Principal) -> Instant {
        // An `exp` of centuries ahead (or the saturated `i64::MAX` of one
        // past 2^63) is a century: the runtime's clock cannot hold more.
        const CENTURY: u64 = 100 * 365 * 24 * 3600;
        let left = principal.accepted_until().saturating_sub((self.clock)());
        let left = u64::try_from(left).unwrap_or(0).min(CENTURY);
        Instant::now() + Duration::from_secs(left)
    }
}

/// Why a call was refused, and who made it when the token was valid.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The reason.
    pub error: AuthError,
    /// The caller's `sub`, when the token was valid but lacked a scope.
    pub subject: Option<Box<str>>,
}

//! The gate: [`AuthInterceptor`] reads the bearer token, validates it against
//! the published key set and applies the per-method [`ScopePolicy`];
//! [`AuthLayer`] puts it in front of a whole tonic server, deny by default.

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::time::Instant;

use tonic::{
    Status,
    transport::server::{TcpConnectInfo, TlsConnectInfo},
};

use crate::{
    error::AuthError,
    gate::cache::TokenCache,
    gate::expiry::ExpiringBody,
    gate::validate::{MAX_TOKEN_BYTES, Principal, Validator, claimed_issuer},
    keys::refresher::KeyStore,
};

/// Services anyone may call without a token: health and reflection.
pub const PUBLIC_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// One `--require-scope METHOD=SCOPE[|SCOPE...]` rule: the method (or every
/// method of a service) needs one of the scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeRule {
    /// The full method path, `/package.Service/Method`, or
    /// `/package.Service/*` for every method of the service.
    pub method: String,
    /// The scopes that satisfy the rule: any one of them will do.
    pub any_of: Vec<String>,
}

impl ScopeRule {
    /// The service, `/package.Service/`, when the rule is for all its methods.
    pub fn service(&self) -> Option<&str> {
        self.method.strip_suffix('*').filter(|s| s.ends_with('/'))
    }
}

impl fmt::Display for ScopeRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.method, self.any_of.join("|"))
    }
}

impl FromStr for ScopeRule {
    type Err = String;
    fn from_str(s: &str) -> Result<ScopeRule, String> {
        let (method, scopes) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}` is not METHOD=SCOPE"))?;
        let method = method.trim();
        let well_formed = method
            .strip_prefix('/')
            .and_then(|m| m.split_once('/'))
            .is_some_and(|(service, name)| {
                !service.is_empty()
                    && !service.contains('*')
                    && !name.is_empty()
                    && !name.contains('/')
                    && (name == "*" || !name.contains('*'))
            });
        if !well_formed {
            return Err(format!(
                "`{method}` is not a full method path such as /authgate.v1.PrivateService/GetPrivate \
                 (or /authgate.v1.PrivateService/* for every method of the service)"
            ));
        }
        let mut any_of: Vec<String> = Vec::new();
        for scope in scopes.split('|').map(str::trim) {
            if scope.is_empty() || scope.contains(char::is_whitespace) {
                return Err(format!(
                    "scope `{scope}` in `{s}` must be one non-empty word (`a|b` for either)"
                ));
            }
            if !any_of.iter().any(|s| s == scope) {
                any_of.push(scope.to_owned());
            }
        }
        Ok(ScopeRule {
            method: method.to_owned(),
            any_of,
        })
    }
}

/// One rule as the request path checks it: any one of these scopes.
type AnyOf = Arc<[Arc<str>]>;

/// Which scopes each method needs. A method without rules needs only a valid
/// token. Every rule that applies to a method must hold: those written for
/// the method and those written for its whole service; a rule holds when
/// the token grants any one of its scopes.
#[derive(Debug, Clone, Default)]
pub struct ScopePolicy {
    /// Rules for one method, by its full path.
    methods: HashMap<Box<str>, Box<[AnyOf]>>,
    /// Rules for every method of a service, by `/package.Service/`.
    services: HashMap<Box<str>, Box<[AnyOf]>>,
}

impl ScopePolicy {
    /// A policy from rules; several rules for a method all apply (a repeated
    /// rule counts once).
    pub fn new(rules: impl IntoIterator<Item = ScopeRule>) -> ScopePolicy {
        let mut methods: HashMap<Box<str>, Vec<AnyOf>> = HashMap::new();
        let mut services: HashMap<Box<str>, Vec<AnyOf>> = HashMap::new();
        for rule in rules {
            let any_of: AnyOf = rule.any_of.iter().map(|s| Arc::from(s.as_str())).collect();
            let rules = match rule.service() {
                Some(service) => services.entry(service.into()).or_default(),
                None => methods.entry(rule.method.into()).or_default(),
            };
            if !rules.iter().any(|r| **r == *any_of) {
                rules.push(any_of);
            }
        }
        let boxed = |map: HashMap<Box<str>, Vec<AnyOf>>| {
            map.into_iter()
                .map(|(m, r)| (m, r.into_boxed_slice()))
                .collect()
        };
        ScopePolicy {
            methods: boxed(methods),
            services: boxed(services),
        }
    }

    /// Whether no method needs a scope.
    pub fn is_empty(&self) -> bool {
        self.methods.is_empty() && self.services.is_empty()
    }

    /// Refuses with `PERMISSION_DENIED`, naming what the first unmet rule
    /// asks for, when `principal` does not meet every rule for `method`.
    /// Allocates nothing when it allows.
    pub fn check(&self, method: &str, principal: &Principal) -> Result<(), AuthError> {
        if let Some(rules) = self.methods.get(method) {
            holds(rules, principal)?;
        }
        if self.services.is_empty() {
            return Ok(());
        }
        // The service is the path's first segment, `/package.Service/`,
        // however many segments follow.
        let service = method
            .get(1..)
            .and_then(|m| m.find('/'))
            .and_then(|end| self.services.get(&method[..end + 2]));
        match service {
            Some(rules) => holds(rules, principal),
            None => Ok(()),
        }
    }
}

/// Whether `principal` meets every rule: one of each rule's scopes.
fn holds(rules: &[AnyOf], principal: &Principal) -> Result<(), AuthError> {
    for any_of in rules {
        if !any_of.iter().any(|scope| principal.has_scope(scope)) {
            return Err(AuthError::MissingScope(any_of.clone()));
        }
    }
    Ok(())
}

/// One issuer the gate trusts: the rules its tokens are checked by, and the
/// key set, its own, that verifies them.
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    validator: Validator,
    /// Read with one atomic load per call; this issuer's refresher writes it.
    keys: Arc<KeyStore>,
    /// The issuer, as refusals name it.
    name: Arc<str>,
}

impl TrustedIssuer {
    /// The issuer `validator` checks for, with its key store.
    pub fn new(validator: Validator, keys: Arc<KeyStore>) -> TrustedIssuer {
        let name = validator.issuer().into();
        TrustedIssuer {
            validator,
            keys,
            name,
        }
    }

    /// The exact `iss` of its tokens.
    pub fn issuer(&self) -> &str {
        self.validator.issuer()
    }

    /// Its key store.
    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }
}

/// The gate's clock: seconds since the Unix epoch. A plain function, so that
/// reading it costs the request path what reading the system clock does; tests
/// pass one that reads a value they set, to reach expiry edges without waiting.
pub type Clock = fn() -> i64;

/// The system clock, as a [`Clock`]: what the gate reads unless told otherwise.
pub fn system_clock() -> i64 {
    unix_now()
}

/// Authenticates and authorizes calls. Cheap to clone: clones share the key
/// store, the validator and the policy.
#[derive(Clone)]
pub struct AuthInterceptor {
    shared: Arc<Shared>,
    /// Where `exp` and `nbf` are compared against: [`system_clock`] but in tests.
    clock: Clock,
}

struct Shared {
    /// Every issuer trusted, in the order configured: a short slice, searched
    /// by exact comparison of the token's `iss` when it has more than one.
    issuers: Box<[TrustedIssuer]>,
    policy: ScopePolicy,
    /// Tokens that verified before; `None` when disabled.
    cache: Option<TokenCache>,
    /// Bounds how many refusals are logged, so a flood of junk cannot flood
    /// the logs or stall on a slow log sink.
    refusal_log: RefusalLog,
    /// Decisions and cache lookups, counted for metrics.
    stats: GateStats,
}

/// What the gate decided and how its token cache fared, counted with one
/// relaxed atomic increment each: no lock, no allocation, no map. Refusals are
/// counted by reason in a fixed array indexed by [`AuthError::reason_index`],
/// since the set of reasons is finite.
#[derive(Debug, Default)]
pub struct GateStats {
    allowed: AtomicU64,
    denied: [AtomicU64; AuthError::REASONS.len()],
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
}

impl GateStats {
    /// Calls let through.
    pub fn allowed(&self) -> u64 {
        self.allowed.load(Ordering::Relaxed)
    }

    /// Calls refused, by reason: each of [`AuthError::REASONS`] with its count.
    pub fn denied(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        AuthError::REASONS
            .iter()
            .zip(&self.denied)
            .map(|(reason, n)| (*reason, n.load(Ordering::Relaxed)))
    }

    /// Calls refused for `error`'s reason.
    pub fn denied_for(&self, error: &AuthError) -> u64 {
        self.denied[error.reason_index()].load(Ordering::Relaxed)
    }

    /// Tokens found in the verified-token cache.
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(Ordering::Relaxed)
    }

    /// Tokens looked up in the cache and not found there (then verified).
    pub fn cache_misses(&self) -> u64 {
        self.cache_misses.load(Ordering::Relaxed)
    }

    /// Counts one decision: let through, or refused for `refused`.
    #[inline]
    fn count(&self, refused: Option<&AuthError>) {
        match refused {
            None => self.allowed.fetch_add(1, Ordering::Relaxed),
            Some(error) => self.denied[error.reason_index()].fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// The most refusals logged in one second; the rest are counted, and the
/// count is logged when the next second begins.
pub const REFUSALS_LOGGED_PER_SECOND: u32 = 100;

#[derive(Default)]
struct RefusalLog {
    /// The second the counts below are for.
    second: AtomicI64,
    logged: AtomicU32,
    suppressed: AtomicU64,
}

impl RefusalLog {
    /// Whether a refusal at `now` (seconds) may be logged; lock-free.
    fn admit(&self, now: i64) -> bool {
        let second = self.second.load(Ordering::Relaxed);
        if now != second
            && self
                .second
                .compare_exchange(second, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.logged.store(0, Ordering::Relaxed);
            let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
            if suppressed > 0 {
                tracing::warn!(
                    suppressed,
                    limit_per_second = REFUSALS_LOGGED_PER_SECOND,
                    "more refusals than the log limit; these were counted, not logged"
                );
            }
        }
        if self.logged.fetch_add(1, Ordering::Relaxed) < REFUSALS_LOGGED_PER_SECOND {
            true
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

/// How many verified tokens the gate remembers by default.
pub const DEFAULT_TOKEN_CACHE_ENTRIES: usize = 4096;

impl fmt::Debug for AuthInterceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthInterceptor")
            .field("issuers", &self.shared.issuers)
            .field("policy", &self.shared.policy)
            .field("cache", &self.shared.cache)
            .finish_non_exhaustive()
    }
}

impl AuthInterceptor {
    /// A gate for one issuer: validates with `validator` against whatever key
    /// set `keys` holds at the time of each call, remembering up to
    /// [`DEFAULT_TOKEN_CACHE_ENTRIES`] verified tokens.
    pub fn new(validator: Validator, keys: Arc<KeyStore>, policy: ScopePolicy) -> AuthInterceptor {
        AuthInterceptor::with_token_cache(validator, keys, policy, DEFAULT_TOKEN_CACHE_ENTRIES)
    }

    /// As [`AuthInterceptor::new`], remembering up to `entries` verified
    /// tokens (rounded up to a power of two; 0 verifies every call).
    pub fn with_token_cache(
        validator: Validator,
        keys: Arc<KeyStore>,
        policy: ScopePolicy,
        entries: usize,
    ) -> AuthInterceptor {
        AuthInterceptor::with_issuers(vec![TrustedIssuer::new(validator, keys)], policy, entries)
    }

    /// A gate for several issuers: a token is checked only with the key set
    /// and rules of the issuer its `iss` names exactly, and refused, before
    /// any key is looked up, when it names none of them. Should two have the
    /// same `iss`, the first counts. `entries` as for
    /// [`AuthInterceptor::with_token_cache`].
    pub fn with_issuers(
        issuers: Vec<TrustedIssuer>,
        policy: ScopePolicy,
        entries: usize,
    ) -> AuthInterceptor {
        AuthInterceptor {
            shared: Arc::new(Shared {
                issuers: issuers.into_boxed_slice(),
                policy,
                cache: TokenCache::new(entries),
                refusal_log: RefusalLog::default(),
                stats: GateStats::default(),
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
    pub fn with_clock(mut self, clock: Clock) -> AuthInterceptor {
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

    /// Authenticates, then applies the scope policy for `method`. The
    /// decision is counted in [`AuthInterceptor::stats`].
    pub fn check<'a>(
        &self,
        method: &str,
        authorization: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Principal, Refusal> {
        let decision = self
            .authenticate(authorization)
            .map_err(|error| Refusal {
                error,
                subject: None,
            })
            .and_then(
                |principal| match self.shared.policy.check(method, &principal) {
                    Ok(()) => Ok(principal),
                    Err(error) => Err(Refusal {
                        error,
                        subject: Some(principal.subject().into()),
                    }),
                },
            );
        self.shared
            .stats
            .count(decision.as_ref().err().map(|r| &r.error));
        decision
    }

    /// What this gate has decided so far.
    pub fn stats(&self) -> &GateStats {
        &self.shared.stats
    }

    /// Logs a refusal at `info` (who, why, never the token), at most
    /// [`REFUSALS_LOGGED_PER_SECOND`] a second.
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
        let left = principal.accepted_until() - (self.clock)();
        Instant::now() + Duration::from_secs(u64::try_from(left).unwrap_or(0))
    }

    /// A layer that guards every method of a tonic server but health and
    /// reflection.
    pub fn layer(&self) -> AuthLayer {
        AuthLayer::new(self.clone())
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

/// For a single service (`FooServer::with_interceptor(svc, auth)`): validates
/// the token and puts the [`Principal`] in the request's extensions. tonic
/// does not tell an interceptor which method is called, so when the policy
/// names any method this refuses rather than guess: use [`AuthLayer`] there.
impl tonic::service::Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let values = request.metadata().get_all("authorization");
        let refuse = |error: AuthError, subject: Option<Box<str>>| {
            self.shared.stats.count(Some(&error));
            let refusal = Refusal { error, subject };
            self.log_refusal("(one service)", request.remote_addr(), &refusal);
            Status::from(&refusal.error)
        };
        let principal = self
            .authenticate(values.iter().map(|v| v.as_bytes()))
            .map_err(|e| refuse(e, None))?;
        if !self.shared.policy.is_empty() {
            return Err(refuse(
                AuthError::UnknownMethod,
                Some(principal.subject().into()),
            ));
        }
        self.shared.stats.count(None);
        request.extensions_mut().insert(principal);
        Ok(request)
    }
}

/// Extracts the token from `Bearer <token>`: exactly one value, the scheme in
/// any case, one or more spaces, then the token. Its characters are checked
/// by validation; a cache hit needs no check, being a verified token's bytes.
pub fn bearer_token<'a>(
    authorization: impl IntoIterator<Item = &'a [u8]>,
) -> Result<&'a [u8], AuthError> {
    let mut values = authorization.into_iter();
    let value = values.next().ok_or(AuthError::MissingAuthorization)?;
    if values.next().is_some() {
        return Err(AuthError::DuplicateAuthorization);
    }
    // Scheme, spaces and a token at its longest.
    if value.len() > MAX_TOKEN_BYTES + 64 {
        return Err(AuthError::TooLong {
            max: MAX_TOKEN_BYTES,
        });
    }
    let space = value
        .iter()
        .position(|b| *b == b' ')
        .ok_or(AuthError::NotBearer)?;
    if !value[..space].eq_ignore_ascii_case(b"bearer") {
        return Err(AuthError::NotBearer);
    }
    let start = space + value[space..].iter().take_while(|b| **b == b' ').count();
    let token = &value[start..];
    if token.is_empty() {
        return Err(AuthError::NotBearer);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::TooLong {
            max: MAX_TOKEN_BYTES,
        });
    }
    Ok(token)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A tower layer that guards a whole tonic server: every method but the
/// public ones needs a valid token, including methods added later.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    interceptor: AuthInterceptor,
    /// Path prefixes (`/grpc.health.v1.Health/`) open without a token.
    public: Arc<[Box<str>]>,
}

impl AuthLayer {
    /// Guards everything but [`PUBLIC_SERVICES`].
    pub fn new(interceptor: AuthInterceptor) -> AuthLayer {
        AuthLayer {
            interceptor,
            public: PUBLIC_SERVICES
                .iter()
                .map(|s| format!("/{s}/").into_boxed_str())
                .collect(),
        }
    }

    /// Also leaves `service` (`package.Service`) open without a token.
    pub fn allow_unauthenticated(mut self, service: &str) -> AuthLayer {
        let mut public = self.public.to_vec();
        public.push(format!("/{service}/").into_boxed_str());
        self.public = public.into();
        self
    }

    fn is_public(&self, path: &str) -> bool {
        self.public.iter().any(|prefix| path.starts_with(&**prefix))
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`AuthLayer`] wraps around a server.
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S, B, R> tower_service::Service<http::Request<B>> for AuthService<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = http::Response<ExpiringBody<R>>;
    type Error = S::Error;
    type Future = AuthFuture<S::Future, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        if self.layer.is_public(path) {
            return AuthFuture::Inner {
                future: self.inner.call(request),
                deadline: None,
            };
        }
        let values = request.headers().get_all(http::header::AUTHORIZATION);
        match self
            .layer
            .interceptor
            .check(path, values.iter().map(|v| v.as_bytes()))
        {
            Ok(principal) => {
                // The call, streams included, ends when its token does.
                let deadline = self.layer.interceptor.deadline(&principal);
                request.extensions_mut().insert(principal);
                AuthFuture::Inner {
                    future: self.inner.call(request),
                    deadline: Some(deadline),
                }
            }
            Err(refusal) => {
                self.layer
                    .interceptor
                    .log_refusal(path, peer(&request), &refusal);
                AuthFuture::Refused {
                    response: Some(Status::from(&refusal.error).into_http()),
                }
            }
        }
    }
}

fn peer<B>(request: &http::Request<B>) -> Option<SocketAddr> {
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .and_then(|i| i.remote_addr())
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|i| i.get_ref().remote_addr())
        })
}

pin_project_lite::pin_project! {
    /// The response of [`AuthService`]: the inner call, or a refusal.
    // pin-project-lite takes no docs on variant fields; the variants say it.
    #[allow(missing_docs)]
    #[project = AuthFutureProj]
    pub enum AuthFuture<F, R> {
        /// The call went through; its response ends at the deadline.
        Inner { #[pin] future: F, deadline: Option<Instant> },
        /// The call was refused with this gRPC status.
        Refused { response: Option<http::Response<ExpiringBody<R>>> },
    }
}

impl<F, R, E> Future for AuthFuture<F, R>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = Result<http::Response<ExpiringBody<R>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AuthFutureProj::Inner { future, deadline } => future
                .poll(cx)
                .map_ok(|response| response.map(|body| ExpiringBody::new(body, *deadline))),
            AuthFutureProj::Refused { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_strict() {
        let one = |v: &'static str| bearer_token([v.as_bytes()]);
        assert_eq!(one("Bearer abc"), Ok(&b"abc"[..]));
        assert_eq!(one("bearer abc"), Ok(&b"abc"[..]));
        assert_eq!(one("BEARER   abc"), Ok(&b"abc"[..]));
        for bad in [
            "Basic abc",
            "Bearer",
            "Bearer ",
            "Bearerabc",
            "abc",
            "Token abc",
        ] {
            assert_eq!(one(bad), Err(AuthError::NotBearer), "{bad}");
        }
        assert_eq!(bearer_token([]), Err(AuthError::MissingAuthorization));
        assert_eq!(
            bearer_token([&b"Bearer a"[..], b"Bearer b"]),
            Err(AuthError::DuplicateAuthorization)
        );
    }

    /// A gate with no keys and no rules, reading the time from `clock`.
    fn gate(clock: Clock) -> AuthInterceptor {
        let validator = Validator::new(crate::gate::validate::ValidationConfig {
            issuer: "https://issuer.test/".into(),
            audiences: vec!["api".into()],
            leeway: std::time::Duration::ZERO,
            require_typ: None,
        });
        AuthInterceptor::new(validator, KeyStore::new(), ScopePolicy::default()).with_clock(clock)
    }

    #[test]
    fn refusal_logging_is_capped_per_second_and_counts_the_rest() {
        use std::sync::{Mutex, atomic::AtomicI64};
        static NOW: AtomicI64 = AtomicI64::new(1_000);
        fn clock() -> i64 {
            NOW.load(Ordering::SeqCst)
        }
        #[derive(Clone, Default)]
        struct Captured(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Captured {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .without_time()
            .with_writer(move || writer.clone())
            .finish();
        let gate = gate(clock);
        let refusal = Refusal {
            error: AuthError::BadSignature,
            subject: None,
        };
        let peer = Some(SocketAddr::from(([127, 0, 0, 1], 4711)));
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..150 {
                gate.log_refusal("/p.S/M", peer, &refusal);
            }
            // The next second logs again, first saying how many went unlogged.
            NOW.store(1_001, Ordering::SeqCst);
            gate.log_refusal("/p.S/M", peer, &refusal);
            // A second after one without suppression says nothing of it.
            NOW.store(1_002, Ordering::SeqCst);
            gate.log_refusal("/p.S/M", peer, &refusal);
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let refused: Vec<&str> = text.lines().filter(|l| l.contains("refused:")).collect();
        assert_eq!(refused.len(), REFUSALS_LOGGED_PER_SECOND as usize + 2);
        assert!(refused[0].contains("127.0.0.1:4711"), "{}", refused[0]);
        assert!(refused[0].contains("bad_signature"), "{}", refused[0]);
        let counted: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("more refusals than the log limit"))
            .collect();
        assert_eq!(counted.len(), 1, "{counted:?}");
        assert!(counted[0].contains("suppressed=50"), "{}", counted[0]);
    }

    #[test]
    fn the_whole_authorization_value_is_bounded_too() {
        // "Bearer", spaces, and a token at its longest: 8256 bytes, read.
        let longest = format!("Bearer{}{}", " ".repeat(58), "t".repeat(MAX_TOKEN_BYTES));
        assert_eq!(longest.len(), MAX_TOKEN_BYTES + 64);
        assert_eq!(
            bearer_token([longest.as_bytes()]).map(<[u8]>::len),
            Ok(MAX_TOKEN_BYTES)
        );
        // Longer, however short the token in it: refused unread.
        let padded = format!("Bearer{}abc", " ".repeat(MAX_TOKEN_BYTES + 100));
        assert_eq!(
            bearer_token([padded.as_bytes()]),
            Err(AuthError::TooLong {
                max: MAX_TOKEN_BYTES
            })
        );
    }

    #[test]
    fn the_layer_is_ready_only_when_the_service_behind_it_is() {
        struct NeverReady;
        impl tower_service::Service<http::Request<()>> for NeverReady {
            type Response = http::Response<()>;
            type Error = std::convert::Infallible;
            type Future = std::future::Ready<Result<http::Response<()>, Self::Error>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                Poll::Pending
            }
            fn call(&mut self, _: http::Request<()>) -> Self::Future {
                unreachable!("called while not ready")
            }
        }
        fn clock() -> i64 {
            0
        }
        let mut service = tower_layer::Layer::layer(&gate(clock).layer(), NeverReady);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(tower_service::Service::poll_ready(&mut service, &mut cx).is_pending());
    }

    #[test]
    fn refusals_name_the_peer_and_debug_names_the_parts() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 4711));
        let mut request = http::Request::new(());
        request.extensions_mut().insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(addr),
        });
        assert_eq!(peer(&request), Some(addr));
        assert_eq!(peer(&http::Request::new(())), None);
        fn clock() -> i64 {
            0
        }
        let debug = format!("{:?}", gate(clock));
        assert!(debug.starts_with("AuthInterceptor"), "{debug}");
        assert!(debug.contains("https://issuer.test/"), "{debug}");
        assert!(debug.contains("policy"), "{debug}");
    }

    #[test]
    fn scope_rules_parse_full_method_paths() {
        let rule: ScopeRule = "/authgate.v1.PrivateService/GetPrivate=read:private"
            .parse()
            .unwrap();
        assert_eq!(rule.method, "/authgate.v1.PrivateService/GetPrivate");
        assert_eq!(rule.any_of, ["read:private"]);
        assert_eq!(rule.service(), None);
        let rule: ScopeRule = "/a.S/*= read:private | admin |admin".parse().unwrap();
        assert_eq!(rule.service(), Some("/a.S/"));
        assert_eq!(rule.any_of, ["read:private", "admin"]);
        assert_eq!(rule.to_string(), "/a.S/*=read:private|admin");
        for bad in [
            "GetPrivate=read",
            "/authgate.v1.PrivateService=read",
            "/a/b/c=read",
            "/a/b=",
            "/a/b=two words",
            "/a/b",
            "//b=x",
            "/a/b=x||y",
            "/a/b=x|",
            "/*/b=x",
            "/a/b*=x",
            "/a/*b=x",
            "/*=x",
        ] {
            assert!(bad.parse::<ScopeRule>().is_err(), "{bad}");
        }
    }
}

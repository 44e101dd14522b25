//! Building a [`Gate`] in one line: the issuers it trusts, what their
//! tokens must say, the scope rules, and a refresher per issuer started in
//! the background. Every default is written down once: here, in
//! [`ValidationConfig::default`] and in [`RefreshConfig::default`].

use std::{sync::Arc, time::Duration};

use super::{
    Clock, DEFAULT_TOKEN_CACHE_ENTRIES, Gate, ScopePolicy, ScopeRule, TrustedIssuer,
    issuer_config::{IssuerConfig, check_issuers},
};
use crate::{
    StartupError, ValidationConfig, Validator,
    keys::{KeyStore, RefreshConfig, Refresher},
};

/// The most verified tokens a gate may remember (about 17 GiB at most, every
/// entry at its largest): a bound on a setting, not a suggestion.
pub const MAX_TOKEN_CACHE_ENTRIES: usize = 1 << 20;

/// Builds a [`Gate`] and starts a background [`Refresher`] for each issuer.
///
/// ```no_run
/// # fn main() -> Result<(), authgate::StartupError> {
/// # let _rt = tokio::runtime::Runtime::new().unwrap(); let _g = _rt.enter();
/// let gate = authgate::Gate::builder()
///     .issuer("https://tenant.auth0.com/")
///     .audience("https://api.example.com")
///     .require_scope("/greeter.v1.Greeter/SayHello=greet:hello")
///     .build()?;
/// # Ok(()) }
/// ```
///
/// Defaults: a leeway of [`DEFAULT_LEEWAY`](crate::DEFAULT_LEEWAY) on `exp` and `nbf`; `typ`
/// absent, `JWT` or `at+jwt`; the audience in `aud`, scopes from `scope`,
/// `scp` and `permissions`, `token_use` not read, and any method open to
/// every issuer ([`ValidationConfig::default`]); no scope rules (a valid
/// token suffices);
/// [`DEFAULT_TOKEN_CACHE_ENTRIES`] verified tokens remembered; keys
/// refreshed as [`RefreshConfig::default`] says.
#[derive(Debug, Clone)]
pub struct GateBuilder {
    issuers: Vec<Pending>,
    audiences: Vec<String>,
    leeway: Duration,
    require_typ: Option<String>,
    audience_claim: String,
    token_use: Option<String>,
    scope_claims: Vec<String>,
    rules: Vec<ScopeRule>,
    /// A policy given whole, instead of rules.
    policy: Option<ScopePolicy>,
    token_cache_entries: usize,
    refresh: RefreshConfig,
    clock: Option<Clock>,
    /// The first thing given that cannot be right, reported by `build`.
    error: Option<String>,
}

impl Gate {
    /// A builder: the issuers, audiences and scope rules, with documented
    /// defaults for the rest; its `build` starts the key refreshers.
    pub fn builder() -> GateBuilder {
        GateBuilder::default()
    }

    /// A gate for one OIDC issuer (`https://tenant.auth0.com/`) and one
    /// audience (the API identifier), every other setting at its default:
    /// [`Gate::builder`]`().issuer(issuer).audience(audience).build()`.
    /// Call it within a Tokio runtime.
    pub fn from_oidc(issuer: &str, audience: &str) -> Result<Gate, StartupError> {
        Gate::builder().issuer(issuer).audience(audience).build()
    }
}

/// An issuer as given: its own settings, or the builder's for what it lacks.
#[derive(Debug, Clone)]
enum Pending {
    Discovered(String),
    WithJwks(String, String),
    Configured(Box<IssuerConfig>),
}

impl Default for GateBuilder {
    fn default() -> Self {
        let defaults = ValidationConfig::default();
        GateBuilder {
            issuers: Vec::new(),
            audiences: defaults.audiences,
            leeway: defaults.leeway,
            require_typ: defaults.require_typ,
            audience_claim: defaults.audience_claim,
            token_use: defaults.token_use,
            scope_claims: defaults.scope_claims,
            rules: Vec::new(),
            policy: None,
            token_cache_entries: DEFAULT_TOKEN_CACHE_ENTRIES,
            refresh: RefreshConfig::default(),
            clock: None,
            error: None,
        }
    }
}

impl GateBuilder {
    /// Trusts `issuer`: its tokens' exact `iss`, and the base of its OIDC
    /// discovery, which names its JWKS (`{issuer}.well-known/jwks.json`
    /// when it has no discovery document).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(Pending::Discovered(issuer.into()));
        self
    }

    /// Trusts `issuer`, whose keys are at `jwks_url` (no discovery). As only
    /// `iss` is compared with it, `issuer` need not be a URL:
    /// `accounts.google.com`, or a service account's email.
    pub fn issuer_with_jwks(
        mut self,
        issuer: impl Into<String>,
        jwks_url: impl Into<String>,
    ) -> Self {
        self.issuers
            .push(Pending::WithJwks(issuer.into(), jwks_url.into()));
        self
    }

    /// Trusts an issuer configured in full: its audiences, leeway, `typ`
    /// rule, audience claim, `token_use`, scope claims and methods are its
    /// own, not the builder's.
    pub fn issuer_config(mut self, issuer: IssuerConfig) -> Self {
        self.issuers.push(Pending::Configured(Box::new(issuer)));
        self
    }

    /// Accepts tokens whose `aud` holds `audience` (several calls: any one
    /// of them), from every issuer given by [`GateBuilder::issuer`] or
    /// [`GateBuilder::issuer_with_jwks`].
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The clock skew allowed on `exp` and `nbf`.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Accepts only tokens whose `typ` is this (`at+jwt` also accepts
    /// `application/at+jwt`).
    pub fn require_typ(mut self, typ: impl Into<String>) -> Self {
        self.require_typ = Some(typ.into());
        self
    }

    /// The claim that must name an audience, for every issuer given by
    /// [`GateBuilder::issuer`] or [`GateBuilder::issuer_with_jwks`]: see
    /// [`ValidationConfig::audience_claim`].
    pub fn audience_claim(mut self, claim: impl Into<String>) -> Self {
        self.audience_claim = claim.into();
        self
    }

    /// The `token_use` those issuers' tokens must have: see
    /// [`ValidationConfig::token_use`].
    pub fn token_use(mut self, token_use: impl Into<String>) -> Self {
        self.token_use = Some(token_use.into());
        self
    }

    /// The claims those issuers' scopes come from, instead of `scope`, `scp`
    /// and `permissions`: see [`ValidationConfig::scope_claims`].
    pub fn scope_claims<S: Into<String>>(mut self, claims: impl IntoIterator<Item = S>) -> Self {
        self.scope_claims = claims.into_iter().map(Into::into).collect();
        self
    }

    /// A scope rule, `METHOD=SCOPE[|SCOPE...]`, as `--require-scope` takes
    /// it; several rules for a method must all hold. A rule that does not
    /// parse makes [`GateBuilder::build`] fail.
    pub fn require_scope(mut self, rule: &str) -> Self {
        match rule.parse() {
            Ok(rule) => self.rules.push(rule),
            Err(why) => {
                self.error.get_or_insert(why);
            }
        }
        self
    }

    /// Scope rules already parsed, added to any others.
    pub fn scope_rules(mut self, rules: impl IntoIterator<Item = ScopeRule>) -> Self {
        self.rules.extend(rules);
        self
    }

    /// A scope policy built elsewhere, instead of rules given one by one.
    pub fn scope_policy(mut self, policy: ScopePolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// How many verified tokens to remember (0: verify every call).
    pub fn token_cache_entries(mut self, entries: usize) -> Self {
        self.token_cache_entries = entries;
        self
    }

    /// How the issuers' key sets are refreshed.
    pub fn refresh(mut self, refresh: RefreshConfig) -> Self {
        self.refresh = refresh;
        self
    }

    /// Reads the time from `clock`: for tests of expiry at its very second.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The issuers as configured, checked: at least one, none twice, each
    /// with an audience, and claims and methods that can be read.
    pub fn issuer_configs(&self) -> Result<Vec<IssuerConfig>, StartupError> {
        if let Some(why) = &self.error {
            return Err(StartupError::Config(why.clone()));
        }
        let mut issuers = Vec::with_capacity(self.issuers.len());
        for pending in &self.issuers {
            let mut issuer = match pending {
                Pending::Configured(config) => {
                    issuers.push((**config).clone());
                    continue;
                }
                Pending::Discovered(issuer) => {
                    IssuerConfig::discovered(issuer, self.audiences.clone(), self.leeway)?
                }
                Pending::WithJwks(issuer, jwks) => {
                    IssuerConfig::with_jwks(issuer, jwks, self.audiences.clone(), self.leeway)?
                }
            };
            let validation = &mut issuer.validation;
            validation.require_typ.clone_from(&self.require_typ);
            validation.audience_claim.clone_from(&self.audience_claim);
            validation.token_use.clone_from(&self.token_use);
            validation.scope_claims.clone_from(&self.scope_claims);
            issuers.push(issuer);
        }
        check_issuers(&issuers)?;
        Ok(issuers)
    }

    /// Checks everything, then builds the gate with a key store per issuer
    /// and starts each issuer's refresher on the current Tokio runtime.
    /// Until a first key set loads, calls are refused with `UNAVAILABLE`;
    /// [`Gate::ready`] waits for it. The refreshers stop with
    /// [`Gate::stop_refreshing`] or when the last clone of the gate is
    /// dropped.
    pub fn build(self) -> Result<Gate, StartupError> {
        let (gate, refreshers) = self.build_unstarted()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StartupError::Config(
                "Gate::builder().build() starts the key refreshers, so it must run within a \
                 Tokio runtime"
                    .into(),
            ));
        }
        gate.start(refreshers);
        Ok(gate)
    }

    /// Checks everything `build` would, without building: the issuers,
    /// the scope rules, the refresh settings and the cache size.
    pub fn check(&self) -> Result<(), StartupError> {
        self.issuer_configs()?;
        self.refresh.check()?;
        if self.policy.is_some() && !self.rules.is_empty() {
            return Err(StartupError::Config(
                "give the gate scope rules or a scope policy, not both".into(),
            ));
        }
        if self.token_cache_entries > MAX_TOKEN_CACHE_ENTRIES {
            return Err(StartupError::Config(format!(
                "`GateBuilder::token_cache_entries` must be at most {MAX_TOKEN_CACHE_ENTRIES}"
            )));
        }
        Ok(())
    }

    /// The gate and its issuers' refreshers, not yet started.
    pub(crate) fn build_unstarted(self) -> Result<(Gate, Vec<Refresher>), StartupError> {
        self.check()?;
        let issuers = self.issuer_configs()?;
        let mut refreshers = Vec::with_capacity(issuers.len());
        let mut trusted = Vec::with_capacity(issuers.len());
        for issuer in issuers {
            let keys: Arc<KeyStore> = KeyStore::for_issuer(&issuer.validation.issuer);
            refreshers.push(
                Refresher::new(keys.clone(), issuer.jwks, self.refresh.clone())
                    .map_err(StartupError::HttpClient)?,
            );
            trusted.push(TrustedIssuer::new(Validator::new(issuer.validation), keys));
        }
        let mut gate = Gate::with_issuers(
            trusted,
            self.policy.unwrap_or_else(|| ScopePolicy::new(self.rules)),
            self.token_cache_entries,
        );
        if let Some(clock) = self.clock {
            gate = gate.with_clock(clock);
        }
        Ok((gate, refreshers))
    }
}

//! What authgate's benchmarks share: keys and tokens of every algorithm from
//! the dev issuer, the key set built from its JWKS, and a gate over it.

use std::sync::Arc;

use authgate::{
    issuer::{DevIssuer, DevIssuerConfig},
    keys::KeyStore,
    keys::{Algorithm, KeySet},
    {Gate, ScopePolicy, TrustedIssuer}, {ValidationConfig, Validator},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

pub mod loadgen;

/// The method the benchmarks call, and the scope it needs.
pub const METHOD: &str = "/authgate.v1.PrivateService/GetPrivate";
/// The scope the benchmark tokens carry.
pub const SCOPE: &str = "read:private";

/// A dev issuer with one key per benchmarked algorithm, and a gate that
/// trusts them.
pub struct Fixture {
    /// Keeps the issuer's runtime alive.
    _runtime: tokio::runtime::Runtime,
    /// Signs tokens.
    pub issuer: DevIssuer,
    /// The published key set.
    pub store: Arc<KeyStore>,
    /// The validator the gate uses.
    pub validator: Validator,
    kids: Vec<(Algorithm, String)>,
}

impl Fixture {
    /// Keys for RS256, PS256, ES256, ES384 and EdDSA.
    pub fn new() -> Fixture {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let issuer = runtime
            .block_on(DevIssuer::start(DevIssuerConfig::for_tests()))
            .expect("a dev issuer");
        let kids: Vec<(Algorithm, String)> = [
            Algorithm::RS256,
            Algorithm::PS256,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::EdDSA,
        ]
        .into_iter()
        .map(|alg| (alg, issuer.add_key(alg)))
        .collect();
        let jwks: Vec<_> = kids
            .iter()
            .map(|(_, kid)| issuer.jwk(kid).unwrap())
            .collect();
        let document = serde_json::json!({ "keys": jwks }).to_string();
        let (set, skipped) = KeySet::from_jwks(document.as_bytes(), None).unwrap();
        assert!(skipped.is_empty());
        let store = KeyStore::new();
        store.publish(set);
        let validator = Validator::new(ValidationConfig {
            issuer: issuer.url().to_owned(),
            audiences: vec![issuer.audience().to_owned()],
            leeway: std::time::Duration::from_secs(30),
            require_typ: None,
            ..Default::default()
        });
        Fixture {
            _runtime: runtime,
            issuer,
            store,
            validator,
            kids,
        }
    }

    /// The `kid` of the key for `alg`.
    pub fn kid(&self, alg: Algorithm) -> &str {
        &self
            .kids
            .iter()
            .find(|(a, _)| *a == alg)
            .expect("a benchmarked algorithm")
            .1
    }

    /// A valid token signed under `alg`, distinct for each `n`, shaped like
    /// an Auth0 client-credentials token.
    pub fn token(&self, alg: Algorithm, n: usize) -> String {
        let mut claims = self
            .issuer
            .claims(&format!("service-{n}@clients"), &[SCOPE]);
        claims["azp"] = format!("service-{n}").into();
        claims["gty"] = "client-credentials".into();
        self.issuer.mint_with(self.kid(alg), &claims)
    }

    /// The gate over this key set, remembering `cache_entries` tokens.
    pub fn interceptor(&self, cache_entries: usize) -> Gate {
        let policy = ScopePolicy::new([format!("{METHOD}={SCOPE}").parse().unwrap()]);
        Gate::with_token_cache(
            self.validator.clone(),
            self.store.clone(),
            policy,
            cache_entries,
        )
    }

    /// The gate trusting `n` issuers, this fixture's last: a token is
    /// matched against all the others' `iss` before its own. The others'
    /// key sets hold the same keys, parsed on their own.
    pub fn interceptor_trusting(&self, n: usize, cache_entries: usize) -> Gate {
        let policy = ScopePolicy::new([format!("{METHOD}={SCOPE}").parse().unwrap()]);
        let jwks: Vec<_> = self
            .kids
            .iter()
            .map(|(_, kid)| self.issuer.jwk(kid).unwrap())
            .collect();
        let document = serde_json::json!({ "keys": jwks }).to_string();
        let mut issuers: Vec<TrustedIssuer> = (1..n)
            .map(|i| {
                let store = KeyStore::new();
                store.publish(KeySet::from_jwks(document.as_bytes(), None).unwrap().0);
                // As long as the real issuer's URL, differing only at its end:
                // the comparison's worst case.
                let url = format!("{}other-{i}/", self.issuer.url());
                let validator = Validator::new(ValidationConfig {
                    issuer: url,
                    audiences: vec![self.issuer.audience().to_owned()],
                    leeway: std::time::Duration::from_secs(30),
                    require_typ: None,
                    ..Default::default()
                });
                TrustedIssuer::new(validator, store)
            })
            .collect();
        issuers.push(TrustedIssuer::new(
            self.validator.clone(),
            self.store.clone(),
        ));
        Gate::with_issuers(issuers, policy, cache_entries)
    }

    /// The current key set.
    pub fn keys(&self) -> Arc<KeySet> {
        self.store.load().as_ref().expect("published").clone()
    }

    /// The public JWK of the key for `alg`.
    pub fn jwk(&self, alg: Algorithm) -> serde_json::Value {
        self.issuer.jwk(self.kid(alg)).unwrap()
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture::new()
    }
}

/// The signed bytes and the decoded signature of a compact JWS.
pub fn signed_parts(token: &str) -> (&[u8], Vec<u8>) {
    let dot = token.rfind('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(&token[dot + 1..]).unwrap();
    (&token.as_bytes()[..dot], signature)
}

/// Seconds since the Unix epoch, as the validator takes them.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs() as i64
}

/// Decodes a base64url JWK member.
pub fn member(jwk: &serde_json::Value, name: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap()
}

//! The dev issuer: a small OAuth 2.0 / OpenID Connect issuer on loopback that
//! serves discovery, a JWKS and a client-credentials `/oauth/token`, so that
//! `authgate dev` and the tests reach it over real HTTP exactly as they would
//! reach Auth0. It mints tokens with any algorithm authgate accepts, and the
//! tests use it to rotate and withdraw keys and to make its JWKS misbehave.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use aws_lc_rs::rsa::KeySize;
use axum::{
    Router,
    routing::{get, post},
};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::{keys::Algorithm, util::lock};

mod config;
mod faults;
mod key_file;
mod routes;
mod signing;
mod state;

pub use config::{DevClient, DevIssuerConfig};
pub use faults::{JwksFault, TokenFault};
pub use key_file::DevSigningKey;
use routes::{discovery, jwks, token};
pub use signing::RsaKeyPool;
use signing::{Keys, SigningKey};
use state::{IssuerState, unix_now};

/// A running dev issuer. Dropping it stops accepting connections.
pub struct DevIssuer {
    addr: SocketAddr,
    state: Arc<IssuerState>,
    task: JoinHandle<()>,
}

impl DevIssuer {
    /// Starts the issuer on `config.listen` with one signing key.
    pub async fn start(config: DevIssuerConfig) -> std::io::Result<DevIssuer> {
        let listener = TcpListener::bind(config.listen).await?;
        DevIssuer::start_on(listener, config)
    }

    /// Starts the issuer on a listener the caller bound (`config.listen` is
    /// not used): a test can hold an address before anything serves on it.
    pub fn start_on(listener: TcpListener, config: DevIssuerConfig) -> std::io::Result<DevIssuer> {
        let addr = listener.local_addr()?;
        let issuer = format!("http://{addr}/");
        let first = match &config.signing_key {
            Some(key) => SigningKey::from_pkcs8(config.algorithm, key.pkcs8())
                .map_err(|why| std::io::Error::new(std::io::ErrorKind::InvalidInput, why))?,
            None => SigningKey::generate(
                config.algorithm,
                KeySize::Rsa2048,
                config.rsa_keys.as_deref(),
            ),
        };
        let state = Arc::new(IssuerState {
            issuer,
            audience: config.audience,
            keys: Mutex::new(Keys {
                current: first.kid.clone(),
                all: vec![first],
            }),
            clients: Mutex::new(vec![config.client]),
            token_ttl: Mutex::new(config.token_ttl),
            jwks_fault: Mutex::new(JwksFault::None),
            jwks_max_age: Mutex::new(None),
            extra_jwks: Mutex::new(Vec::new()),
            discovery_enabled: Mutex::new(true),
            discovery_overrides: Mutex::new(serde_json::Map::new()),
            rsa_keys: config.rsa_keys,
            token_faults: Mutex::new(VecDeque::new()),
            jwks_hits: AtomicUsize::new(0),
            discovery_hits: AtomicUsize::new(0),
            token_hits: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/.well-known/jwks.json", get(jwks))
            .route("/oauth/token", post(token))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "dev issuer stopped");
            }
        });
        Ok(DevIssuer { addr, state, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The issuer URL, with its trailing slash, exactly as tokens carry it.
    pub fn url(&self) -> &str {
        &self.state.issuer
    }

    /// The JWKS URL.
    pub fn jwks_url(&self) -> String {
        format!("{}.well-known/jwks.json", self.state.issuer)
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}oauth/token", self.state.issuer)
    }

    /// The audience tokens are issued for.
    pub fn audience(&self) -> &str {
        &self.state.audience
    }

    /// The `kid` that [`DevIssuer::mint`] signs with.
    pub fn current_kid(&self) -> String {
        lock(&self.state.keys).current.clone()
    }

    /// Adds a new published key and returns its `kid`; `mint` keeps signing
    /// with the current key until [`DevIssuer::sign_with`] moves it.
    pub fn add_key(&self, alg: Algorithm) -> String {
        self.add_key_sized(alg, KeySize::Rsa2048)
    }

    /// As [`DevIssuer::add_key`], with an RSA modulus of `size`.
    pub fn add_key_sized(&self, alg: Algorithm, size: KeySize) -> String {
        let pool = self.state.rsa_keys.as_deref();
        let key = SigningKey::generate(alg, size, pool);
        let kid = key.kid.clone();
        lock(&self.state.keys).all.push(key);
        kid
    }

    /// Adds a key the JWKS does not list (an attacker's, or one the issuer
    /// has not published yet).
    pub fn add_unpublished_key(&self, alg: Algorithm) -> String {
        let kid = self.add_key(alg);
        self.set_published(&kid, false);
        kid
    }

    /// Lists or stops listing `kid` in the JWKS.
    pub fn set_published(&self, kid: &str, published: bool) {
        let mut keys = lock(&self.state.keys);
        if let Some(key) = keys.all.iter_mut().find(|k| k.kid == kid) {
            key.published = published;
        }
    }

    /// Makes `kid` the key that `mint` and the token endpoint sign with.
    pub fn sign_with(&self, kid: &str) {
        lock(&self.state.keys).current = kid.to_owned();
    }

    /// Rotates as Auth0 does: a new key is published and signs from now on;
    /// the old key stays listed until [`DevIssuer::set_published`] withdraws it.
    pub fn rotate(&self, alg: Algorithm) -> String {
        let kid = self.add_key(alg);
        self.sign_with(&kid);
        kid
    }

    /// Claims for a token this issuer would grant: `iss`, `aud`, `sub`,
    /// `iat`, `exp` one TTL from now, and `scope` when any are given.
    pub fn claims(&self, subject: &str, scopes: &[&str]) -> Value {
        let now = unix_now();
        let ttl = lock(&self.state.token_ttl).as_secs();
        let mut claims = json!({
            "iss": self.state.issuer,
            "sub": subject,
            "aud": self.state.audience,
            "iat": now,
            "exp": now + ttl,
        });
        if !scopes.is_empty() {
            claims["scope"] = scopes.join(" ").into();
        }
        claims
    }

    /// Signs `claims` with the current key, as the issuer would.
    pub fn mint(&self, claims: &Value) -> String {
        let kid = self.current_kid();
        self.mint_with(&kid, claims)
    }

    /// Signs `claims` with the key `kid`, under that key's algorithm.
    pub fn mint_with(&self, kid: &str, claims: &Value) -> String {
        let alg = self.key_algorithm(kid);
        let header = json!({"alg": alg.name(), "typ": "JWT", "kid": kid});
        self.sign_raw(
            kid,
            alg,
            header.to_string().as_bytes(),
            claims.to_string().as_bytes(),
        )
    }

    /// The algorithm the key `kid` was made for.
    ///
    /// # Panics
    /// If the issuer has no such key.
    pub fn key_algorithm(&self, kid: &str) -> Algorithm {
        lock(&self.state.keys)
            .all
            .iter()
            .find(|k| k.kid == kid)
            .map(|k| k.alg)
            .expect("no such dev issuer key")
    }

    /// Signs any header and payload bytes with the key `kid` under `alg`:
    /// for tests that need a token the issuer would never make.
    ///
    /// # Panics
    /// If the issuer has no such key.
    pub fn sign_raw(&self, kid: &str, alg: Algorithm, header: &[u8], payload: &[u8]) -> String {
        lock(&self.state.keys)
            .sign(kid, alg, header, payload)
            .expect("no such dev issuer key")
    }

    /// The public JWK of `kid`, published or not.
    pub fn jwk(&self, kid: &str) -> Option<Value> {
        lock(&self.state.keys)
            .all
            .iter()
            .find(|k| k.kid == kid)
            .map(SigningKey::jwk)
    }

    /// The JWKS the endpoint serves when it behaves: the published keys,
    /// then the extra JWK objects.
    pub fn jwks_document(&self) -> Value {
        self.state.jwks_document()
    }

    /// Makes the JWKS endpoint misbehave (or behave again with `None`).
    pub fn set_jwks_fault(&self, fault: JwksFault) {
        *lock(&self.state.jwks_fault) = fault;
    }

    /// Sends `Cache-Control: public, max-age=N` with the JWKS.
    pub fn set_jwks_max_age(&self, seconds: Option<u64>) {
        *lock(&self.state.jwks_max_age) = seconds;
    }

    /// Lists these JWK objects (junk ones, say) after the real keys.
    pub fn set_extra_jwks(&self, extra: Vec<Value>) {
        *lock(&self.state.extra_jwks) = extra;
    }

    /// Turns the discovery document off (404) or on.
    pub fn set_discovery(&self, enabled: bool) {
        *lock(&self.state.discovery_enabled) = enabled;
    }

    /// Makes the discovery document say `value` for `member` (`issuer`,
    /// `jwks_uri`, ...): for tests of a document that lies.
    pub fn set_discovery_member(&self, member: &str, value: Value) {
        lock(&self.state.discovery_overrides).insert(member.to_owned(), value);
    }

    /// Sets how long tokens from `/oauth/token` and [`DevIssuer::claims`] last.
    pub fn set_token_ttl(&self, ttl: Duration) {
        *lock(&self.state.token_ttl) = ttl;
    }

    /// The next token request gets `fault` instead of a token; queued faults
    /// are served in order.
    pub fn push_token_fault(&self, fault: TokenFault) {
        lock(&self.state.token_faults).push_back(fault);
    }

    /// Allows another client the client-credentials grant.
    pub fn add_client(&self, client: DevClient) {
        lock(&self.state.clients).push(client);
    }

    /// How many times the JWKS was asked for.
    pub fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    /// How many times the discovery document was asked for.
    pub fn discovery_hits(&self) -> usize {
        self.state.discovery_hits.load(Ordering::SeqCst)
    }

    /// How many token requests arrived.
    pub fn token_hits(&self) -> usize {
        self.state.token_hits.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIssuer")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl Drop for DevIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

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
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aws_lc_rs::{
    constant_time,
    rand::{self, SystemRandom},
    rsa::KeySize,
    signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair},
};
use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::keys::Algorithm;

/// A client the dev issuer grants tokens to.
#[derive(Clone)]
pub struct DevClient {
    /// `client_id`.
    pub id: String,
    /// `client_secret`.
    pub secret: String,
    /// The scopes it may be granted.
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for DevClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevClient")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// How to start a dev issuer.
#[derive(Debug, Clone)]
pub struct DevIssuerConfig {
    /// Where to listen; a loopback address, port 0 for any.
    pub listen: SocketAddr,
    /// The API identifier tokens are issued for (`aud`).
    pub audience: String,
    /// The algorithm of the first signing key.
    pub algorithm: Algorithm,
    /// How long issued tokens last.
    pub token_ttl: Duration,
    /// The client allowed the client-credentials grant.
    pub client: DevClient,
    /// Pre-generated RSA keys to sign with before generating any: generating
    /// an RSA-2048 key takes some 80 ms, and a test suite starts many issuers.
    pub rsa_keys: Option<Arc<RsaKeyPool>>,
}

/// RSA-2048 key pairs made ahead of time (PKCS#8), each handed out once, so
/// that issuers sharing a pool never share a key; once it runs dry, keys are
/// generated as usual.
pub struct RsaKeyPool {
    pkcs8: Vec<Vec<u8>>,
    next: AtomicUsize,
}

impl RsaKeyPool {
    /// A pool of these PKCS#8 documents, each an RSA-2048 private key.
    pub fn new(pkcs8: Vec<Vec<u8>>) -> RsaKeyPool {
        RsaKeyPool {
            pkcs8,
            next: AtomicUsize::new(0),
        }
    }

    /// The next key no one has taken, if any is left.
    ///
    /// # Panics
    /// If a document in the pool is not an RSA-2048 private key.
    fn take(&self) -> Option<RsaKeyPair> {
        let der = self.pkcs8.get(self.next.fetch_add(1, Ordering::Relaxed))?;
        let pair = RsaKeyPair::from_pkcs8(der).expect("an RSA private key in PKCS#8");
        assert_eq!(
            pair.public_modulus_len(),
            256,
            "the pool holds RSA-2048 keys"
        );
        Some(pair)
    }

    /// How many keys are left.
    pub fn remaining(&self) -> usize {
        self.pkcs8
            .len()
            .saturating_sub(self.next.load(Ordering::Relaxed))
    }
}

impl std::fmt::Debug for RsaKeyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaKeyPool")
            .field("remaining", &self.remaining())
            .finish_non_exhaustive()
    }
}

impl DevIssuerConfig {
    /// A config for tests: any port, RS256, one-hour tokens, client
    /// `test-client` / `test-secret` granted `read:private`.
    pub fn for_tests() -> DevIssuerConfig {
        DevIssuerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            audience: "https://authgate.test/api".into(),
            algorithm: Algorithm::RS256,
            token_ttl: Duration::from_secs(3600),
            client: DevClient {
                id: "test-client".into(),
                secret: "test-secret".into(),
                scopes: vec!["read:private".into()],
            },
            rsa_keys: None,
        }
    }
}

/// How the JWKS endpoint misbehaves, for tests of the refresher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksFault {
    /// Serve the published keys.
    None,
    /// Answer with this HTTP status and no keys.
    Status(u16),
    /// Answer 200 with a body that is not JSON.
    Garbage,
    /// Answer 200 with `{"keys": []}`.
    Empty,
    /// Answer correctly, after this long.
    Delay(Duration),
    /// Never answer.
    Hang,
    /// Redirect (302) to this URL.
    Redirect(String),
    /// Redirect this many times within the issuer's origin (to the JWKS path
    /// with `?hop=N`), then answer with the key set. Only the first request
    /// of a fetch counts in [`DevIssuer::jwks_hits`].
    Redirects(usize),
    /// Answer 200 with the JWKS padded to exactly this many bytes (an
    /// unread member added), sent with its `Content-Length`.
    Padded(usize),
    /// The same, streamed in chunks without `Content-Length`, so that only
    /// counting the bytes as they arrive can stop it.
    PaddedChunked(usize),
    /// Answer 200 declaring a body of this many bytes, then never send it: a
    /// reader that does not refuse by the declared length waits forever.
    DeclaredLengthOnly(u64),
}

/// What the next token request gets instead of a token, for tests of the
/// token source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFault {
    /// The HTTP status to answer.
    pub status: u16,
    /// A `Retry-After` header, in seconds.
    pub retry_after: Option<u64>,
}

/// A running dev issuer. Dropping it stops accepting connections.
pub struct DevIssuer {
    addr: SocketAddr,
    state: Arc<IssuerState>,
    task: JoinHandle<()>,
}

struct IssuerState {
    /// `http://127.0.0.1:PORT/`: what tokens carry in `iss`.
    issuer: String,
    audience: String,
    keys: Mutex<Keys>,
    clients: Mutex<Vec<DevClient>>,
    token_ttl: Mutex<Duration>,
    jwks_fault: Mutex<JwksFault>,
    jwks_max_age: Mutex<Option<u64>>,
    extra_jwks: Mutex<Vec<Value>>,
    discovery_enabled: Mutex<bool>,
    /// Members that replace the discovery document's own.
    discovery_overrides: Mutex<serde_json::Map<String, Value>>,
    rsa_keys: Option<Arc<RsaKeyPool>>,
    token_faults: Mutex<VecDeque<TokenFault>>,
    jwks_hits: AtomicUsize,
    discovery_hits: AtomicUsize,
    token_hits: AtomicUsize,
}

struct Keys {
    all: Vec<SigningKey>,
    /// The `kid` that [`DevIssuer::mint`] signs with.
    current: String,
}

struct SigningKey {
    kid: String,
    alg: Algorithm,
    pair: Pair,
    published: bool,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl Keys {
    /// The `kid` and algorithm of the key that signs by default.
    fn current(&self) -> (&str, Algorithm) {
        let key = self
            .all
            .iter()
            .find(|k| k.kid == self.current)
            .expect("the current key exists");
        (&key.kid, key.alg)
    }

    /// `header.payload.signature`, signed by `kid` under `alg`.
    fn sign(&self, kid: &str, alg: Algorithm, header: &[u8], payload: &[u8]) -> Option<String> {
        let key = self.all.iter().find(|k| k.kid == kid)?;
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = key.sign(alg, message.as_bytes());
        Some(format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

impl SigningKey {
    /// A new key for `alg` (an RSA-2048 one from `pool` while it lasts),
    /// named by its RFC 7638 thumbprint: a new key always has a new `kid`, so
    /// a token from an earlier run of the issuer names a key that is gone
    /// instead of failing as a bad signature.
    fn generate(alg: Algorithm, size: KeySize, pool: Option<&RsaKeyPool>) -> SigningKey {
        let pair = match alg {
            Algorithm::ES256 => Pair::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .expect("P-256 key generation"),
            ),
            Algorithm::ES384 => Pair::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING)
                    .expect("P-384 key generation"),
            ),
            Algorithm::EdDSA => Pair::Ed(Ed25519KeyPair::generate().expect("Ed25519 generation")),
            _ => Pair::Rsa(
                pool.filter(|_| size == KeySize::Rsa2048)
                    .and_then(RsaKeyPool::take)
                    .unwrap_or_else(|| RsaKeyPair::generate(size).expect("RSA key generation")),
            ),
        };
        let mut key = SigningKey {
            kid: String::new(),
            alg,
            pair,
            published: true,
        };
        key.kid = key.thumbprint();
        key
    }

    /// The RFC 7638 thumbprint: SHA-256 of the required public members in
    /// lexicographic order, without white space, base64url.
    fn thumbprint(&self) -> String {
        let members = self.public_members();
        let text = |name: &str| members[name].as_str().unwrap_or_default().to_owned();
        let canonical = match &self.pair {
            Pair::Rsa(_) => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, text("e"), text("n")),
            Pair::Ec(_) => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                text("crv"),
                text("x"),
                text("y")
            ),
            Pair::Ed(_) => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, text("x")),
        };
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        URL_SAFE_NO_PAD.encode(digest.as_ref())
    }

    /// The public JWK, with `use`, `alg` and `kid` as Auth0 publishes them.
    fn jwk(&self) -> Value {
        let mut jwk = self.public_members();
        jwk["use"] = "sig".into();
        jwk["alg"] = self.alg.name().into();
        jwk["kid"] = self.kid.clone().into();
        jwk
    }

    /// The members of the public key that RFC 7638 requires.
    fn public_members(&self) -> Value {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        match &self.pair {
            Pair::Rsa(pair) => json!({
                "kty": "RSA",
                "n": b64(pair.public_key().modulus().big_endian_without_leading_zero()),
                "e": b64(pair.public_key().exponent().big_endian_without_leading_zero()),
            }),
            Pair::Ec(pair) => {
                let point = pair.public_key().as_ref();
                let size = (point.len() - 1) / 2;
                json!({
                    "kty": "EC",
                    "crv": if size == 32 { "P-256" } else { "P-384" },
                    "x": b64(&point[1..1 + size]),
                    "y": b64(&point[1 + size..]),
                })
            }
            Pair::Ed(pair) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": b64(pair.public_key().as_ref()),
            }),
        }
    }

    /// Signs `message` under `alg`, which for an RSA key may be any RSA
    /// algorithm (tests sign with one the JWK does not declare).
    fn sign(&self, alg: Algorithm, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Rsa(pair) => {
                let padding: &dyn signature::RsaEncoding = match alg {
                    Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
                    Algorithm::PS256 => &signature::RSA_PSS_SHA256,
                    Algorithm::PS384 => &signature::RSA_PSS_SHA384,
                    Algorithm::PS512 => &signature::RSA_PSS_SHA512,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, message, &mut sig)
                    .expect("RSA signing");
                sig
            }
            Pair::Ec(pair) => pair
                .sign(&rng, message)
                .expect("ECDSA signing")
                .as_ref()
                .to_vec(),
            Pair::Ed(pair) => pair.sign(message).as_ref().to_vec(),
        }
    }
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
        let first = SigningKey::generate(
            config.algorithm,
            KeySize::Rsa2048,
            config.rsa_keys.as_deref(),
        );
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

impl IssuerState {
    fn jwks_document(&self) -> Value {
        let mut keys: Vec<Value> = lock(&self.keys)
            .all
            .iter()
            .filter(|k| k.published)
            .map(SigningKey::jwk)
            .collect();
        keys.extend(lock(&self.extra_jwks).iter().cloned());
        json!({ "keys": keys })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not take the issuer down with it.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn discovery(State(state): State<Arc<IssuerState>>) -> Response {
    state.discovery_hits.fetch_add(1, Ordering::SeqCst);
    if !*lock(&state.discovery_enabled) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let algs: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
    let mut document = json!({
            "issuer": state.issuer,
            "jwks_uri": format!("{}.well-known/jwks.json", state.issuer),
            "token_endpoint": format!("{}oauth/token", state.issuer),
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": ["token"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "id_token_signing_alg_values_supported": algs,
    });
    for (member, value) in lock(&state.discovery_overrides).iter() {
        document[member] = value.clone();
    }
    json_response(StatusCode::OK, &document)
}

async fn jwks(
    State(state): State<Arc<IssuerState>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let hop = query
        .as_deref()
        .and_then(|query| query.strip_prefix("hop="))
        .and_then(|n| n.parse::<usize>().ok());
    if hop.is_none() {
        state.jwks_hits.fetch_add(1, Ordering::SeqCst);
    }
    let fault = lock(&state.jwks_fault).clone();
    match fault {
        JwksFault::Redirects(hops) if hop.unwrap_or(0) < hops => {
            let next = format!("/.well-known/jwks.json?hop={}", hop.unwrap_or(0) + 1);
            return (StatusCode::FOUND, [(header::LOCATION, next)]).into_response();
        }
        JwksFault::None
        | JwksFault::Delay(_)
        | JwksFault::Redirects(_)
        | JwksFault::Padded(_)
        | JwksFault::PaddedChunked(_) => {}
        JwksFault::DeclaredLengthOnly(length) => {
            let never = futures_util::stream::pending::<Result<Bytes, std::convert::Infallible>>();
            return (
                StatusCode::OK,
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    ),
                    (header::CONTENT_LENGTH, HeaderValue::from(length)),
                ],
                axum::body::Body::from_stream(never),
            )
                .into_response();
        }
        JwksFault::Status(code) => {
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (code, "the JWKS is unavailable").into_response();
        }
        JwksFault::Garbage => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "<html>not a key set</html>",
            )
                .into_response();
        }
        JwksFault::Empty => return json_response(StatusCode::OK, &json!({"keys": []})),
        JwksFault::Hang => std::future::pending::<()>().await,
        JwksFault::Redirect(to) => {
            return (StatusCode::FOUND, [(header::LOCATION, to)]).into_response();
        }
    }
    if let JwksFault::Delay(delay) = fault {
        tokio::time::sleep(delay).await;
    }
    let mut document = state.jwks_document();
    if let JwksFault::Padded(bytes) | JwksFault::PaddedChunked(bytes) = fault {
        document["padding"] = "".into();
        let short = bytes.saturating_sub(document.to_string().len());
        document["padding"] = "x".repeat(short).into();
    }
    let mut response = match fault {
        JwksFault::PaddedChunked(_) => {
            let body = Bytes::from(document.to_string());
            let chunks: Vec<Result<Bytes, std::convert::Infallible>> = (0..body.len())
                .step_by(16 * 1024)
                .map(|at| Ok(body.slice(at..body.len().min(at + 16 * 1024))))
                .collect();
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                axum::body::Body::from_stream(futures_util::stream::iter(chunks)),
            )
                .into_response()
        }
        _ => json_response(StatusCode::OK, &document),
    };
    let max_age = *lock(&state.jwks_max_age);
    if let Some(value) =
        max_age.and_then(|age| HeaderValue::from_str(&format!("public, max-age={age}")).ok())
    {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

/// An OAuth 2.0 error response (RFC 6749 §5.2).
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

/// The parameters of a client-credentials request, from a JSON body (as
/// Auth0 takes them) or a form body, with client credentials in the body or
/// in HTTP Basic (RFC 6749 §2.3.1).
#[derive(Default)]
struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    audience: Option<String>,
    scope: Option<String>,
}

impl TokenRequest {
    fn parse(headers: &HeaderMap, body: &[u8]) -> Result<TokenRequest, &'static str> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mut request = TokenRequest::default();
        if content_type.starts_with("application/json") {
            let value: Value = serde_json::from_slice(body).map_err(|_| "the body is not JSON")?;
            let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
            request.grant_type = field("grant_type");
            request.client_id = field("client_id");
            request.client_secret = field("client_secret");
            request.audience = field("audience");
            request.scope = field("scope");
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            for (name, value) in form_urlencoded::parse(body) {
                let slot = match &*name {
                    "grant_type" => &mut request.grant_type,
                    "client_id" => &mut request.client_id,
                    "client_secret" => &mut request.client_secret,
                    "audience" => &mut request.audience,
                    "scope" => &mut request.scope,
                    _ => continue,
                };
                *slot = Some(value.into_owned());
            }
        } else {
            return Err("the body must be application/json or application/x-www-form-urlencoded");
        }
        if let Some(basic) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
        {
            let decoded = STANDARD
                .decode(basic.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or("the Basic credentials are not base64")?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or("the Basic credentials have no `:`")?;
            let unescape = |s: &str| {
                form_urlencoded::parse(format!("v={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            request.client_id = unescape(id);
            request.client_secret = unescape(secret);
        }
        Ok(request)
    }
}

async fn token(State(state): State<Arc<IssuerState>>, headers: HeaderMap, body: Bytes) -> Response {
    state.token_hits.fetch_add(1, Ordering::SeqCst);
    if let Some(fault) = lock(&state.token_faults).pop_front() {
        let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut response = oauth_error(status, "temporarily_unavailable", "injected fault");
        if let Some(secs) = fault.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        return response;
    }
    let request = match TokenRequest::parse(&headers, &body) {
        Ok(request) => request,
        Err(why) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", why),
    };
    if request.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only client_credentials is supported",
        );
    }
    let client = {
        let clients = lock(&state.clients);
        let id = request.client_id.as_deref().unwrap_or("");
        let secret = request.client_secret.as_deref().unwrap_or("");
        clients
            .iter()
            .find(|c| {
                c.id == id
                    && constant_time::verify_slices_are_equal(
                        c.secret.as_bytes(),
                        secret.as_bytes(),
                    )
                    .is_ok()
            })
            .cloned()
    };
    let Some(client) = client else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client or wrong secret",
        );
    };
    let audience = request.audience.unwrap_or_else(|| state.audience.clone());
    if audience != state.audience {
        return oauth_error(
            StatusCode::FORBIDDEN,
            "access_denied",
            "the client may not request tokens for this audience",
        );
    }
    // As Auth0 does: the scopes asked for that the client was granted, or all
    // of its scopes when it asks for none.
    let scopes: Vec<&String> = match &request.scope {
        Some(asked) => client
            .scopes
            .iter()
            .filter(|s| asked.split(' ').any(|a| a == s.as_str()))
            .collect(),
        None => client.scopes.iter().collect(),
    };
    let scope = scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let ttl = lock(&state.token_ttl).as_secs();
    let now = unix_now();
    let claims = json!({
        "iss": state.issuer,
        "sub": format!("{}@clients", client.id),
        "aud": audience,
        "iat": now,
        "exp": now + ttl,
        "scope": scope,
        "azp": client.id,
        "gty": "client-credentials",
    });
    let access_token = {
        let keys = lock(&state.keys);
        let (kid, alg) = keys.current();
        let header = json!({"alg": alg.name(), "typ": "JWT", "kid": kid});
        keys.sign(
            kid,
            alg,
            header.to_string().as_bytes(),
            claims.to_string().as_bytes(),
        )
        .expect("the current key exists")
    };
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": scope,
        }),
    )
}

/// A random secret for the dev client: 32 bytes, base64url.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes).expect("the system random source");
    URL_SAFE_NO_PAD.encode(bytes)
}

//! `authgate dev`: the dev issuer and the server wired to it; the banner it
//! prints is in [`banner`](super::banner).

use super::banner::{DevBanner, print_authz_banner, print_dev_banner};
use super::values::{parse_algorithm, parse_duration, parse_listen, parse_secret};
use super::*;

/// `authgate dev`.
#[derive(Debug, Args)]
#[command(after_help = "Scopes: with no --require-scope, dev applies \
    /authgate.v1.PrivateService/GetPrivate=read:private. The dev client is granted read:private, \
    every scope the rules name, and each --grant-scope; it is refused (invalid_scope) any other.")]
pub struct DevArgs {
    /// Where the dev issuer listens (loopback only): IP:PORT or HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:50052", value_parser = parse_listen)]
    pub issuer_listen: SocketAddr,
    /// Also start a second dev issuer, with keys of its own, and trust both:
    /// each one's tokens pass, checked only with its own keys.
    #[arg(long)]
    pub second_issuer: bool,
    /// Where the second dev issuer listens (loopback only).
    #[arg(long, default_value = "127.0.0.1:50054", value_parser = parse_listen, requires = "second_issuer")]
    pub second_issuer_listen: SocketAddr,
    /// The API identifier the dev issuer issues tokens for.
    #[arg(long, default_value = "https://authgate.dev/api")]
    pub audience: String,
    /// The algorithm the dev issuer signs with.
    #[arg(long, value_parser = parse_algorithm, default_value = "RS256")]
    pub algorithm: Algorithm,
    /// How long dev tokens last.
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    pub token_ttl: Duration,
    /// The dev client's id.
    #[arg(long, default_value = "authgate-dev")]
    pub client_id: String,
    /// The dev client's secret [default: a new random one each start].
    #[arg(long, env = "AUTHGATE_DEV_CLIENT_SECRET", hide_env_values = true, value_parser = parse_secret)]
    pub client_secret: Option<Secret>,
    /// Also grant the dev client this scope (repeat for more); it is always
    /// granted read:private and every scope the --require-scope rules name.
    #[arg(long = "grant-scope", value_name = "SCOPE")]
    pub grant_scope: Vec<String>,
    /// Keep the dev issuer's signing key in FILE (PKCS#8 PEM), made with
    /// mode 0600 when absent, so that a restart keeps its `kid` and tokens
    /// issued before stay valid (a second issuer's keys are still new)
    /// [default: a new key each start].
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// Write tokens of every shape issuers mint (and a few the gate must
    /// refuse) to FILE, one `NAME TOKEN` a line, for the interop checks.
    #[arg(long, value_name = "FILE", hide = true)]
    pub sample_tokens: Option<PathBuf>,
    /// Start `authgate authz` instead of the demo server: the decision
    /// answered to a proxy in front (Envoy's Check, nginx auth_request,
    /// Caddy, Traefik); prints a curl that asks it and an nginx config.
    #[arg(long)]
    pub authz: bool,
    /// Settings shared with `authgate serve`. With none given, GetPrivate
    /// requires `read:private`, which the dev client is granted.
    #[command(flatten)]
    pub settings: Settings,
}

/// The scope rule `authgate dev` applies when none is given.
pub const DEV_SCOPE_RULE: &str = "/authgate.v1.PrivateService/GetPrivate=read:private";

/// Where `authgate dev` serves metrics unless told otherwise.
pub const DEV_METRICS_LISTEN: &str = "127.0.0.1:50053";

/// What the dev client may be granted: `read:private`, every scope a rule
/// names (so that `--require-scope` on a method of yours works at once),
/// and each `--grant-scope`, without repeats.
fn granted_scopes(settings: &Settings, extra: &[String]) -> Vec<String> {
    let named = settings
        .require_scope
        .iter()
        .flat_map(|r| r.0.any_of.iter());
    let mut scopes: Vec<String> = Vec::new();
    for scope in std::iter::once(&"read:private".to_owned())
        .chain(named)
        .chain(extra)
    {
        if !scopes.contains(scope) {
            scopes.push(scope.clone());
        }
    }
    scopes
}

pub(super) async fn dev(args: DevArgs) -> Result<(), StartupError> {
    let mut listens = vec![("--issuer-listen", args.issuer_listen)];
    if args.second_issuer {
        listens.push(("--second-issuer-listen", args.second_issuer_listen));
    }
    if let Some((flag, _)) = listens.iter().find(|(_, addr)| !addr.ip().is_loopback()) {
        return Err(StartupError::Config(format!(
            "{flag} must be a loopback address: the dev issuer is for this machine only"
        )));
    }
    let secret = args
        .client_secret
        .as_ref()
        .map_or_else(random_secret, |s| s.expose().to_owned());
    let mut settings = args.settings.clone();
    if settings.require_scope.is_empty() {
        settings.require_scope.push(Parsed(
            DEV_SCOPE_RULE.parse().expect("the dev scope rule parses"),
        ));
    }
    let scopes = granted_scopes(&settings, &args.grant_scope);
    let mut signing_key = args
        .signing_key
        .as_deref()
        .map(|path| DevSigningKey::load_or_create(path, args.algorithm))
        .transpose()
        .map_err(|e| StartupError::Config(format!("--signing-key: {e}")))?;
    let mut issuers = Vec::new();
    for (flag, listen) in listens {
        let issuer = DevIssuer::start(DevIssuerConfig {
            listen,
            audience: args.audience.clone(),
            algorithm: args.algorithm,
            token_ttl: args.token_ttl,
            client: DevClient {
                id: args.client_id.clone(),
                secret: secret.clone(),
                scopes: scopes.clone(),
            },
            rsa_keys: None,
            // The first issuer's; a second has keys of its own.
            signing_key: signing_key.take(),
        })
        .await
        .map_err(|source| StartupError::Bind {
            addr: format!("{listen} (a dev issuer; try {flag} 127.0.0.1:0)"),
            source,
        })?;
        issuers.push(issuer);
    }

    // Keys for the sample tokens are listed before the server's first fetch.
    let samples = args
        .sample_tokens
        .as_ref()
        .map(|_| SampleKeys::add_to(&issuers[0]));

    if settings.metrics_listen.is_none() {
        // Port 0 for gRPC asks for free ports: metrics follow, so that
        // several dev servers can run side by side.
        let mut metrics: SocketAddr = DEV_METRICS_LISTEN.parse().expect("a socket address");
        if settings.listen.is_some_and(|l| l.port() == 0) {
            metrics.set_port(0);
        }
        settings.metrics_listen = Some(metrics);
    }
    settings.audience = vec![args.audience.clone()];
    settings.issuers = issuers
        .iter()
        .map(|issuer| IssuerSettings::new(issuer.url()))
        .collect();
    let config = settings.server_config()?;
    // Rules for methods of your own service only shape what the dev client
    // is granted: warned about, not refused.
    let app = Application::builder(config.clone());
    let app = if args.authz {
        crate::authz::Authz::new().install(app)
    } else {
        app.add_demo_service()
    };
    let app = app
        .warn_on_unknown_rules()
        .bind()
        .await
        .map_err(|e| match e {
            StartupError::Bind { addr, source } => StartupError::Bind {
                addr: format!(
                    "{addr} (try --listen 127.0.0.1:0, which also picks a free metrics port)"
                ),
                source,
            },
            e => e,
        })?;
    let addr = app.local_addr();
    let metrics = app.metrics_addr();
    let stores: Vec<_> = app.key_stores().map(|(_, keys)| keys.clone()).collect();
    serve::log_start(&config, addr, metrics);
    let server = tokio::spawn(app.run_until(shutdown_signal()));
    for (issuer, keys) in issuers.iter().zip(stores) {
        if tokio::time::timeout(Duration::from_secs(10), keys.wait_loaded())
            .await
            .is_err()
        {
            tracing::warn!(
                issuer = issuer.url(),
                "the server has not loaded this dev issuer's keys after 10s"
            );
        }
    }

    let subject = format!("{}@clients", args.client_id);
    let claims_of = |issuer: &DevIssuer| {
        let granted: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let mut claims = issuer.claims(&subject, &granted);
        claims["azp"] = args.client_id.clone().into();
        claims["gty"] = "client-credentials".into();
        claims
    };
    let tokens: Vec<(String, String)> = issuers
        .iter()
        .map(|issuer| (issuer.url().to_owned(), issuer.mint(&claims_of(issuer))))
        .collect();
    if let (Some(path), Some(keys)) = (&args.sample_tokens, &samples) {
        let mut claims = claims_of(&issuers[0]);
        claims.as_object_mut().map(|c| c.remove("scope"));
        let lines: String = keys
            .tokens(&issuers[0], &claims)
            .into_iter()
            .map(|(name, token)| format!("{name} {token}\n"))
            .collect();
        std::fs::write(path, lines)
            .map_err(|e| StartupError::Config(format!("cannot write {}: {e}", path.display())))?;
    }
    let rules: Vec<ScopeRule> = settings.require_scope.iter().map(|r| r.0.clone()).collect();
    let banner = if args.authz {
        print_authz_banner
    } else {
        print_dev_banner
    };
    banner(&DevBanner {
        tokens: &tokens,
        audience: &args.audience,
        client_id: &args.client_id,
        client_secret: &secret,
        addr,
        metrics,
        tls: config.tls.is_some(),
        policy: &rules,
        granted: &scopes.join(" "),
        ttl: args.token_ttl,
        program: &std::env::args().next().unwrap_or_else(|| "authgate".into()),
    });

    let result = server
        .await
        .map_err(|e| StartupError::Config(format!("the server task failed: {e}")))?;
    drop(issuers);
    result
}

/// The extra keys the sample tokens need: an Ed25519 key, and an EC key
/// published under the RSA signing key's `kid` (RFC 7517 §4.5).
struct SampleKeys {
    ed25519: String,
    shared_kid: String,
    ec: String,
}

impl SampleKeys {
    fn add_to(issuer: &DevIssuer) -> SampleKeys {
        let ed25519 = issuer.add_key(Algorithm::EdDSA);
        let shared_kid = issuer.current_kid();
        let ec = issuer.add_unpublished_key(Algorithm::ES256);
        if let Some(mut jwk) = issuer.jwk(&ec) {
            jwk["kid"] = shared_kid.clone().into();
            issuer.set_extra_jwks(vec![jwk]);
        }
        SampleKeys {
            ed25519,
            shared_kid,
            ec,
        }
    }

    /// `(name, token)`: names ending in `-refused` must be refused.
    fn tokens(&self, issuer: &DevIssuer, base: &serde_json::Value) -> Vec<(&'static str, String)> {
        use serde_json::json;
        let scope = "read:private";
        let (rsa, rsa_alg) = (
            issuer.current_kid(),
            issuer.key_algorithm(&issuer.current_kid()),
        );
        let sign =
            |kid: &str, alg: Algorithm, header: serde_json::Value, edit: serde_json::Value| {
                let mut claims = base.clone();
                for (name, value) in edit.as_object().into_iter().flatten() {
                    claims[name] = value.clone();
                }
                issuer.sign_raw(
                    kid,
                    alg,
                    header.to_string().as_bytes(),
                    claims.to_string().as_bytes(),
                )
            };
        let rs = |typ: Option<&str>, edit| {
            let mut header = json!({"alg": rsa_alg.name(), "kid": rsa});
            if let Some(typ) = typ {
                header["typ"] = typ.into();
            }
            sign(&rsa, rsa_alg, header, edit)
        };
        vec![
            ("scp-array", rs(Some("JWT"), json!({"scp": [scope]}))),
            (
                "scp-string",
                rs(Some("JWT"), json!({"scp": format!("profile {scope}")})),
            ),
            (
                "scope-array",
                rs(Some("JWT"), json!({"scope": ["openid", scope]})),
            ),
            (
                "alg-ed25519",
                sign(
                    &self.ed25519,
                    Algorithm::EdDSA,
                    json!({"alg": "Ed25519", "kid": self.ed25519, "typ": "JWT"}),
                    json!({"scope": scope}),
                ),
            ),
            (
                "kid-shared-es256",
                sign(
                    &self.ec,
                    Algorithm::ES256,
                    json!({"alg": "ES256", "kid": self.shared_kid}),
                    json!({"scope": scope}),
                ),
            ),
            ("typ-absent", rs(None, json!({"scope": scope}))),
            ("typ-at+jwt", rs(Some("at+jwt"), json!({"scope": scope}))),
            (
                "typ-application/at+jwt",
                rs(Some("application/at+jwt"), json!({"scope": scope})),
            ),
            (
                "typ-dpop+jwt-refused",
                rs(Some("dpop+jwt"), json!({"scope": scope})),
            ),
            (
                "scp-without-the-scope-refused",
                rs(Some("JWT"), json!({"scp": ["openid"]})),
            ),
        ]
    }
}

/// A random secret for the dev client: 32 bytes, base64url.
fn random_secret() -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random source");
    URL_SAFE_NO_PAD.encode(bytes)
}

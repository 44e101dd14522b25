//! The command line: `authgate serve`, `dev`, `token` and `call`, their
//! flags and environment, parsed and checked here once and handed to the
//! library as typed configuration.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    auth::{ScopePolicy, ScopeRule},
    client::{
        ClientAuth, Secret, TokenEndpoint, TokenError, TokenSource, TokenSourceConfig, file_cache,
    },
    error::StartupError,
    issuer::{DevClient, DevIssuer, DevIssuerConfig, random_secret},
    keys::Algorithm,
    net,
    refresher::{JwksSource, RefreshConfig},
    server::{Application, Limits, ServerConfig, TlsFiles, shutdown_signal},
    validate::ValidationConfig,
};

/// JWT authentication in front of a gRPC service.
#[derive(Debug, Parser)]
#[command(name = "authgate", version, about, long_about = None)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        env = "AUTHGATE_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines with key=value fields.
    Text,
    /// One JSON object per line.
    Json,
}

/// authgate's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the guarded gRPC service, validating tokens from an issuer such as Auth0.
    Serve(ServeArgs),
    /// Run a local issuer and the server wired to it: no account anywhere.
    Dev(DevArgs),
    /// Print an access token from the client-credentials grant.
    Token(TokenArgs),
    /// Call GetPrivate and print the response as JSON.
    Call(CallArgs),
}

/// Client credentials for the client-credentials grant, shared by `token`
/// and `call`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The issuer; its discovery document names the token endpoint.
    #[arg(long, env = "AUTHGATE_ISSUER", conflicts_with = "token_url")]
    pub issuer: Option<String>,
    /// The token endpoint itself (Auth0: https://TENANT/oauth/token).
    #[arg(long, env = "AUTHGATE_TOKEN_URL")]
    pub token_url: Option<String>,
    /// The client id.
    #[arg(long, env = "AUTHGATE_CLIENT_ID")]
    pub client_id: Option<String>,
    /// The client secret (prefer the environment: arguments show in `ps`).
    #[arg(long, env = "AUTHGATE_CLIENT_SECRET", hide_env_values = true, value_parser = parse_secret)]
    pub client_secret: Option<Secret>,
    /// The API identifier to ask a token for.
    #[arg(long, env = "AUTHGATE_AUDIENCE")]
    pub audience: Option<String>,
    /// Scopes to ask for, space-separated.
    #[arg(long)]
    pub scope: Option<String>,
    /// How to send the credentials: `json` body (Auth0) or `basic` with a form body (RFC 6749).
    #[arg(long, value_enum, default_value_t = ClientAuth::Json)]
    pub client_auth: ClientAuth,
    /// Where tokens are cached between runs [default: $XDG_CACHE_HOME/authgate or ~/.cache/authgate].
    #[arg(long, env = "AUTHGATE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Neither read nor write the token cache.
    #[arg(long)]
    pub no_cache: bool,
}

/// `authgate token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The client and what to ask for.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `authgate call`.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// The server: http://HOST:PORT for plaintext, https://HOST:PORT for TLS.
    #[arg(long, env = "AUTHGATE_ADDR", default_value = "http://127.0.0.1:50051")]
    pub addr: String,
    /// A token to send as is, instead of one from the client-credentials grant.
    #[arg(long, env = "AUTHGATE_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    pub token: Option<Secret>,
    /// A PEM CA certificate to trust for https (a private CA); system roots otherwise.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// How long the call may take.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// Client credentials, when no --token is given.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `authgate serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The exact `iss` required, and the base of OIDC discovery [default: https://$AUTH0_DOMAIN/].
    #[arg(long, env = "AUTHGATE_ISSUER")]
    pub issuer: Option<String>,
    /// An accepted `aud`; repeat for several [default: $AUTH0_AUDIENCE].
    #[arg(long = "audience", env = "AUTHGATE_AUDIENCE", value_delimiter = ',')]
    pub audiences: Vec<String>,
    /// Where keys come from [default: discovery's jwks_uri, else {issuer}.well-known/jwks.json].
    #[arg(long, env = "AUTHGATE_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// The Auth0 tenant domain (`tenant.auth0.com`), used when --issuer is not given.
    #[arg(long, env = "AUTH0_DOMAIN", hide = true)]
    pub auth0_domain: Option<String>,
    /// The Auth0 API identifier, used when --audience is not given.
    #[arg(long, env = "AUTH0_AUDIENCE", hide = true)]
    pub auth0_audience: Option<String>,
    /// Settings shared with `authgate dev`.
    #[command(flatten)]
    pub gate: GateArgs,
}

/// Settings of the gate and the server, the same for `serve` and `dev`.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// Where gRPC is served.
    #[arg(long, env = "AUTHGATE_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// METHOD=SCOPE: the method needs the scope; repeat for more (all are needed).
    #[arg(
        long = "require-scope",
        env = "AUTHGATE_REQUIRE_SCOPE",
        value_delimiter = ';'
    )]
    pub require_scope: Vec<ScopeRule>,
    /// Background JWKS refresh period; a shorter Cache-Control max-age may shorten it.
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub jwks_refresh_interval: Duration,
    /// The least time between two fetches that unknown `kid`s trigger.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub jwks_min_refresh_interval: Duration,
    /// How long one JWKS or discovery request may take.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub jwks_fetch_timeout: Duration,
    /// Clock skew allowed on `exp` and `nbf`.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub leeway: Duration,
    /// How many verified tokens to remember, so a token is verified once
    /// until it expires (0: verify every call).
    #[arg(long, default_value_t = crate::auth::DEFAULT_TOKEN_CACHE_ENTRIES)]
    pub token_cache_entries: usize,
    /// Connections open at once; past it, accepting waits for one to close.
    #[arg(long, default_value_t = Limits::default().max_connections)]
    pub max_connections: usize,
    /// How long a new connection may stay silent before it is closed.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub handshake_timeout: Duration,
    /// Largest header block a client may send, in bytes (HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE).
    #[arg(long, default_value_t = Limits::default().max_header_list_bytes)]
    pub max_header_list_size: u32,
    /// Largest request message, in bytes.
    #[arg(long, default_value_t = Limits::default().max_message_bytes)]
    pub max_message_size: usize,
    /// Streams one connection may have open at once.
    #[arg(long, default_value_t = Limits::default().max_concurrent_streams)]
    pub max_concurrent_streams: u32,
    /// Longest a call may run.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub request_timeout: Duration,
    /// HTTP/2 ping interval on idle connections.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    #[arg(long, value_parser = parse_duration, default_value = "20s")]
    pub keepalive_timeout: Duration,
    /// Serve TLS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// `authgate dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where the dev issuer listens (loopback only).
    #[arg(long, default_value = "127.0.0.1:50052")]
    pub issuer_listen: SocketAddr,
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
    /// Settings shared with `authgate serve`. With none given, GetPrivate
    /// requires `read:private`, which the dev client is granted.
    #[command(flatten)]
    pub gate: GateArgs,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 90s, 10m, 1h: {e}"))
}

/// Secrets and tokens from the command line, kept out of `Debug`.
fn parse_secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    Algorithm::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
        format!("`{s}` is not one of {}", names.join(", "))
    })
}

/// The largest verified-token cache the command line allows: at worst about
/// 16 KiB an entry.
pub const MAX_TOKEN_CACHE_ENTRIES: usize = 1 << 20;

/// The scope rule `authgate dev` applies when none is given.
pub const DEV_SCOPE_RULE: &str = "/authgate.v1.PrivateService/GetPrivate=read:private";

/// Why a command failed, and so how it exits.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The server could not start (exit 2 for settings, 1 otherwise).
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// No token (exit 1).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A setting of `token` or `call` is missing or wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Connecting to the server failed (exit 1).
    #[error("cannot connect to {addr}: {detail}")]
    Connect {
        /// The address.
        addr: String,
        /// Why.
        detail: String,
    },
    /// The call answered with an error (exit 64 + its gRPC code, as grpcurl does).
    #[error("ERROR:\n  Code: {:?}\n  Message: {}", .0.code(), .0.message())]
    Call(tonic::Status),
}

impl Failure {
    fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Startup(
                StartupError::Config(_) | StartupError::Url(_) | StartupError::Tls(_),
            )
            | Failure::Usage(_) => ExitCode::from(2),
            Failure::Call(status) => ExitCode::from(64 + status.code() as u8),
            _ => ExitCode::FAILURE,
        }
    }
}

/// Runs a parsed command line to completion and says how it ended.
pub fn run(cli: Cli) -> ExitCode {
    let quiet = matches!(cli.command, Command::Token(_) | Command::Call(_));
    // Held to the end: dropping it flushes the logs still queued.
    let _logs = init_tracing(cli.log_format, if quiet { "warn" } else { "info" });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), Failure> = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => Ok(serve(args).await?),
            Command::Dev(args) => Ok(dev(args).await?),
            Command::Token(args) => token(args).await,
            Command::Call(args) => call(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure @ Failure::Call(_)) => {
            eprintln!("{failure}");
            failure.exit_code()
        }
        Err(failure) => {
            eprintln!("error: {failure}");
            failure.exit_code()
        }
    }
}

/// Logs go to stderr through a background thread: a slow or blocked log
/// sink drops lines instead of stalling the threads that serve calls.
fn init_tracing(
    format: LogFormat,
    default_level: &str,
) -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    guard
}

impl ServeArgs {
    /// The server configuration these flags describe, or why there is none.
    pub fn config(&self) -> Result<ServerConfig, StartupError> {
        let issuer = match (&self.issuer, &self.auth0_domain) {
            (Some(issuer), _) => issuer.clone(),
            (None, Some(domain)) => auth0_issuer(domain),
            (None, None) => {
                return Err(StartupError::Config(
                    "no issuer: pass --issuer, or set AUTHGATE_ISSUER or AUTH0_DOMAIN".into(),
                ));
            }
        };
        let mut audiences: Vec<String> = self
            .audiences
            .iter()
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        if audiences.is_empty() {
            audiences.extend(self.auth0_audience.clone().filter(|a| !a.is_empty()));
        }
        if audiences.is_empty() {
            return Err(StartupError::Config(
                "no audience: pass --audience, or set AUTHGATE_AUDIENCE or AUTH0_AUDIENCE \
                 (the API identifier); without one, tokens for any API of the issuer would pass"
                    .into(),
            ));
        }
        let issuer_url = net::parse_issuer_url("issuer", &issuer)?;
        let jwks = match &self.jwks_url {
            Some(url) => JwksSource::Url(net::parse_issuer_url("JWKS URL", url)?),
            None => JwksSource::Discovery {
                issuer: issuer.clone(),
                url: issuer_url,
            },
        };
        self.gate.config(issuer, audiences, jwks)
    }
}

/// `AUTH0_DOMAIN=tenant.auth0.com` means `https://tenant.auth0.com/`, the
/// `iss` of the tenant's tokens.
fn auth0_issuer(domain: &str) -> String {
    let domain = domain.trim().trim_end_matches('/');
    if domain.starts_with("https://") || domain.starts_with("http://") {
        format!("{domain}/")
    } else {
        format!("https://{domain}/")
    }
}

impl GateArgs {
    fn config(
        &self,
        issuer: String,
        audiences: Vec<String>,
        jwks: JwksSource,
    ) -> Result<ServerConfig, StartupError> {
        if self.jwks_min_refresh_interval > self.jwks_refresh_interval {
            return Err(StartupError::Config(
                "--jwks-min-refresh-interval must not exceed --jwks-refresh-interval".into(),
            ));
        }
        let at_least = |flag: &str, value: Duration, floor: Duration| {
            if value < floor {
                Err(StartupError::Config(format!(
                    "{flag} must be at least {}",
                    humantime::format_duration(floor)
                )))
            } else {
                Ok(())
            }
        };
        let second = Duration::from_secs(1);
        let tenth = Duration::from_millis(100);
        at_least(
            "--jwks-refresh-interval",
            self.jwks_refresh_interval,
            second,
        )?;
        at_least(
            "--jwks-min-refresh-interval",
            self.jwks_min_refresh_interval,
            second,
        )?;
        at_least("--jwks-fetch-timeout", self.jwks_fetch_timeout, tenth)?;
        at_least("--handshake-timeout", self.handshake_timeout, tenth)?;
        at_least("--request-timeout", self.request_timeout, tenth)?;
        at_least("--keepalive-interval", self.keepalive_interval, second)?;
        at_least("--keepalive-timeout", self.keepalive_timeout, tenth)?;
        if self.token_cache_entries > MAX_TOKEN_CACHE_ENTRIES {
            return Err(StartupError::Config(format!(
                "--token-cache-entries must be at most {MAX_TOKEN_CACHE_ENTRIES}"
            )));
        }
        if self.max_connections == 0 || self.max_concurrent_streams == 0 {
            return Err(StartupError::Config(
                "--max-connections and --max-concurrent-streams must be at least 1".into(),
            ));
        }
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        Ok(ServerConfig {
            listen: self.listen,
            validation: ValidationConfig {
                issuer,
                audiences,
                leeway: self.leeway,
            },
            jwks,
            refresh: RefreshConfig {
                interval: self.jwks_refresh_interval,
                min_interval: self.jwks_min_refresh_interval,
                fetch_timeout: self.jwks_fetch_timeout,
                ..RefreshConfig::default()
            },
            policy: ScopePolicy::new(self.require_scope.iter().cloned()),
            tls,
            limits: Limits {
                max_connections: self.max_connections,
                handshake_timeout: self.handshake_timeout,
                max_header_list_bytes: self.max_header_list_size,
                max_message_bytes: self.max_message_size,
                max_concurrent_streams: self.max_concurrent_streams,
                request_timeout: self.request_timeout,
                keepalive_interval: self.keepalive_interval,
                keepalive_timeout: self.keepalive_timeout,
            },
            token_cache_entries: self.token_cache_entries,
        })
    }
}

async fn serve(args: ServeArgs) -> Result<(), StartupError> {
    let config = args.config()?;
    let app = Application::build(config.clone()).await?;
    log_start(&config, app.local_addr());
    app.run_until(shutdown_signal()).await
}

fn log_start(config: &ServerConfig, addr: SocketAddr) {
    let jwks = match &config.jwks {
        JwksSource::Url(url) => url.to_string(),
        JwksSource::Discovery { .. } => "OIDC discovery".to_owned(),
    };
    tracing::info!(
        listen = %addr,
        issuer = %config.validation.issuer,
        audiences = ?config.validation.audiences,
        jwks = %jwks,
        tls = config.tls.is_some(),
        "authgate serving"
    );
    if config.tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(
            listen = %addr,
            "serving plaintext on a non-loopback address: bearer tokens cross the network \
             unencrypted; use --tls-cert/--tls-key or a TLS-terminating proxy"
        );
    }
}

async fn dev(args: DevArgs) -> Result<(), StartupError> {
    if !args.issuer_listen.ip().is_loopback() {
        return Err(StartupError::Config(
            "--issuer-listen must be a loopback address: the dev issuer is for this machine only"
                .into(),
        ));
    }
    let secret = args
        .client_secret
        .as_ref()
        .map_or_else(random_secret, |s| s.expose().to_owned());
    let scopes = vec!["read:private".to_owned()];
    let issuer = DevIssuer::start(DevIssuerConfig {
        listen: args.issuer_listen,
        audience: args.audience.clone(),
        algorithm: args.algorithm,
        token_ttl: args.token_ttl,
        client: DevClient {
            id: args.client_id.clone(),
            secret: secret.clone(),
            scopes: scopes.clone(),
        },
    })
    .await
    .map_err(|source| StartupError::Bind {
        addr: format!(
            "{} (the dev issuer; try --issuer-listen 127.0.0.1:0)",
            args.issuer_listen
        ),
        source,
    })?;

    let mut gate = args.gate;
    if gate.require_scope.is_empty() {
        gate.require_scope
            .push(DEV_SCOPE_RULE.parse().expect("the dev scope rule parses"));
    }
    let jwks = JwksSource::Discovery {
        issuer: issuer.url().to_owned(),
        url: net::parse_issuer_url("issuer", issuer.url())?,
    };
    let config = gate.config(issuer.url().to_owned(), vec![args.audience.clone()], jwks)?;
    let app = Application::build(config.clone()).await?;
    let addr = app.local_addr();
    let keys = app.keys();
    log_start(&config, addr);
    let server = tokio::spawn(app.run_until(shutdown_signal()));
    if tokio::time::timeout(Duration::from_secs(10), keys.wait_loaded())
        .await
        .is_err()
    {
        tracing::warn!("the server has not loaded the dev issuer's keys after 10s");
    }

    let subject = format!("{}@clients", args.client_id);
    let mut claims = issuer.claims(&subject, &["read:private"]);
    claims["azp"] = args.client_id.clone().into();
    claims["gty"] = "client-credentials".into();
    let token = issuer.mint(&claims);
    print_dev_banner(&DevBanner {
        issuer: issuer.url(),
        audience: &args.audience,
        client_id: &args.client_id,
        client_secret: &secret,
        addr,
        tls: config.tls.is_some(),
        policy: &gate.require_scope,
        token: &token,
        ttl: args.token_ttl,
        program: &std::env::args().next().unwrap_or_else(|| "authgate".into()),
    });

    let result = server
        .await
        .map_err(|e| StartupError::Config(format!("the server task failed: {e}")))?;
    drop(issuer);
    result
}

impl ClientArgs {
    /// The token source these flags describe.
    pub fn token_source(&self) -> Result<TokenSource, Failure> {
        let missing = |what: &str, flag: &str, env: &str| {
            Failure::Usage(format!("no {what}: pass {flag} or set {env}"))
        };
        let endpoint = match (&self.token_url, &self.issuer) {
            (Some(url), _) => TokenEndpoint::Url(
                net::parse_issuer_url("token endpoint", url).map_err(StartupError::from)?,
            ),
            (None, Some(issuer)) => TokenEndpoint::Issuer(
                net::parse_issuer_url("issuer", issuer).map_err(StartupError::from)?,
            ),
            (None, None) => {
                return Err(Failure::Usage(
                    "no token endpoint: pass --issuer or --token-url (or set AUTHGATE_ISSUER or AUTHGATE_TOKEN_URL)"
                        .into(),
                ));
            }
        };
        let client_id = self
            .client_id
            .clone()
            .ok_or_else(|| missing("client id", "--client-id", "AUTHGATE_CLIENT_ID"))?;
        let secret = self
            .client_secret
            .clone()
            .ok_or_else(|| missing("client secret", "--client-secret", "AUTHGATE_CLIENT_SECRET"))?;
        let mut config = TokenSourceConfig::new(endpoint, client_id, secret);
        config.audience = self.audience.clone();
        config.scope = self.scope.clone();
        config.auth = self.client_auth;
        if !self.no_cache {
            config.cache_dir = self.cache_dir.clone().or_else(file_cache::default_dir);
        }
        Ok(TokenSource::new(config)?)
    }
}

async fn token(args: TokenArgs) -> Result<(), Failure> {
    let token = args.client.token_source()?.token().await?;
    println!("{}", token.secret());
    Ok(())
}

async fn call(args: CallArgs) -> Result<(), Failure> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

    let token = match &args.token {
        Some(token) => token.expose().to_owned(),
        None => args
            .client
            .token_source()?
            .token()
            .await?
            .secret()
            .to_owned(),
    };
    let addr = if args.addr.contains("://") {
        args.addr.clone()
    } else {
        format!("http://{}", args.addr)
    };
    let connect_error = |detail: String| Failure::Connect {
        addr: addr.clone(),
        detail,
    };
    let mut endpoint = Endpoint::from_shared(addr.clone())
        .map_err(|e| Failure::Usage(format!("--addr {addr}: {e}")))?
        .connect_timeout(args.timeout)
        .timeout(args.timeout);
    if addr.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_native_roots();
        if let Some(ca) = &args.ca {
            let pem = std::fs::read(ca)
                .map_err(|e| Failure::Usage(format!("cannot read --ca {}: {e}", ca.display())))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| connect_error(e.to_string()))?;
    } else if args.ca.is_some() {
        return Err(Failure::Usage("--ca needs an https:// --addr".into()));
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| connect_error(error_chain(&e)))?;
    let mut request = tonic::Request::new(crate::pb::GetPrivateRequest {});
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| Failure::Usage("the token has characters a header cannot carry".into()))?;
    request.metadata_mut().insert("authorization", value);
    let response = crate::pb::private_service_client::PrivateServiceClient::new(channel)
        .get_private(request)
        .await
        .map_err(Failure::Call)?
        .into_inner();
    // The proto3 JSON mapping of GetPrivateResponse, in field order.
    #[derive(serde::Serialize)]
    struct Json {
        message: String,
        subject: String,
        scopes: Vec<String>,
    }
    let json = Json {
        message: response.message,
        subject: response.subject,
        scopes: response.scopes,
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&json).expect("JSON of strings")
    );
    Ok(())
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

struct DevBanner<'a> {
    issuer: &'a str,
    audience: &'a str,
    client_id: &'a str,
    client_secret: &'a str,
    addr: SocketAddr,
    tls: bool,
    policy: &'a [ScopeRule],
    token: &'a str,
    ttl: Duration,
    /// How the user ran authgate, for commands they can paste.
    program: &'a str,
}

/// What `authgate dev` prints on stdout: the values a newcomer needs, and
/// commands that work when pasted. Printing the dev secret and token is the
/// point of dev mode; nothing else in authgate prints either.
fn print_dev_banner(b: &DevBanner<'_>) {
    let rules: Vec<String> = b
        .policy
        .iter()
        .map(|r| format!("{} needs scope {}", r.method, r.scope))
        .collect();
    let plaintext = if b.tls { "" } else { "-plaintext " };
    println!(
        "authgate dev: a local issuer and the guarded gRPC server, no account needed.\n\
         \n\
         \x20 issuer         {issuer}\n\
         \x20 audience       {audience}\n\
         \x20 client id      {client_id}\n\
         \x20 client secret  {client_secret}\n\
         \x20 gRPC           {addr}{tls}\n\
         \x20 scopes         {rules}\n\
         \n\
         A token for the dev client (valid {ttl}, scope read:private):\n\
         \n\
         {token}\n\
         \n\
         Call GetPrivate with grpcurl (reflection is on, no .proto needed):\n\
         \n\
         \x20 grpcurl {plaintext}-H 'authorization: Bearer {token}' {addr} authgate.v1.PrivateService/GetPrivate\n\
         \n\
         Without a token, to see UNAUTHENTICATED:\n\
         \n\
         \x20 grpcurl {plaintext}{addr} authgate.v1.PrivateService/GetPrivate\n\
         \n\
         Or let authgate get tokens with the dev client's credentials (client-credentials grant):\n\
         \n\
         \x20 export AUTHGATE_ISSUER={issuer} AUTHGATE_AUDIENCE={audience}\n\
         \x20 export AUTHGATE_CLIENT_ID={client_id} AUTHGATE_CLIENT_SECRET={client_secret}\n\
         \x20 {program} token\n\
         \x20 {program} call --addr {scheme}://{addr}\n\
         \n\
         Ctrl-C stops both.",
        program = b.program,
        scheme = if b.tls { "https" } else { "http" },
        issuer = b.issuer,
        audience = b.audience,
        client_id = b.client_id,
        client_secret = b.client_secret,
        addr = b.addr,
        tls = if b.tls { " (TLS)" } else { " (plaintext)" },
        rules = if rules.is_empty() {
            "any valid token".to_owned()
        } else {
            rules.join("; ")
        },
        ttl = humantime::format_duration(b.ttl),
        token = b.token,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth0_domain_maps_to_the_dashboard_issuer() {
        assert_eq!(
            auth0_issuer("tenant.auth0.com"),
            "https://tenant.auth0.com/"
        );
        assert_eq!(
            auth0_issuer("tenant.eu.auth0.com/"),
            "https://tenant.eu.auth0.com/"
        );
        assert_eq!(
            auth0_issuer("https://tenant.auth0.com"),
            "https://tenant.auth0.com/"
        );
    }

    #[test]
    fn durations_read_as_written_in_the_contract() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("ten minutes").is_err());
    }

    fn serve_args(args: &[&str]) -> Result<ServerConfig, String> {
        let cli = Cli::try_parse_from(["authgate", "serve"].iter().chain(args))
            .map_err(|e| e.to_string())?;
        match cli.command {
            Command::Serve(serve) => serve.config().map_err(|e| e.to_string()),
            _ => unreachable!(),
        }
    }

    #[test]
    fn serve_refuses_http_issuers_off_loopback() {
        let err =
            serve_args(&["--issuer", "http://tenant.auth0.com/", "--audience", "a"]).unwrap_err();
        assert!(err.contains("must use https"), "{err}");
        let err = serve_args(&[
            "--issuer",
            "https://tenant.auth0.com/",
            "--audience",
            "a",
            "--jwks-url",
            "http://10.1.1.1/jwks.json",
        ])
        .unwrap_err();
        assert!(err.contains("must use https"), "{err}");
        assert!(serve_args(&["--issuer", "http://127.0.0.1:8/", "--audience", "a"]).is_ok());
    }

    #[test]
    fn serve_reads_repeated_audiences_and_scope_rules() {
        let config = serve_args(&[
            "--issuer",
            "https://t.auth0.com/",
            "--audience",
            "a",
            "--audience",
            "b,c",
            "--require-scope",
            "/p.S/M=x;/p.S/N=y",
            "--require-scope",
            "/p.S/M=z",
            "--leeway",
            "5s",
        ])
        .unwrap();
        assert_eq!(config.validation.audiences, ["a", "b", "c"]);
        assert_eq!(config.validation.leeway, Duration::from_secs(5));
        assert!(!config.policy.is_empty());
    }

    #[test]
    fn serve_refuses_intervals_that_would_spin() {
        let base = ["--issuer", "https://t.auth0.com/", "--audience", "a"];
        for extra in [
            &[
                "--jwks-refresh-interval",
                "0s",
                "--jwks-min-refresh-interval",
                "0s",
            ][..],
            &["--jwks-min-refresh-interval", "100ms"],
            &["--handshake-timeout", "0s"],
            &["--token-cache-entries", "99999999999"],
            &["--max-connections", "0"],
        ] {
            let args: Vec<&str> = base.iter().chain(extra).copied().collect();
            assert!(serve_args(&args).is_err(), "{extra:?} accepted");
        }
    }

    #[test]
    fn serve_needs_an_issuer_and_an_audience() {
        let err = serve_args(&["--audience", "a"]).unwrap_err();
        assert!(err.contains("no issuer"), "{err}");
        let err = serve_args(&["--issuer", "https://t.auth0.com/"]).unwrap_err();
        assert!(err.contains("no audience"), "{err}");
    }
}

//! `authgate serve` and the gate and server settings it shares with `dev`.

use super::*;
use crate::{
    error::FetchError,
    keys::{KeyStore, Refresher},
};

/// `authgate serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// An accepted `iss`, exactly, and the base of its OIDC discovery; repeat
    /// for several, or comma-separate them in AUTHGATE_ISSUER
    /// [default: https://$AUTH0_DOMAIN/].
    #[arg(long = "issuer", env = "AUTHGATE_ISSUER", value_delimiter = ',')]
    pub issuers: Vec<String>,
    /// An accepted `aud`, for every issuer without its own; repeat for
    /// several, or comma-separate them in AUTHGATE_AUDIENCE (`a,b`)
    /// [default: $AUTH0_AUDIENCE].
    #[arg(long = "audience", env = "AUTHGATE_AUDIENCE", value_delimiter = ',')]
    pub audiences: Vec<String>,
    /// Where keys come from, with one issuer [default: discovery's jwks_uri,
    /// else {issuer}.well-known/jwks.json].
    #[arg(long, env = "AUTHGATE_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// The Auth0 tenant domain (`tenant.auth0.com`), used when no issuer is given.
    #[arg(long, env = "AUTH0_DOMAIN", hide = true)]
    pub auth0_domain: Option<String>,
    /// The Auth0 API identifier, used when no audience is given.
    #[arg(long, env = "AUTH0_AUDIENCE", hide = true)]
    pub auth0_audience: Option<String>,
    /// A TOML file holding any of these settings, and per-issuer ones; flags
    /// and environment override it.
    #[arg(long, env = "AUTHGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Check the configuration without serving or fetching anything: print
    /// it, secrets redacted, and exit 0 if it is valid, 2 if not.
    #[arg(long)]
    pub check: bool,
    /// Settings shared with `authgate dev`.
    #[command(flatten)]
    pub gate: GateArgs,
}

/// Settings of the gate and the server, the same for `serve` and `dev`.
/// Each is optional here: one not given comes from the config file, else
/// its default.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// Where gRPC is served: IP:PORT, or HOST:PORT (`localhost:50051`)
    /// [default: 127.0.0.1:50051].
    #[arg(long, env = "AUTHGATE_LISTEN", value_parser = parse_listen)]
    pub listen: Option<SocketAddr>,
    /// METHOD=SCOPE: the method needs the scope, e.g.
    /// `/authgate.v1.PrivateService/GetPrivate=read:private`; METHOD=a|b: any
    /// one of them; METHOD `/package.Service/*`: every method of the service.
    /// Repeat for more (each rule must hold), or `;`-separate them in
    /// AUTHGATE_REQUIRE_SCOPE.
    #[arg(
        long = "require-scope",
        env = "AUTHGATE_REQUIRE_SCOPE",
        value_delimiter = ';'
    )]
    pub require_scope: Vec<ScopeRule>,
    /// Accept only tokens whose `typ` is this (`at+jwt` also accepts
    /// `application/at+jwt`) [default: absent, JWT, at+jwt or application/at+jwt].
    #[arg(long, value_name = "TYP", value_parser = parse_typ)]
    pub require_typ: Option<String>,
    /// Background JWKS refresh period (Cache-Control max-age does not
    /// shorten it) [default: 10m].
    #[arg(long, value_parser = parse_duration)]
    pub jwks_refresh_interval: Option<Duration>,
    /// The least time between two fetches that unknown `kid`s trigger [default: 30s].
    #[arg(long, value_parser = parse_duration)]
    pub jwks_min_refresh_interval: Option<Duration>,
    /// How long one JWKS or discovery request may take [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    pub jwks_fetch_timeout: Option<Duration>,
    /// After this long without a successful JWKS fetch, an issuer's last good
    /// key set is dropped and its tokens get UNAVAILABLE until a fetch
    /// succeeds [default: 24h].
    #[arg(long, value_parser = parse_duration)]
    pub jwks_max_stale: Option<Duration>,
    /// Clock skew allowed on `exp` and `nbf`, for every issuer without its own [default: 30s].
    #[arg(long, value_parser = parse_duration)]
    pub leeway: Option<Duration>,
    /// How many verified tokens to remember, so a token is verified once
    /// until it expires (0: verify every call) [default: 4096].
    #[arg(long)]
    pub token_cache_entries: Option<usize>,
    /// Connections open at once; past it, accepting waits for one to close [default: 4096].
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// How long a new connection may stay silent before it is closed [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    pub handshake_timeout: Option<Duration>,
    /// Largest header block a client may send, in bytes (HTTP/2
    /// SETTINGS_MAX_HEADER_LIST_SIZE) [default: 16384].
    #[arg(long)]
    pub max_header_list_size: Option<u32>,
    /// Largest request message, in bytes [default: 65536].
    #[arg(long)]
    pub max_message_size: Option<usize>,
    /// Streams one connection may have open at once [default: 256].
    #[arg(long)]
    pub max_concurrent_streams: Option<u32>,
    /// Longest a call may run [default: 30s].
    #[arg(long, value_parser = parse_duration)]
    pub request_timeout: Option<Duration>,
    /// HTTP/2 ping interval on idle connections [default: 60s].
    #[arg(long, value_parser = parse_duration)]
    pub keepalive_interval: Option<Duration>,
    /// How long a ping may go unanswered before the connection is closed [default: 20s].
    #[arg(long, value_parser = parse_duration)]
    pub keepalive_timeout: Option<Duration>,
    /// Serve TLS with this PEM certificate chain (needs --tls-key).
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Serve Prometheus metrics at GET /metrics on this address, e.g. 0.0.0.0:9090
    /// [default for serve: off; for dev: 127.0.0.1:50053, or a free port when
    /// --listen asks for one].
    #[arg(long, env = "AUTHGATE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// On SIGTERM or SIGINT, report NOT_SERVING at once and keep serving this
    /// long, so load balancers and kubelets stop sending calls first; a second
    /// signal ends it at once [default: 0s].
    #[arg(long, value_parser = parse_duration)]
    pub drain_delay: Option<Duration>,
    /// Then, with no new connections accepted, how long calls in flight may
    /// take to finish before the server exits anyway [default: 30s].
    #[arg(long, value_parser = parse_duration)]
    pub shutdown_timeout: Option<Duration>,
}

/// A `typ` for `--require-typ`: a media type such as `at+jwt`.
pub(super) fn parse_typ(s: &str) -> Result<String, String> {
    let typ = s.trim();
    if typ.is_empty() || !typ.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("`{s}` is not a media type such as at+jwt"));
    }
    Ok(typ.to_owned())
}

impl ServeArgs {
    /// The server configuration these flags, the environment and the config
    /// file describe, or why there is none.
    pub fn config(&self) -> Result<ServerConfig, StartupError> {
        self.settings()?.server_config()
    }

    /// The effective settings: the flags, then the environment, then the
    /// config file, then `AUTH0_DOMAIN` and `AUTH0_AUDIENCE`, then defaults.
    pub fn settings(&self) -> Result<Settings, StartupError> {
        let file = match &self.config {
            Some(path) => Settings::load(path)?,
            None => Settings::default(),
        };
        self.settings_over(file)
    }

    fn settings_over(&self, file: Settings) -> Result<Settings, StartupError> {
        let mut settings = self.gate.over(file);
        let audiences: Vec<String> = self
            .audiences
            .iter()
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        if !audiences.is_empty() {
            settings.audience = audiences;
        } else if settings.audience.is_empty() {
            settings
                .audience
                .extend(self.auth0_audience.clone().filter(|a| !a.trim().is_empty()));
        }
        let issuers: Vec<&str> = self
            .issuers
            .iter()
            .map(|i| i.trim())
            .filter(|i| !i.is_empty())
            .collect();
        if !issuers.is_empty() {
            // The command line's list replaces the file's; an issuer both
            // name keeps its settings from the file.
            let mut listed = Vec::with_capacity(issuers.len());
            for url in issuers {
                net::parse_issuer_url("issuer", url)?;
                if listed.iter().any(|i: &IssuerSettings| i.url == url) {
                    return Err(StartupError::Config(format!(
                        "issuer `{url}` is given twice"
                    )));
                }
                let own = settings.issuers.iter().find(|i| i.url == url).cloned();
                listed.push(own.unwrap_or_else(|| IssuerSettings::new(url)));
            }
            settings.issuers = listed;
        } else if settings.issuers.is_empty()
            && let Some(domain) = &self.auth0_domain
        {
            let url = auth0_issuer(domain);
            net::parse_issuer_url("issuer", &url)?;
            settings.issuers.push(IssuerSettings::new(url));
        }
        if let Some(url) = &self.jwks_url {
            match settings.issuers.as_mut_slice() {
                [one] => {
                    net::parse_issuer_url("JWKS URL", url)?;
                    one.jwks_url = Some(url.clone());
                }
                [] => {}
                _ => {
                    return Err(StartupError::Config(
                        "--jwks-url (AUTHGATE_JWKS_URL) is for one issuer; with several, give \
                         each its own `jwks-url` in its [[issuer]] table of the config file"
                            .into(),
                    ));
                }
            }
        }
        Ok(settings.with_defaults())
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
    /// These settings over `file`'s: each one given here replaces the
    /// file's, but scope rules add up, since a rule can only narrow access
    /// and none should vanish because another source also has rules.
    pub(super) fn over(&self, file: Settings) -> Settings {
        let mut s = file;
        let dur = |flag: Option<Duration>, file: Option<Dur>| flag.map(Dur).or(file);
        s.listen = self.listen.or(s.listen);
        for rule in &self.require_scope {
            if !s.require_scope.iter().any(|r| r.0 == *rule) {
                s.require_scope.push(Parsed(rule.clone()));
            }
        }
        s.jwks_refresh_interval = dur(self.jwks_refresh_interval, s.jwks_refresh_interval);
        s.jwks_min_refresh_interval =
            dur(self.jwks_min_refresh_interval, s.jwks_min_refresh_interval);
        s.jwks_fetch_timeout = dur(self.jwks_fetch_timeout, s.jwks_fetch_timeout);
        s.jwks_max_stale = dur(self.jwks_max_stale, s.jwks_max_stale);
        s.require_typ = self.require_typ.clone().or(s.require_typ);
        s.leeway = dur(self.leeway, s.leeway);
        s.token_cache_entries = self.token_cache_entries.or(s.token_cache_entries);
        s.max_connections = self.max_connections.or(s.max_connections);
        s.handshake_timeout = dur(self.handshake_timeout, s.handshake_timeout);
        s.max_header_list_size = self.max_header_list_size.or(s.max_header_list_size);
        s.max_message_size = self.max_message_size.or(s.max_message_size);
        s.max_concurrent_streams = self.max_concurrent_streams.or(s.max_concurrent_streams);
        s.request_timeout = dur(self.request_timeout, s.request_timeout);
        s.keepalive_interval = dur(self.keepalive_interval, s.keepalive_interval);
        s.keepalive_timeout = dur(self.keepalive_timeout, s.keepalive_timeout);
        s.tls_cert = self.tls_cert.clone().or(s.tls_cert);
        s.tls_key = self.tls_key.clone().or(s.tls_key);
        s.metrics_listen = self.metrics_listen.or(s.metrics_listen);
        s.drain_delay = dur(self.drain_delay, s.drain_delay);
        s.shutdown_timeout = dur(self.shutdown_timeout, s.shutdown_timeout);
        s
    }
}

pub(super) async fn serve(args: ServeArgs) -> Result<(), StartupError> {
    let settings = args.settings()?;
    let config = settings.server_config()?;
    if args.check {
        config.check()?;
        let file = args
            .config
            .as_ref()
            .map_or_else(String::new, |p| format!("then {}, ", p.display()));
        println!(
            "# authgate serve: the configuration is valid. The effective settings follow\n\
             # (flags, then environment, {file}then defaults), as a config file;\n\
             # an issuer without `jwks-url` gets its keys through OIDC discovery.\n\
             # Secrets redacted: the query of every URL.\n"
        );
        print!("{}", settings.render_redacted());
        return Ok(());
    }
    let app = Application::builder(config.clone())
        .add_demo_service()
        .bind()
        .await?;
    log_start(&config, app.local_addr(), app.metrics_addr());
    // A second SIGTERM or SIGINT while draining ends the drain delay at
    // once: Ctrl-C twice, or an operator who will not wait.
    let (first, second) = stop_signals();
    let delay = config.drain.delay;
    let server = app.run_draining(first, async move {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = second => {}
        }
    });
    tokio::pin!(server);
    // Serving starts at once, issuers or not; but an issuer whose discovery
    // answers with another `iss` would never verify a token, so that is
    // said now, with the value to use, instead of in every refusal.
    tokio::select! {
        result = &mut server => return result,
        mismatch = discovery_mismatch(&config) => {
            if let Some(error) = mismatch {
                return Err(StartupError::Config(error.to_string()));
            }
        }
    }
    server.await
}

/// What discovery says at start, when it names another issuer than the one
/// configured, for the first issuer where it does; nothing when every one
/// agrees, is not asked, or does not answer.
async fn discovery_mismatch(config: &ServerConfig) -> Option<FetchError> {
    for issuer in &config.issuers {
        if !matches!(issuer.jwks, JwksSource::Discovery { .. }) {
            continue;
        }
        let Ok(mut probe) =
            Refresher::new(KeyStore::new(), issuer.jwks.clone(), config.refresh.clone())
        else {
            continue;
        };
        if let Err(error @ FetchError::IssuerMismatch { .. }) = probe.jwks_url().await {
            return Some(error);
        }
    }
    None
}

pub(super) fn log_start(config: &ServerConfig, addr: SocketAddr, metrics: Option<SocketAddr>) {
    for issuer in &config.issuers {
        let jwks = match &issuer.jwks {
            JwksSource::Url(url) => url.to_string(),
            JwksSource::Discovery { .. } => "OIDC discovery".to_owned(),
        };
        tracing::info!(
            issuer = %issuer.validation.issuer,
            audiences = ?issuer.validation.audiences,
            jwks = %jwks,
            "trusting issuer"
        );
    }
    tracing::info!(
        listen = %addr,
        issuers = config.issuers.len(),
        tls = config.tls.is_some(),
        metrics = ?metrics,
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
        assert_eq!(config.issuers[0].validation.audiences, ["a", "b", "c"]);
        assert_eq!(config.issuers[0].validation.leeway, Duration::from_secs(5));
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
            // One late refresh must never drop the key set.
            &["--jwks-max-stale", "15m"],
            &["--jwks-refresh-interval", "1h", "--jwks-max-stale", "90m"],
            &["--require-typ", ""],
            &["--require-typ", "at jwt"],
        ] {
            let args: Vec<&str> = base.iter().chain(extra).copied().collect();
            assert!(serve_args(&args).is_err(), "{extra:?} accepted");
        }
    }

    #[test]
    fn serve_reads_require_typ_and_max_stale() {
        let base = ["--issuer", "https://t.auth0.com/", "--audience", "a"];
        let config = serve_args(&base).unwrap();
        assert_eq!(config.issuers[0].validation.require_typ, None);
        assert_eq!(config.refresh.max_stale, Duration::from_secs(24 * 3600));
        assert_eq!(config.refresh.interval, Duration::from_secs(600));
        let args: Vec<&str> = base
            .iter()
            .chain(&["--require-typ", "at+jwt", "--jwks-max-stale", "2h"])
            .copied()
            .collect();
        let config = serve_args(&args).unwrap();
        assert_eq!(
            config.issuers[0].validation.require_typ.as_deref(),
            Some("at+jwt")
        );
        assert_eq!(config.refresh.max_stale, Duration::from_secs(7200));
    }

    #[test]
    fn serve_needs_an_issuer_and_an_audience() {
        let err = serve_args(&["--audience", "a"]).unwrap_err();
        assert!(err.contains("no issuer"), "{err}");
        let err = serve_args(&["--issuer", "https://t.auth0.com/"]).unwrap_err();
        assert!(err.contains("no audience"), "{err}");
    }
}

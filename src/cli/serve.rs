//! `authgate serve` and the gate and server settings it shares with `dev`.

use super::*;
use crate::{
    error::FetchError,
    keys::{KeyStore, Refresher},
};

/// `authgate serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The exact `iss` required, and the base of OIDC discovery [default: https://$AUTH0_DOMAIN/].
    #[arg(long, env = "AUTHGATE_ISSUER")]
    pub issuer: Option<String>,
    /// An accepted `aud`; repeat for several, or comma-separate them in
    /// AUTHGATE_AUDIENCE (`a,b`) [default: $AUTH0_AUDIENCE].
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
    /// Where gRPC is served: IP:PORT, or HOST:PORT (`localhost:50051`).
    #[arg(long, env = "AUTHGATE_LISTEN", default_value = "127.0.0.1:50051", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// METHOD=SCOPE: the method needs the scope, e.g.
    /// `/authgate.v1.PrivateService/GetPrivate=read:private`; repeat for more
    /// (all are needed), or `;`-separate them in AUTHGATE_REQUIRE_SCOPE.
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
    /// Background JWKS refresh period (Cache-Control max-age does not shorten it).
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub jwks_refresh_interval: Duration,
    /// The least time between two fetches that unknown `kid`s trigger.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub jwks_min_refresh_interval: Duration,
    /// How long one JWKS or discovery request may take.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub jwks_fetch_timeout: Duration,
    /// After this long without a successful JWKS fetch, the last good key set
    /// is dropped and calls get UNAVAILABLE until a fetch succeeds.
    #[arg(long, value_parser = parse_duration, default_value = "24h")]
    pub jwks_max_stale: Duration,
    /// Clock skew allowed on `exp` and `nbf`.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub leeway: Duration,
    /// How many verified tokens to remember, so a token is verified once
    /// until it expires (0: verify every call).
    #[arg(long, default_value_t = crate::gate::auth::DEFAULT_TOKEN_CACHE_ENTRIES)]
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
    /// long, so load balancers and kubelets stop sending calls first.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub drain_delay: Duration,
    /// Then, with no new connections accepted, how long calls in flight may
    /// take to finish before the server exits anyway.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub shutdown_timeout: Duration,
}

/// A `typ` for `--require-typ`: a media type such as `at+jwt`.
fn parse_typ(s: &str) -> Result<String, String> {
    let typ = s.trim();
    if typ.is_empty() || !typ.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("`{s}` is not a media type such as at+jwt"));
    }
    Ok(typ.to_owned())
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
    pub(super) fn config(
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
        at_least(
            "--jwks-max-stale",
            self.jwks_max_stale,
            self.jwks_refresh_interval.saturating_mul(2),
        )?;
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
            (Some(_), None) => {
                return Err(StartupError::Config(
                    "--tls-cert needs --tls-key: the certificate's private key".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(StartupError::Config(
                    "--tls-key needs --tls-cert: the certificate chain it belongs to".into(),
                ));
            }
            (None, None) => None,
        };
        Ok(ServerConfig {
            listen: self.listen,
            validation: ValidationConfig {
                issuer,
                audiences,
                leeway: self.leeway,
                require_typ: self.require_typ.clone(),
            },
            jwks,
            refresh: RefreshConfig {
                interval: self.jwks_refresh_interval,
                min_interval: self.jwks_min_refresh_interval,
                fetch_timeout: self.jwks_fetch_timeout,
                max_stale: self.jwks_max_stale,
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
            metrics_listen: self.metrics_listen,
            drain: Drain {
                delay: self.drain_delay,
                timeout: self.shutdown_timeout,
            },
        })
    }
}

pub(super) async fn serve(args: ServeArgs) -> Result<(), StartupError> {
    let config = args.config()?;
    let app = Application::build(config.clone()).await?;
    log_start(&config, app.local_addr(), app.metrics_addr());
    let server = app.run_until(shutdown_signal());
    tokio::pin!(server);
    // Serving starts at once, issuer or not; but an issuer whose discovery
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
/// configured; nothing when it agrees, is not used, or does not answer.
async fn discovery_mismatch(config: &ServerConfig) -> Option<FetchError> {
    if !matches!(config.jwks, JwksSource::Discovery { .. }) {
        return None;
    }
    let mut probe =
        Refresher::new(KeyStore::new(), config.jwks.clone(), config.refresh.clone()).ok()?;
    match probe.jwks_url().await {
        Err(error @ FetchError::IssuerMismatch { .. }) => Some(error),
        _ => None,
    }
}

pub(super) fn log_start(config: &ServerConfig, addr: SocketAddr, metrics: Option<SocketAddr>) {
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
        assert_eq!(config.validation.require_typ, None);
        assert_eq!(config.refresh.max_stale, Duration::from_secs(24 * 3600));
        assert_eq!(config.refresh.interval, Duration::from_secs(600));
        let args: Vec<&str> = base
            .iter()
            .chain(&["--require-typ", "at+jwt", "--jwks-max-stale", "2h"])
            .copied()
            .collect();
        let config = serve_args(&args).unwrap();
        assert_eq!(config.validation.require_typ.as_deref(), Some("at+jwt"));
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

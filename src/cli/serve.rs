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
    /// Settings shared with `authgate dev` and the config file.
    #[command(flatten)]
    pub settings: Settings,
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

    /// The config file's settings that flags or the environment replace,
    /// by their config-file names, each with the variable that set it when
    /// one did: an `AUTHGATE_ISSUER` left in the environment silently
    /// replacing the file's issuers is what this is for.
    fn overriding(&self, file: &Settings) -> Vec<String> {
        let mut overridden = self.settings.overriding(file);
        if !file.issuers.is_empty() && self.issuers.iter().any(|i| !i.trim().is_empty()) {
            overridden.push("issuer".into());
        }
        if !file.audience.is_empty() && self.audiences.iter().any(|a| !a.trim().is_empty()) {
            overridden.push("audience".into());
        }
        if file.issuers.len() == 1 && file.issuers[0].jwks_url.is_some() && self.jwks_url.is_some()
        {
            overridden.push("jwks-url".into());
        }
        let variable = |key: &str| match key {
            "issuer" => Some("AUTHGATE_ISSUER"),
            "audience" => Some("AUTHGATE_AUDIENCE"),
            "jwks-url" => Some("AUTHGATE_JWKS_URL"),
            "listen" => Some("AUTHGATE_LISTEN"),
            "metrics-listen" => Some("AUTHGATE_METRICS_LISTEN"),
            _ => None,
        };
        overridden
            .into_iter()
            .map(
                |key| match variable(&key).filter(|v| std::env::var_os(v).is_some()) {
                    Some(var) => format!("{key} (from {var})"),
                    None => key,
                },
            )
            .collect()
    }

    fn settings_over(&self, file: Settings) -> Result<Settings, StartupError> {
        let mut settings = self.settings.clone().over(file);
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
                values::check_issuer(url).map_err(StartupError::Config)?;
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

pub(super) async fn serve(args: ServeArgs) -> Result<(), StartupError> {
    let settings = args.settings()?;
    let config = settings.server_config()?;
    if args.check {
        let warnings = Application::builder(config.clone())
            .add_demo_service()
            .check()?;
        print_check("serve", &args, &settings, &warnings, "")?;
        return Ok(());
    }
    let app = Application::builder(config.clone()).add_demo_service();
    run(app, &config).await
}

/// What `--check` prints: the effective settings as a config file, after a
/// header that says where they came from, and `more` (commented settings
/// that only flags give) at the end; `warnings`, what start-up would log,
/// before the settings.
pub(super) fn print_check(
    command: &str,
    args: &ServeArgs,
    settings: &Settings,
    warnings: &[String],
    more: &str,
) -> Result<(), StartupError> {
    let file = args
        .config
        .as_ref()
        .map_or_else(String::new, |p| format!("then {}, ", p.display()));
    println!(
        "# authgate {command}: the configuration is valid. The effective settings follow\n\
         # (flags, then environment, {file}then defaults), as a config file;\n\
         # an issuer without `jwks-url` gets its keys through OIDC discovery.\n\
         # Secrets redacted: the query of every URL.\n"
    );
    if let Some(path) = &args.config {
        let overridden = args.overriding(&Settings::load(path)?);
        if !overridden.is_empty() {
            println!(
                "# Given by flags or the environment, over the config file's: {}\n",
                overridden.join(", ")
            );
        }
    }
    for warning in warnings {
        let warning = super::flags::worded(warning);
        println!("# Warning, as {command} would log it: {warning}\n");
    }
    print!("{}", settings.render_redacted());
    print!("{more}");
    Ok(())
}

/// Binds and serves `app` until SIGTERM or SIGINT, then drains as `config`
/// says: what `serve` and `proxy` share.
pub(super) async fn run(
    app: crate::server::ApplicationBuilder,
    config: &ServerConfig,
) -> Result<(), StartupError> {
    let app = app.bind().await?;
    log_start(config, app.local_addr(), app.metrics_addr());
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
        mismatch = discovery_mismatch(config) => {
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

/// The start-up lines: each issuer trusted, then where it serves. URLs are
/// redacted: a signed JWKS URL carries its credentials in its query.
pub(super) fn log_start(config: &ServerConfig, addr: SocketAddr, metrics: Option<SocketAddr>) {
    for issuer in &config.issuers {
        let jwks = match &issuer.jwks {
            JwksSource::Url(url) => net::redact(url.as_str()),
            JwksSource::Discovery { .. } => "OIDC discovery".to_owned(),
        };
        tracing::info!(
            issuer = %net::redact(&issuer.validation.issuer),
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

//! The `--config` file: TOML holding any `serve` setting under its flag's
//! name, and the per-issuer ones in `[[issuer]]` tables. Read strictly (an
//! unknown key is an error with its line, so a typo cannot drop a rule), then
//! merged under the flags and environment, given defaults, checked, and
//! turned into the library's [`ServerConfig`].

use std::path::Path;

use super::flags;
use super::values::*;
use super::*;
use crate::IssuerConfig;

impl Settings {
    /// Reads a config file. Its errors name the file, and for a key or value
    /// that is wrong, the line and column.
    pub fn load(path: &Path) -> Result<Settings, StartupError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            StartupError::Config(format!(
                "cannot read the config file {}: {e}",
                path.display()
            ))
        })?;
        Settings::parse(&text)
            .map_err(|e| StartupError::Config(format!("config file {}: {e}", path.display())))
    }

    /// Parses the text of a config file.
    pub fn parse(text: &str) -> Result<Settings, String> {
        let settings: Settings = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        for (i, issuer) in settings.issuers.iter().enumerate() {
            if settings.issuers[..i].iter().any(|o| o.url == issuer.url) {
                return Err(format!("issuer `{}` has two [[issuer]] tables", issuer.url));
            }
        }
        Ok(settings)
    }

    /// Every setting at the library's default: what a setting given
    /// nowhere takes.
    pub fn defaults() -> Settings {
        let server = ServerConfig::default();
        let (refresh, limits, drain) = (&server.refresh, &server.limits, &server.drain);
        Settings {
            listen: Some(server.listen),
            leeway: Some(Dur(crate::DEFAULT_LEEWAY)),
            jwks_refresh_interval: Some(Dur(refresh.interval)),
            jwks_min_refresh_interval: Some(Dur(refresh.min_interval)),
            jwks_fetch_timeout: Some(Dur(refresh.fetch_timeout)),
            jwks_max_stale: Some(Dur(refresh.max_stale)),
            token_cache_entries: Some(server.token_cache_entries),
            max_connections: Some(limits.max_connections),
            handshake_timeout: Some(Dur(limits.handshake_timeout)),
            max_header_list_size: Some(limits.max_header_list_bytes),
            max_message_size: Some(limits.max_message_bytes),
            max_concurrent_streams: Some(limits.max_concurrent_streams),
            request_timeout: Some(Dur(limits.request_timeout)),
            keepalive_interval: Some(Dur(limits.keepalive_interval)),
            keepalive_timeout: Some(Dur(limits.keepalive_timeout)),
            idle_timeout: Some(Dur(limits.idle_timeout)),
            max_connection_age: limits.max_connection_age.map(Dur),
            max_connection_age_grace: Some(Dur(limits.max_connection_age_grace)),
            max_connections_per_peer: Some(limits.max_connections_per_peer),
            public_stream_max_age: Some(Dur(limits.public_stream_max_age)),
            drain_delay: Some(Dur(drain.delay)),
            shutdown_timeout: Some(Dur(drain.timeout)),
            ..Settings::default()
        }
    }

    /// These settings over `below`'s: each one given here replaces
    /// below's, but scope rules add up, since a rule can only narrow access
    /// and none should vanish because another source also has rules. Merged
    /// key by key as the config file writes them, so that no setting is
    /// listed here again.
    pub fn over(self, below: Settings) -> Settings {
        let table = |s: &Settings| toml::Table::try_from(s).expect("settings serialize as TOML");
        let mut merged = table(&below);
        for (key, value) in table(&self) {
            match (key.as_str(), merged.get_mut(&key), value) {
                ("require-scope", Some(toml::Value::Array(rules)), toml::Value::Array(more)) => {
                    for rule in more {
                        if !rules.contains(&rule) {
                            rules.push(rule);
                        }
                    }
                }
                (_, _, value) => {
                    merged.insert(key, value);
                }
            }
        }
        merged.try_into().expect("merged settings read back")
    }

    /// The settings given here, by their config-file names, that replace
    /// one that `file` gives: what `--check` says the flags and the
    /// environment overrode.
    pub fn overriding(&self, file: &Settings) -> Vec<String> {
        let table = |s: &Settings| toml::Table::try_from(s).expect("settings serialize as TOML");
        let file = table(file);
        table(self)
            .into_iter()
            .filter(|(key, value)| {
                key != "require-scope" && file.get(key).is_some_and(|f| f != value)
            })
            .map(|(key, _)| key)
            .collect()
    }

    /// Fills every setting not given with the library's default, and each
    /// issuer's audiences and leeway with the top-level ones when it has
    /// none.
    pub fn with_defaults(self) -> Settings {
        let mut s = self.over(Settings::defaults());
        for issuer in &mut s.issuers {
            if issuer.audience.is_empty() {
                issuer.audience = s.audience.clone();
            }
            issuer.leeway = issuer.leeway.or(s.leeway);
        }
        s
    }

    /// The server configuration these settings describe, checked: what
    /// [`Settings::with_defaults`] left unset is a default here too.
    pub fn server_config(&self) -> Result<ServerConfig, StartupError> {
        let s = self.clone().with_defaults();
        let get = |v: Option<Dur>| v.expect("filled by with_defaults").0;
        let tls = match (&s.tls_cert, &s.tls_key) {
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
        if s.issuers.is_empty() {
            return Err(StartupError::Config(
                "no issuer: pass --issuer, or set AUTHGATE_ISSUER or AUTH0_DOMAIN, \
                 or list [[issuer]] tables in the config file"
                    .into(),
            ));
        }
        let mut issuers = Vec::with_capacity(s.issuers.len());
        for issuer in &s.issuers {
            let mut config = issuer_config(issuer, get(issuer.leeway.or(s.leeway)))?;
            config.validation.require_typ = s.require_typ.clone();
            issuers.push(config);
        }
        let config = ServerConfig {
            listen: s.listen.expect("filled by with_defaults"),
            issuers,
            refresh: RefreshConfig {
                interval: get(s.jwks_refresh_interval),
                min_interval: get(s.jwks_min_refresh_interval),
                fetch_timeout: get(s.jwks_fetch_timeout),
                max_stale: get(s.jwks_max_stale),
                ..RefreshConfig::default()
            },
            policy: ScopePolicy::new(s.require_scope.iter().map(|r| r.0.clone())),
            tls,
            limits: Limits {
                max_connections: s.max_connections.unwrap_or_default(),
                handshake_timeout: get(s.handshake_timeout),
                max_header_list_bytes: s.max_header_list_size.unwrap_or_default(),
                max_message_bytes: s.max_message_size.unwrap_or_default(),
                max_concurrent_streams: s.max_concurrent_streams.unwrap_or_default(),
                request_timeout: get(s.request_timeout),
                keepalive_interval: get(s.keepalive_interval),
                keepalive_timeout: get(s.keepalive_timeout),
                idle_timeout: get(s.idle_timeout),
                max_connection_age: s.max_connection_age.map(|d| d.0),
                max_connection_age_grace: get(s.max_connection_age_grace),
                max_connections_per_peer: s.max_connections_per_peer.unwrap_or_default(),
                public_stream_max_age: get(s.public_stream_max_age),
            },
            token_cache_entries: s.token_cache_entries.unwrap_or_default(),
            metrics_listen: s.metrics_listen,
            drain: Drain {
                delay: get(s.drain_delay),
                timeout: get(s.shutdown_timeout),
            },
            cors_allow_origins: s.cors_allow_origin.clone(),
        };
        check_bounds(&config)?;
        CorsOrigins::parse(&config.cors_allow_origins).map_err(flags::reworded)?;
        config.gate().check().map_err(flags::reworded)?;
        config.limits.check().map_err(flags::reworded)?;
        Ok(config)
    }

    /// The settings as a config file, every URL redacted as logs show it
    /// (signed URLs carry credentials in their query). `serve --check`
    /// prints this.
    pub fn render_redacted(&self) -> String {
        let mut shown = self.clone();
        for issuer in &mut shown.issuers {
            issuer.url = net::redact(&issuer.url);
            issuer.jwks_url = issuer.jwks_url.as_deref().map(net::redact);
        }
        toml::to_string_pretty(&shown).expect("settings serialize as TOML")
    }
}

fn issuer_config(issuer: &IssuerSettings, leeway: Duration) -> Result<IssuerConfig, StartupError> {
    let audiences = issuer.audience.clone();
    let mut config = match &issuer.jwks_url {
        // With its JWKS URL, an issuer need not be a URL itself
        // (`accounts.google.com`, a service account's email).
        Some(jwks) => IssuerConfig::with_jwks(&issuer.url, jwks, audiences, leeway),
        None => IssuerConfig::discovered(&issuer.url, audiences, leeway),
    }
    .map_err(|e| flags::reworded(e.into()))?;
    let validation = &mut config.validation;
    if let Some(claim) = &issuer.audience_claim {
        validation.audience_claim = claim.clone();
    }
    validation.token_use = issuer.token_use.clone();
    if let Some(claims) = &issuer.scope_claims {
        validation.scope_claims = claims.clone();
    }
    validation.methods = issuer.methods.clone();
    Ok(config)
}

/// A config file's error as `line L, column C: why`, without the excerpt of
/// the file that toml's own message quotes: the file holds signed URLs
/// (credentials in a query, or refused userinfo), which no error echoes.
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    // Without the text, toml says why and the key it was reading.
    let mut bare = error.clone();
    bare.set_input(None);
    let why = bare.to_string().trim_end().replace('\n', " ");
    let Some(before) = error.span().and_then(|span| text.get(..span.start)) else {
        return why;
    };
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}: {why}")
}

/// What an operator cannot mean, beyond what the library refuses: a refresh
/// that would spin, timeouts too short for a handshake or a ping, and
/// values so large they switch a defence off (`--leeway 500y` is expiry
/// not checked at all; `--jwks-max-stale 1000y` keeps withdrawn keys).
fn check_bounds(config: &ServerConfig) -> Result<(), StartupError> {
    let (refresh, limits, drain) = (&config.refresh, &config.limits, &config.drain);
    let (tenth, second, minute, hour) = (
        Duration::from_millis(100),
        Duration::from_secs(1),
        Duration::from_secs(60),
        Duration::from_secs(3600),
    );
    let leeways = config
        .issuers
        .iter()
        .map(|i| ("--leeway", i.validation.leeway, Duration::ZERO, 10 * minute));
    let bounded = [
        (
            "--jwks-refresh-interval",
            refresh.interval,
            second,
            24 * hour,
        ),
        (
            "--jwks-min-refresh-interval",
            refresh.min_interval,
            second,
            24 * hour,
        ),
        (
            "--jwks-fetch-timeout",
            refresh.fetch_timeout,
            tenth,
            5 * minute,
        ),
        (
            "--jwks-max-stale",
            refresh.max_stale,
            Duration::ZERO,
            30 * 24 * hour,
        ),
        (
            "--handshake-timeout",
            limits.handshake_timeout,
            tenth,
            minute,
        ),
        (
            "--request-timeout",
            limits.request_timeout,
            tenth,
            24 * hour,
        ),
        (
            "--keepalive-interval",
            limits.keepalive_interval,
            second,
            hour,
        ),
        (
            "--keepalive-timeout",
            limits.keepalive_timeout,
            tenth,
            5 * minute,
        ),
        ("--idle-timeout", limits.idle_timeout, second, 24 * hour),
        (
            "--max-connection-age-grace",
            limits.max_connection_age_grace,
            tenth,
            hour,
        ),
        (
            "--public-stream-max-age",
            limits.public_stream_max_age,
            second,
            24 * hour,
        ),
        ("--drain-delay", drain.delay, Duration::ZERO, hour),
        ("--shutdown-timeout", drain.timeout, Duration::ZERO, hour),
    ];
    let show = |d: Duration| humantime::format_duration(d).to_string();
    for (flag, value, floor, ceiling) in leeways.chain(bounded) {
        if value < floor {
            return Err(StartupError::Config(format!(
                "{flag} must be at least {}",
                show(floor)
            )));
        }
        if value > ceiling {
            return Err(StartupError::Config(format!(
                "{flag} ({}) must be at most {}: more is a defence switched off, not a setting",
                show(value),
                show(ceiling)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_key_is_an_error_with_its_line() {
        let err = Settings::parse("listen = \"127.0.0.1:1\"\n\n[[issuer]]\nurl = \"https://a.example/\"\njwks-uri = \"https://a.example/k\"\n")
            .unwrap_err();
        assert!(err.contains("line 5"), "{err}");
        assert!(err.contains("unknown field `jwks-uri`"), "{err}");
        let err = Settings::parse("leway = \"5s\"\n").unwrap_err();
        assert!(err.contains("line 1") && err.contains("`leway`"), "{err}");
    }

    #[test]
    fn bad_values_point_at_their_line() {
        for (text, line, says) in [
            ("\nleeway = \"ten\"\n", 2, "not a duration"),
            (
                "\n\nrequire-scope = [\"GetPrivate=x\"]\n",
                3,
                "full method path",
            ),
            (
                "[[issuer]]\nurl = \"http://a.example/\"\n",
                2,
                "must use https",
            ),
            ("listen = \"nowhere\"\n", 1, "address"),
            ("audience = [\"\"]\n", 1, "must not be empty"),
            ("\nrequire-typ = \"at jwt\"\n", 2, "media type"),
        ] {
            let err = Settings::parse(text).unwrap_err();
            assert!(err.contains(&format!("line {line}")), "{text}: {err}");
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn effective_settings_print_as_a_file_that_loads_back() {
        let settings = Settings::parse(
            "audience = \"https://api.example\"\n\
             require-scope = [\"/a.S/*=read|admin\"]\n\
             [[issuer]]\nurl = \"https://a.example/\"\n\
             [[issuer]]\nurl = \"https://b.example/\"\naudience = [\"x\", \"y\"]\nleeway = \"5s\"\n",
        )
        .unwrap()
        .with_defaults();
        assert_eq!(settings.issuers[0].audience, ["https://api.example"]);
        assert_eq!(
            settings.issuers[0].leeway,
            Some(Dur(Duration::from_secs(30)))
        );
        assert_eq!(settings.issuers[1].audience, ["x", "y"]);
        let text = settings.render_redacted();
        assert_eq!(Settings::parse(&text).unwrap(), settings, "{text}");
        let config = settings.server_config().unwrap();
        assert_eq!(config.issuers.len(), 2);
        assert_eq!(config.issuers[1].validation.leeway, Duration::from_secs(5));
    }

    #[test]
    fn typ_staleness_metrics_and_drain_reach_the_server_config() {
        let text = "audience = \"a\"\nrequire-typ = \"at+jwt\"\njwks-max-stale = \"2h\"\n\
                    [[issuer]]\nurl = \"https://a.example/\"\n[[issuer]]\nurl = \"https://b.example/\"\n";
        let config = Settings::parse(text).unwrap().server_config().unwrap();
        assert!(
            config
                .issuers
                .iter()
                .all(|i| i.validation.require_typ.as_deref() == Some("at+jwt"))
        );
        assert_eq!(config.refresh.max_stale, Duration::from_secs(7200));
        assert_eq!(config.metrics_listen, None);
        let drain = text.replace(
            "audience =",
            "metrics-listen = \"127.0.0.1:9090\"\ndrain-delay = \"5s\"\nshutdown-timeout = \"7s\"\naudience =",
        );
        let config = Settings::parse(&drain).unwrap().server_config().unwrap();
        assert_eq!(
            config.metrics_listen,
            Some("127.0.0.1:9090".parse().unwrap())
        );
        assert_eq!(config.drain.delay, Duration::from_secs(5));
        assert_eq!(config.drain.timeout, Duration::from_secs(7));
        let short = text.replace("\"2h\"", "\"15m\"");
        let err = Settings::parse(&short)
            .unwrap()
            .server_config()
            .unwrap_err();
        assert!(err.to_string().contains("--jwks-max-stale"), "{err}");
    }

    #[test]
    fn errors_name_the_line_without_quoting_it() {
        let text = "audience = \"a\"\n[[issuer]]\nurl = \"https://a.example/\"\n\
                    jwks-url = \"http://u:s3cret@a.example/k?sig=s3cret\"\n";
        let err = Settings::parse(text).unwrap_err();
        assert!(err.starts_with("line 4, column 12: "), "{err}");
        assert!(err.contains("must use https"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn url_queries_and_userinfo_are_redacted() {
        let settings = Settings::parse(
            "[[issuer]]\nurl = \"accounts.example:s3cret@host\"\n\
             jwks-url = \"https://k.example/jwks?sig=s3cret\"\n",
        )
        .unwrap();
        let shown = settings.render_redacted();
        assert!(
            shown.contains("https://k.example/jwks?<redacted>"),
            "{shown}"
        );
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}

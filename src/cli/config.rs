//! The `--config` file: TOML holding any `serve` setting under its flag's
//! name, and the per-issuer ones in `[[issuer]]` tables. Read strictly (an
//! unknown key is an error with its line, so a typo cannot drop a rule), then
//! merged under the flags and environment, given defaults, checked, and
//! turned into the library's [`ServerConfig`].

use std::{fmt, path::Path, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use super::*;
use crate::IssuerConfig;

/// Every setting of the gate and the server, defined once for the flags,
/// the environment and the config file: clap reads it from the command line
/// (each field a flag of the same name), serde from the file (each a key of
/// the same name). `None` (or an empty list) is a setting not given. After
/// [`Settings::with_defaults`], the effective configuration, which
/// `serve --check` prints in this same form. The defaults are the
/// library's (see [`Settings::defaults`]); the help repeats them.
#[derive(Debug, Clone, Default, PartialEq, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// Where gRPC is served: IP:PORT, or HOST:PORT (`localhost:50051`)
    /// [default: 127.0.0.1:50051].
    #[arg(long, env = "AUTHGATE_LISTEN", value_parser = parse_listen)]
    #[serde(
        default,
        deserialize_with = "listen",
        skip_serializing_if = "Option::is_none"
    )]
    pub listen: Option<SocketAddr>,
    /// Audiences for every issuer without its own (`--audience` on `serve`).
    #[arg(skip)]
    #[serde(
        default,
        deserialize_with = "audiences",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub audience: Vec<String>,
    /// METHOD=SCOPE: the method needs the scope, e.g.
    /// `/authgate.v1.PrivateService/GetPrivate=read:private`; METHOD=a|b: any
    /// one of them; METHOD `/package.Service/*`: every method of the service.
    /// Repeat for more (each rule must hold), or `;`-separate them in
    /// AUTHGATE_REQUIRE_SCOPE. Rules from the file, the environment and
    /// flags all apply.
    #[arg(
        long = "require-scope",
        env = "AUTHGATE_REQUIRE_SCOPE",
        value_delimiter = ';',
        value_parser = parse_rule
    )]
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub require_scope: Vec<Parsed<ScopeRule>>,
    /// Clock skew allowed on `exp` and `nbf`, for every issuer without its own [default: 30s].
    #[arg(long, value_parser = parse_dur)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leeway: Option<Dur>,
    /// Accept only tokens whose `typ` is this (`at+jwt` also accepts
    /// `application/at+jwt`) [default: absent, JWT, at+jwt or application/at+jwt].
    #[arg(long, value_name = "TYP", value_parser = parse_typ)]
    #[serde(
        default,
        deserialize_with = "typ",
        skip_serializing_if = "Option::is_none"
    )]
    pub require_typ: Option<String>,
    /// Background JWKS refresh period (Cache-Control max-age does not
    /// shorten it) [default: 10m].
    #[arg(long, value_parser = parse_dur)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_refresh_interval: Option<Dur>,
    /// The least time between two fetches that unknown `kid`s trigger [default: 30s].
    #[arg(long, value_parser = parse_dur)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_min_refresh_interval: Option<Dur>,
    /// How long one JWKS or discovery request may take [default: 10s].
    #[arg(long, value_parser = parse_dur)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_fetch_timeout: Option<Dur>,
    /// After this long without a successful JWKS fetch, an issuer's last good
    /// key set is dropped and its tokens get UNAVAILABLE until a fetch
    /// succeeds [default: 24h].
    #[arg(long, value_parser = parse_dur)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_max_stale: Option<Dur>,
    /// How many verified tokens to remember, so a token is verified once
    /// until it expires (0: verify every call) [default: 4096].
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_cache_entries: Option<usize>,
    /// Connections open at once; past it, accepting waits for one to close [default: 4096].
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// How long a new connection may stay silent before it is closed [default: 10s].
    #[arg(long, value_parser = parse_dur)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_timeout: Option<Dur>,
    /// Largest header block a client may send, in bytes (HTTP/2
    /// SETTINGS_MAX_HEADER_LIST_SIZE) [default: 16384].
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_header_list_size: Option<u32>,
    /// Largest request message, in bytes [default: 65536].
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_size: Option<usize>,
    /// Streams one connection may have open at once [default: 256].
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<u32>,
    /// Longest a call may run [default: 30s].
    #[arg(long, value_parser = parse_dur)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<Dur>,
    /// HTTP/2 ping interval on idle connections [default: 60s].
    #[arg(long, value_parser = parse_dur)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_interval: Option<Dur>,
    /// How long a ping may go unanswered before the connection is closed [default: 20s].
    #[arg(long, value_parser = parse_dur)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_timeout: Option<Dur>,
    /// A connection with no call open this long is closed (GOAWAY) [default: 5m].
    #[arg(long, value_parser = parse_dur)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Dur>,
    /// A connection older than this is closed (GOAWAY); calls in flight get
    /// --max-connection-age-grace [default: off].
    #[arg(long, value_parser = parse_dur)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_age: Option<Dur>,
    /// How long calls in flight on a connection told to close may take
    /// before it is cut [default: 30s].
    #[arg(long, value_parser = parse_dur)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_age_grace: Option<Dur>,
    /// Connections one peer address may hold at once; 0 is no limit (behind
    /// a balancer every connection has its address) [default: 0].
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_peer: Option<usize>,
    /// A stream on a public method (health Watch, reflection) is ended after
    /// this long; the client reconnects [default: 30m].
    #[arg(long, value_parser = parse_dur)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_stream_max_age: Option<Dur>,
    /// Serve TLS with this PEM certificate chain (needs --tls-key).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Serve Prometheus metrics at GET /metrics on this address, e.g.
    /// 127.0.0.1:9090 (keep it off the public network) [default for serve:
    /// off; for dev: 127.0.0.1:50053, or a free port when --listen asks for
    /// one].
    #[arg(long, env = "AUTHGATE_METRICS_LISTEN", value_parser = parse_listen)]
    #[serde(
        default,
        deserialize_with = "listen",
        skip_serializing_if = "Option::is_none"
    )]
    pub metrics_listen: Option<SocketAddr>,
    /// On SIGTERM or SIGINT, report NOT_SERVING at once and keep serving this
    /// long, so load balancers and kubelets stop sending calls first; a second
    /// signal ends it at once [default: 0s].
    #[arg(long, value_parser = parse_dur)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_delay: Option<Dur>,
    /// Then, with no new connections accepted, how long calls in flight may
    /// take to finish before the server exits anyway [default: 30s].
    #[arg(long, value_parser = parse_dur)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout: Option<Dur>,
    /// Let web pages from this origin call (CORS), e.g.
    /// `https://app.example.com` (scheme, host and port), or `*` for any.
    /// Repeat for more, or comma-separate them in
    /// AUTHGATE_CORS_ALLOW_ORIGIN [default: none, CORS off].
    #[arg(
        long = "cors-allow-origin",
        env = "AUTHGATE_CORS_ALLOW_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cors_allow_origin: Vec<String>,
    /// The issuers, one `[[issuer]]` table each, with their own settings
    /// (`--issuer` on `serve`).
    #[arg(skip)]
    #[serde(rename = "issuer", default, skip_serializing_if = "Vec::is_empty")]
    pub issuers: Vec<IssuerSettings>,
}

/// One `[[issuer]]` table.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IssuerSettings {
    /// The exact `iss` of its tokens, and the base of its OIDC discovery.
    #[serde(deserialize_with = "issuer_url")]
    pub url: String,
    /// Its own audiences, instead of the top-level `audience`.
    #[serde(
        default,
        deserialize_with = "audiences",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub audience: Vec<String>,
    /// Where its keys come from, instead of its discovery document.
    #[serde(
        default,
        deserialize_with = "jwks_url",
        skip_serializing_if = "Option::is_none"
    )]
    pub jwks_url: Option<String>,
    /// Its own clock skew allowance, instead of the top-level `leeway`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leeway: Option<Dur>,
    /// The claim that must hold one of the audiences (`aud` unless given;
    /// `client_id` for AWS Cognito access tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience_claim: Option<String>,
    /// When given, the `token_use` claim must equal it (`access` for Cognito).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_use: Option<String>,
    /// The claims scopes are read from (`["scope", "scp", "permissions"]`
    /// unless given; add `roles` for Azure AD app-only tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_claims: Option<Vec<String>>,
    /// When given, the only paths this issuer's tokens may call: exact, or
    /// `/prefix/*`; any other is PERMISSION_DENIED, whatever the scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
}

impl IssuerSettings {
    /// An issuer with nothing of its own but its URL.
    pub fn new(url: impl Into<String>) -> IssuerSettings {
        IssuerSettings {
            url: url.into(),
            audience: Vec::new(),
            jwks_url: None,
            leeway: None,
            audience_claim: None,
            token_use: None,
            scope_claims: None,
            methods: None,
        }
    }
}

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
        let settings: Settings = toml::from_str(text).map_err(|e| e.to_string())?;
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
        CorsOrigins::parse(&config.cors_allow_origins)?;
        config.gate().check()?;
        config.limits.check()?;
        Ok(config)
    }

    /// The settings as a config file, with the query of every URL redacted
    /// (signed URLs carry credentials there). `serve --check` prints this.
    pub fn render_redacted(&self) -> String {
        let mut shown = self.clone();
        for issuer in &mut shown.issuers {
            issuer.url = redact_url(&issuer.url);
            issuer.jwks_url = issuer.jwks_url.as_deref().map(redact_url);
        }
        toml::to_string_pretty(&shown).expect("settings serialize as TOML")
    }
}

fn issuer_config(issuer: &IssuerSettings, leeway: Duration) -> Result<IssuerConfig, StartupError> {
    let audiences = issuer.audience.clone();
    let mut config = match &issuer.jwks_url {
        // With its JWKS URL, an issuer need not be a URL itself
        // (`accounts.google.com`, a service account's email).
        Some(jwks) => IssuerConfig::with_jwks(&issuer.url, jwks, audiences, leeway)?,
        None => IssuerConfig::discovered(&issuer.url, audiences, leeway)?,
    };
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

/// A URL with its query, if any, replaced by `<redacted>`.
fn redact_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?<redacted>"),
        None => url.to_owned(),
    }
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

/// A duration written as `90s`, `10m`, `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map(Dur).map_err(de::Error::custom)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(self.0))
    }
}

/// A `typ` for `--require-typ`: a media type such as `at+jwt`.
fn parse_typ(s: &str) -> Result<String, String> {
    let typ = s.trim();
    if typ.is_empty() || !typ.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("`{s}` is not a media type such as at+jwt"));
    }
    Ok(typ.to_owned())
}

/// A duration as a flag takes it.
fn parse_dur(s: &str) -> Result<Dur, String> {
    parse_duration(s).map(Dur)
}

/// A scope rule as `--require-scope` takes it.
fn parse_rule(s: &str) -> Result<Parsed<ScopeRule>, String> {
    s.parse().map(Parsed)
}

/// A value written as the string its flag takes (a scope rule, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T>(pub T);

impl<'de, T: FromStr<Err = String>> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Parsed<T>, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(Parsed).map_err(de::Error::custom)
    }
}

impl<T: fmt::Display> Serialize for Parsed<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// One value, or an array of them.
fn one_or_many<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> de::Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or an array of strings")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<T>, E> {
            T::deserialize(de::value::StrDeserializer::new(v)).map(|one| vec![one])
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut all = Vec::new();
            while let Some(one) = seq.next_element()? {
                all.push(one);
            }
            Ok(all)
        }
    }
    d.deserialize_any(V(std::marker::PhantomData))
}

/// Audiences: one or many, none empty.
fn audiences<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let all: Vec<String> = one_or_many(d)?;
    if all.iter().any(|s| s.trim().is_empty()) {
        return Err(de::Error::custom("an audience must not be empty"));
    }
    Ok(all)
}

/// A `typ` as `--require-typ` takes it.
fn typ<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    parse_typ(&text).map(Some).map_err(de::Error::custom)
}

/// A listen address as `--listen` takes it.
fn listen<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    parse_listen(&text).map(Some).map_err(de::Error::custom)
}

/// An issuer URL that passes the https-or-loopback rule, checked as it is
/// read so that the error points at its line.
fn issuer_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let url = String::deserialize(d)?;
    check_issuer(&url).map_err(de::Error::custom)?;
    Ok(url)
}

/// An issuer written as a URL must pass the https-or-loopback rule; one
/// that is not a URL (`accounts.google.com`) is judged once its JWKS URL is
/// known (it needs one).
pub(super) fn check_issuer(issuer: &str) -> Result<(), String> {
    if issuer.trim().is_empty() {
        return Err("an issuer must not be empty".into());
    }
    if issuer.contains("://") {
        net::parse_issuer_url("issuer", issuer).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn jwks_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let url = String::deserialize(d)?;
    net::parse_issuer_url("JWKS URL", &url).map_err(de::Error::custom)?;
    Ok(Some(url))
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
    fn url_queries_are_redacted() {
        assert_eq!(
            redact_url("https://k.example/jwks?sig=s3cret"),
            "https://k.example/jwks?<redacted>"
        );
        assert_eq!(redact_url("https://k.example/"), "https://k.example/");
    }
}

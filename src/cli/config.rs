//! The `--config` file: TOML holding any `serve` setting under its flag's
//! name, and the per-issuer ones in `[[issuer]]` tables. Read strictly (an
//! unknown key is an error with its line, so a typo cannot drop a rule), then
//! merged under the flags and environment, given defaults, checked, and
//! turned into the library's [`ServerConfig`].

use std::{fmt, path::Path, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use super::*;
use crate::IssuerConfig;

/// Every `serve` setting, as the file writes it; `None` (or an empty list)
/// is a setting not given. After [`Settings::with_defaults`], the effective
/// configuration, which `serve --check` prints in this same form.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// `--listen`: IP:PORT, or HOST:PORT.
    #[serde(
        default,
        deserialize_with = "listen",
        skip_serializing_if = "Option::is_none"
    )]
    pub listen: Option<SocketAddr>,
    /// `--audience`: for every issuer that has none of its own.
    #[serde(
        default,
        deserialize_with = "audiences",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub audience: Vec<String>,
    /// `--require-scope`: these rules and those of the command line all apply.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub require_scope: Vec<Parsed<ScopeRule>>,
    /// `--leeway`: for every issuer that has none of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leeway: Option<Dur>,
    /// `--require-typ`.
    #[serde(
        default,
        deserialize_with = "typ",
        skip_serializing_if = "Option::is_none"
    )]
    pub require_typ: Option<String>,
    /// `--jwks-refresh-interval`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_refresh_interval: Option<Dur>,
    /// `--jwks-min-refresh-interval`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_min_refresh_interval: Option<Dur>,
    /// `--jwks-fetch-timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_fetch_timeout: Option<Dur>,
    /// `--jwks-max-stale`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_max_stale: Option<Dur>,
    /// `--token-cache-entries`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_cache_entries: Option<usize>,
    /// `--max-connections`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// `--handshake-timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake_timeout: Option<Dur>,
    /// `--max-header-list-size`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_header_list_size: Option<u32>,
    /// `--max-message-size`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_message_size: Option<usize>,
    /// `--max-concurrent-streams`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<u32>,
    /// `--request-timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<Dur>,
    /// `--keepalive-interval`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalive_interval: Option<Dur>,
    /// `--keepalive-timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalive_timeout: Option<Dur>,
    /// `--tls-cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// `--metrics-listen`.
    #[serde(
        default,
        deserialize_with = "listen",
        skip_serializing_if = "Option::is_none"
    )]
    pub metrics_listen: Option<SocketAddr>,
    /// `--drain-delay`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_delay: Option<Dur>,
    /// `--shutdown-timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout: Option<Dur>,
    /// `--issuer`, one `[[issuer]]` table each, with its own settings.
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
}

impl IssuerSettings {
    /// An issuer with nothing of its own but its URL.
    pub fn new(url: impl Into<String>) -> IssuerSettings {
        IssuerSettings {
            url: url.into(),
            audience: Vec::new(),
            jwks_url: None,
            leeway: None,
        }
    }
}

/// The defaults, which the flags' help repeats.
mod default {
    use super::*;
    pub(super) const LISTEN: &str = "127.0.0.1:50051";
    pub(super) const LEEWAY: Duration = Duration::from_secs(30);
    pub(super) const REFRESH: Duration = Duration::from_secs(600);
    pub(super) const MIN_REFRESH: Duration = Duration::from_secs(30);
    pub(super) const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
    pub(super) const MAX_STALE: Duration = Duration::from_secs(24 * 3600);
    pub(super) const HANDSHAKE: Duration = Duration::from_secs(10);
    pub(super) const REQUEST: Duration = Duration::from_secs(30);
    pub(super) const KEEPALIVE: Duration = Duration::from_secs(60);
    pub(super) const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
    pub(super) const DRAIN_DELAY: Duration = Duration::ZERO;
    pub(super) const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
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

    /// Fills every setting not given with its default, and each issuer's
    /// audiences and leeway with the top-level ones when it has none.
    pub fn with_defaults(mut self) -> Settings {
        let d = |v: &mut Option<Dur>, default: Duration| {
            v.get_or_insert(Dur(default));
        };
        self.listen
            .get_or_insert_with(|| default::LISTEN.parse().expect("the default address"));
        d(&mut self.leeway, default::LEEWAY);
        d(&mut self.jwks_refresh_interval, default::REFRESH);
        d(&mut self.jwks_min_refresh_interval, default::MIN_REFRESH);
        d(&mut self.jwks_fetch_timeout, default::FETCH_TIMEOUT);
        d(&mut self.jwks_max_stale, default::MAX_STALE);
        d(&mut self.handshake_timeout, default::HANDSHAKE);
        d(&mut self.request_timeout, default::REQUEST);
        d(&mut self.keepalive_interval, default::KEEPALIVE);
        d(&mut self.keepalive_timeout, default::KEEPALIVE_TIMEOUT);
        d(&mut self.drain_delay, default::DRAIN_DELAY);
        d(&mut self.shutdown_timeout, default::SHUTDOWN_TIMEOUT);
        let limits = Limits::default();
        self.token_cache_entries
            .get_or_insert(crate::DEFAULT_TOKEN_CACHE_ENTRIES);
        self.max_connections.get_or_insert(limits.max_connections);
        self.max_header_list_size
            .get_or_insert(limits.max_header_list_bytes);
        self.max_message_size
            .get_or_insert(limits.max_message_bytes);
        self.max_concurrent_streams
            .get_or_insert(limits.max_concurrent_streams);
        for issuer in &mut self.issuers {
            if issuer.audience.is_empty() {
                issuer.audience = self.audience.clone();
            }
            issuer.leeway = issuer.leeway.or(self.leeway);
        }
        self
    }

    /// The server configuration these settings describe, checked: what
    /// [`Settings::with_defaults`] left unset is a default here too.
    pub fn server_config(&self) -> Result<ServerConfig, StartupError> {
        let s = self.clone().with_defaults();
        let get = |v: Option<Dur>| v.expect("filled by with_defaults").0;
        let (refresh, min_refresh) = (
            get(s.jwks_refresh_interval),
            get(s.jwks_min_refresh_interval),
        );
        if min_refresh > refresh {
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
                Ok(value)
            }
        };
        let second = Duration::from_secs(1);
        let tenth = Duration::from_millis(100);
        at_least("--jwks-refresh-interval", refresh, second)?;
        at_least("--jwks-min-refresh-interval", min_refresh, second)?;
        let fetch_timeout = at_least("--jwks-fetch-timeout", get(s.jwks_fetch_timeout), tenth)?;
        // One late refresh must never drop the key set.
        let max_stale = at_least(
            "--jwks-max-stale",
            get(s.jwks_max_stale),
            refresh.saturating_mul(2),
        )?;
        let handshake_timeout = at_least("--handshake-timeout", get(s.handshake_timeout), tenth)?;
        let request_timeout = at_least("--request-timeout", get(s.request_timeout), tenth)?;
        let keepalive_interval =
            at_least("--keepalive-interval", get(s.keepalive_interval), second)?;
        let keepalive_timeout = at_least("--keepalive-timeout", get(s.keepalive_timeout), tenth)?;
        let token_cache_entries = s.token_cache_entries.unwrap_or_default();
        if token_cache_entries > MAX_TOKEN_CACHE_ENTRIES {
            return Err(StartupError::Config(format!(
                "--token-cache-entries must be at most {MAX_TOKEN_CACHE_ENTRIES}"
            )));
        }
        let (max_connections, max_concurrent_streams) = (
            s.max_connections.unwrap_or_default(),
            s.max_concurrent_streams.unwrap_or_default(),
        );
        if max_connections == 0 || max_concurrent_streams == 0 {
            return Err(StartupError::Config(
                "--max-connections and --max-concurrent-streams must be at least 1".into(),
            ));
        }
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
                interval: refresh,
                min_interval: min_refresh,
                fetch_timeout,
                max_stale,
                ..RefreshConfig::default()
            },
            policy: ScopePolicy::new(s.require_scope.iter().map(|r| r.0.clone())),
            tls,
            limits: Limits {
                max_connections,
                handshake_timeout,
                max_header_list_bytes: s.max_header_list_size.unwrap_or_default(),
                max_message_bytes: s.max_message_size.unwrap_or_default(),
                max_concurrent_streams,
                request_timeout,
                keepalive_interval,
                keepalive_timeout,
            },
            token_cache_entries,
            metrics_listen: s.metrics_listen,
            drain: Drain {
                delay: get(s.drain_delay),
                timeout: get(s.shutdown_timeout),
            },
        };
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
    if issuer.audience.is_empty() {
        return Err(StartupError::Config(format!(
            "no audience for issuer `{}`: pass --audience, or set AUTHGATE_AUDIENCE or \
             AUTH0_AUDIENCE (the API identifier), or give its [[issuer]] table an `audience`; \
             without one, tokens for any API of the issuer would pass",
            issuer.url
        )));
    }
    let mut config = IssuerConfig::discovered(&issuer.url, issuer.audience.clone(), leeway)?;
    if let Some(url) = &issuer.jwks_url {
        config.jwks = JwksSource::Url(net::parse_issuer_url("JWKS URL", url)?);
    }
    Ok(config)
}

/// A URL with its query, if any, replaced by `<redacted>`.
fn redact_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?<redacted>"),
        None => url.to_owned(),
    }
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
    super::serve::parse_typ(&text)
        .map(Some)
        .map_err(de::Error::custom)
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
    net::parse_issuer_url("issuer", &url).map_err(de::Error::custom)?;
    Ok(url)
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

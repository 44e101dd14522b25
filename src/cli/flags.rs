//! The library's messages in the command line's words: the library names
//! the setting that is wrong (`Limits::idle_timeout`), as its users write
//! it; the command line knows which flag fed each setting, and says that
//! (`--idle-timeout`) where it reports them.

use crate::{StartupError, UrlError};

/// Each setting as the library's messages name it, and what the command
/// line says instead. The library's phrases are matched whole, backticks
/// included, so that one setting's name is never read inside another's.
const WORDING: [(&str, &str); 21] = [
    ("`Limits::max_connections`", "--max-connections"),
    (
        "`Limits::max_connections_per_peer`",
        "--max-connections-per-peer",
    ),
    ("`Limits::max_header_list_bytes`", "--max-header-list-size"),
    ("`Limits::max_message_bytes`", "--max-message-size"),
    (
        "`Limits::max_concurrent_streams`",
        "--max-concurrent-streams",
    ),
    ("`Limits::handshake_timeout`", "--handshake-timeout"),
    ("`Limits::request_timeout`", "--request-timeout"),
    ("`Limits::keepalive_interval`", "--keepalive-interval"),
    ("`Limits::keepalive_timeout`", "--keepalive-timeout"),
    ("`Limits::idle_timeout`", "--idle-timeout"),
    ("`Limits::max_connection_age`", "--max-connection-age"),
    (
        "`Limits::max_connection_age_grace`",
        "--max-connection-age-grace",
    ),
    ("`Limits::public_stream_max_age`", "--public-stream-max-age"),
    ("`RefreshConfig::interval`", "--jwks-refresh-interval"),
    (
        "`RefreshConfig::min_interval`",
        "--jwks-min-refresh-interval",
    ),
    ("`RefreshConfig::max_stale`", "--jwks-max-stale"),
    (
        "`GateBuilder::token_cache_entries`",
        "--token-cache-entries",
    ),
    ("`ServerConfig::cors_allow_origins`:", "--cors-allow-origin"),
    (
        "give it one (`ValidationConfig::audiences`, or `GateBuilder::audience`)",
        "pass --audience, or set AUTHGATE_AUDIENCE or AUTH0_AUDIENCE (the API identifier), \
         or give its [[issuer]] table an `audience`",
    ),
    (
        "(`IssuerConfig::with_jwks`, or `GateBuilder::issuer_with_jwks`)",
        "(`--jwks-url`, or `jwks-url` in its [[issuer]] table)",
    ),
    // Only the config file sets it, in an issuer's table.
    ("`ValidationConfig::token_use`", "`token-use`"),
];

/// `message`, a library error or warning, with each setting it names said
/// as the command line sets it.
pub(super) fn worded(message: &str) -> String {
    WORDING
        .iter()
        .fold(message.to_owned(), |text, (setting, flag)| {
            text.replace(setting, flag)
        })
}

/// `error`, a library's, with each setting it names said as the command
/// line sets it.
pub(super) fn reworded(error: StartupError) -> StartupError {
    match error {
        StartupError::Config(message) => StartupError::Config(worded(&message)),
        StartupError::Url(UrlError::Invalid { what, url, detail }) => {
            StartupError::Url(UrlError::Invalid {
                what,
                url,
                detail: worded(&detail),
            })
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::worded;
    use crate::{
        Gate, IssuerConfig,
        keys::RefreshConfig,
        server::{Limits, ServerConfig},
    };

    /// The library's refusal of `limits`, as the command line prints it.
    fn limits(limits: Limits) -> String {
        worded(&limits.check().unwrap_err().to_string())
    }

    #[test]
    fn the_limits_read_as_their_flags() {
        let zero = Duration::ZERO;
        let defaults = Limits::default;
        for (said, wrong) in [
            (
                "--idle-timeout must be more than 0s",
                Limits {
                    idle_timeout: zero,
                    ..defaults()
                },
            ),
            (
                "--max-connection-age must be more than 0s",
                Limits {
                    max_connection_age: Some(zero),
                    ..defaults()
                },
            ),
            (
                "--max-connection-age-grace must be more than 0s",
                Limits {
                    max_connection_age_grace: zero,
                    ..defaults()
                },
            ),
            (
                "--public-stream-max-age must be more than 0s",
                Limits {
                    public_stream_max_age: zero,
                    ..defaults()
                },
            ),
        ] {
            assert_eq!(limits(wrong), said);
        }
        let too_long = Limits::MAX_DURATION + Duration::from_secs(1);
        for (said, wrong) in [
            (
                format!(
                    "--max-connections (0) must be from 1 to {}",
                    Limits::MAX_CONNECTIONS
                ),
                Limits {
                    max_connections: 0,
                    ..defaults()
                },
            ),
            (
                "--max-header-list-size (0) must be from 8192 to 16777216".into(),
                Limits {
                    max_header_list_bytes: 0,
                    ..defaults()
                },
            ),
            (
                "--keepalive-timeout must be at most 100 years".into(),
                Limits {
                    keepalive_timeout: too_long,
                    ..defaults()
                },
            ),
        ] {
            assert_eq!(limits(wrong), said);
        }
    }

    #[test]
    fn the_refresh_settings_read_as_their_flags() {
        let refresh = |config: RefreshConfig| worded(&config.check().unwrap_err().to_string());
        let hour = Duration::from_secs(3600);
        assert_eq!(
            refresh(RefreshConfig {
                interval: hour,
                min_interval: 2 * hour,
                ..RefreshConfig::default()
            }),
            "--jwks-min-refresh-interval (7200s) exceeds --jwks-refresh-interval (3600s)"
        );
        assert_eq!(
            refresh(RefreshConfig {
                interval: hour,
                max_stale: hour,
                ..RefreshConfig::default()
            }),
            "--jwks-max-stale (3600s) must be at least twice --jwks-refresh-interval (3600s), \
             or one late refresh would drop the key set"
        );
    }

    #[test]
    fn the_gate_s_settings_read_as_their_flags() {
        let gate = |builder: crate::GateBuilder| worded(&builder.check().unwrap_err().to_string());
        assert_eq!(
            gate(Gate::builder().issuer("https://t.example/")),
            "no audience for issuer `https://t.example/`: pass --audience, or set \
             AUTHGATE_AUDIENCE or AUTH0_AUDIENCE (the API identifier), or give its [[issuer]] \
             table an `audience`; without one, tokens for any API of the issuer would pass"
        );
        assert_eq!(
            gate(
                Gate::builder()
                    .issuer("https://t.example/")
                    .audience("a")
                    .token_cache_entries(usize::MAX)
            ),
            format!(
                "--token-cache-entries must be at most {}",
                crate::MAX_TOKEN_CACHE_ENTRIES
            )
        );
        let mut issuer = IssuerConfig::discovered(
            "https://t.example/",
            vec!["a".into()],
            crate::DEFAULT_LEEWAY,
        )
        .unwrap();
        issuer.validation.token_use = Some(String::new());
        assert_eq!(
            gate(Gate::builder().issuer_config(issuer.clone())),
            "issuer `https://t.example/`: `token-use` is empty: name the `token_use` required, \
             such as `access`"
        );
        issuer.validation.token_use = Some("access".into());
        issuer.validation.audience_claim = "token_use".into();
        assert_eq!(
            gate(Gate::builder().issuer_config(issuer)),
            "issuer `https://t.example/`: `token_use` cannot be both the audience claim and \
             `token-use`"
        );
        let not_a_url = IssuerConfig::discovered("accounts.google.com", vec![], Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(
            worded(&not_a_url).ends_with(
                "so give its JWKS URL as well (`--jwks-url`, or `jwks-url` in its [[issuer]] \
                 table)"
            ),
            "{not_a_url}"
        );
    }

    #[test]
    fn a_cors_origin_reads_as_its_flag() {
        let config = ServerConfig {
            cors_allow_origins: vec!["https://app.example.com/".into()],
            ..ServerConfig::default()
        };
        let error = crate::server::CorsOrigins::parse(&config.cors_allow_origins).unwrap_err();
        assert_eq!(
            worded(&error.to_string()),
            "--cors-allow-origin `https://app.example.com/` is not an origin such as \
             https://app.example.com (scheme, host and port only, lower case, no path or \
             trailing slash) or `*`"
        );
    }
}

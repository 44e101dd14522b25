//! What the server is configured with, checked before anything binds:
//! issuers, refresh, scope policy, TLS files, limits, metrics, drain and
//! CORS.

use std::{net::SocketAddr, time::Duration};

use tokio::sync::Semaphore;

use super::{
    tls::{TlsFiles, load_tls},
    web::CorsOrigins,
};
use crate::{
    DEFAULT_TOKEN_CACHE_ENTRIES, Gate, GateBuilder, IssuerConfig, ScopePolicy, StartupError,
    keys::RefreshConfig,
};

/// Everything `authgate serve` needs, parsed and checked at the edge.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where gRPC is served.
    pub listen: SocketAddr,
    /// The issuers trusted, each with its own key set; at least one.
    pub issuers: Vec<IssuerConfig>,
    /// How each issuer's key set is refreshed.
    pub refresh: RefreshConfig,
    /// Which scopes each method needs.
    pub policy: ScopePolicy,
    /// Serve TLS with this certificate chain and key (PEM files).
    pub tls: Option<TlsFiles>,
    /// Bounds a client cannot push the server past.
    pub limits: Limits,
    /// How many verified tokens to remember (0: verify every call).
    pub token_cache_entries: usize,
    /// Serve Prometheus metrics at `GET /metrics` on this address.
    pub metrics_listen: Option<SocketAddr>,
    /// How the server stops.
    pub drain: Drain,
    /// The origins whose web pages may call (CORS): exact origins such as
    /// `https://app.example.com`, or `*`; none turns CORS off.
    pub cors_allow_origins: Vec<String>,
}

impl Default for ServerConfig {
    /// Serving on `127.0.0.1:50051`, plaintext, metrics off, every limit
    /// and the drain at their defaults, and no issuer: give the
    /// [`Application`](super::Application) a gate, or push issuers here.
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            issuers: Vec::new(),
            refresh: RefreshConfig::default(),
            policy: ScopePolicy::default(),
            tls: None,
            limits: Limits::default(),
            token_cache_entries: DEFAULT_TOKEN_CACHE_ENTRIES,
            metrics_listen: None,
            drain: Drain::default(),
            cors_allow_origins: Vec::new(),
        }
    }
}

impl ServerConfig {
    /// The defaults, serving on `listen`.
    pub fn listening(listen: SocketAddr) -> ServerConfig {
        ServerConfig {
            listen,
            ..ServerConfig::default()
        }
    }

    /// The gate these settings describe, not yet built.
    pub fn gate(&self) -> GateBuilder {
        self.issuers
            .iter()
            .fold(Gate::builder(), |builder, issuer| {
                builder.issuer_config(issuer.clone())
            })
            .refresh(self.refresh.clone())
            .scope_policy(self.policy.clone())
            .token_cache_entries(self.token_cache_entries)
    }

    /// Checks what can be checked without the network or binding: the
    /// issuers (at least one, none twice, each with an audience), the
    /// refresh intervals, the limits, and the TLS files, which are read and
    /// parsed.
    pub fn check(&self) -> Result<(), StartupError> {
        self.gate().check()?;
        CorsOrigins::parse(&self.cors_allow_origins)?;
        self.check_and_load_tls().map(drop)
    }

    /// The limits checked and the TLS files loaded.
    pub(super) fn check_and_load_tls(
        &self,
    ) -> Result<Option<std::sync::Arc<tokio_rustls::rustls::ServerConfig>>, StartupError> {
        self.limits.check()?;
        self.tls.as_ref().map(load_tls).transpose()
    }
}

/// How the server stops once asked: health turns `NOT_SERVING` at once,
/// calls keep being served for `delay` so that load balancers and kubelets
/// see it and send no more, then the listener closes and calls in flight
/// have `timeout` to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drain {
    /// How long to keep serving while reporting `NOT_SERVING`.
    pub delay: Duration,
    /// How long calls in flight may take once the listener has closed.
    pub timeout: Duration,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            delay: Duration::ZERO,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Server limits, each a defence against a client that would exhaust us.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once; past it, accepting waits for one to close.
    pub max_connections: usize,
    /// How long a new connection may stay silent before it is closed.
    pub handshake_timeout: Duration,
    /// Largest header block a client may send (HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`).
    pub max_header_list_bytes: u32,
    /// Largest request message decoded.
    pub max_message_bytes: usize,
    /// Streams a connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Longest a call may run before it is cancelled.
    pub request_timeout: Duration,
    /// HTTP/2 ping interval on idle connections; a peer that does not answer
    /// within `keepalive_timeout` is dropped.
    pub keepalive_interval: Duration,
    /// How long to wait for a ping's answer.
    pub keepalive_timeout: Duration,
    /// How long a connection may have no call open before it is closed
    /// with GOAWAY; keep-alive pings do not count as calls. Without it, a
    /// client that opens connections, answers pings and calls nothing holds
    /// every connection slot.
    pub idle_timeout: Duration,
    /// How old a connection may grow before it is closed with GOAWAY, so
    /// that clients spread over new servers behind a balancer; `None`:
    /// never.
    pub max_connection_age: Option<Duration>,
    /// How long the calls in flight on a connection told to close (past
    /// its age, or idle) may take before the connection is cut.
    pub max_connection_age_grace: Duration,
    /// Connections one peer IP address may hold at once; past it, a new one
    /// is closed as soon as it is accepted. 0: no limit (behind a balancer,
    /// every connection comes from its address).
    pub max_connections_per_peer: usize,
    /// How long a call on a public method (a health `Watch`, reflection)
    /// may last: it then ends with `UNAVAILABLE`, and the client calls
    /// again. Guarded calls end when their token does.
    pub public_stream_max_age: Duration,
}

impl Limits {
    /// The longest any of these durations may be (and any duration the
    /// command line takes): 100 years. A deadline that far ahead is still an
    /// `Instant`, so adding a setting to the time a connection or a call
    /// began can never overflow, which panics.
    pub const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600);
    /// The most `max_connections` (and `max_connections_per_peer`) may be:
    /// what the accept loop's semaphore can count.
    pub const MAX_CONNECTIONS: usize = Semaphore::MAX_PERMITS;
    /// The least `max_header_list_bytes` may be: hyper's least HTTP/1 read
    /// buffer, 8 KiB, which also holds a token of the largest size authgate
    /// reads only just; at 0 every request is refused.
    pub const MIN_HEADER_LIST_BYTES: u32 = 8 * 1024;
    /// The most `max_header_list_bytes` may be: 16 MiB, grpc-go's default.
    /// A connection may make the server hold this much per header block;
    /// more is the defence switched off.
    pub const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024 * 1024;
    /// The most `max_message_bytes` may be: gRPC frames each message with a
    /// 4-byte length, so none is longer.
    pub const MAX_MESSAGE_BYTES: usize = u32::MAX as usize;
    /// The most `max_concurrent_streams` may be: clients open the odd
    /// stream identifiers of 31 bits, so no connection holds more streams.
    pub const MAX_CONCURRENT_STREAMS: u32 = 1 << 30;

    /// Refuses limits that would stop every call, close every connection as
    /// soon as it opens, or not fit what the server counts them with: each
    /// count within its bounds above, each duration at most
    /// [`Limits::MAX_DURATION`].
    pub fn check(&self) -> Result<(), StartupError> {
        let counts = [
            (
                "`Limits::max_connections`",
                self.max_connections as u64,
                1,
                Self::MAX_CONNECTIONS as u64,
            ),
            (
                "`Limits::max_connections_per_peer`",
                self.max_connections_per_peer as u64,
                0,
                Self::MAX_CONNECTIONS as u64,
            ),
            (
                "`Limits::max_header_list_bytes`",
                self.max_header_list_bytes.into(),
                Self::MIN_HEADER_LIST_BYTES.into(),
                Self::MAX_HEADER_LIST_BYTES.into(),
            ),
            (
                "`Limits::max_message_bytes`",
                self.max_message_bytes as u64,
                0,
                Self::MAX_MESSAGE_BYTES as u64,
            ),
            (
                "`Limits::max_concurrent_streams`",
                self.max_concurrent_streams.into(),
                1,
                Self::MAX_CONCURRENT_STREAMS.into(),
            ),
        ];
        for (setting, value, min, max) in counts {
            if !(min..=max).contains(&value) {
                return Err(StartupError::Config(format!(
                    "{setting} ({value}) must be from {min} to {max}"
                )));
            }
        }
        let durations = [
            ("`Limits::handshake_timeout`", Some(self.handshake_timeout)),
            ("`Limits::request_timeout`", Some(self.request_timeout)),
            (
                "`Limits::keepalive_interval`",
                Some(self.keepalive_interval),
            ),
            ("`Limits::keepalive_timeout`", Some(self.keepalive_timeout)),
            ("`Limits::idle_timeout`", Some(self.idle_timeout)),
            ("`Limits::max_connection_age`", self.max_connection_age),
            (
                "`Limits::max_connection_age_grace`",
                Some(self.max_connection_age_grace),
            ),
            (
                "`Limits::public_stream_max_age`",
                Some(self.public_stream_max_age),
            ),
        ];
        for (setting, value) in durations {
            if value.is_some_and(|d| d > Self::MAX_DURATION) {
                return Err(StartupError::Config(format!(
                    "{setting} must be at most 100 years"
                )));
            }
        }
        let positive = [
            ("`Limits::idle_timeout`", Some(self.idle_timeout)),
            ("`Limits::max_connection_age`", self.max_connection_age),
            // At 0, a connection told to close is cut before its GOAWAY
            // can reach the client.
            (
                "`Limits::max_connection_age_grace`",
                Some(self.max_connection_age_grace),
            ),
            (
                "`Limits::public_stream_max_age`",
                Some(self.public_stream_max_age),
            ),
        ];
        for (setting, value) in positive {
            if value == Some(Duration::ZERO) {
                return Err(StartupError::Config(format!(
                    "{setting} must be more than 0s"
                )));
            }
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            handshake_timeout: Duration::from_secs(10),
            max_header_list_bytes: 16 * 1024,
            max_message_bytes: 64 * 1024,
            max_concurrent_streams: 256,
            request_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(5 * 60),
            max_connection_age: None,
            max_connection_age_grace: Duration::from_secs(30),
            max_connections_per_peer: 0,
            public_stream_max_age: Duration::from_secs(30 * 60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_contracts_and_pass() {
        let limits = Limits::default();
        assert_eq!(limits.idle_timeout, Duration::from_secs(300));
        assert_eq!(limits.max_connection_age, None);
        assert_eq!(limits.max_connection_age_grace, Duration::from_secs(30));
        assert_eq!(limits.max_connections_per_peer, 0);
        assert_eq!(limits.public_stream_max_age, Duration::from_secs(1800));
        assert!(limits.check().is_ok());
    }

    #[test]
    fn lifetimes_of_zero_are_refused_naming_their_setting() {
        let zero = Duration::ZERO;
        let defaults = Limits::default;
        for (setting, limits) in [
            (
                "`Limits::idle_timeout`",
                Limits {
                    idle_timeout: zero,
                    ..defaults()
                },
            ),
            (
                "`Limits::max_connection_age`",
                Limits {
                    max_connection_age: Some(zero),
                    ..defaults()
                },
            ),
            (
                "`Limits::max_connection_age_grace`",
                Limits {
                    max_connection_age_grace: zero,
                    ..defaults()
                },
            ),
            (
                "`Limits::public_stream_max_age`",
                Limits {
                    public_stream_max_age: zero,
                    ..defaults()
                },
            ),
        ] {
            let error = limits.check().expect_err(setting).to_string();
            assert!(error.starts_with(setting), "{setting}: {error}");
        }
        let ages = Limits {
            max_connection_age: Some(Duration::from_secs(3600)),
            max_connections_per_peer: 1,
            ..Limits::default()
        };
        assert!(ages.check().is_ok());
    }

    /// Each count at its bounds passes, and one past them is refused naming
    /// the setting and the bound; so is a duration past 100 years, which would
    /// overflow the deadlines computed from it.
    #[test]
    fn limits_past_what_the_server_can_hold_are_refused_naming_the_bound() {
        let defaults = Limits::default;
        let at_bounds = [
            Limits {
                max_connections: Limits::MAX_CONNECTIONS,
                max_connections_per_peer: Limits::MAX_CONNECTIONS,
                max_header_list_bytes: Limits::MAX_HEADER_LIST_BYTES,
                max_message_bytes: Limits::MAX_MESSAGE_BYTES,
                max_concurrent_streams: Limits::MAX_CONCURRENT_STREAMS,
                max_connection_age: Some(Limits::MAX_DURATION),
                request_timeout: Limits::MAX_DURATION,
                ..defaults()
            },
            Limits {
                max_connections: 1,
                max_header_list_bytes: Limits::MIN_HEADER_LIST_BYTES,
                max_message_bytes: 0,
                max_concurrent_streams: 1,
                ..defaults()
            },
        ];
        for limits in at_bounds {
            assert!(limits.check().is_ok(), "{limits:?}");
        }
        let past = Limits::MAX_DURATION + Duration::from_secs(1);
        let max_connections = Limits::MAX_CONNECTIONS.to_string();
        for (limits, says) in [
            (
                Limits {
                    max_connections: Limits::MAX_CONNECTIONS + 1,
                    ..defaults()
                },
                format!(
                    "`Limits::max_connections` ({}) must be from 1 to {max_connections}",
                    Limits::MAX_CONNECTIONS + 1
                ),
            ),
            (
                Limits {
                    max_connections: usize::MAX,
                    ..defaults()
                },
                format!("to {max_connections}"),
            ),
            (
                Limits {
                    max_connections_per_peer: usize::MAX,
                    ..defaults()
                },
                format!(
                    "`Limits::max_connections_per_peer` ({}) must be from 0 to {max_connections}",
                    usize::MAX
                ),
            ),
            (
                Limits {
                    max_header_list_bytes: 0,
                    ..defaults()
                },
                "`Limits::max_header_list_bytes` (0) must be from 8192 to 16777216".into(),
            ),
            (
                Limits {
                    max_header_list_bytes: 8191,
                    ..defaults()
                },
                "`Limits::max_header_list_bytes` (8191)".into(),
            ),
            (
                Limits {
                    max_header_list_bytes: u32::MAX,
                    ..defaults()
                },
                "to 16777216".into(),
            ),
            (
                Limits {
                    max_message_bytes: usize::MAX,
                    ..defaults()
                },
                "`Limits::max_message_bytes` (18446744073709551615) must be from 0 to 4294967295"
                    .into(),
            ),
            (
                Limits {
                    max_concurrent_streams: u32::MAX,
                    ..defaults()
                },
                "`Limits::max_concurrent_streams` (4294967295) must be from 1 to 1073741824".into(),
            ),
            (
                Limits {
                    max_concurrent_streams: 0,
                    ..defaults()
                },
                "`Limits::max_concurrent_streams` (0) must be from 1".into(),
            ),
            (
                Limits {
                    max_connection_age: Some(Duration::MAX),
                    ..defaults()
                },
                "`Limits::max_connection_age` must be at most 100 years".into(),
            ),
            (
                Limits {
                    idle_timeout: past,
                    ..defaults()
                },
                "`Limits::idle_timeout` must be at most 100 years".into(),
            ),
            (
                Limits {
                    max_connection_age_grace: past,
                    ..defaults()
                },
                "`Limits::max_connection_age_grace` must be at most 100 years".into(),
            ),
            (
                Limits {
                    keepalive_interval: past,
                    ..defaults()
                },
                "`Limits::keepalive_interval` must be at most 100 years".into(),
            ),
        ] {
            let error = limits.check().expect_err(&says).to_string();
            assert!(error.contains(&says), "{says}: {error}");
        }
        // 100 years from now is an instant, so no deadline overflows.
        assert!(
            tokio::time::Instant::now()
                .checked_add(Limits::MAX_DURATION)
                .is_some()
        );
    }
}

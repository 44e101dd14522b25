//! [`Settings`]: every setting of the gate and the server, defined once
//! for the flags, the environment and the config file.

use serde::{Deserialize, Serialize};

use super::values::*;
use super::*;

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
    #[arg(long, value_parser = Bounds::TOKEN_CACHE_ENTRIES.flag::<usize>())]
    #[serde(
        default,
        deserialize_with = "token_cache_entries",
        skip_serializing_if = "Option::is_none"
    )]
    pub token_cache_entries: Option<usize>,
    /// Connections open at once; past it, accepting waits for one to close [default: 4096].
    #[arg(long, value_parser = Bounds::CONNECTIONS.flag::<usize>())]
    #[serde(
        default,
        deserialize_with = "connections",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_connections: Option<usize>,
    /// How long a new connection may stay silent before it is closed [default: 10s].
    #[arg(long, value_parser = parse_dur)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_timeout: Option<Dur>,
    /// Largest header block a client may send, in bytes (HTTP/2
    /// SETTINGS_MAX_HEADER_LIST_SIZE), from 8192 [default: 16384].
    #[arg(long, value_parser = Bounds::HEADER_LIST_BYTES.flag::<u32>())]
    #[serde(
        default,
        deserialize_with = "header_list_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_header_list_size: Option<u32>,
    /// Largest request message, in bytes [default: 65536].
    #[arg(long, value_parser = Bounds::MESSAGE_BYTES.flag::<usize>())]
    #[serde(
        default,
        deserialize_with = "message_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_message_size: Option<usize>,
    /// Streams one connection may have open at once [default: 256].
    #[arg(long, value_parser = Bounds::CONCURRENT_STREAMS.flag::<u32>())]
    #[serde(
        default,
        deserialize_with = "concurrent_streams",
        skip_serializing_if = "Option::is_none"
    )]
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
    #[arg(long, value_parser = Bounds::CONNECTIONS_PER_PEER.flag::<usize>())]
    #[serde(
        default,
        deserialize_with = "connections_per_peer",
        skip_serializing_if = "Option::is_none"
    )]
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

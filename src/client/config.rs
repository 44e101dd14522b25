//! What a token source asks for and how: the endpoint, the client's
//! credentials and how it presents them.

use std::{fmt, path::PathBuf, time::Duration};

use reqwest::Url;

/// A client secret: kept out of `Debug`, logs and error messages.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where the token endpoint is.
#[derive(Debug, Clone)]
pub enum TokenEndpoint {
    /// The token endpoint itself (Auth0: `https://TENANT/oauth/token`).
    Url(Url),
    /// The issuer, whose discovery document names the token endpoint; an
    /// issuer without one is taken to be Auth0-like: `{issuer}/oauth/token`.
    Issuer(Url),
}

/// How the client authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ClientAuth {
    /// A JSON body holding `client_id` and `client_secret`, as Auth0 documents.
    #[default]
    Json,
    /// A form body, with the credentials in HTTP Basic (RFC 6749 §2.3.1).
    Basic,
}

/// What a [`TokenSource`](super::TokenSource) asks for, and how.
#[derive(Debug, Clone)]
pub struct TokenSourceConfig {
    /// Where to ask.
    pub endpoint: TokenEndpoint,
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`.
    pub client_secret: Secret,
    /// `audience`: the API identifier (Auth0 requires it).
    pub audience: Option<String>,
    /// `scope`, space-separated.
    pub scope: Option<String>,
    /// Body and credential style.
    pub auth: ClientAuth,
    /// Stop using a token this long before it expires (at most a quarter of
    /// its lifetime), and refresh it in the background a little earlier still.
    pub refresh_margin: Duration,
    /// How long one request to the token endpoint may take.
    pub timeout: Duration,
    /// How many times to ask, in all, when the endpoint answers 429 or 5xx.
    pub max_attempts: u32,
    /// The first retry delay; it doubles, with jitter. `Retry-After` wins.
    pub initial_backoff: Duration,
    /// The longest single wait between attempts, `Retry-After` included.
    pub max_backoff: Duration,
    /// Keep the token in a file here (mode 0600, no secret in it), so that
    /// separate processes, such as successive CLI runs, reuse it.
    pub cache_dir: Option<PathBuf>,
}

impl TokenSourceConfig {
    /// A config with the usual timing: a 60 s margin, 10 s requests, four
    /// attempts backing off from 500 ms to at most 30 s, no file cache.
    pub fn new(endpoint: TokenEndpoint, client_id: impl Into<String>, secret: Secret) -> Self {
        TokenSourceConfig {
            endpoint,
            client_id: client_id.into(),
            client_secret: secret,
            audience: None,
            scope: None,
            auth: ClientAuth::Json,
            refresh_margin: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            cache_dir: None,
        }
    }
}

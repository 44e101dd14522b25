//! The errors off the request path: why a key set or discovery fetch failed,
//! why a URL was refused, why start-up stopped.

/// An error and every cause under it, `a: b: c`, each said once: a cause
/// whose text is already said (thiserror's `{source}`), or that repeats its
/// parent word for word (hyper's nested connect errors), is left out. So
/// "error sending request" goes on to say "Connection refused".
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut parent = text.clone();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !said.is_empty() && said != parent && !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        parent = said;
        source = cause.source();
    }
    text
}

/// Why a JWKS or discovery fetch failed. The refresher logs it and keeps the
/// last good key set. Every URL it holds, its source's included, is
/// redacted: no query, no userinfo (a signed JWKS URL's credentials).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Connection refused, reset, TLS failure, timeout.
    #[error("request to {url} failed: {}", error_chain(source))]
    Http {
        /// What was asked for, redacted.
        url: String,
        /// The transport's reason, without the URL reqwest keeps in it.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with a status other than 2xx.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// What was asked for, redacted.
        url: String,
        /// The status it answered.
        status: u16,
    },
    /// The body was larger than authgate reads.
    #[error("{url} sent more than {limit} bytes")]
    TooLarge {
        /// What was asked for, redacted.
        url: String,
        /// The most bytes authgate reads.
        limit: usize,
    },
    /// The body was not the JSON document expected.
    #[error("{url} did not send a valid {what} document: {detail}")]
    Invalid {
        /// What was asked for, redacted.
        url: String,
        /// `JWKS` or `discovery`.
        what: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// The issuer's discovery document names another issuer (OIDC Discovery
    /// §4.3): most often a trailing slash, since `iss` must match exactly.
    #[error(
        "{url} names issuer `{named}`, not the configured `{configured}`; if your tokens carry \
         `{named}` in `iss`, configure exactly that"
    )]
    IssuerMismatch {
        /// The discovery document's URL, redacted.
        url: String,
        /// The issuer it names.
        named: String,
        /// The issuer configured.
        configured: String,
    },
    /// A URL that breaks the https-or-loopback rule.
    #[error(transparent)]
    Url(#[from] UrlError),
}

/// A URL authgate will not fetch from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all.
    #[error("{what} `{url}` is not a valid URL: {detail}")]
    Invalid {
        /// Which setting.
        what: &'static str,
        /// The value given, redacted: no query, no userinfo.
        url: String,
        /// The parser's reason.
        detail: String,
    },
    /// `http://` to a host that is not loopback, or another scheme.
    #[error(
        "{what} `{url}` must use https (http is accepted only for localhost, 127.0.0.0/8 and ::1)"
    )]
    Insecure {
        /// Which setting.
        what: &'static str,
        /// The value given, redacted: no query, no userinfo.
        url: String,
    },
}

/// Why authgate could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A setting is missing or malformed.
    #[error("{0}")]
    Config(String),
    /// A URL breaks the https-or-loopback rule.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be read or used.
    #[error("TLS: {0}")]
    Tls(String),
    /// The HTTP client for the issuer could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Serve(#[source] tonic::transport::Error),
}

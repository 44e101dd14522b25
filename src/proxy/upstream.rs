//! Where the proxy forwards to, and how: the URL, the protocol, the CA.

use std::time::Duration;

use super::Cidr;
use crate::StartupError;

/// The protocol the upstream speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/2 (gRPC services), with prior knowledge on plaintext.
    #[default]
    H2,
    /// HTTP/1.1 only (uvicorn, most REST servers): gRPC calls to it are
    /// answered `UNIMPLEMENTED` without being sent.
    Http1,
}

/// Where and how requests are forwarded.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// `http://HOST:PORT` (plaintext) or `https://HOST:PORT` (TLS); any path
    /// is ignored: requests keep theirs.
    pub url: http::Uri,
    /// What the upstream speaks.
    pub protocol: UpstreamProtocol,
    /// PEM CA certificates an `https://` upstream's certificate must chain
    /// to, instead of the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Keep `authorization` for the upstream (removed by default: the
    /// upstream has the caller's identity in headers, and a token it never
    /// sees is a token it cannot leak).
    pub forward_authorization: bool,
    /// How long connecting (TCP, and TLS) may take.
    pub connect_timeout: Duration,
    /// Peers whose `X-Forwarded-For` is kept and appended to (a balancer in
    /// front); every other caller's is replaced.
    pub trust_forwarded: Vec<Cidr>,
    /// Send the caller's `Host` (HTTP/1.1) or `:authority` (HTTP/2)
    /// upstream instead of the upstream's own.
    pub preserve_host: bool,
}

/// How long connecting to the upstream may take by default: an upstream
/// that does not answer is `UNAVAILABLE` after this, not after the call's
/// whole deadline.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl UpstreamConfig {
    /// An HTTP/2 upstream at `url`, every other setting at its default.
    pub fn new(url: &str) -> Result<UpstreamConfig, StartupError> {
        let bad = |why: &str| {
            // The URL as given may carry credentials or a query: never shown.
            StartupError::Config(format!(
                "upstream `{}` {why}: give http://HOST:PORT or https://HOST:PORT",
                crate::net::redact(url)
            ))
        };
        let uri: http::Uri = url.parse().map_err(|_| bad("is not a URL"))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => return Err(bad("has no http:// or https:// scheme")),
        }
        let authority = uri.authority().ok_or_else(|| bad("names no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("carries credentials"));
        }
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err(bad("has a path; requests keep their own"));
        }
        let base = http::Uri::builder()
            .scheme(uri.scheme_str().unwrap_or("http"))
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|_| bad("is not a URL"))?;
        Ok(UpstreamConfig {
            url: base,
            protocol: UpstreamProtocol::default(),
            ca_pem: None,
            forward_authorization: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            trust_forwarded: Vec::new(),
            preserve_host: false,
        })
    }

    /// The same upstream, speaking `protocol`.
    pub fn protocol(mut self, protocol: UpstreamProtocol) -> UpstreamConfig {
        self.protocol = protocol;
        self
    }

    /// Whether it is reached over TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.url.scheme_str() == Some("https")
    }

    /// `scheme://host:port`, as messages name it.
    pub(crate) fn display(&self) -> String {
        let text = self.url.to_string();
        text.strip_suffix('/').map(str::to_owned).unwrap_or(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls_are_a_scheme_and_an_authority() {
        let up = UpstreamConfig::new("http://127.0.0.1:50052").unwrap();
        assert_eq!(up.display(), "http://127.0.0.1:50052");
        assert!(!up.is_tls());
        assert!(
            UpstreamConfig::new("https://svc.internal:443/")
                .unwrap()
                .is_tls()
        );
        let secret = UpstreamConfig::new("http://u:hunter2@h:1/?k=hunter2").unwrap_err();
        assert!(!secret.to_string().contains("hunter2"), "{secret}");
        for bad in [
            "127.0.0.1:50052",
            "ftp://h:1",
            "http://",
            "http://u:p@h:1",
            "http://h:1/api",
            "not a url",
        ] {
            assert!(UpstreamConfig::new(bad).is_err(), "{bad}");
        }
    }
}

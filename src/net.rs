//! Talking to the issuer over HTTP: which URLs authgate will fetch from
//! (https, or http on loopback only), and a client that refuses redirects to
//! another origin and bodies over a size limit.

use std::{net::IpAddr, time::Duration};

use reqwest::{Response, Url, redirect};

use crate::error::{FetchError, UrlError};

/// Parses a URL authgate fetches from or trusts as an issuer: `https://`, or
/// `http://` on a loopback host (`localhost`, 127.0.0.0/8, `::1`).
pub(crate) fn parse_issuer_url(what: &'static str, url: &str) -> Result<Url, UrlError> {
    let parsed = Url::parse(url).map_err(|e| UrlError::Invalid {
        what,
        url: url.to_owned(),
        detail: e.to_string(),
    })?;
    let secure = match parsed.scheme() {
        "https" => true,
        "http" => is_loopback(&parsed),
        _ => false,
    };
    if !secure || parsed.host().is_none() {
        return Err(UrlError::Insecure {
            what,
            url: url.to_owned(),
        });
    }
    // Credentials in a URL end up in logs and error messages.
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlError::Invalid {
            what,
            url: format!(
                "{}://…@{}",
                parsed.scheme(),
                parsed.host_str().unwrap_or("")
            ),
            detail: "credentials in the URL are not accepted".into(),
        });
    }
    Ok(parsed)
}

/// Whether a URL's host is loopback.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// An HTTP client for the issuer: each request ends within `timeout`, and a
/// redirect is followed only within the same origin (at most five).
pub(crate) fn issuer_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    let policy = redirect::Policy::custom(|attempt| {
        let first = &attempt.previous()[0];
        if attempt.previous().len() > 5 {
            attempt.error("more than 5 redirects")
        } else if !same_origin(first, attempt.url()) {
            attempt.error("redirect to another origin")
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .user_agent(concat!("authgate/", env!("CARGO_PKG_VERSION")))
        .redirect(policy)
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
}

/// Reads a 2xx response's body, refusing one over `limit` bytes without
/// reading further.
pub(crate) async fn read_limited(
    url: &Url,
    response: Response,
    limit: usize,
) -> Result<Vec<u8>, FetchError> {
    if !response.status().is_success() {
        return Err(FetchError::Status {
            url: url.to_string(),
            status: response.status().as_u16(),
        });
    }
    read_body(url, response, limit).await
}

/// Reads a response's body, whatever its status, refusing one over `limit`
/// bytes without reading further.
pub(crate) async fn read_body(
    url: &Url,
    mut response: Response,
    limit: usize,
) -> Result<Vec<u8>, FetchError> {
    let too_large = || FetchError::TooLarge {
        url: url.to_string(),
        limit,
    };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|source| FetchError::Http {
        url: url.to_string(),
        source,
    })? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        for ok in [
            "https://tenant.auth0.com/",
            "http://localhost:8080/",
            "http://LOCALHOST/",
            "http://127.0.0.1:1/",
            "http://127.255.0.9/",
            "http://[::1]:9/",
        ] {
            assert!(parse_issuer_url("issuer", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://tenant.auth0.com/",
            "http://10.0.0.1/",
            "http://[::2]/",
            "http://localhost.evil.com/",
            "ftp://localhost/",
            "file:///etc/passwd",
            "not a url",
            "https://user:pass@tenant.auth0.com/",
            // Either half of the credentials alone is refused too.
            "https://user@tenant.auth0.com/",
            "https://:pass@tenant.auth0.com/",
        ] {
            assert!(parse_issuer_url("issuer", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let u = |s| Url::parse(s).unwrap();
        assert!(same_origin(&u("https://a/x"), &u("https://a:443/y")));
        assert!(!same_origin(&u("https://a/"), &u("http://a/")));
        assert!(!same_origin(&u("https://a/"), &u("https://b/")));
        assert!(!same_origin(&u("http://a:1/"), &u("http://a:2/")));
    }
}

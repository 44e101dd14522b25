//! Talking to the issuer over HTTP: which URLs authgate will fetch from
//! (https, or http on loopback only), how they are shown in logs and errors
//! (redacted), and a client that refuses redirects to another origin and
//! bodies over a size limit.

use std::{net::IpAddr, time::Duration};

use reqwest::{Response, Url, header, redirect};
use serde::Deserialize;
use url::Position;

use crate::error::{FetchError, UrlError};

/// Parses a URL authgate fetches from or trusts as an issuer: `https://`, or
/// `http://` on a loopback host (`localhost`, 127.0.0.0/8, `::1`).
pub(crate) fn parse_issuer_url(what: &'static str, url: &str) -> Result<Url, UrlError> {
    let parsed = Url::parse(url).map_err(|e| UrlError::Invalid {
        what,
        url: redact(url),
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
            url: redact(url),
        });
    }
    // Credentials before the host would be sent to every server the URL
    // names, and kept in every copy of the setting: give them another way.
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlError::Invalid {
            what,
            url: redact(url),
            detail: "credentials in the URL are not accepted".into(),
        });
    }
    Ok(parsed)
}

/// `url` as logs and errors show it: its query and fragment read
/// `?<redacted>` and `#<redacted>`, and its userinfo (`user:password@`)
/// `<redacted>@`. A signed JWKS URL carries its credentials in the query
/// (`?sig=...`, `?api_key=...`). Text that is no URL with a host (a setting
/// refused) loses, besides its query, everything up to the last `@` before
/// it.
pub(crate) fn redact(url: &str) -> String {
    let parsed = match Url::parse(url) {
        Ok(parsed) if parsed.has_host() => parsed,
        // Not a URL, or one whose userinfo could hide in its path.
        _ => return redact_text(url),
    };
    let mut shown = String::from(&parsed[..Position::BeforeUsername]);
    if !parsed.username().is_empty() || parsed.password().is_some() {
        shown.push_str("<redacted>@");
    }
    shown.push_str(&parsed[Position::BeforeHost..Position::AfterPath]);
    if parsed.query().is_some() {
        shown.push_str("?<redacted>");
    }
    if parsed.fragment().is_some() {
        shown.push_str("#<redacted>");
    }
    shown
}

/// [`redact`] for text that is no URL, erring towards hiding too much.
fn redact_text(text: &str) -> String {
    let (head, tail) = text.split_at(text.find(['?', '#']).unwrap_or(text.len()));
    let mut shown = match head.rfind('@') {
        Some(at) => {
            // Keep `scheme://` when the `@` comes after it.
            let start = head.find("//").map(|i| i + 2).filter(|&i| i <= at);
            let start = start.unwrap_or(0);
            format!("{}<redacted>@{}", &head[..start], &head[at + 1..])
        }
        None => head.to_owned(),
    };
    if tail.starts_with('?') {
        shown.push_str("?<redacted>");
    }
    if tail.contains('#') {
        shown.push_str("#<redacted>");
    }
    shown
}

/// A request that got no answer, told without the URL's secrets: reqwest
/// puts the whole URL, query and all, into its errors' text, so the error
/// kept is stripped of it and the URL named is redacted.
pub(crate) fn http_error(url: &Url, source: reqwest::Error) -> FetchError {
    FetchError::Http {
        url: redact(url.as_str()),
        source: source.without_url(),
    }
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
            let to = redact(attempt.url().as_str());
            attempt.error(format!("redirect to another origin, {to}"))
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
            url: redact(url.as_str()),
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
        url: redact(url.as_str()),
        limit,
    };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|source| http_error(url, source))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What authgate reads of an issuer's OpenID Connect discovery document
/// (OIDC Discovery 1.0 §3): the keys' side reads `issuer` and `jwks_uri`,
/// the token client `token_endpoint`. Other members are ignored.
#[derive(Debug, Deserialize)]
pub(crate) struct Discovery {
    pub(crate) issuer: Option<String>,
    pub(crate) jwks_uri: Option<String>,
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    pub(crate) token_endpoint: Option<String>,
    /// Where it was read from, redacted, for errors about what it says.
    #[serde(skip)]
    pub(crate) url: String,
}

impl Discovery {
    /// Fetches `{issuer}/.well-known/openid-configuration`, its body at most
    /// `limit` bytes. An issuer without one answers `FetchError::Status`
    /// with 404, which each caller treats as it must.
    pub(crate) async fn fetch(
        client: &reqwest::Client,
        issuer: &Url,
        limit: usize,
    ) -> Result<Discovery, FetchError> {
        let url = well_known(issuer, "openid-configuration");
        let response = client
            .get(url.clone())
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|source| http_error(&url, source))?;
        let body = read_limited(&url, response, limit).await?;
        let mut doc: Discovery =
            serde_json::from_slice(&body).map_err(|e| FetchError::Invalid {
                url: redact(url.as_str()),
                what: "discovery",
                detail: crate::util::json_error(&e),
            })?;
        doc.url = redact(url.as_str());
        Ok(doc)
    }

    /// A member the caller needs, or the document is invalid for it.
    pub(crate) fn required<'a>(
        &self,
        member: &'static str,
        value: &'a Option<String>,
    ) -> Result<&'a str, FetchError> {
        value.as_deref().ok_or_else(|| FetchError::Invalid {
            url: self.url.clone(),
            what: "discovery",
            detail: format!("missing field `{member}`"),
        })
    }
}

/// `{issuer}/.well-known/{name}`, with exactly one slash between.
pub(crate) fn well_known(issuer: &Url, name: &str) -> Url {
    let base = issuer.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}/.well-known/{name}")).expect("an issuer URL extended by a path")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_joins_with_one_slash() {
        let with = Url::parse("https://t.auth0.com/").unwrap();
        let without = Url::parse("https://kc.example/realms/x").unwrap();
        assert_eq!(
            well_known(&with, "jwks.json").as_str(),
            "https://t.auth0.com/.well-known/jwks.json"
        );
        assert_eq!(
            well_known(&without, "openid-configuration").as_str(),
            "https://kc.example/realms/x/.well-known/openid-configuration"
        );
    }

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
    fn redact_hides_the_query_the_fragment_and_the_userinfo() {
        for (url, shown) in [
            ("https://k.example/", "https://k.example/"),
            (
                "https://k.example/jwks?sig=s3cret",
                "https://k.example/jwks?<redacted>",
            ),
            (
                "http://user:s3cret@127.0.0.1:8080/jwks?a=s3cret&b=s3cret#s3cret",
                "http://<redacted>@127.0.0.1:8080/jwks?<redacted>#<redacted>",
            ),
            (
                "https://:s3cret@k.example/",
                "https://<redacted>@k.example/",
            ),
            (
                "https://s3cret@k.example/x",
                "https://<redacted>@k.example/x",
            ),
            ("https://k.example/x?", "https://k.example/x?<redacted>"),
            // Not URLs: settings refused as such.
            ("accounts.google.com", "accounts.google.com"),
            ("not a url?sig=s3cret", "not a url?<redacted>"),
            (
                "https://u:s3cret@@[::bad/x?k=s3cret",
                "https://<redacted>@[::bad/x?<redacted>",
            ),
            ("u:s3cret@host//x#s3cret", "<redacted>@host//x#<redacted>"),
        ] {
            assert_eq!(redact(url), shown, "{url}");
            assert!(!redact(url).contains("s3cret"), "{url}");
            // Redacting twice changes nothing.
            assert_eq!(redact(&redact(url)), shown, "{url}");
        }
    }

    #[test]
    fn a_refused_url_is_named_redacted() {
        for bad in [
            "http://tenant.auth0.com/jwks?sig=s3cret",
            "https://user:s3cret@tenant.auth0.com/",
            "not a url?sig=s3cret",
        ] {
            let error = parse_issuer_url("JWKS URL", bad).unwrap_err();
            assert!(!error.to_string().contains("s3cret"), "{error}");
            assert!(!format!("{error:?}").contains("s3cret"), "{error:?}");
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

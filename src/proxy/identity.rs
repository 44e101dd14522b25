//! Who called, told to the upstream in headers that only the proxy sets:
//! whatever a caller sent under these names is removed first, so an
//! upstream can trust them exactly as far as it trusts the network path
//! from the proxy.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::Principal;

/// The token's `sub`.
pub const SUBJECT_HEADER: &str = "x-authgate-subject";
/// The token's `iss`.
pub const ISSUER_HEADER: &str = "x-authgate-issuer";
/// The scopes granted, space-separated.
pub const SCOPES_HEADER: &str = "x-authgate-scopes";
/// The verified payload, base64url without padding.
pub const CLAIMS_HEADER: &str = "x-authgate-claims";
/// What every identity header's name starts with.
const PREFIX: &[u8] = b"x-authgate-";

/// Every identity header the proxy sets. Before it sets them, it removes
/// every header the caller sent whose name starts `x-authgate-` (or
/// `x_authgate_`).
pub const IDENTITY_HEADERS: [&str; 4] =
    [SUBJECT_HEADER, ISSUER_HEADER, SCOPES_HEADER, CLAIMS_HEADER];

/// Whether `name` is, or could be read as, one of ours: `x-authgate-*`,
/// with `_` for `-` too (CGI-style servers read `x_authgate_subject` as
/// `HTTP_X_AUTHGATE_SUBJECT`, the same as the real header).
pub(crate) fn is_identity_header(name: &HeaderName) -> bool {
    let name = name.as_str().as_bytes();
    name.len() >= PREFIX.len() && reads_as(&name[..PREFIX.len()], PREFIX)
}

/// Whether header name `name` reads as `canonical` (lowercase, with `-`)
/// to a server that takes `_` for `-`, as CGI, WSGI and PHP do.
pub(crate) fn reads_as(name: &[u8], canonical: &[u8]) -> bool {
    name.len() == canonical.len()
        && name
            .iter()
            .zip(canonical)
            .all(|(&b, &c)| b == c || (c == b'-' && b == b'_'))
}

/// Removes every header that reads as one of `names` (see [`reads_as`]).
pub(crate) fn remove_reading_as(headers: &mut HeaderMap, names: &[&str]) {
    let found: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str().as_bytes();
            names.iter().any(|n| reads_as(name, n.as_bytes()))
        })
        .cloned()
        .collect();
    for name in found {
        headers.remove(name);
    }
}

/// Removes every header (or trailer) named as one of ours.
pub(crate) fn remove_identity(headers: &mut HeaderMap) {
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_identity_header(name))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
}

/// Removes every identity header the caller sent, then, for a caller the
/// gate authenticated, sets them from `principal`. Public paths have none.
pub(crate) fn set_identity(headers: &mut HeaderMap, principal: Option<&Principal>) {
    remove_identity(headers);
    if let Some(principal) = principal {
        for (name, value) in identity(principal) {
            headers.insert(name, value);
        }
    }
}

/// The identity headers for `principal`, each of [`IDENTITY_HEADERS`]
/// once: what `proxy` sets on the request and `authz` tells the proxy in
/// front to set.
pub(crate) fn identity(principal: &Principal) -> [(HeaderName, HeaderValue); 4] {
    // Every byte of each value is printable ASCII, so this never fails.
    let value = |text: String| HeaderValue::try_from(text).unwrap_or(HeaderValue::from_static(""));
    let scopes: Vec<String> = principal.scopes().map(printable).collect();
    [
        (SUBJECT_HEADER, value(printable(principal.subject()))),
        (ISSUER_HEADER, value(printable(principal.issuer()))),
        (SCOPES_HEADER, value(scopes.join(" "))),
        (
            CLAIMS_HEADER,
            value(URL_SAFE_NO_PAD.encode(principal.claims_json())),
        ),
    ]
    .map(|(name, value)| (HeaderName::from_static(name), value))
}

/// `text` as a header value: printable ASCII as it is, every other byte
/// (and `%`) percent-encoded, so that a `sub` in any script arrives whole
/// and unambiguous. The usual `auth0|abc`, `client@clients` and URLs
/// arrive unchanged.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_graphic() && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_printable_ascii_passes_as_it_is() {
        assert_eq!(printable("auth0|abc@clients"), "auth0|abc@clients");
        assert_eq!(printable("https://i.example/"), "https://i.example/");
        assert_eq!(printable("José 100%"), "Jos%C3%A9%20100%25");
        assert_eq!(printable("a\nb"), "a%0Ab");
    }

    #[test]
    fn forged_identity_headers_are_removed_on_public_paths_too() {
        let mut headers = HeaderMap::new();
        for name in IDENTITY_HEADERS {
            headers.insert(name, HeaderValue::from_static("forged"));
        }
        for name in [
            "x_authgate_subject",
            "x-authgate_issuer",
            "x_authgate-scopes",
            "x-authgate-subject-bin",
            "x-authgate-roles",
        ] {
            headers.append(name, HeaderValue::from_static("forged"));
        }
        headers.append(SUBJECT_HEADER, HeaderValue::from_static("forged again"));
        headers.insert("x-other", HeaderValue::from_static("kept"));
        headers.insert("x-authgatex", HeaderValue::from_static("kept"));
        headers.insert("x_authgat", HeaderValue::from_static("kept"));
        set_identity(&mut headers, None);
        let mut left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["x-authgatex", "x-other", "x_authgat"]);
    }
}

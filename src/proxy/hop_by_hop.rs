//! Hop-by-hop headers (RFC 9110 section 7.6.1): a connection's own, never
//! forwarded in either direction.

use http::{HeaderMap, header};

/// Hop-by-hop headers (RFC 9110 7.6.1), never forwarded in either
/// direction, with those a `Connection` header names; `te: trailers`, which
/// gRPC needs, is kept.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes the hop-by-hop headers, and those `Connection` names.
pub(super) fn strip(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    for name in named {
        if name != "te" {
            headers.remove(name.as_str());
        }
    }
    let trailers_only = headers
        .get(header::TE)
        .is_some_and(|te| te.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for name in HOP_BY_HOP {
        if name == "te" && trailers_only {
            continue;
        }
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn hop_by_hop_headers_go_and_te_trailers_stays() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("upgrade", "h2c"),
            ("te", "trailers"),
            ("content-type", "application/grpc"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        strip(&mut headers);
        let left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["te", "content-type"]);
        headers.insert("te", HeaderValue::from_static("gzip"));
        strip(&mut headers);
        assert!(!headers.contains_key("te"));
    }
}

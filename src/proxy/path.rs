//! Request paths the proxy refuses to forward because the upstream may read
//! them as another path than the gate did. The gate matches public paths,
//! scope rules and an issuer's `methods` on the path as it arrives; many
//! servers resolve `..`, merge `//`, decode `%61` or `%2F`, or cut `;...`
//! before they route (uvicorn unquotes, Kestrel and Tomcat resolve dot
//! segments), so `/grpc.health.v1.Health/../pkg.Svc/Method` would pass as
//! public and `/%61dmin/stats` would miss the rule for `/admin/*`. A path
//! that no normalisation can change is forwarded; any other is refused.
//! gRPC paths are never of that kind, and browsers and HTTP clients
//! normalise theirs before sending.

/// Why `path` may mean another path to the upstream, or `None` when it is
/// in its one canonical form: segments separated by single `/`, none of
/// them `.` or `..` (before any `;`), no `\`, and no percent-escape of a
/// character that needs none (RFC 3986's unreserved ones), of `/`, `\`,
/// `;` or `%` (decoded once, they make a separator or a new escape), or of
/// a control character.
pub(crate) fn ambiguity(path: &str) -> Option<&'static str> {
    let Some(rest) = path.strip_prefix('/') else {
        return Some("it does not start with /");
    };
    if path.contains('\\') {
        return Some("it holds a backslash");
    }
    let bytes = path.as_bytes();
    for (at, _) in path.match_indices('%') {
        let escaped = bytes
            .get(at + 1..at + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            None => return Some("it holds a % that is not a percent-escape"),
            Some(b)
                if b.is_ascii_alphanumeric()
                    || b.is_ascii_control()
                    || b"-._~/\\;%".contains(&b) =>
            {
                return Some(
                    "it percent-escapes a character that needs no escape, a separator, % or a control",
                );
            }
            Some(_) => {}
        }
    }
    // The last segment may be empty (`/admin/`); no other may.
    let segments: Vec<&str> = rest.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() && i + 1 < segments.len() {
            return Some("it holds an empty segment (//)");
        }
        let name = segment.split(';').next().unwrap_or_default();
        if name == "." || name == ".." {
            return Some("it holds a . or .. segment");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::ambiguity;

    #[test]
    fn canonical_paths_pass() {
        for path in [
            "/",
            "/authgate.v1.PrivateService/GetPrivate",
            "/grpc.health.v1.Health/Watch",
            "/admin/",
            "/admin/stats",
            "/files/a%20b.txt",
            "/q%3Fx",
            "/...",
            "/.well-known/jwks.json",
            "/a;b=c",
        ] {
            assert_eq!(ambiguity(path), None, "{path}");
        }
    }

    #[test]
    fn paths_an_upstream_may_read_otherwise_are_refused() {
        for path in [
            "",
            "*",
            "/grpc.health.v1.Health/../authgate.v1.PrivateService/GetPrivate",
            "/grpc.health.v1.Health/..",
            "/public/./admin",
            "/public/..;/admin",
            "/public/.;x/admin",
            "//admin/stats",
            "/admin//stats",
            "/%61dmin/stats",
            "/%41dmin/stats",
            "/admin%2Fstats",
            "/admin%2fstats",
            "/public/%2E%2E/admin",
            "/public/%2e./admin",
            "/admin%5Cstats",
            "/public\\..\\admin",
            "/a%7Eb",
            "/..%3B/admin",
            "/%252e%252e/admin",
            "/admin%00.txt",
            "/a%",
            "/a%4",
            "/a%zz",
        ] {
            assert!(ambiguity(path).is_some(), "{path:?} passed");
        }
    }
}

//! Request paths a proxy's gate refuses (before it reads a token, see
//! [`GateLayer::refuse_ambiguous_paths`](crate::GateLayer::refuse_ambiguous_paths))
//! because the service behind may read them as another path than the gate
//! did. The gate matches public paths,
//! scope rules and an issuer's `methods` on the path as it arrives; many
//! servers resolve `..`, merge `//`, decode `%61` or `%2F`, or cut `;...`
//! before they route (uvicorn unquotes, Kestrel and Tomcat resolve dot
//! segments), so `/grpc.health.v1.Health/../pkg.Svc/Method` would pass as
//! public and `/%61dmin/stats` would miss the rule for `/admin/*`. A path
//! that no normalisation can change is forwarded; any other is refused.
//! gRPC paths are never of that kind, and browsers and HTTP clients
//! normalise theirs before sending.

/// Why `path` may mean another path to the upstream, or `None` when it is
/// in its one canonical form:
/// - segments separated by single `/`, none of them `.` or `..`;
/// - no `\` and no `;` (Tomcat, Jetty and Spring cut `;...` from each
///   segment before routing; gRPC paths never have one);
/// - ASCII only (clients percent-escape the rest), and what is escaped is
///   UTF-8 once decoded (no overlong `%C0%AE`);
/// - no percent-escape of a character a path may hold as it is (RFC 3986's
///   `pchar`: letters, digits, `-._~`, `!$&'()*+,;=`, `:` and `@`), nor of
///   `/`, `\`, `%` (decoded once, they make a separator or a new escape) or
///   a control character. Servers that decode before routing would read
///   `/%61dmin` as `/admin` and `/v1/x%3Abatch` as `/v1/x:batch`.
pub(crate) fn ambiguity(path: &str) -> Option<&'static str> {
    let Some(rest) = path.strip_prefix('/') else {
        return Some("it does not start with /");
    };
    if !path.is_ascii() {
        return Some("it holds a character that is not ASCII");
    }
    if path.contains('\\') {
        return Some("it holds a backslash");
    }
    if path.contains(';') {
        return Some("it holds a ; (path parameters)");
    }
    if path.contains('%') {
        let bytes = path.as_bytes();
        let mut decoded = Vec::with_capacity(bytes.len());
        let mut at = 0;
        while at < bytes.len() {
            if bytes[at] != b'%' {
                decoded.push(bytes[at]);
                at += 1;
                continue;
            }
            let escaped = bytes
                .get(at + 1..at + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok());
            let Some(b) = escaped else {
                return Some("it holds a % that is not a percent-escape");
            };
            if b.is_ascii_alphanumeric()
                || b.is_ascii_control()
                || b"-._~!$&'()*+,;=:@/\\%".contains(&b)
            {
                return Some(
                    "it percent-escapes a character a path holds as it is, a separator, % or a \
                     control character",
                );
            }
            decoded.push(b);
            at += 3;
        }
        if std::str::from_utf8(&decoded).is_err() {
            return Some("its percent-escapes are not UTF-8");
        }
    }
    // The last segment may be empty (`/admin/`); no other may.
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        if segment.is_empty() && segments.peek().is_some() {
            return Some("it holds an empty segment (//)");
        }
        if segment == "." || segment == ".." {
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
            "/a=b/c:d@e!f",
            "/caf%C3%A9",
            "/a%20b%3Fc%23d%5B%5D%7B%7D",
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
            "/a;b=c",
            "/admin;x/stats",
            "/admin/stats;",
            "/v1/things%3AbatchGet",
            "/a%40b",
            "/a%2Cb",
            "/a%3Db",
            "/a%21b",
            "/a%2Ab",
            "/caf\u{e9}",
            "/%C0%AE%C0%AE/admin",
            "/%C3",
            "/%FF",
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

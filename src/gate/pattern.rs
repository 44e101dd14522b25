//! Path patterns, one type for every list of paths (public paths, an
//! issuer's `methods`, scope rules): a path exactly, or `/prefix/*` for every
//! path under `/prefix/`; and the form that `methods` and scope rules share.

/// A path exactly, or every path under a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PathPattern {
    /// This path exactly.
    Exact(Box<str>),
    /// Every path that starts with this, `/prefix/` for `/prefix/*`.
    Prefix(Box<str>),
}

impl PathPattern {
    /// `pattern` as written: `/prefix/*` is every path under `/prefix/`;
    /// anything else, a path exactly. Whether it is a well-formed path is
    /// each list's own check.
    pub(crate) fn parse(pattern: &str) -> PathPattern {
        match prefix_of(pattern) {
            Some(prefix) => PathPattern::Prefix(prefix.into()),
            None => PathPattern::Exact(pattern.into()),
        }
    }

    /// Whether `path` is this path, or under this prefix.
    pub(crate) fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Exact(exact) => path == &**exact,
            PathPattern::Prefix(prefix) => path.starts_with(&**prefix),
        }
    }
}

/// `/prefix/` when `pattern` is `/prefix/*`, for every path under it.
pub(crate) fn prefix_of(pattern: &str) -> Option<&str> {
    pattern
        .strip_suffix('*')
        .filter(|prefix| prefix.ends_with('/'))
}

/// Why `entry` cannot be one of an issuer's `methods`: it must be a path
/// (`/pkg.Service/Method`, `/any/http/path`), or `/prefix/*` for every path
/// under the prefix, with no other `*`.
pub(crate) fn method_pattern_error(entry: &str) -> Option<String> {
    let prefix = entry.strip_suffix("/*");
    let body = prefix.unwrap_or(entry);
    let segments: Vec<&str> = body.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    // Empty, `.` and `..` segments: no request path the proxy forwards has
    // them, so a pattern with one would match nothing. Only a path's last
    // segment may be empty (`/admin/`), and not before `/*`.
    let segments_well_formed = segments.iter().enumerate().all(|(i, segment)| {
        (!segment.is_empty() || (i == last && prefix.is_none()))
            && *segment != "."
            && *segment != ".."
    });
    let well_formed = entry == "/*"
        || body.starts_with('/')
            && !entry.contains(char::is_whitespace)
            && !body.contains('*')
            && segments_well_formed;
    if !well_formed {
        return Some(format!(
            "`{entry}` is not a request path: a full method path such as \
             /authgate.v1.PrivateService/GetPrivate, an HTTP path such as /admin/stats, or \
             /prefix/* for every path under /prefix/ (without empty, . or .. segments)"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_is_a_path_exactly_or_every_path_under_a_prefix() {
        let exact = PathPattern::parse("/echo.v1.Echo/Unary");
        assert!(exact.matches("/echo.v1.Echo/Unary"));
        assert!(!exact.matches("/echo.v1.Echo/Unary/x"));
        let prefix = PathPattern::parse("/echo.v1.Echo/*");
        assert_eq!(prefix, PathPattern::Prefix("/echo.v1.Echo/".into()));
        assert!(prefix.matches("/echo.v1.Echo/Unary"));
        assert!(!prefix.matches("/echo.v1.Echo"));
        assert!(PathPattern::parse("/*").matches("/anything"));
        // A `*` not after a `/` is no prefix: a path no request has.
        assert_eq!(
            PathPattern::parse("/docs*"),
            PathPattern::Exact("/docs*".into())
        );
        assert_eq!(prefix_of("/a/*"), Some("/a/"));
        assert_eq!(prefix_of("/a"), None);
    }
}

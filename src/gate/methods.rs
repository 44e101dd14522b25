//! An issuer's `methods`: the only request paths its tokens may call, and
//! the form those paths take, which scope rules share.

use std::sync::Arc;

/// The only request paths one issuer's tokens may call (its `methods`),
/// whatever scopes they grant: scope rules are the same for every issuer, so
/// a partner's token that is granted `admin` would otherwise pass a rule
/// written for the company's own `admin`.
#[derive(Debug)]
pub(crate) struct IssuerMethods {
    /// The issuer, as the refusal names it.
    issuer: Arc<str>,
    /// Paths allowed as they are.
    exact: Box<[Box<str>]>,
    /// `/prefix/` for each `/prefix/*`: every path under it is allowed.
    prefixes: Box<[Box<str>]>,
}

impl IssuerMethods {
    /// The list for `issuer`: each entry a path, or `/prefix/*`. An entry
    /// [`method_pattern_error`] would refuse is kept as an exact path, which
    /// no request path matches: a mistake refuses, never allows.
    pub(crate) fn new(issuer: &str, entries: &[String]) -> IssuerMethods {
        let (mut exact, mut prefixes) = (Vec::new(), Vec::new());
        for entry in entries {
            match entry.strip_suffix('*') {
                Some(prefix) if prefix.ends_with('/') => prefixes.push(prefix.into()),
                _ => exact.push(entry.as_str().into()),
            }
        }
        IssuerMethods {
            issuer: issuer.into(),
            exact: exact.into_boxed_slice(),
            prefixes: prefixes.into_boxed_slice(),
        }
    }

    /// Whether `path` is on the list.
    pub(crate) fn allows(&self, path: &str) -> bool {
        self.exact.iter().any(|m| **m == *path)
            || self.prefixes.iter().any(|p| path.starts_with(&**p))
    }

    /// The issuer whose list this is.
    pub(crate) fn issuer(&self) -> &Arc<str> {
        &self.issuer
    }
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

//! An issuer's `methods`: the only request paths its tokens may call.

use std::sync::Arc;

use super::pattern::PathPattern;

/// The only request paths one issuer's tokens may call (its `methods`),
/// whatever scopes they grant: scope rules are the same for every issuer, so
/// a partner's token that is granted `admin` would otherwise pass a rule
/// written for the company's own `admin`.
#[derive(Debug)]
pub(crate) struct IssuerMethods {
    /// The issuer, as the refusal names it.
    issuer: Arc<str>,
    /// Each path allowed, exactly or as every path under a prefix.
    patterns: Box<[PathPattern]>,
}

impl IssuerMethods {
    /// The list for `issuer`: each entry a path, or `/prefix/*`. An entry
    /// [`method_pattern_error`](super::pattern::method_pattern_error) would
    /// refuse is kept as an exact path, which no request path matches: a
    /// mistake refuses, never allows.
    pub(crate) fn new(issuer: &str, entries: &[String]) -> IssuerMethods {
        IssuerMethods {
            issuer: issuer.into(),
            patterns: entries.iter().map(|e| PathPattern::parse(e)).collect(),
        }
    }

    /// Whether `path` is on the list.
    pub(crate) fn allows(&self, path: &str) -> bool {
        self.patterns.iter().any(|pattern| pattern.matches(path))
    }

    /// The issuer whose list this is.
    pub(crate) fn issuer(&self) -> &Arc<str> {
        &self.issuer
    }
}

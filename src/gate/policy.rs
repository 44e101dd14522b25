//! Scope rules and the per-method policy they make.

use std::{collections::HashMap, fmt, str::FromStr, sync::Arc};

use crate::{error::AuthError, gate::validate::Principal};

/// One `--require-scope METHOD=SCOPE[|SCOPE...]` rule: the method (or every
/// method of a service) needs one of the scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeRule {
    /// The full method path, `/package.Service/Method`, or
    /// `/package.Service/*` for every method of the service.
    pub method: String,
    /// The scopes that satisfy the rule: any one of them will do.
    pub any_of: Vec<String>,
}

impl ScopeRule {
    /// The service, `/package.Service/`, when the rule is for all its methods.
    pub fn service(&self) -> Option<&str> {
        self.method.strip_suffix('*').filter(|s| s.ends_with('/'))
    }
}

impl fmt::Display for ScopeRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.method, self.any_of.join("|"))
    }
}

impl FromStr for ScopeRule {
    type Err = String;
    fn from_str(s: &str) -> Result<ScopeRule, String> {
        let (method, scopes) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}` is not METHOD=SCOPE"))?;
        let method = method.trim();
        let well_formed = method
            .strip_prefix('/')
            .and_then(|m| m.split_once('/'))
            .is_some_and(|(service, name)| {
                !service.is_empty()
                    && !service.contains('*')
                    && !name.is_empty()
                    && !name.contains('/')
                    && (name == "*" || !name.contains('*'))
            });
        if !well_formed {
            return Err(format!(
                "`{method}` is not a full method path such as /authgate.v1.PrivateService/GetPrivate \
                 (or /authgate.v1.PrivateService/* for every method of the service)"
            ));
        }
        let mut any_of: Vec<String> = Vec::new();
        for scope in scopes.split('|').map(str::trim) {
            if scope.is_empty() || scope.contains(char::is_whitespace) {
                return Err(format!(
                    "scope `{scope}` in `{s}` must be one non-empty word (`a|b` for either)"
                ));
            }
            if !any_of.iter().any(|s| s == scope) {
                any_of.push(scope.to_owned());
            }
        }
        Ok(ScopeRule {
            method: method.to_owned(),
            any_of,
        })
    }
}

/// One rule as the request path checks it: any one of these scopes.
type AnyOf = Arc<[Arc<str>]>;

/// Which scopes each method needs. A method without rules needs only a valid
/// token. Every rule that applies to a method must hold: those written for
/// the method and those written for its whole service; a rule holds when
/// the token grants any one of its scopes.
#[derive(Debug, Clone, Default)]
pub struct ScopePolicy {
    /// Rules for one method, by its full path.
    methods: HashMap<Box<str>, Box<[AnyOf]>>,
    /// Rules for every method of a service, by `/package.Service/`.
    services: HashMap<Box<str>, Box<[AnyOf]>>,
}

impl ScopePolicy {
    /// A policy from rules; several rules for a method all apply (a repeated
    /// rule counts once).
    pub fn new(rules: impl IntoIterator<Item = ScopeRule>) -> ScopePolicy {
        let mut methods: HashMap<Box<str>, Vec<AnyOf>> = HashMap::new();
        let mut services: HashMap<Box<str>, Vec<AnyOf>> = HashMap::new();
        for rule in rules {
            let any_of: AnyOf = rule.any_of.iter().map(|s| Arc::from(s.as_str())).collect();
            let rules = match rule.service() {
                Some(service) => services.entry(service.into()).or_default(),
                None => methods.entry(rule.method.into()).or_default(),
            };
            if !rules.iter().any(|r| **r == *any_of) {
                rules.push(any_of);
            }
        }
        let boxed = |map: HashMap<Box<str>, Vec<AnyOf>>| {
            map.into_iter()
                .map(|(m, r)| (m, r.into_boxed_slice()))
                .collect()
        };
        ScopePolicy {
            methods: boxed(methods),
            services: boxed(services),
        }
    }

    /// The paths the rules are for: each method's, and `/package.Service/*`
    /// for each whole service.
    pub fn paths(&self) -> impl Iterator<Item = String> + '_ {
        let methods = self.methods.keys().map(|m| m.to_string());
        methods.chain(self.services.keys().map(|s| format!("{s}*")))
    }

    /// The paths that rules name one by one (not by service).
    #[cfg(feature = "server")]
    pub(crate) fn method_paths(&self) -> impl Iterator<Item = &str> {
        self.methods.keys().map(|path| &**path)
    }

    /// Whether no method needs a scope.
    pub fn is_empty(&self) -> bool {
        self.methods.is_empty() && self.services.is_empty()
    }

    /// Refuses with `PERMISSION_DENIED`, naming what the first unmet rule
    /// asks for, when `principal` does not meet every rule for `method`.
    /// Allocates nothing when it allows.
    pub fn check(&self, method: &str, principal: &Principal) -> Result<(), AuthError> {
        if let Some(rules) = self.methods.get(method) {
            holds(rules, principal)?;
        }
        if self.services.is_empty() {
            return Ok(());
        }
        // The service is the path's first segment, `/package.Service/`,
        // however many segments follow.
        let service = method
            .get(1..)
            .and_then(|m| m.find('/'))
            .and_then(|end| self.services.get(&method[..end + 2]));
        match service {
            Some(rules) => holds(rules, principal),
            None => Ok(()),
        }
    }
}

/// Whether `principal` meets every rule: one of each rule's scopes.
fn holds(rules: &[AnyOf], principal: &Principal) -> Result<(), AuthError> {
    for any_of in rules {
        if !any_of.iter().any(|scope| principal.has_scope(scope)) {
            return Err(AuthError::MissingScope(any_of.clone()));
        }
    }
    Ok(())
}

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
    let body = entry.strip_suffix("/*").unwrap_or(entry);
    if !entry.starts_with('/') || entry.contains(char::is_whitespace) || body.contains('*') {
        return Some(format!(
            "`{entry}` is not a request path such as /authgate.v1.PrivateService/GetPrivate, \
             or /prefix/* for every path under /prefix/"
        ));
    }
    None
}

//! Scope rules and the per-method policy they make.

use std::{collections::HashMap, fmt, str::FromStr, sync::Arc};

use super::pattern::{method_pattern_error, prefix_of};
use crate::{error::AuthError, gate::validate::Principal};

/// One `--require-scope [HTTP-METHOD ]PATH=SCOPE[|SCOPE...]` rule: the
/// path (or every method of a service, or every HTTP path under a prefix),
/// asked with that HTTP method or with any, needs one of the scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeRule {
    /// The HTTP method the rule binds, in upper case (`POST /items=...`
    /// binds `POST` requests only; a `GET` rule binds `HEAD` too); `None`:
    /// every method. gRPC and gRPC-Web calls are `POST`.
    pub http_method: Option<String>,
    /// The request path: a full method path, `/package.Service/Method`, or
    /// any HTTP path; or `/prefix/*` for every path under `/prefix/`
    /// (`/package.Service/*`: every method of the service).
    pub method: String,
    /// The scopes that satisfy the rule: any one of them will do.
    pub any_of: Vec<String>,
}

impl ScopeRule {
    /// The prefix, `/package.Service/` or `/any/prefix/`, when the rule is
    /// for every path under it.
    pub fn service(&self) -> Option<&str> {
        prefix_of(&self.method)
    }
}

impl fmt::Display for ScopeRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(http_method) = &self.http_method {
            write!(f, "{http_method} ")?;
        }
        write!(f, "{}={}", self.method, self.any_of.join("|"))
    }
}

impl FromStr for ScopeRule {
    type Err = String;
    fn from_str(s: &str) -> Result<ScopeRule, String> {
        let (method, scopes) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}` is not [HTTP-METHOD ]PATH=SCOPE"))?;
        let (http_method, method) = match method.trim().split_once(' ') {
            Some((http_method, path)) => (Some(http_method_of(http_method, s)?), path),
            None => (None, method.trim()),
        };
        if let Some(why) = method_pattern_error(method) {
            return Err(why);
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
            http_method,
            method: method.to_owned(),
            any_of,
        })
    }
}

/// `word` as the HTTP method of a rule, in upper case: a token (RFC 9110
/// 5.6.2) of letters, as every method in use is.
fn http_method_of(word: &str, rule: &str) -> Result<String, String> {
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(format!(
            "`{rule}`: `{word}` is not an HTTP method; write one space between the method and \
             the path, as in `POST /items=items:write`"
        ));
    }
    Ok(word.to_ascii_uppercase())
}

/// Any one of these scopes.
type AnyOf = Arc<[Arc<str>]>;

/// One rule as the request path checks it: for requests with its HTTP
/// method (every one when `None`), any one of these scopes.
#[derive(Debug, Clone, PartialEq)]
struct Rule {
    http_method: Option<Box<str>>,
    any_of: AnyOf,
}

impl Rule {
    /// Whether the rule binds a request made with `http_method`: its
    /// method, in any case (a server may route `post` as `POST`), `HEAD`
    /// for a `GET` rule (servers answer it with their `GET` route), or any
    /// method for a rule without one.
    fn binds(&self, http_method: &str) -> bool {
        match &self.http_method {
            None => true,
            Some(bound) => {
                bound.eq_ignore_ascii_case(http_method)
                    || (&**bound == "GET" && http_method.eq_ignore_ascii_case("HEAD"))
            }
        }
    }
}

/// Which scopes each method needs. A method without rules needs only a valid
/// token. Every rule that applies to a method must hold: those written for
/// the method and those written for each prefix it is under (its whole
/// service, for gRPC); a rule holds when the token grants any one of its
/// scopes.
///
/// Paths match without regard to ASCII case: a rule for `/admin/*` holds for
/// `/ADMIN/x` too, since some servers (ASP.NET Core's routing among them)
/// route so, and a rule must not be escaped by writing its path otherwise.
#[derive(Debug, Clone, Default)]
pub struct ScopePolicy {
    /// Rules for one path, by the path in ASCII lowercase.
    methods: HashMap<Box<str>, Rules>,
    /// Rules for every path under a prefix, by `/prefix/` in ASCII lowercase.
    services: HashMap<Box<str>, Rules>,
}

/// The rules for one path or prefix, and the path as the first rule wrote it.
#[derive(Debug, Clone)]
struct Rules {
    written: Box<str>,
    rules: Box<[Rule]>,
}

impl ScopePolicy {
    /// A policy from rules; several rules for a method all apply (a repeated
    /// rule counts once).
    pub fn new(rules: impl IntoIterator<Item = ScopeRule>) -> ScopePolicy {
        type Gathered = HashMap<Box<str>, (Box<str>, Vec<Rule>)>;
        let mut methods: Gathered = HashMap::new();
        let mut services: Gathered = HashMap::new();
        for rule in rules {
            let any_of = Rule {
                http_method: rule.http_method.as_deref().map(Box::from),
                any_of: rule.any_of.iter().map(|s| Arc::from(s.as_str())).collect(),
            };
            let (map, path, prefix) = match rule.service() {
                Some(service) => (&mut services, service, true),
                None => (&mut methods, rule.method.as_str(), false),
            };
            let (_, rules) = map
                .entry(key(path, prefix).into())
                .or_insert_with(|| (path.into(), Vec::new()));
            if !rules.contains(&any_of) {
                rules.push(any_of);
            }
        }
        let boxed = |map: Gathered| {
            map.into_iter()
                .map(|(key, (written, rules))| {
                    let rules = rules.into_boxed_slice();
                    (key, Rules { written, rules })
                })
                .collect()
        };
        ScopePolicy {
            methods: boxed(methods),
            services: boxed(services),
        }
    }

    /// The paths the rules are for, as written: each method's, and
    /// `/prefix/*` for each prefix.
    pub fn paths(&self) -> impl Iterator<Item = String> + '_ {
        let methods = self.methods.values().map(|r| r.written.to_string());
        methods.chain(self.services.values().map(|r| format!("{}*", r.written)))
    }

    /// The paths that rules name one by one (not by prefix), as written.
    #[cfg(feature = "server")]
    pub(crate) fn method_paths(&self) -> impl Iterator<Item = &str> {
        self.methods.values().map(|r| &*r.written)
    }

    /// Whether no method needs a scope.
    pub fn is_empty(&self) -> bool {
        self.methods.is_empty() && self.services.is_empty()
    }

    /// The HTTP methods rules bind, each with the path as written: for the
    /// server's check that a rule can bind anything.
    #[cfg(feature = "server")]
    pub(crate) fn bound_methods(&self) -> impl Iterator<Item = (&str, &str)> {
        self.methods
            .values()
            .chain(self.services.values())
            .flat_map(|r| {
                let written = &*r.written;
                r.rules
                    .iter()
                    .filter_map(move |rule| rule.http_method.as_deref().map(|m| (m, written)))
            })
    }

    /// [`ScopePolicy::check_request`] for a gRPC call (`POST`) to `method`.
    pub fn check(&self, method: &str, principal: &Principal) -> Result<(), AuthError> {
        self.check_request("POST", method, principal)
    }

    /// Refuses with `PERMISSION_DENIED`, naming what the first unmet rule
    /// asks for, when `principal` does not meet every rule that binds
    /// `http_method` requests for `path`. Allocates nothing when it allows.
    pub fn check_request(
        &self,
        http_method: &str,
        path: &str,
        principal: &Principal,
    ) -> Result<(), AuthError> {
        if self.is_empty() {
            return Ok(());
        }
        lowercase(path, |path| {
            // `/admin/stats/` is `/admin/stats` to most routers.
            let path = match path.strip_suffix('/') {
                Some(trimmed) if !trimmed.is_empty() => trimmed,
                _ => path,
            };
            if let Some(rules) = self.methods.get(path) {
                holds(&rules.rules, http_method, principal)?;
            }
            if self.services.is_empty() {
                return Ok(());
            }
            // Each prefix the path is under, keyed without its last `/`:
            // every path (a rule for `/*`), `/a`, `/a/b`, ... (for gRPC, the
            // service `/package.Service`), and the path itself, so that
            // `/admin/*` guards `/admin`, where a mounted router answers.
            let under = path.match_indices('/').skip(1).map(|(end, _)| &path[..end]);
            for prefix in std::iter::once("").chain(under).chain([path]) {
                if let Some(rules) = self.services.get(prefix) {
                    holds(&rules.rules, http_method, principal)?;
                }
            }
            Ok(())
        })
    }
}

/// A rule's path as the policy looks it up: ASCII lowercase, without its
/// last `/` (`/admin/` for `/admin/*` is `/admin`; `/` for `/*` is empty),
/// but for a method's path `/` itself.
fn key(path: &str, prefix: bool) -> String {
    let lower = path.to_ascii_lowercase();
    match lower.strip_suffix('/') {
        Some(trimmed) if prefix || !trimmed.is_empty() => trimmed.to_owned(),
        _ => lower,
    }
}

/// Calls `f` with `path` in ASCII lowercase, copying it only when it has an
/// uppercase letter, and onto the stack when it is short (gRPC paths are).
fn lowercase<R>(path: &str, f: impl FnOnce(&str) -> R) -> R {
    if !path.bytes().any(|b| b.is_ascii_uppercase()) {
        return f(path);
    }
    let mut buffer = [0u8; 256];
    match buffer.get_mut(..path.len()) {
        Some(lower) => {
            lower.copy_from_slice(path.as_bytes());
            lower.make_ascii_lowercase();
            f(std::str::from_utf8(lower).expect("ASCII lowercase keeps UTF-8 valid"))
        }
        None => f(&path.to_ascii_lowercase()),
    }
}

/// Whether `principal` meets every rule that binds `http_method`: one of
/// each such rule's scopes.
fn holds(rules: &[Rule], http_method: &str, principal: &Principal) -> Result<(), AuthError> {
    for rule in rules.iter().filter(|rule| rule.binds(http_method)) {
        if !rule.any_of.iter().any(|scope| principal.has_scope(scope)) {
            return Err(AuthError::MissingScope(rule.any_of.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rules: &[&str]) -> ScopePolicy {
        ScopePolicy::new(rules.iter().map(|r| r.parse::<ScopeRule>().unwrap()))
    }

    #[test]
    fn prefix_rules_hold_for_every_path_under_them_at_any_depth() {
        let policy = policy(&["/api/v1/*=api", "/api/*=any", "/authgate.v1.S/*=grpc"]);
        let both = Principal::with_scopes(&["api", "any"]);
        let any = Principal::with_scopes(&["any"]);
        assert!(policy.check("/api/v1/users/7", &both).is_ok());
        assert!(policy.check("/api/v1/users/7", &any).is_err());
        assert!(policy.check("/api/v1/", &any).is_err());
        assert!(policy.check("/api/v2", &any).is_ok());
        assert!(
            policy
                .check("/api/v2", &Principal::with_scopes(&[]))
                .is_err()
        );
        assert!(
            policy
                .check("/apiary", &Principal::with_scopes(&[]))
                .is_ok()
        );
        assert!(policy.check("/authgate.v1.S/M", &any).is_err());
        assert!(
            policy
                .check("/authgate.v1.S/M", &Principal::with_scopes(&["grpc"]))
                .is_ok()
        );
        // The root of a prefix, and a trailing slash either way.
        assert!(policy.check("/api/v1", &any).is_err());
        assert!(policy.check("/API/V1/", &any).is_err());
        let nobody = Principal::with_scopes(&[]);
        let exact = super::tests::policy(&["/admin/stats=admin", "/files/=files"]);
        for path in [
            "/admin/stats",
            "/admin/stats/",
            "/files",
            "/files/",
            "/Admin/Stats/",
        ] {
            assert!(exact.check(path, &nobody).is_err(), "{path}");
        }
        assert!(exact.check("/admin/statsx", &nobody).is_ok());
        assert!(exact.check("/", &nobody).is_ok());
        let root = super::tests::policy(&["/=root"]);
        assert!(root.check("/", &nobody).is_err());
        assert!(root.check("/x", &nobody).is_ok());
        let everything = super::tests::policy(&["/*=any"]);
        assert!(everything.check("/", &any).is_ok());
        assert!(everything.check("/", &nobody).is_err());
        assert!(everything.check("/x/y", &nobody).is_err());
        assert!(everything.check("/pkg.S/M", &nobody).is_err());
    }

    #[test]
    fn a_rule_with_an_http_method_binds_that_method_alone() {
        let policy = policy(&[
            "POST /items=items:write",
            "GET /files/*=files:read",
            "/admin/*=admin",
            "DELETE /admin/*=root",
        ]);
        let nobody = Principal::with_scopes(&[]);
        let writer = Principal::with_scopes(&["items:write"]);
        let admin = Principal::with_scopes(&["admin"]);
        assert!(policy.check_request("GET", "/items", &nobody).is_ok());
        assert!(policy.check_request("POST", "/items", &nobody).is_err());
        // A server may route a method in another case as its own.
        assert!(policy.check_request("post", "/items", &nobody).is_err());
        assert!(policy.check_request("POST", "/ITEMS/", &writer).is_ok());
        assert!(policy.check_request("GET", "/files/7", &nobody).is_err());
        // HEAD is answered by GET's route.
        assert!(policy.check_request("HEAD", "/files/7", &nobody).is_err());
        assert!(policy.check_request("PUT", "/files/7", &nobody).is_ok());
        // A rule without a method binds every one; with both, both hold.
        assert!(policy.check_request("GET", "/admin/x", &nobody).is_err());
        assert!(policy.check_request("GET", "/admin/x", &admin).is_ok());
        assert!(policy.check_request("DELETE", "/admin/x", &admin).is_err());
        let root = Principal::with_scopes(&["admin", "root"]);
        assert!(policy.check_request("DELETE", "/admin/x", &root).is_ok());
        // gRPC calls are POST.
        assert!(policy.check("/items", &nobody).is_err());
    }

    #[test]
    fn rules_read_and_print_their_method() {
        let rule: ScopeRule = "post /items = items:write|admin".parse().unwrap();
        assert_eq!(rule.http_method.as_deref(), Some("POST"));
        assert_eq!(rule.method, "/items");
        assert_eq!(rule.to_string(), "POST /items=items:write|admin");
        let any: ScopeRule = "/items=x".parse().unwrap();
        assert_eq!(any.http_method, None);
        assert_eq!(any.to_string(), "/items=x");
        for bad in [
            "POST  /items=x",
            "PO-ST /items=x",
            "POST items=x",
            "POST /items extra=x",
        ] {
            assert!(bad.parse::<ScopeRule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_path_written_in_another_case_does_not_escape_its_rule() {
        let policy = policy(&["/admin/*=admin", "/pkg.Svc/Get=read"]);
        let nobody = Principal::with_scopes(&[]);
        for path in [
            "/ADMIN/stats",
            "/Admin/x",
            "/admin/x",
            "/PKG.SVC/GET",
            "/pkg.svc/get",
        ] {
            assert!(policy.check(path, &nobody).is_err(), "{path}");
        }
        let long = format!("/ADMIN/{}", "X".repeat(300));
        assert!(policy.check(&long, &nobody).is_err());
        assert!(
            policy
                .check(&long, &Principal::with_scopes(&["admin"]))
                .is_ok()
        );
        // The paths stay as written, for the checks against the methods.
        let mut paths: Vec<String> = policy.paths().collect();
        paths.sort();
        assert_eq!(paths, ["/admin/*", "/pkg.Svc/Get"]);
    }
}

//! Who the caller is, from a verified token.

use std::{fmt, sync::Arc};

use super::claims::{Claims, OneOrMany};
use crate::{error::AuthError, gate::methods::IssuerMethods};

/// Who the caller is, from a verified token: what the handler finds in the
/// request's extensions. Cheap to clone.
#[derive(Clone)]
pub struct Principal(Arc<PrincipalInner>);

pub(super) struct PrincipalInner {
    pub(super) subject: Box<str>,
    /// The token's `iss`, which the gate matched against an issuer it trusts.
    pub(super) issuer: Box<str>,
    pub(super) scopes: Box<[Box<str>]>,
    pub(super) expires_at: i64,
    /// `exp` plus the leeway of the issuer that accepted it.
    pub(super) accepted_until: i64,
    pub(super) kid: Option<Box<str>>,
    pub(super) claims: Box<[u8]>,
    /// The only methods its issuer's tokens may call; `None`: any.
    pub(super) methods: Option<Arc<IssuerMethods>>,
}

impl Principal {
    pub(super) fn new(
        claims: &Claims<'_>,
        exp: i64,
        leeway: i64,
        kid: Option<&str>,
        payload: &[u8],
        methods: Option<&Arc<IssuerMethods>>,
    ) -> Principal {
        let mut scopes: Vec<Box<str>> = Vec::new();
        let granted = claims.scopes.iter().flatten().flat_map(OneOrMany::scopes);
        for scope in granted {
            if !scope.is_empty() && !scopes.iter().any(|s| **s == *scope) {
                scopes.push(scope.into());
            }
        }
        Principal(Arc::new(PrincipalInner {
            subject: claims.sub.as_deref().unwrap_or("").into(),
            issuer: claims.iss.as_deref().unwrap_or("").into(),
            scopes: scopes.into_boxed_slice(),
            expires_at: exp,
            accepted_until: exp.saturating_add(leeway),
            kid: kid.map(Into::into),
            claims: payload.into(),
            methods: methods.cloned(),
        }))
    }

    /// A principal granted `scopes` and nothing else, for unit tests.
    #[cfg(test)]
    pub(crate) fn with_scopes(scopes: &[&str]) -> Principal {
        let payload = serde_json::json!({ "scope": scopes.join(" ") }).to_string();
        let claims = Claims::parse(payload.as_bytes(), &Default::default()).expect("claims");
        Principal::new(&claims, 0, 0, None, payload.as_bytes(), None)
    }

    /// The token's `sub` (empty when it has none).
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// The token's `iss`: the issuer that the gate checked it against.
    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }

    /// The scopes granted: those of each of its issuer's scope claims in
    /// turn (by default `scope`, then `scp`, then `permissions`), each split
    /// on spaces when a string, element by element when an array, without
    /// repeats.
    pub fn scopes(&self) -> impl ExactSizeIterator<Item = &str> {
        self.0.scopes.iter().map(|s| &**s)
    }

    /// Whether `scope` was granted, compared exactly.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.0.scopes.iter().any(|s| **s == *scope)
    }

    /// Whether its issuer lets its tokens call `method` (a request path):
    /// always, unless the issuer was given a list of `methods`.
    pub fn may_call(&self, method: &str) -> bool {
        self.0.methods.as_ref().is_none_or(|m| m.allows(method))
    }

    /// Refuses `method` when its issuer's list of methods leaves it out.
    #[inline]
    pub(crate) fn check_method(&self, method: &str) -> Result<(), AuthError> {
        match &self.0.methods {
            Some(methods) if !methods.allows(method) => {
                Err(AuthError::MethodNotAllowed(methods.issuer().clone()))
            }
            _ => Ok(()),
        }
    }

    /// Whether its issuer limits the methods its tokens may call.
    pub(crate) fn is_limited_to_methods(&self) -> bool {
        self.0.methods.is_some()
    }

    /// The token's `exp`, in seconds since the Unix epoch.
    pub fn expires_at(&self) -> i64 {
        self.0.expires_at
    }

    /// The second from which the token is refused: its `exp` plus the
    /// leeway of the issuer that accepted it.
    pub fn accepted_until(&self) -> i64 {
        self.0.accepted_until
    }

    /// The `kid` of the key that signed the token.
    pub fn kid(&self) -> Option<&str> {
        self.0.kid.as_deref()
    }

    /// Every claim, deserialized into a type of the caller's choosing, for
    /// claims authgate itself does not read (`email`, `org_id`, ...).
    ///
    /// Into a `serde_json::Value` this never fails: the gate refused any
    /// token whose claims repeat a name (at any depth) or hold anything
    /// serde_json does not read, so no value is lost to a later duplicate.
    /// Into a type of yours it fails only where that type disagrees with the
    /// claims' shape.
    pub fn claims<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_slice(&self.0.claims)
    }

    /// The verified payload exactly as the token carried it (JSON, decoded
    /// from base64url): what `authgate proxy` passes on in
    /// `x-authgate-claims`.
    pub fn claims_json(&self) -> &[u8] {
        &self.0.claims
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("subject", &self.subject())
            .field("issuer", &self.issuer())
            .field("scopes", &self.0.scopes)
            .field("expires_at", &self.0.expires_at)
            .finish_non_exhaustive()
    }
}

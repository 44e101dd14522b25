//! authgate's errors: why a call was refused, and the one mapping from a
//! refusal to a `tonic::Status` and to its RFC 6750 challenge; and, in
//! `error/startup.rs`, why a key set fetch failed and why start-up stopped.

use std::sync::Arc;

use http::{HeaderValue, header};
use tonic::{Code, Status};

mod startup;

pub(crate) use startup::error_chain;
pub use startup::{FetchError, StartupError, UrlError};

/// Why a call was refused. Messages say why in a few words and never echo the
/// token or any part of it: they reach the caller and the logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `authorization` metadata on the call.
    #[error("missing authorization metadata")]
    MissingAuthorization,
    /// More than one `authorization` entry: which one counts would be a guess.
    #[error("more than one authorization metadata entry")]
    DuplicateAuthorization,
    /// The metadata is not `Bearer <token>`.
    #[error("authorization metadata is not `Bearer <token>`")]
    NotBearer,
    /// The token is longer than authgate reads.
    #[error("token is longer than {max} bytes")]
    TooLong {
        /// The most bytes a token may have.
        max: usize,
    },
    /// The token is not a well-formed JWS in compact form.
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    /// `alg` is `none`, symmetric, or not one authgate verifies.
    #[error("token algorithm {}is not allowed", .0.map_or(String::new(), |a| format!("`{a}` ")))]
    AlgorithmNotAllowed(Option<&'static str>),
    /// The header lists a `crit` extension authgate does not implement.
    #[error("token header has a critical extension (`crit`) that is not understood")]
    UnsupportedCritical,
    /// A header member has the wrong JSON type or is given twice.
    #[error("token header member `{0}` is invalid (wrong type or repeated)")]
    InvalidHeader(&'static str),
    /// The header carries a key of its own (`jwk`): never trusted.
    #[error("token header carries its own key (`jwk`); only the issuer's key set is trusted")]
    EmbeddedKey,
    /// `typ` says the token is not an access token (a DPoP proof, a logout
    /// token, ...), or not the type `--require-typ` asks for.
    #[error("token type (`typ`) is not accepted")]
    TypeNotAccepted,
    /// The header has no `kid` and the key set has several keys for its algorithm.
    #[error("token has no key id (`kid`) and several keys could have signed it")]
    MissingKeyId,
    /// The `kid` names no key in the issuer's current key set.
    #[error("token key id (`kid`) is not in the issuer's key set")]
    UnknownKeyId,
    /// The key the `kid` names is not for the token's algorithm.
    #[error("token algorithm does not match its key")]
    KeyAlgorithmMismatch,
    /// The signature does not verify with the named key.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` has passed, leeway included.
    #[error("token has expired")]
    Expired,
    /// `nbf` lies ahead, leeway included.
    #[error("token is not yet valid")]
    NotYetValid,
    /// A claim authgate requires is absent.
    #[error("token has no `{0}` claim")]
    MissingClaim(&'static str),
    /// A claim is present with the wrong JSON type, or twice.
    #[error("token claim `{0}` is invalid (wrong type or repeated)")]
    InvalidClaim(&'static str),
    /// `iss` is not the configured issuer.
    #[error("token issuer is not accepted")]
    WrongIssuer,
    /// `aud` (or the issuer's audience claim) names none of the configured
    /// audiences.
    #[error("token audience is not accepted")]
    WrongAudience,
    /// `token_use` is not the one the issuer's configuration requires: a
    /// Cognito ID token (`id`) where access tokens (`access`) are expected.
    #[error("token use (`token_use`) is not accepted")]
    WrongTokenUse,
    /// A valid token that lacks a scope the method requires: none of the
    /// scopes one rule accepts was granted.
    #[error("{}", missing_scope(.0))]
    MissingScope(Arc<[Arc<str>]>),
    /// A method whose required scopes cannot be known, so the call is refused.
    #[error("the method being called is unknown, so its scopes cannot be checked")]
    UnknownMethod,
    /// A valid token whose issuer may not call this method: it is not in the
    /// issuer's `methods`. The issuer is named, as configured.
    #[error("tokens of issuer `{0}` may not call this method")]
    MethodNotAllowed(Arc<str>),
    /// The key set of the token's issuer has not loaded yet, so its tokens
    /// cannot be checked; the issuer is named, as configured.
    #[error("the signing keys of issuer `{0}` have not loaded yet")]
    KeysNotLoaded(Arc<str>),
    /// The issuer's last JWKS listed no key authgate can verify with: it
    /// has withdrawn every key it had.
    #[error("issuer `{0}` lists no usable signing key")]
    NoUsableKey(Arc<str>),
    /// No JWKS fetch has succeeded for longer than `--jwks-max-stale`, so
    /// the issuer's last key set was dropped.
    #[error("the signing keys of issuer `{0}` went stale: no fetch has succeeded for too long")]
    KeysStale(Arc<str>),
    /// The request's path may mean another path to the service behind a
    /// proxy (a dot segment, a needless escape, ...): refused before any
    /// token is read. `INVALID_ARGUMENT`.
    #[error("request path refused: {0}")]
    AmbiguousPath(&'static str),
}

impl AuthError {
    /// The gRPC code for this refusal: the one place that decides it.
    pub fn code(&self) -> Code {
        match self {
            AuthError::MissingScope(_)
            | AuthError::UnknownMethod
            | AuthError::MethodNotAllowed(_) => Code::PermissionDenied,
            AuthError::KeysNotLoaded(_) | AuthError::NoUsableKey(_) | AuthError::KeysStale(_) => {
                Code::Unavailable
            }
            AuthError::AmbiguousPath(_) => Code::InvalidArgument,
            _ => Code::Unauthenticated,
        }
    }

    /// A short, stable label for logs and counters (`bad_signature`, ...).
    pub fn reason(&self) -> &'static str {
        AuthError::REASONS[self.reason_index()]
    }

    /// Every label [`AuthError::reason`] can give, in the order of
    /// [`AuthError::reason_index`]: a finite set, so counters can be a fixed
    /// array indexed without a map, a lock or an allocation. New reasons
    /// are added at the end, so that an index, once given, keeps its reason.
    /// [`GateStats::denied`](crate::GateStats::denied) lists them to users.
    pub(crate) const REASONS: [&'static str; 28] = [
        "missing_authorization",
        "duplicate_authorization",
        "not_bearer",
        "too_long",
        "malformed",
        "algorithm_not_allowed",
        "unsupported_crit",
        "invalid_header",
        "embedded_key",
        "typ_not_accepted",
        "missing_kid",
        "unknown_kid",
        "key_algorithm_mismatch",
        "bad_signature",
        "expired",
        "not_yet_valid",
        "missing_claim",
        "invalid_claim",
        "wrong_issuer",
        "wrong_audience",
        "missing_scope",
        "unknown_method",
        "keys_not_loaded",
        "no_usable_key",
        "keys_stale",
        "wrong_token_use",
        "method_not_allowed",
        "ambiguous_path",
    ];

    /// Where this refusal's reason stands in [`AuthError::REASONS`].
    #[inline]
    pub(crate) fn reason_index(&self) -> usize {
        match self {
            AuthError::MissingAuthorization => 0,
            AuthError::DuplicateAuthorization => 1,
            AuthError::NotBearer => 2,
            AuthError::TooLong { .. } => 3,
            AuthError::Malformed(_) => 4,
            AuthError::AlgorithmNotAllowed(_) => 5,
            AuthError::UnsupportedCritical => 6,
            AuthError::InvalidHeader(_) => 7,
            AuthError::EmbeddedKey => 8,
            AuthError::TypeNotAccepted => 9,
            AuthError::MissingKeyId => 10,
            AuthError::UnknownKeyId => 11,
            AuthError::KeyAlgorithmMismatch => 12,
            AuthError::BadSignature => 13,
            AuthError::Expired => 14,
            AuthError::NotYetValid => 15,
            AuthError::MissingClaim(_) => 16,
            AuthError::InvalidClaim(_) => 17,
            AuthError::WrongIssuer => 18,
            AuthError::WrongAudience => 19,
            AuthError::MissingScope(_) => 20,
            AuthError::UnknownMethod => 21,
            AuthError::KeysNotLoaded(_) => 22,
            AuthError::NoUsableKey(_) => 23,
            AuthError::KeysStale(_) => 24,
            AuthError::WrongTokenUse => 25,
            AuthError::MethodNotAllowed(_) => 26,
            AuthError::AmbiguousPath(_) => 27,
        }
    }
}

/// ``missing required scope `a` `` for a rule of one scope; for a rule that
/// any of several scopes satisfies, `needs one of a, b`.
fn missing_scope(any_of: &[Arc<str>]) -> String {
    match any_of {
        [one] => format!("missing required scope `{one}`"),
        several => {
            let names: Vec<&str> = several.iter().map(|s| &**s).collect();
            format!("missing required scope: needs one of {}", names.join(", "))
        }
    }
}

/// The realm, written once for [`REALM`] and the static bare challenge.
macro_rules! realm {
    () => {
        "authgate"
    };
}

/// The realm every `WWW-Authenticate` challenge names.
pub(crate) const REALM: &str = realm!();

/// The challenge to a request without a bearer token (RFC 6750 §3).
const BARE_CHALLENGE: &str = concat!("Bearer realm=\"", realm!(), "\"");

/// The RFC 6750 `WWW-Authenticate` challenge for a refusal: the one value
/// that gRPC, gRPC-Web and plain HTTP callers all get for the same reason.
/// `None` when the keys are unavailable: no credential would do better.
pub(crate) fn challenge(error: &AuthError) -> Option<HeaderValue> {
    let challenge = match (error.code(), error) {
        (Code::Unauthenticated, AuthError::MissingAuthorization | AuthError::NotBearer) => {
            return Some(HeaderValue::from_static(BARE_CHALLENGE));
        }
        (Code::Unauthenticated, _) => format!(
            "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
            quotable(&error.to_string())
        ),
        (Code::PermissionDenied, AuthError::MissingScope(any_of)) => format!(
            "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{}\"",
            quotable(any_of.first().map_or("", |s| &**s))
        ),
        (Code::PermissionDenied, _) => {
            format!("Bearer realm=\"{REALM}\", error=\"insufficient_scope\"")
        }
        _ => return None,
    };
    // Quoted text is printable ASCII, so this cannot fail; were it to, the
    // bare challenge still says how to authenticate.
    Some(
        HeaderValue::try_from(challenge)
            .unwrap_or_else(|_| HeaderValue::from_static(BARE_CHALLENGE)),
    )
}

/// `text` with only the characters RFC 6750 allows in `error_description`
/// and `scope` (printable ASCII but `"` and `\`); others become `?`.
fn quotable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '?',
        })
        .collect()
}

impl From<&AuthError> for Status {
    fn from(error: &AuthError) -> Status {
        let mut status = Status::new(error.code(), error.to_string());
        if let Some(challenge) = challenge(error) {
            // RFC 6750 §3, as plain HTTP callers get it: gRPC metadata
            // are HTTP/2 headers, and gRPC-Web's trailers-only refusals
            // carry them as HTTP/1.1 headers a page can read.
            status
                .metadata_mut()
                .as_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        status
    }
}

impl From<AuthError> for Status {
    fn from(error: AuthError) -> Status {
        Status::from(&error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_its_own_stable_reason() {
        let all = [
            (AuthError::MissingAuthorization, "missing_authorization"),
            (AuthError::DuplicateAuthorization, "duplicate_authorization"),
            (AuthError::NotBearer, "not_bearer"),
            (AuthError::TooLong { max: 1 }, "too_long"),
            (AuthError::Malformed("x"), "malformed"),
            (
                AuthError::AlgorithmNotAllowed(None),
                "algorithm_not_allowed",
            ),
            (AuthError::UnsupportedCritical, "unsupported_crit"),
            (AuthError::InvalidHeader("typ"), "invalid_header"),
            (AuthError::EmbeddedKey, "embedded_key"),
            (AuthError::TypeNotAccepted, "typ_not_accepted"),
            (AuthError::MissingKeyId, "missing_kid"),
            (AuthError::UnknownKeyId, "unknown_kid"),
            (AuthError::KeyAlgorithmMismatch, "key_algorithm_mismatch"),
            (AuthError::BadSignature, "bad_signature"),
            (AuthError::Expired, "expired"),
            (AuthError::NotYetValid, "not_yet_valid"),
            (AuthError::MissingClaim("exp"), "missing_claim"),
            (AuthError::InvalidClaim("exp"), "invalid_claim"),
            (AuthError::WrongIssuer, "wrong_issuer"),
            (AuthError::WrongAudience, "wrong_audience"),
            (
                AuthError::MissingScope(["s".into()].into()),
                "missing_scope",
            ),
            (AuthError::UnknownMethod, "unknown_method"),
            (AuthError::KeysNotLoaded("i".into()), "keys_not_loaded"),
            (AuthError::NoUsableKey("i".into()), "no_usable_key"),
            (AuthError::KeysStale("i".into()), "keys_stale"),
            (AuthError::WrongTokenUse, "wrong_token_use"),
            (
                AuthError::MethodNotAllowed("i".into()),
                "method_not_allowed",
            ),
            (AuthError::AmbiguousPath("why"), "ambiguous_path"),
        ];
        assert_eq!(all.len(), AuthError::REASONS.len());
        let mut seen = std::collections::HashSet::new();
        for (error, label) in &all {
            assert_eq!(error.reason(), *label);
            assert!(seen.insert(error.reason_index()), "{label} shares an index");
        }
    }

    #[test]
    fn a_status_carries_the_challenge_plain_http_gets() {
        let www = |error: &AuthError| {
            Status::from(error)
                .metadata()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let cases = [
            (
                AuthError::MissingAuthorization,
                Some(r#"Bearer realm="authgate""#),
            ),
            (AuthError::NotBearer, Some(r#"Bearer realm="authgate""#)),
            (
                AuthError::Expired,
                Some(
                    r#"Bearer realm="authgate", error="invalid_token", error_description="token has expired""#,
                ),
            ),
            (
                AuthError::MissingScope(["a".into(), "b".into()].into()),
                Some(r#"Bearer realm="authgate", error="insufficient_scope", scope="a""#),
            ),
            (
                AuthError::MethodNotAllowed("i".into()),
                Some(r#"Bearer realm="authgate", error="insufficient_scope""#),
            ),
            (AuthError::KeysNotLoaded("i".into()), None),
        ];
        for (error, expected) in cases {
            let expected = expected.map(str::to_owned);
            assert_eq!(www(&error), expected, "{error:?}");
            let header = challenge(&error).map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(header, expected, "{error:?}");
        }
    }

    #[test]
    fn quoted_strings_stay_quoted() {
        assert_eq!(quotable(r#"a "b" \c é"#), "a ?b? ?c ?");
        let error = AuthError::MissingScope(["say \"hi\"".into()].into());
        assert_eq!(
            challenge(&error).unwrap(),
            r#"Bearer realm="authgate", error="insufficient_scope", scope="say ?hi?""#
        );
    }
}

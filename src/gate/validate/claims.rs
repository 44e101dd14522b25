//! The payload's claims that authgate checks, parsed by type, each named
//! when it is wrong.

use std::{borrow::Cow, cell::Cell, fmt};

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::json::{Names, Str, Strict, Strings};
use crate::error::AuthError;

/// The most claims one issuer's scopes may come from: the claims are parsed
/// into a fixed array, so that reading them allocates nothing.
pub const MAX_SCOPE_CLAIMS: usize = 8;

/// The claims an issuer's tokens carry beyond the registered ones, by name:
/// which one names the audience, whether `token_use` is read, and which
/// grant scopes. Names are `'static` so that a refusal can name them.
#[derive(Debug, Clone)]
pub(super) struct ClaimNames {
    /// `aud`, or a claim holding one string (`client_id`).
    pub(super) audience: &'static str,
    /// Whether `token_use` is read (and so type-checked).
    pub(super) token_use: bool,
    /// At most [`MAX_SCOPE_CLAIMS`], in the order their scopes are granted.
    pub(super) scopes: Box<[&'static str]>,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames {
            audience: "aud",
            token_use: false,
            scopes: Box::new(["scope", "scp", "permissions"]),
        }
    }
}

/// The registered claims authgate checks, plus the issuer's audience claim,
/// `token_use` and scope claims, as [`ClaimNames`] names them.
#[derive(Default)]
pub(super) struct Claims<'a> {
    pub(super) iss: Option<Cow<'a, str>>,
    pub(super) sub: Option<Cow<'a, str>>,
    /// The audience claim: `aud`, or whichever [`ClaimNames::audience`] names.
    pub(super) aud: Option<OneOrMany<'a>>,
    pub(super) exp: Option<NumericDate>,
    pub(super) nbf: Option<NumericDate>,
    pub(super) iat: Option<NumericDate>,
    pub(super) token_use: Option<Cow<'a, str>>,
    /// Each scope claim's value, at its place in [`ClaimNames::scopes`].
    pub(super) scopes: [Option<OneOrMany<'a>>; MAX_SCOPE_CLAIMS],
}

/// What made the claims unreadable.
#[derive(Clone, Copy)]
pub(super) enum ClaimFault {
    /// A claim authgate reads, of the wrong type or given twice.
    Claim(&'static str),
    /// Another claim given twice, or holding what serde_json will not read.
    Unchecked,
}

impl<'a> Claims<'a> {
    /// Parses the claims, reading the ones `names` names.
    pub(super) fn parse(json: &'a [u8], names: &ClaimNames) -> Result<Claims<'a>, AuthError> {
        let bad = Cell::new(None);
        let mut de = serde_json::Deserializer::from_slice(json);
        let claims = ClaimsVisitor { bad: &bad, names }
            .deserialize(&mut de)
            .and_then(|c| de.end().map(|()| c));
        claims.map_err(|_| match bad.get() {
            Some(ClaimFault::Claim(name)) => AuthError::InvalidClaim(name),
            Some(ClaimFault::Unchecked) => AuthError::Malformed(
                "a claim is repeated, or holds a repeated member, invalid Unicode or an \
                 out-of-range number",
            ),
            None => AuthError::Malformed("claims are not a JSON object"),
        })
    }
}

/// Parses the claims, recording which claim was at fault so that the error
/// can name it without quoting the token.
pub(super) struct ClaimsVisitor<'s> {
    pub(super) bad: &'s Cell<Option<ClaimFault>>,
    pub(super) names: &'s ClaimNames,
}

impl<'de> DeserializeSeed<'de> for ClaimsVisitor<'_> {
    type Value = Claims<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ClaimsVisitor<'_> {
    type Value = Claims<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JWT claims set")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claims<'de>, A::Error> {
        let mut c = Claims::default();
        macro_rules! claim {
            ($slot:expr, $name:expr, $ty:ty, $map:expr) => {{
                let value = if $slot.is_some() {
                    None
                } else {
                    map.next_value::<$ty>().ok()
                };
                match value {
                    Some(v) => $slot = Some($map(v)),
                    None => {
                        self.bad.set(Some(ClaimFault::Claim($name)));
                        return Err(de::Error::custom($name));
                    }
                }
            }};
        }
        // Claims authgate does not check must still read back as they were
        // checked: none repeated, all of them JSON that serde_json reads, so
        // that `Principal::claims` agrees with the gate.
        let mut unchecked = Names::new();
        let names = self.names;
        while let Some(key) = map.next_key::<Str>()? {
            match &*key.0 {
                "iss" => claim!(c.iss, "iss", Str, |s: Str<'de>| s.0),
                "sub" => claim!(c.sub, "sub", Str, |s: Str<'de>| s.0),
                "exp" => claim!(c.exp, "exp", NumericDate, |d| d),
                "nbf" => claim!(c.nbf, "nbf", NumericDate, |d| d),
                "iat" => claim!(c.iat, "iat", NumericDate, |d| d),
                // RFC 7519 lets `aud` be one string or several; any other
                // audience claim (Cognito's `client_id`) is one string.
                "aud" if names.audience == "aud" => claim!(c.aud, "aud", OneOrMany, |a| a),
                name if name == names.audience => claim!(c.aud, names.audience, Str, one),
                "token_use" if names.token_use => {
                    claim!(c.token_use, "token_use", Str, |s: Str<'de>| s.0)
                }
                name => match names.scopes.iter().position(|s| *s == name) {
                    // As Auth0 writes it: an array, never a string.
                    Some(i) if name == "permissions" => {
                        claim!(c.scopes[i], "permissions", Strings, |s: Strings<'de>| {
                            OneOrMany::Many(s.0)
                        })
                    }
                    Some(i) => claim!(c.scopes[i], names.scopes[i], OneOrMany, |s| s),
                    None => {
                        if !unchecked.insert(key.0) || map.next_value_seed(Strict).is_err() {
                            self.bad.set(Some(ClaimFault::Unchecked));
                            return Err(de::Error::custom("unchecked claim"));
                        }
                    }
                },
            }
        }
        Ok(c)
    }
}

/// A claim that must be one string, read as one of [`OneOrMany`].
fn one(s: Str<'_>) -> OneOrMany<'_> {
    OneOrMany::One(s.0)
}

/// One string or an array of strings: `aud` (RFC 7519 §4.1.3), and scope
/// claims, which issuers write either way (a space-separated string, as
/// Auth0 and Azure AD do for `scope` and `scp`, or an array, as Okta does,
/// and as Azure AD does for `roles`).
pub(super) enum OneOrMany<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

impl OneOrMany<'_> {
    pub(super) fn contains(&self, want: &str) -> bool {
        match self {
            OneOrMany::One(one) => one == want,
            OneOrMany::Many(many) => many.iter().any(|one| one == want),
        }
    }

    /// The scopes it grants: a string split on spaces, an array's elements
    /// as they are.
    pub(super) fn scopes(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            OneOrMany::One(one) => (Some(one.split(' ')), None),
            OneOrMany::Many(many) => (None, Some(many.iter().map(|s| &**s))),
        };
        one.into_iter().flatten().chain(many.into_iter().flatten())
    }
}

impl<'de> de::Deserialize<'de> for OneOrMany<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<OneOrMany<'de>, E> {
                Ok(OneOrMany::One(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany<'de>, E> {
                Ok(OneOrMany::One(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<OneOrMany<'de>, A::Error> {
                <Strings as de::Deserialize>::deserialize(de::value::SeqAccessDeserializer::new(
                    seq,
                ))
                .map(|s| OneOrMany::Many(s.0))
            }
        }
        d.deserialize_any(V)
    }
}

/// A JSON number of seconds since the epoch (RFC 7519 §2), read as
/// jsonwebtoken reads one, and a little more strictly: never negative, a
/// fraction only below 2^63. Larger integers saturate at `i64::MAX`.
#[derive(Debug, Clone, Copy)]
pub(super) struct NumericDate {
    /// The whole seconds.
    pub(super) secs: i64,
    /// Whether a fraction of a second followed.
    pub(super) fraction: bool,
}

impl NumericDate {
    /// Rounded down: how `exp` counts.
    pub(super) fn floor(self) -> i64 {
        self.secs
    }

    /// Rounded up: how `nbf` counts.
    pub(super) fn ceil(self) -> i64 {
        self.secs.saturating_add(i64::from(self.fraction))
    }
}

impl<'de> de::Deserialize<'de> for NumericDate {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            // serde_json calls this only for negative integers (it reads
            // `-0` as -0.0), which jsonwebtoken refuses too.
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumericDate, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom("a negative date")),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
                Ok(NumericDate {
                    secs: i64::try_from(v).unwrap_or(i64::MAX),
                    fraction: false,
                })
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                // -0.0 counts as 0, as it does for jsonwebtoken.
                if (0.0..9_223_372_036_854_775_808.0).contains(&v) {
                    let secs = v.floor();
                    Ok(NumericDate {
                        secs: secs as i64,
                        fraction: v != secs,
                    })
                } else {
                    Err(E::custom("not a date authgate reads"))
                }
            }
        }
        d.deserialize_any(V)
    }
}

//! The JOSE header: the members authgate reads, parsed strictly.

use std::{borrow::Cow, cell::Cell, fmt};

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};

use super::json::{Names, Str, Strict, Strings};
use crate::error::AuthError;

/// The name of a well-known algorithm authgate refuses, to say which in the
/// error without echoing arbitrary bytes from the token.
pub(super) fn known_alg_name(alg: &str) -> Option<&'static str> {
    [
        "none", "HS256", "HS384", "HS512", "ES512", "ES256K", "Ed448", "RS1",
    ]
    .into_iter()
    .find(|known| known.eq_ignore_ascii_case(alg))
}

/// A media type without its optional `application/` (RFC 7515 §4.1.9).
pub(super) fn media_subtype(typ: &str) -> &str {
    match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    }
}

/// The JOSE header members authgate reads. `jku`, `x5u` and `x5c` are never
/// used to find a key, and a `jwk` refuses the token: a token never chooses
/// the key that verifies it.
pub(super) struct Header<'a> {
    pub(super) alg: Cow<'a, str>,
    pub(super) kid: Option<Cow<'a, str>>,
    pub(super) typ: Option<Cow<'a, str>>,
    pub(super) crit: bool,
    pub(super) jwk: bool,
}

impl<'a> Header<'a> {
    /// Parses the header as strictly as jsonwebtoken's `Header`, and more:
    /// the registered members it knows must have their types, no member may
    /// repeat, and every other member must be JSON that serde_json reads.
    pub(super) fn parse(json: &'a [u8]) -> Result<Header<'a>, AuthError> {
        const WHY: &str = "header is not a JSON object with a string `alg`";
        let bad = Cell::new(None);
        let mut de = serde_json::Deserializer::from_slice(json);
        let header = HeaderVisitor { bad: &bad }
            .deserialize(&mut de)
            .and_then(|h| de.end().map(|()| h));
        header.map_err(|_| match bad.get() {
            Some(name) => AuthError::InvalidHeader(name),
            None => AuthError::Malformed(WHY),
        })
    }
}

/// Parses the header, recording which member was at fault so that the error
/// can name it without quoting the token.
pub(super) struct HeaderVisitor<'s> {
    pub(super) bad: &'s Cell<Option<&'static str>>,
}

impl<'de> DeserializeSeed<'de> for HeaderVisitor<'_> {
    type Value = Header<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

/// Header members that jsonwebtoken reads as strings (RFC 7515, 7516, 8555).
pub(super) const STRING_HEADER_MEMBERS: [&str; 9] = [
    "cty", "jku", "x5u", "x5t", "x5t#S256", "enc", "zip", "url", "nonce",
];

impl<'de> Visitor<'de> for HeaderVisitor<'_> {
    type Value = Header<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JOSE header")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header<'de>, A::Error> {
        let (mut alg, mut kid, mut typ) = (None, None, None);
        let (mut crit, mut jwk) = (false, false);
        let mut others = Names::new();
        let fail = |name: &'static str| {
            self.bad.set(Some(name));
            de::Error::custom(name)
        };
        while let Some(key) = map.next_key::<Str>()? {
            let (slot, name) = match &*key.0 {
                "alg" => (&mut alg, "alg"),
                "kid" => (&mut kid, "kid"),
                "typ" => (&mut typ, "typ"),
                _ => {
                    let known = match &*key.0 {
                        "crit" => Some("crit"),
                        "jwk" => Some("jwk"),
                        "b64" => Some("b64"),
                        "x5c" => Some("x5c"),
                        other => STRING_HEADER_MEMBERS.into_iter().find(|m| *m == other),
                    };
                    let name = known.unwrap_or("(another member)");
                    if !others.insert(key.0) {
                        return Err(fail(name));
                    }
                    let well_typed = match known {
                        Some("crit") => {
                            crit = true;
                            map.next_value_seed(Strict).is_ok()
                        }
                        Some("jwk") => {
                            jwk = true;
                            map.next_value_seed(Strict).is_ok()
                        }
                        // RFC 7797: `b64: false` would leave the payload unencoded.
                        Some("b64") => map.next_value::<bool>().is_ok_and(|b64| b64),
                        Some("x5c") => map.next_value::<Strings>().is_ok(),
                        Some(_) => map.next_value::<Str>().is_ok(),
                        None => map.next_value_seed(Strict).is_ok(),
                    };
                    if !well_typed {
                        return Err(fail(name));
                    }
                    continue;
                }
            };
            match map.next_value::<Str>() {
                Ok(value) if slot.is_none() => *slot = Some(value.0),
                _ => return Err(fail(name)),
            }
        }
        let alg = alg.ok_or_else(|| de::Error::missing_field("alg"))?;
        Ok(Header {
            alg,
            kid,
            typ,
            crit,
            jwk,
        })
    }
}

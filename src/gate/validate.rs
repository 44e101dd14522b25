//! Token validation: a compact JWS checked against the key set (algorithm,
//! signature) and the configuration (issuer, audience, expiry), yielding the
//! caller's [`Principal`].
//!
//! The parser is ours rather than jsonwebtoken's `decode` for two reasons that
//! the benchmarks measure: keys are parsed once per key set instead of once per
//! token, and nothing is allocated until the signature has verified. It is
//! also stricter: claims of the wrong JSON type, repeated claims, `crit`
//! extensions and oversize tokens are refused by name.

use std::{borrow::Cow, cell::Cell, fmt, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::{
    error::AuthError,
    keys::{Algorithm, KeySet, VerifyingKey},
};

/// The longest token authgate reads; longer ones are refused before parsing.
pub const MAX_TOKEN_BYTES: usize = 8192;
/// Stack room for a decoded header or payload; larger ones go to the heap.
/// Zeroing room for the largest (6 KiB) on every call cost 2% of a cold
/// RS256 check (callgrind).
const STACK_DECODED: usize = 1024;
/// Stack room for a signature up to RSA-4096.
const STACK_SIGNATURE: usize = 512;

/// What a token must say to be accepted.
#[derive(Debug, Clone)]
pub struct ValidationConfig {
    /// The exact `iss` required.
    pub issuer: String,
    /// `aud` must contain one of these.
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
}

/// Checks tokens against one issuer's rules. Holds no keys: they come with
/// each call from the key set the refresher last published.
#[derive(Debug, Clone)]
pub struct Validator {
    issuer: Box<str>,
    audiences: Box<[Box<str>]>,
    leeway: i64,
}

/// A token that passed every check, and the key that signed it.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Who the caller is.
    pub principal: Principal,
    /// The key that verified the signature.
    pub key: Arc<VerifyingKey>,
}

impl Validator {
    /// A validator for one issuer and its audiences.
    pub fn new(config: ValidationConfig) -> Validator {
        Validator {
            issuer: config.issuer.into_boxed_str(),
            audiences: config
                .audiences
                .into_iter()
                .map(String::into_boxed_str)
                .collect(),
            leeway: i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// The clock skew allowed, in seconds.
    pub fn leeway(&self) -> i64 {
        self.leeway
    }

    /// Checks a compact JWS at time `now` (seconds since the Unix epoch):
    /// form, algorithm, key, signature, then the claims. The payload is parsed
    /// only once the signature has verified.
    pub fn validate(
        &self,
        token: impl AsRef<[u8]>,
        keys: &KeySet,
        now: i64,
    ) -> Result<Verified, AuthError> {
        let token = token.as_ref();
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLong {
                max: MAX_TOKEN_BYTES,
            });
        }
        let (header_b64, payload_b64, signature_b64) = split(token)?;

        let (mut buf, mut heap) = ([0u8; STACK_DECODED], Vec::new());
        let header = decode(header_b64, &mut buf, &mut heap, "header is not base64url")?;
        let header = Header::parse(header)?;
        let alg = Algorithm::from_name(&header.alg)
            .ok_or_else(|| AuthError::AlgorithmNotAllowed(known_alg_name(&header.alg)))?;
        if header.crit {
            return Err(AuthError::UnsupportedCritical);
        }
        let key = match header.kid.as_deref() {
            Some(kid) => keys.get(kid).ok_or(AuthError::UnknownKeyId)?,
            None => keys.sole_key_for(alg).ok_or(AuthError::MissingKeyId)?,
        };
        drop(header);

        if signature_b64.is_empty() {
            return Err(AuthError::BadSignature);
        }
        let (mut signature, mut signature_heap) = ([0u8; STACK_SIGNATURE], Vec::new());
        let signature = decode(
            signature_b64,
            &mut signature,
            &mut signature_heap,
            "signature is not base64url",
        )
        .map_err(|_| AuthError::BadSignature)?;
        let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
        match key.verify(alg, signed, signature) {
            None => return Err(AuthError::KeyAlgorithmMismatch),
            Some(false) => return Err(AuthError::BadSignature),
            Some(true) => {}
        }

        let payload = decode(payload_b64, &mut buf, &mut heap, "payload is not base64url")?;
        let claims = Claims::parse(payload)?;
        let exp = claims.exp.ok_or(AuthError::MissingClaim("exp"))?;
        if now >= exp.saturating_add(self.leeway) {
            return Err(AuthError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| now.saturating_add(self.leeway) < nbf)
        {
            return Err(AuthError::NotYetValid);
        }
        match &claims.iss {
            None => return Err(AuthError::MissingClaim("iss")),
            Some(iss) if **iss != *self.issuer => return Err(AuthError::WrongIssuer),
            Some(_) => {}
        }
        let aud = claims.aud.as_ref().ok_or(AuthError::MissingClaim("aud"))?;
        if !self.audiences.iter().any(|want| aud.contains(want)) {
            return Err(AuthError::WrongAudience);
        }

        Ok(Verified {
            principal: Principal::new(&claims, exp, key.kid(), payload),
            key: key.clone(),
        })
    }
}

/// The three base64url parts of a compact JWS: header, payload, signature.
type Parts<'a> = (&'a [u8], &'a [u8], &'a [u8]);

/// What each byte is in a compact JWS: 1 base64url, 2 the separator, 0 neither.
static JWS_BYTE: [u8; 256] = {
    let mut class = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        class[b] = match b as u8 {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => 1,
            b'.' => 2,
            _ => 0,
        };
        b += 1;
    }
    class
};

/// Splits `header.payload.signature`, refusing anything else: JWE's five
/// parts, empty parts, and any byte outside base64url.
fn split(token: &[u8]) -> Result<Parts<'_>, AuthError> {
    let mut dots = [0usize; 2];
    let mut found = 0;
    for (i, &b) in token.iter().enumerate() {
        match JWS_BYTE[b as usize] {
            1 => {}
            2 if found < 2 => {
                dots[found] = i;
                found += 1;
            }
            2 => return Err(AuthError::Malformed("expected three dot-separated parts")),
            _ => return Err(AuthError::Malformed("a character outside base64url")),
        }
    }
    if found != 2 {
        return Err(AuthError::Malformed("expected three dot-separated parts"));
    }
    let (header, rest) = (&token[..dots[0]], &token[dots[0] + 1..]);
    let (payload, signature) = (&rest[..dots[1] - dots[0] - 1], &token[dots[1] + 1..]);
    if header.is_empty() || payload.is_empty() {
        return Err(AuthError::Malformed("an empty header or payload"));
    }
    Ok((header, payload, signature))
}

/// Decodes strict base64url (no padding, no non-canonical trailing bits)
/// into `stack` when it fits, else into `heap`.
fn decode<'b>(
    input: &[u8],
    stack: &'b mut [u8],
    heap: &'b mut Vec<u8>,
    why: &'static str,
) -> Result<&'b [u8], AuthError> {
    let need = input.len().div_ceil(4) * 3;
    let buf: &mut [u8] = if need <= stack.len() {
        stack
    } else {
        heap.resize(need, 0);
        heap
    };
    match URL_SAFE_NO_PAD.decode_slice(input, buf) {
        Ok(n) => Ok(&buf[..n]),
        Err(_) => Err(AuthError::Malformed(why)),
    }
}

/// The name of a well-known algorithm authgate refuses, to say which in the
/// error without echoing arbitrary bytes from the token.
fn known_alg_name(alg: &str) -> Option<&'static str> {
    [
        "none", "HS256", "HS384", "HS512", "ES512", "ES256K", "Ed25519", "Ed448", "RS1",
    ]
    .into_iter()
    .find(|known| known.eq_ignore_ascii_case(alg))
}

/// The JOSE header members authgate reads. `jku`, `x5u`, `x5c` and `jwk` are
/// deliberately ignored: a token never chooses the key that verifies it.
struct Header<'a> {
    alg: Cow<'a, str>,
    kid: Option<Cow<'a, str>>,
    crit: bool,
}

impl<'a> Header<'a> {
    fn parse(json: &'a [u8]) -> Result<Header<'a>, AuthError> {
        const WHY: &str = "header is not a JSON object with a string `alg`";
        let mut de = serde_json::Deserializer::from_slice(json);
        let header = HeaderVisitor
            .deserialize(&mut de)
            .and_then(|h| de.end().map(|()| h))
            .map_err(|_| AuthError::Malformed(WHY))?;
        Ok(header)
    }
}

struct HeaderVisitor;

impl<'de> DeserializeSeed<'de> for HeaderVisitor {
    type Value = Header<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = Header<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JOSE header")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header<'de>, A::Error> {
        let (mut alg, mut kid, mut crit) = (None, None, false);
        while let Some(key) = map.next_key::<Str>()? {
            match &*key.0 {
                "alg" if alg.is_none() => alg = Some(map.next_value::<Str>()?.0),
                "kid" if kid.is_none() => kid = Some(map.next_value::<Str>()?.0),
                "crit" if !crit => {
                    map.next_value::<IgnoredAny>()?;
                    crit = true;
                }
                "alg" | "kid" | "crit" => return Err(de::Error::custom("repeated member")),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let alg = alg.ok_or_else(|| de::Error::missing_field("alg"))?;
        Ok(Header { alg, kid, crit })
    }
}

/// The registered claims authgate checks, plus `scope` and `permissions`.
#[derive(Default)]
struct Claims<'a> {
    iss: Option<Cow<'a, str>>,
    sub: Option<Cow<'a, str>>,
    aud: Option<Audience<'a>>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    scope: Option<Cow<'a, str>>,
    permissions: Option<Vec<Cow<'a, str>>>,
}

impl<'a> Claims<'a> {
    fn parse(json: &'a [u8]) -> Result<Claims<'a>, AuthError> {
        let bad = Cell::new(None);
        let mut de = serde_json::Deserializer::from_slice(json);
        let claims = ClaimsVisitor { bad: &bad }
            .deserialize(&mut de)
            .and_then(|c| de.end().map(|()| c));
        claims.map_err(|_| match bad.get() {
            Some(name) => AuthError::InvalidClaim(name),
            None => AuthError::Malformed("claims are not a JSON object"),
        })
    }
}

/// Parses the claims, recording which claim was at fault so that the error
/// can name it without quoting the token.
struct ClaimsVisitor<'s> {
    bad: &'s Cell<Option<&'static str>>,
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
            ($slot:expr, $name:literal, $ty:ty, $map:expr) => {{
                let value = if $slot.is_some() {
                    None
                } else {
                    map.next_value::<$ty>().ok()
                };
                match value {
                    Some(v) => $slot = Some($map(v)),
                    None => {
                        self.bad.set(Some($name));
                        return Err(de::Error::custom($name));
                    }
                }
            }};
        }
        while let Some(key) = map.next_key::<Str>()? {
            match &*key.0 {
                "iss" => claim!(c.iss, "iss", Str, |s: Str<'de>| s.0),
                "sub" => claim!(c.sub, "sub", Str, |s: Str<'de>| s.0),
                "aud" => claim!(c.aud, "aud", Audience, |a| a),
                "exp" => claim!(c.exp, "exp", NumericDate, |d: NumericDate| d.0),
                "nbf" => claim!(c.nbf, "nbf", NumericDate, |d: NumericDate| d.0),
                "iat" => claim!(c.iat, "iat", NumericDate, |d: NumericDate| d.0),
                "scope" => claim!(c.scope, "scope", Str, |s: Str<'de>| s.0),
                "permissions" => {
                    claim!(c.permissions, "permissions", Strings, |s: Strings<'de>| s.0)
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(c)
    }
}

/// A JSON string, borrowed from the input when it has no escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Str<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A JSON array of strings.
struct Strings<'a>(Vec<Cow<'a, str>>);

impl<'de> de::Deserialize<'de> for Strings<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strings<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strings<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<Str>()? {
                    out.push(s.0);
                }
                Ok(Strings(out))
            }
        }
        d.deserialize_seq(V)
    }
}

/// `aud`: one string or an array of strings (RFC 7519 §4.1.3).
enum Audience<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

impl Audience<'_> {
    fn contains(&self, want: &str) -> bool {
        match self {
            Audience::One(aud) => aud == want,
            Audience::Many(auds) => auds.iter().any(|aud| aud == want),
        }
    }
}

impl<'de> de::Deserialize<'de> for Audience<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Audience<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Audience<'de>, E> {
                Ok(Audience::One(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Audience<'de>, E> {
                Ok(Audience::One(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Audience<'de>, A::Error> {
                <Strings as de::Deserialize>::deserialize(de::value::SeqAccessDeserializer::new(
                    seq,
                ))
                .map(|s| Audience::Many(s.0))
            }
        }
        d.deserialize_any(V)
    }
}

/// A JSON number of seconds since the epoch (RFC 7519 §2); fractions are
/// dropped, and values beyond `i64` saturate.
struct NumericDate(i64);

impl<'de> de::Deserialize<'de> for NumericDate {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumericDate, E> {
                Ok(NumericDate(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
                Ok(NumericDate(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                if v.is_finite() {
                    // `as` saturates at the bounds of i64.
                    Ok(NumericDate(v.floor() as i64))
                } else {
                    Err(E::custom("not a finite number"))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Who the caller is, from a verified token: what the handler finds in the
/// request's extensions. Cheap to clone.
#[derive(Clone)]
pub struct Principal(Arc<PrincipalInner>);

struct PrincipalInner {
    subject: Box<str>,
    scopes: Box<[Box<str>]>,
    expires_at: i64,
    kid: Option<Box<str>>,
    claims: Box<[u8]>,
}

impl Principal {
    fn new(claims: &Claims<'_>, exp: i64, kid: Option<&str>, payload: &[u8]) -> Principal {
        let mut scopes: Vec<Box<str>> = Vec::new();
        let granted = claims
            .scope
            .iter()
            .flat_map(|s| s.split(' '))
            .chain(claims.permissions.iter().flatten().map(|p| &**p));
        for scope in granted {
            if !scope.is_empty() && !scopes.iter().any(|s| **s == *scope) {
                scopes.push(scope.into());
            }
        }
        Principal(Arc::new(PrincipalInner {
            subject: claims.sub.as_deref().unwrap_or("").into(),
            scopes: scopes.into_boxed_slice(),
            expires_at: exp,
            kid: kid.map(Into::into),
            claims: payload.into(),
        }))
    }

    /// The token's `sub` (empty when it has none).
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// The scopes granted: `scope` split on spaces, then `permissions`,
    /// without repeats, in that order.
    pub fn scopes(&self) -> impl ExactSizeIterator<Item = &str> {
        self.0.scopes.iter().map(|s| &**s)
    }

    /// Whether `scope` was granted, compared exactly.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.0.scopes.iter().any(|s| **s == *scope)
    }

    /// The token's `exp`, in seconds since the Unix epoch.
    pub fn expires_at(&self) -> i64 {
        self.0.expires_at
    }

    /// The `kid` of the key that signed the token.
    pub fn kid(&self) -> Option<&str> {
        self.0.kid.as_deref()
    }

    /// Every claim, deserialized into a type of the caller's choosing, for
    /// claims authgate itself does not read (`email`, `org_id`, ...).
    pub fn claims<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_slice(&self.0.claims)
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("subject", &self.subject())
            .field("scopes", &self.0.scopes)
            .field("expires_at", &self.0.expires_at)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_takes_exactly_three_base64url_parts() {
        let split = |s: &str| split(s.as_bytes()).map(|_| ());
        assert!(split("a.b.c").is_ok());
        assert_eq!(
            split("a.b.c.d.e"),
            Err(AuthError::Malformed("expected three dot-separated parts"))
        );
        assert_eq!(
            split("a.b"),
            Err(AuthError::Malformed("expected three dot-separated parts"))
        );
        assert!(
            split("a.b.").is_ok(),
            "an empty signature is refused after the header is read"
        );
        assert_eq!(
            split(".b.c"),
            Err(AuthError::Malformed("an empty header or payload"))
        );
        for bad in ["a.b.c=", "a.b+.c", "a b.c.d", "a.b.c\n", "á.b.c"] {
            assert_eq!(
                split(bad),
                Err(AuthError::Malformed("a character outside base64url")),
                "{bad}"
            );
        }
    }

    #[test]
    fn claims_name_the_claim_with_the_wrong_type() {
        for (json, name) in [
            (&br#"{"exp":"1"}"#[..], "exp"),
            (br#"{"nbf":true}"#, "nbf"),
            (br#"{"iat":null}"#, "iat"),
            (br#"{"iss":1}"#, "iss"),
            (br#"{"sub":["a"]}"#, "sub"),
            (br#"{"aud":{"a":1}}"#, "aud"),
            (br#"{"aud":["a",1]}"#, "aud"),
            (br#"{"scope":["a"]}"#, "scope"),
            (br#"{"permissions":"a"}"#, "permissions"),
            (br#"{"exp":1,"exp":2}"#, "exp"),
            (br#"{"iss":"a","iss":"b"}"#, "iss"),
        ] {
            match Claims::parse(json) {
                Err(AuthError::InvalidClaim(n)) => assert_eq!(n, name),
                _ => panic!("{} should fail on {name}", String::from_utf8_lossy(json)),
            }
        }
        assert!(matches!(
            Claims::parse(b"[1]"),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            Claims::parse(b"{} {}"),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn numeric_dates_take_integers_and_fractions() {
        let c = Claims::parse(br#"{"exp":1.9,"nbf":-5,"iat":18446744073709551615}"#).unwrap();
        assert_eq!((c.exp, c.nbf, c.iat), (Some(1), Some(-5), Some(i64::MAX)));
    }

    #[test]
    fn headers_need_one_string_alg_and_flag_crit() {
        assert!(Header::parse(br#"{"alg":"RS256","kid":"k"}"#).is_ok());
        assert!(
            Header::parse(br#"{"alg":"RS256","crit":["exp"]}"#)
                .unwrap()
                .crit
        );
        for bad in [
            &br#"{"kid":"k"}"#[..],
            br#"{"alg":1}"#,
            br#"{"alg":"RS256","alg":"none"}"#,
            br#"{"alg":"RS256","kid":7}"#,
            br#"{"alg":"RS256"}x"#,
            b"null",
        ] {
            assert!(
                Header::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

//! Token validation: a compact JWS checked against the key set (algorithm,
//! signature) and the configuration (issuer, audience, expiry), yielding the
//! caller's [`Principal`].
//!
//! The parser is ours rather than jsonwebtoken's `decode` for two reasons that
//! the benchmarks measure: keys are parsed once per key set instead of once per
//! token, and nothing is allocated until the signature has verified. It is
//! also stricter: claims of the wrong JSON type, repeated claims, `crit`
//! extensions, `typ`s that are not an access token's and oversize tokens are
//! refused by name. jsonwebtoken is kept as the reference it is checked
//! against (`tests/it/differential.rs`): what jsonwebtoken refuses, this
//! refuses too.

use std::{borrow::Cow, cell::Cell, fmt, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

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
    /// The only `typ` accepted (`--require-typ`), compared without case and
    /// with `application/` optional, so `at+jwt` also accepts
    /// `application/at+jwt`. `None`: an absent `typ`, `JWT`, `at+jwt` and
    /// `application/at+jwt`.
    pub require_typ: Option<String>,
}

/// The `typ` values accepted when none is required: an access token's
/// (RFC 9068 §2.1) or a plain JWT's. A DPoP proof, a logout token and the
/// like are never access tokens (RFC 8725 §3.11).
pub const ACCEPTED_TYPS: [&str; 3] = ["JWT", "at+jwt", "application/at+jwt"];

/// Checks tokens against one issuer's rules. Holds no keys: they come with
/// each call from the key set the refresher last published.
#[derive(Debug, Clone)]
pub struct Validator {
    issuer: Box<str>,
    audiences: Box<[Box<str>]>,
    leeway: i64,
    /// `--require-typ` without its optional `application/`.
    require_typ: Option<Box<str>>,
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
            require_typ: config
                .require_typ
                .map(|typ| media_subtype(typ.trim()).into()),
        }
    }

    /// Whether a token whose header says `typ` (or nothing) is accepted.
    pub fn accepts_typ(&self, typ: Option<&str>) -> bool {
        match (&self.require_typ, typ) {
            (None, None) => true,
            (None, Some(typ)) => ACCEPTED_TYPS.iter().any(|t| t.eq_ignore_ascii_case(typ)),
            (Some(_), None) => false,
            (Some(want), Some(typ)) => media_subtype(typ).eq_ignore_ascii_case(want),
        }
    }

    /// The clock skew allowed, in seconds.
    pub fn leeway(&self) -> i64 {
        self.leeway
    }

    /// The exact `iss` this validator requires.
    pub fn issuer(&self) -> &str {
        &self.issuer
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
        if header.jwk {
            return Err(AuthError::EmbeddedKey);
        }
        if !self.accepts_typ(header.typ.as_deref()) {
            return Err(AuthError::TypeNotAccepted);
        }
        let key = match header.kid.as_deref() {
            // A kid may name keys of several types: the one for `alg`.
            Some(kid) => keys
                .named(kid)
                .ok_or(AuthError::UnknownKeyId)?
                .iter()
                .find(|key| key.verifies(alg))
                .ok_or(AuthError::KeyAlgorithmMismatch)?,
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
        // A fraction of a second counts against the token: `exp` rounds
        // down, `nbf` up.
        let exp = claims.exp.ok_or(AuthError::MissingClaim("exp"))?.floor();
        if now >= exp.saturating_add(self.leeway) {
            return Err(AuthError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| now.saturating_add(self.leeway) < nbf.ceil())
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
            principal: Principal::new(&claims, exp, self.leeway, key.kid(), payload),
            key: key.clone(),
        })
    }
}

/// Finds which configured issuer a token claims to come from, so that it is
/// checked with that issuer's keys and rules: `find` gets the payload's
/// `iss` and says which issuer, if any, it names exactly.
///
/// This reads the payload before the signature is verified, and only to
/// choose a key set: nothing else is taken from it, and the chosen
/// [`Validator`] checks `iss` again once the signature has verified, so a
/// token can only pick the issuer whose key must have signed it. A token that
/// names no configured issuer is refused here, before any key is looked up,
/// so it cannot make the gate fetch anything.
///
/// Allocation-free for any token whose `iss` lies in the first KiB of its
/// payload (every issuer we know writes it near the start): only the start
/// is decoded, onto the stack, and parsing stops at `iss`.
pub fn claimed_issuer<T>(
    token: &[u8],
    mut find: impl FnMut(&str) -> Option<T>,
) -> Result<T, AuthError> {
    const WHY: &str = "payload is not base64url";
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::TooLong {
            max: MAX_TOKEN_BYTES,
        });
    }
    // Only the payload is needed here, and `split`'s check of every byte
    // comes with validation: two `memchr`s find it. Whatever is malformed
    // is reported as validation would report it.
    let malformed = |error: AuthError| split(token).and(Err(error));
    let payload_b64 = memchr::memchr(b'.', token)
        .map(|dot| &token[dot + 1..])
        .and_then(|rest| memchr::memchr(b'.', rest).map(|dot| &rest[..dot]));
    let Some(payload_b64) = payload_b64 else {
        return malformed(AuthError::Malformed("expected three dot-separated parts"));
    };
    let (mut buf, mut heap) = ([0u8; STACK_DECODED], Vec::new());
    // First the start of the payload, where issuers write `iss`, in whole
    // groups of four characters (which decode on their own), on the stack;
    // then all of it.
    for prefix in [256, STACK_DECODED / 3 * 4] {
        if payload_b64.len() <= prefix {
            break;
        }
        let Ok(start) = decode(&payload_b64[..prefix], &mut buf, &mut heap, WHY) else {
            return malformed(AuthError::Malformed(WHY));
        };
        if let (_, Some(iss)) = peek_iss(start) {
            return find(&iss).ok_or(AuthError::WrongIssuer);
        }
    }
    let Ok(payload) = decode(payload_b64, &mut buf, &mut heap, WHY) else {
        return malformed(AuthError::Malformed(WHY));
    };
    match peek_iss(payload) {
        (_, Some(iss)) => find(&iss).ok_or(AuthError::WrongIssuer),
        (IssPeek::Absent, None) => Err(AuthError::MissingClaim("iss")),
        (IssPeek::NotAString, None) => Err(AuthError::InvalidClaim("iss")),
        (IssPeek::NotAnObject, None) => {
            malformed(AuthError::Malformed("claims are not a JSON object"))
        }
    }
}

/// How a search for `iss` ended, when it found no string.
#[derive(Clone, Copy)]
enum IssPeek {
    /// The payload is a JSON object without `iss`.
    Absent,
    /// `iss` is there, but not a string.
    NotAString,
    /// The payload is not a JSON object (or ended early: a prefix).
    NotAnObject,
}

/// The first top-level `iss` of a JSON object, stopping as soon as it is
/// read. `json` may be a prefix of the payload: what is read before the cut
/// is what a parse of the whole would read, and a cut before `iss` is found
/// is `NotAnObject`.
///
/// A scanner rather than serde_json, because serde_json reports an object
/// left unfinished as an error, and its errors are allocated: stopping at
/// `iss` would cost an allocation on every call. On valid JSON it reads what
/// serde_json reads (escaped names and values are unescaped by serde_json
/// itself); on anything else its answer only picks the key set, and the
/// parse after the signature refuses the token.
fn peek_iss(json: &[u8]) -> (IssPeek, Option<Cow<'_, str>>) {
    let mut scan = Scan { json, at: 0 };
    if scan.next() != Some(b'{') {
        return (IssPeek::NotAnObject, None);
    }
    if scan.peek() == Some(b'}') {
        return (IssPeek::Absent, None);
    }
    loop {
        let Some(name) = scan.string() else {
            return (IssPeek::NotAnObject, None);
        };
        if scan.next() != Some(b':') {
            return (IssPeek::NotAnObject, None);
        }
        if unescape(name).as_deref() == Some("iss") {
            return match scan.peek() {
                Some(b'"') => match scan.string().and_then(unescape) {
                    Some(iss) => (IssPeek::NotAString, Some(iss)),
                    None => (IssPeek::NotAnObject, None),
                },
                Some(_) => (IssPeek::NotAString, None),
                None => (IssPeek::NotAnObject, None),
            };
        }
        if !scan.skip_value() {
            return (IssPeek::NotAnObject, None);
        }
        match scan.next() {
            Some(b',') => continue,
            Some(b'}') => return (IssPeek::Absent, None),
            _ => return (IssPeek::NotAnObject, None),
        }
    }
}

/// A JSON string's contents (between its quotes, escapes as written) as
/// text: borrowed when it has no escapes, else unescaped by serde_json.
fn unescape(raw: &[u8]) -> Option<Cow<'_, str>> {
    if !raw.contains(&b'\\') {
        return std::str::from_utf8(raw).ok().map(Cow::Borrowed);
    }
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice::<String>(&quoted)
        .ok()
        .map(Cow::Owned)
}

/// A cursor over JSON text that finds where values end without building them.
struct Scan<'a> {
    json: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    /// The next byte that is not white space, without taking it.
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.json.get(self.at) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    /// Takes the next byte that is not white space.
    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    /// Takes a string and gives its contents as written; `None` if the
    /// next value is not a string or the text ends inside it.
    fn string(&mut self) -> Option<&'a [u8]> {
        if self.next()? != b'"' {
            return None;
        }
        let start = self.at;
        loop {
            match *self.json.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return Some(&self.json[start..self.at - 1]);
                }
                b'\\' => self.at += 2,
                _ => self.at += 1,
            }
        }
    }

    /// Takes one value of any kind; false if the text ends inside it.
    fn skip_value(&mut self) -> bool {
        match self.peek() {
            None => false,
            Some(b'"') => self.string().is_some(),
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                loop {
                    match self.peek() {
                        None => return false,
                        Some(b'"') => {
                            if self.string().is_none() {
                                return false;
                            }
                        }
                        Some(b) => {
                            self.at += 1;
                            match b {
                                b'{' | b'[' => depth += 1,
                                b'}' | b']' => {
                                    depth -= 1;
                                    if depth == 0 {
                                        return true;
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                }
            }
            // A number, `true`, `false` or `null`: up to what ends it.
            Some(_) => {
                while let Some(&b) = self.json.get(self.at) {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        return true;
                    }
                    self.at += 1;
                }
                false
            }
        }
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
        "none", "HS256", "HS384", "HS512", "ES512", "ES256K", "Ed448", "RS1",
    ]
    .into_iter()
    .find(|known| known.eq_ignore_ascii_case(alg))
}

/// A media type without its optional `application/` (RFC 7515 §4.1.9).
fn media_subtype(typ: &str) -> &str {
    match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    }
}

/// The JOSE header members authgate reads. `jku`, `x5u` and `x5c` are never
/// used to find a key, and a `jwk` refuses the token: a token never chooses
/// the key that verifies it.
struct Header<'a> {
    alg: Cow<'a, str>,
    kid: Option<Cow<'a, str>>,
    typ: Option<Cow<'a, str>>,
    crit: bool,
    jwk: bool,
}

impl<'a> Header<'a> {
    /// Parses the header as strictly as jsonwebtoken's `Header`, and more:
    /// the registered members it knows must have their types, no member may
    /// repeat, and every other member must be JSON that serde_json reads.
    fn parse(json: &'a [u8]) -> Result<Header<'a>, AuthError> {
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
struct HeaderVisitor<'s> {
    bad: &'s Cell<Option<&'static str>>,
}

impl<'de> DeserializeSeed<'de> for HeaderVisitor<'_> {
    type Value = Header<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

/// Header members that jsonwebtoken reads as strings (RFC 7515, 7516, 8555).
const STRING_HEADER_MEMBERS: [&str; 9] = [
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

/// Any JSON value, read as serde_json reads one into a `Value`, and more
/// strictly: no object in it names a member twice. So every string is valid
/// Unicode (no lone surrogate escape) and every number fits an `f64`, and the
/// value reads back the same whatever type it is read into.
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Strict)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut names = Names::new();
        while let Some(key) = map.next_key::<Str>()? {
            if !names.insert(key.0) {
                return Err(de::Error::custom("repeated member"));
            }
            map.next_value_seed(Strict)?;
        }
        Ok(())
    }
}

/// The member names of one JSON object, to refuse a name given twice. The
/// first few live on the stack, so that an ordinary token allocates nothing
/// for them; names are borrowed from the token unless they hold escapes.
struct Names<'de> {
    inline: [Cow<'de, str>; NAMES_INLINE],
    len: usize,
    spill: Vec<Cow<'de, str>>,
}

const NAMES_INLINE: usize = 8;

impl<'de> Names<'de> {
    fn new() -> Names<'de> {
        Names {
            inline: [const { Cow::Borrowed("") }; NAMES_INLINE],
            len: 0,
            spill: Vec::new(),
        }
    }

    /// Adds `name`; false when it is there already.
    fn insert(&mut self, name: Cow<'de, str>) -> bool {
        let held = &self.inline[..self.len.min(NAMES_INLINE)];
        if held.iter().chain(&self.spill).any(|n| *n == name) {
            return false;
        }
        match self.inline.get_mut(self.len) {
            Some(slot) => *slot = name,
            None => self.spill.push(name),
        }
        self.len += 1;
        true
    }
}

/// The registered claims authgate checks, plus the scopes: `scope`, `scp`
/// and `permissions`.
#[derive(Default)]
struct Claims<'a> {
    iss: Option<Cow<'a, str>>,
    sub: Option<Cow<'a, str>>,
    aud: Option<OneOrMany<'a>>,
    exp: Option<NumericDate>,
    nbf: Option<NumericDate>,
    iat: Option<NumericDate>,
    scope: Option<OneOrMany<'a>>,
    scp: Option<OneOrMany<'a>>,
    permissions: Option<Vec<Cow<'a, str>>>,
}

/// What made the claims unreadable.
#[derive(Clone, Copy)]
enum ClaimFault {
    /// A claim authgate reads, of the wrong type or given twice.
    Claim(&'static str),
    /// Another claim given twice, or holding what serde_json will not read.
    Unchecked,
}

impl<'a> Claims<'a> {
    fn parse(json: &'a [u8]) -> Result<Claims<'a>, AuthError> {
        let bad = Cell::new(None);
        let mut de = serde_json::Deserializer::from_slice(json);
        let claims = ClaimsVisitor { bad: &bad }
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
struct ClaimsVisitor<'s> {
    bad: &'s Cell<Option<ClaimFault>>,
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
        while let Some(key) = map.next_key::<Str>()? {
            match &*key.0 {
                "iss" => claim!(c.iss, "iss", Str, |s: Str<'de>| s.0),
                "sub" => claim!(c.sub, "sub", Str, |s: Str<'de>| s.0),
                "aud" => claim!(c.aud, "aud", OneOrMany, |a| a),
                "exp" => claim!(c.exp, "exp", NumericDate, |d| d),
                "nbf" => claim!(c.nbf, "nbf", NumericDate, |d| d),
                "iat" => claim!(c.iat, "iat", NumericDate, |d| d),
                "scope" => claim!(c.scope, "scope", OneOrMany, |s| s),
                "scp" => claim!(c.scp, "scp", OneOrMany, |s| s),
                "permissions" => {
                    claim!(c.permissions, "permissions", Strings, |s: Strings<'de>| s.0)
                }
                _ => {
                    if !unchecked.insert(key.0) || map.next_value_seed(Strict).is_err() {
                        self.bad.set(Some(ClaimFault::Unchecked));
                        return Err(de::Error::custom("unchecked claim"));
                    }
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

/// One string or an array of strings: `aud` (RFC 7519 §4.1.3), and `scope`
/// and `scp`, which issuers write either way (a space-separated string, as
/// Auth0 and Azure AD do, or an array, as Okta does).
enum OneOrMany<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

impl OneOrMany<'_> {
    fn contains(&self, want: &str) -> bool {
        match self {
            OneOrMany::One(one) => one == want,
            OneOrMany::Many(many) => many.iter().any(|one| one == want),
        }
    }

    /// The scopes it grants: a string split on spaces, an array's elements
    /// as they are.
    fn scopes(&self) -> impl Iterator<Item = &str> {
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
struct NumericDate {
    /// The whole seconds.
    secs: i64,
    /// Whether a fraction of a second followed.
    fraction: bool,
}

impl NumericDate {
    /// Rounded down: how `exp` counts.
    fn floor(self) -> i64 {
        self.secs
    }

    /// Rounded up: how `nbf` counts.
    fn ceil(self) -> i64 {
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

/// Who the caller is, from a verified token: what the handler finds in the
/// request's extensions. Cheap to clone.
#[derive(Clone)]
pub struct Principal(Arc<PrincipalInner>);

struct PrincipalInner {
    subject: Box<str>,
    scopes: Box<[Box<str>]>,
    expires_at: i64,
    /// `exp` plus the leeway of the issuer that accepted it.
    accepted_until: i64,
    kid: Option<Box<str>>,
    claims: Box<[u8]>,
}

impl Principal {
    fn new(
        claims: &Claims<'_>,
        exp: i64,
        leeway: i64,
        kid: Option<&str>,
        payload: &[u8],
    ) -> Principal {
        let mut scopes: Vec<Box<str>> = Vec::new();
        let granted = [&claims.scope, &claims.scp]
            .into_iter()
            .flatten()
            .flat_map(OneOrMany::scopes)
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
            accepted_until: exp.saturating_add(leeway),
            kid: kid.map(Into::into),
            claims: payload.into(),
        }))
    }

    /// The token's `sub` (empty when it has none).
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// The scopes granted: `scope`, then `scp` (each split on spaces when a
    /// string, element by element when an array), then `permissions`,
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
            (br#"{"scope":1}"#, "scope"),
            (br#"{"scope":["a",1]}"#, "scope"),
            (br#"{"scp":{"a":1}}"#, "scp"),
            (br#"{"scp":"a","scp":"b"}"#, "scp"),
            (br#"{"permissions":"a"}"#, "permissions"),
            (br#"{"exp":-1}"#, "exp"),
            (br#"{"nbf":-0.5}"#, "nbf"),
            (br#"{"exp":1e19}"#, "exp"),
            (br#"{"iat":1e400}"#, "iat"),
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
    fn the_claimed_issuer_is_the_first_top_level_iss_wherever_it_is() {
        let token = |payload: &str| format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode(payload));
        let issuers = ["https://a.example/", "https://b.example/"];
        let find =
            |t: &str| claimed_issuer(t.as_bytes(), |iss| issuers.iter().position(|i| *i == iss));
        let pad = |n: usize| "x".repeat(n);
        assert_eq!(find(&token(r#"{"iss":"https://b.example/"}"#)), Ok(1));
        assert_eq!(
            find(&token(r#"{"sub":"u","iss":"https:\/\/a.example\/"}"#)),
            Ok(0)
        );
        // Past the stack prefix, and straddling its end, in every position.
        let far = format!(r#"{{"pad":"{}","iss":"https://b.example/"}}"#, pad(3000));
        assert_eq!(find(&token(&far)), Ok(1));
        for n in (150..210).chain(960..1040) {
            let near = format!(
                r#"{{"pad":"{}","iss":"https://a.example/","more":"{}"}}"#,
                pad(n),
                pad(500)
            );
            assert_eq!(find(&token(&near)), Ok(0), "{n}");
        }
        let early = format!(r#"{{"iss":"https://a.example/","pad":"{}"}}"#, pad(3000));
        assert_eq!(find(&token(&early)), Ok(0));
        // Found in the first KiB, `iss` is all that is read: what follows is
        // validation's to judge (here a byte no base64url has, past the
        // stack prefix), and the look at `iss` decodes no more than that.
        let first_kib = format!(r#"{{"pad":"{}","iss":"https://b.example/"}}"#, pad(700));
        let tail = format!("{}{}", URL_SAFE_NO_PAD.encode(&first_kib), "A".repeat(600));
        let with_junk = format!("e30.{}!.c2ln", &tail[..STACK_DECODED / 3 * 4 + 100]);
        assert_eq!(find(&with_junk), Ok(1));
        for (payload, error) in [
            (r#"{"iss":"https://c.example/"}"#, AuthError::WrongIssuer),
            (r#"{"iss":"https://a.example"}"#, AuthError::WrongIssuer),
            (r#"{"sub":"u"}"#, AuthError::MissingClaim("iss")),
            (
                r#"{"a":{"iss":"https://a.example/"}}"#,
                AuthError::MissingClaim("iss"),
            ),
            (
                r#"{"iss":["https://a.example/"]}"#,
                AuthError::InvalidClaim("iss"),
            ),
            (
                r#"[{"iss":"https://a.example/"}]"#,
                AuthError::Malformed("claims are not a JSON object"),
            ),
            (
                "not json",
                AuthError::Malformed("claims are not a JSON object"),
            ),
        ] {
            assert_eq!(find(&token(payload)), Err(error), "{payload}");
        }
        assert_eq!(
            find("e30.!!!.c2ln"),
            Err(AuthError::Malformed("a character outside base64url"))
        );
        assert_eq!(
            find("e30.e30"),
            Err(AuthError::Malformed("expected three dot-separated parts"))
        );
        assert!(matches!(
            find(&"a".repeat(MAX_TOKEN_BYTES + 1)),
            Err(AuthError::TooLong { .. })
        ));
    }

    #[test]
    fn peeking_at_iss_reads_what_serde_json_reads() {
        let docs = [
            r#"{"iss":"https://a.example/"}"#,
            r#" { "sub" : "u" , "iss" : "https://a.example/" } "#,
            r#"{"aud":["x","y"],"n":{"iss":"nested","a":[1,{"iss":"deeper"}]},"iss":"top"}"#,
            r#"{"note":"\"iss\":\"fake\"","iss":"real"}"#,
            r#"{"a\"b":"\\","i\u0073s":"escaped name"}"#,
            r#"{"iss":"https:\/\/a.example\/\u00e9"}"#,
            r#"{"exp":1.5e3,"nbf":-2,"t":true,"f":false,"z":null,"iss":"after literals"}"#,
            r#"{"s":"[{not a bracket","iss":"after brackets in a string"}"#,
            r#"{"iss":"ünïcödé"}"#,
            r#"{"sub":"u"}"#,
            r#"{}"#,
            r#"{"iss":7}"#,
            r#"{"iss":["a"]}"#,
            r#"{"iss":null}"#,
        ];
        for doc in docs {
            let value: serde_json::Value = serde_json::from_str(doc).unwrap();
            let want = value.get("iss");
            let (how, got) = peek_iss(doc.as_bytes());
            match want {
                Some(serde_json::Value::String(iss)) => {
                    assert_eq!(got.as_deref(), Some(iss.as_str()), "{doc}")
                }
                Some(_) => assert!(got.is_none() && matches!(how, IssPeek::NotAString), "{doc}"),
                None => assert!(got.is_none() && matches!(how, IssPeek::Absent), "{doc}"),
            }
            // A cut anywhere finds the same `iss` or none.
            for cut in 0..doc.len() {
                let (_, early) = peek_iss(&doc.as_bytes()[..cut]);
                assert!(early.is_none() || early == got, "{doc} cut at {cut}");
            }
        }
        for bad in [
            "",
            "[]",
            "\"iss\"",
            "{\"iss\"}",
            "{\"iss\":\"unterminated",
            "{1:2}",
            "{\"a\":1 \"iss\":\"x\"}",
        ] {
            assert!(peek_iss(bad.as_bytes()).1.is_none(), "{bad}");
        }
    }

    #[test]
    fn numeric_dates_take_integers_and_fractions() {
        let c = Claims::parse(br#"{"exp":1.9,"nbf":2.1,"iat":18446744073709551615}"#).unwrap();
        let (exp, nbf, iat) = (c.exp.unwrap(), c.nbf.unwrap(), c.iat.unwrap());
        assert_eq!((exp.floor(), exp.ceil()), (1, 2));
        assert_eq!((nbf.floor(), nbf.ceil()), (2, 3));
        assert_eq!((iat.floor(), iat.ceil()), (i64::MAX, i64::MAX));
        // serde_json reads `-0` as -0.0, which jsonwebtoken takes as 0.
        let c = Claims::parse(br#"{"exp":0,"nbf":-0}"#).unwrap();
        assert_eq!((c.exp.unwrap().ceil(), c.nbf.unwrap().ceil()), (0, 0));
    }

    #[test]
    fn scopes_come_from_scope_scp_and_permissions_in_either_shape() {
        let payload = br#"{"scope":"a b","scp":["c d","a",""],"permissions":["e","b"]}"#;
        let claims = Claims::parse(payload).unwrap();
        let principal = Principal::new(&claims, 0, 0, None, payload);
        assert_eq!(
            principal.scopes().collect::<Vec<_>>(),
            ["a", "b", "c d", "e"]
        );
        let payload = br#"{"scope":["x"],"scp":"y z"}"#;
        let principal = Principal::new(&Claims::parse(payload).unwrap(), 0, 0, None, payload);
        assert_eq!(principal.scopes().collect::<Vec<_>>(), ["x", "y", "z"]);
    }

    #[test]
    fn unchecked_claims_must_read_back_as_checked() {
        let refused = [
            // Repeated, at the top or deeper, where serde_json keeps the last.
            &br#"{"email":"a","email":"b"}"#[..],
            br#"{"org":{"id":1,"id":2}}"#,
            br#"{"a":[{"k":1,"k":1}]}"#,
            br#"{"e\u006dail":"a","email":"b"}"#,
            // Text or numbers serde_json will not read back.
            br#"{"name":"\udc00"}"#,
            b"{\"name\":\"\xff\"}",
            br#"{"big":1e400}"#,
        ];
        for json in refused {
            assert!(
                matches!(Claims::parse(json), Err(AuthError::Malformed(why)) if why.contains("repeated")),
                "{} passed",
                String::from_utf8_lossy(json)
            );
        }
        let fine = br#"{"email":"a","org":{"id":1,"name":"\u00e9"},"list":[1,2.5,null,true,{}]}"#;
        let claims = Claims::parse(fine).unwrap();
        let principal = Principal::new(&claims, 0, 0, None, fine);
        let value: serde_json::Value = principal.claims().unwrap();
        assert_eq!(value["org"]["name"], "\u{e9}");
    }

    #[test]
    fn names_find_repeats_past_the_inline_ones() {
        let mut names = Names::new();
        for i in 0..20 {
            assert!(names.insert(Cow::Owned(format!("n{i}"))));
        }
        for i in 0..20 {
            assert!(!names.insert(Cow::Owned(format!("n{i}"))), "n{i}");
        }
    }

    #[test]
    fn typ_is_an_access_tokens_unless_narrowed() {
        let validator = |require: Option<&str>| {
            Validator::new(ValidationConfig {
                issuer: "i".into(),
                audiences: vec!["a".into()],
                leeway: Duration::ZERO,
                require_typ: require.map(Into::into),
            })
        };
        let default = validator(None);
        for typ in [
            None,
            Some("JWT"),
            Some("jwt"),
            Some("at+jwt"),
            Some("AT+JWT"),
            Some("application/at+jwt"),
            Some("Application/AT+JWT"),
        ] {
            assert!(default.accepts_typ(typ), "{typ:?}");
        }
        for typ in [
            "dpop+jwt",
            "logout+jwt",
            "secevent+jwt",
            "JWS",
            "",
            "at+jwt ",
            "application/jwt+at",
            "application/",
        ] {
            assert!(!default.accepts_typ(Some(typ)), "{typ}");
        }
        for require in ["at+jwt", "application/at+jwt", "AT+JWT"] {
            let narrow = validator(Some(require));
            assert!(narrow.accepts_typ(Some("at+jwt")));
            assert!(narrow.accepts_typ(Some("application/at+jwt")));
            for typ in [None, Some("JWT"), Some("dpop+jwt")] {
                assert!(!narrow.accepts_typ(typ), "{require}: {typ:?}");
            }
        }
    }

    #[test]
    fn headers_need_one_string_alg_and_flag_crit() {
        assert!(Header::parse(br#"{"alg":"RS256","kid":"k"}"#).is_ok());
        let fine = br#"{"alg":"RS256","typ":"at+jwt","cty":"x","x5c":["MII"],"x5t":"a","b64":true,"other":{"a":[1]}}"#;
        assert_eq!(Header::parse(fine).unwrap().typ.as_deref(), Some("at+jwt"));
        assert!(
            Header::parse(br#"{"alg":"RS256","crit":["exp"]}"#)
                .unwrap()
                .crit
        );
        assert!(
            Header::parse(br#"{"alg":"RS256","jwk":{"kty":"OKP"}}"#)
                .unwrap()
                .jwk
        );
        for bad in [&br#"{"kid":"k"}"#[..], br#"{"alg":"RS256"}x"#, b"null"] {
            assert!(
                matches!(Header::parse(bad), Err(AuthError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Members jsonwebtoken would refuse are refused, by name.
        for (bad, name) in [
            (&br#"{"alg":"RS256","alg":"none"}"#[..], "alg"),
            (br#"{"alg":1}"#, "alg"),
            (br#"{"alg":"RS256","kid":7}"#, "kid"),
            (br#"{"alg":"RS256","typ":["JWT"]}"#, "typ"),
            (br#"{"alg":"RS256","typ":"JWT","typ":"JWT"}"#, "typ"),
            (br#"{"alg":"RS256","cty":1}"#, "cty"),
            (br#"{"alg":"RS256","x5c":"MII"}"#, "x5c"),
            (br#"{"alg":"RS256","x5t#S256":null}"#, "x5t#S256"),
            (br#"{"alg":"RS256","b64":false}"#, "b64"),
            (br#"{"alg":"RS256","b64":"yes"}"#, "b64"),
            (br#"{"alg":"RS256","jku":"a","jku":"b"}"#, "jku"),
            (br#"{"alg":"RS256","x":1,"x":1}"#, "(another member)"),
            (br#"{"alg":"RS256","x":"\ud800"}"#, "(another member)"),
            (br#"{"alg":"RS256","x":1e999}"#, "(another member)"),
        ] {
            match Header::parse(bad) {
                Err(AuthError::InvalidHeader(n)) => assert_eq!(n, name),
                _ => panic!("{} should fail on {name}", String::from_utf8_lossy(bad)),
            }
        }
    }
}

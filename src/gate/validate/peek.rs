//! The issuer peek: which configured issuer a token names in `iss`, read
//! before the signature only to choose the key set that must have signed it.

use std::borrow::Cow;

use super::compact::{MAX_TOKEN_BYTES, STACK_DECODED, decode, split};
use crate::error::AuthError;

/// Finds which configured issuer a token claims to come from, so that it is
/// checked with that issuer's keys and rules: `find` gets the payload's
/// `iss` and says which issuer, if any, it names exactly.
///
/// This reads the payload before the signature is verified, and only to
/// choose a key set: nothing else is taken from it, and the chosen
/// [`Validator`](crate::Validator) checks `iss` again once the signature has verified, so a
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
pub(super) enum IssPeek {
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
pub(super) fn peek_iss(json: &[u8]) -> (IssPeek, Option<Cow<'_, str>>) {
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
pub(super) fn unescape(raw: &[u8]) -> Option<Cow<'_, str>> {
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
pub(super) struct Scan<'a> {
    pub(super) json: &'a [u8],
    pub(super) at: usize,
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

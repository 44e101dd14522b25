//! The compact serialization: three base64url parts split and decoded,
//! on the stack when they fit.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::error::AuthError;

/// The longest token authgate reads; longer ones are refused before parsing.
pub const MAX_TOKEN_BYTES: usize = 8192;
/// Stack room for a decoded header or payload; larger ones go to the heap.
/// Zeroing room for the largest (6 KiB) on every call cost 2% of a cold
/// RS256 check (callgrind).
pub(super) const STACK_DECODED: usize = 1024;

/// The three base64url parts of a compact JWS: header, payload, signature.
pub(super) type Parts<'a> = (&'a [u8], &'a [u8], &'a [u8]);

/// What each byte is in a compact JWS: 1 base64url, 2 the separator, 0 neither.
pub(super) static JWS_BYTE: [u8; 256] = {
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
pub(super) fn split(token: &[u8]) -> Result<Parts<'_>, AuthError> {
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
pub(super) fn decode<'b>(
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

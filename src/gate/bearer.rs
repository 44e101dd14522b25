//! `Bearer <token>` from the `authorization` values.

use crate::{error::AuthError, gate::validate::MAX_TOKEN_BYTES};

/// Extracts the token from `Bearer <token>`: exactly one value, the scheme in
/// any case, one or more spaces, then the token. Its characters are checked
/// by validation; a cache hit needs no check, being a verified token's bytes.
pub fn bearer_token<'a>(
    authorization: impl IntoIterator<Item = &'a [u8]>,
) -> Result<&'a [u8], AuthError> {
    let mut values = authorization.into_iter();
    let value = values.next().ok_or(AuthError::MissingAuthorization)?;
    if values.next().is_some() {
        return Err(AuthError::DuplicateAuthorization);
    }
    // Scheme, spaces and a token at its longest.
    if value.len() > MAX_TOKEN_BYTES + 64 {
        return Err(AuthError::TooLong {
            max: MAX_TOKEN_BYTES,
        });
    }
    let space = value
        .iter()
        .position(|b| *b == b' ')
        .ok_or(AuthError::NotBearer)?;
    if !value[..space].eq_ignore_ascii_case(b"bearer") {
        return Err(AuthError::NotBearer);
    }
    let start = space + value[space..].iter().take_while(|b| **b == b' ').count();
    let token = &value[start..];
    if token.is_empty() {
        return Err(AuthError::NotBearer);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::TooLong {
            max: MAX_TOKEN_BYTES,
        });
    }
    Ok(token)
}

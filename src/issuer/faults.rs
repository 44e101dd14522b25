//! The ways tests make the dev issuer misbehave.

use std::time::Duration;

/// How the JWKS endpoint misbehaves, for tests of the refresher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksFault {
    /// Serve the published keys.
    None,
    /// Answer with this HTTP status and no keys.
    Status(u16),
    /// Answer 200 with a body that is not JSON.
    Garbage,
    /// Answer 200 with `{"keys": []}`.
    Empty,
    /// Answer correctly, after this long.
    Delay(Duration),
    /// Never answer.
    Hang,
    /// Redirect (302) to this URL.
    Redirect(String),
    /// Redirect this many times within the issuer's origin (to the JWKS path
    /// with `?hop=N`), then answer with the key set. Only the first request
    /// of a fetch counts in [`DevIssuer::jwks_hits`](super::DevIssuer::jwks_hits).
    Redirects(usize),
    /// Answer 200 with the JWKS padded to exactly this many bytes (an
    /// unread member added), sent with its `Content-Length`.
    Padded(usize),
    /// The same, streamed in chunks without `Content-Length`, so that only
    /// counting the bytes as they arrive can stop it.
    PaddedChunked(usize),
    /// Answer 200 declaring a body of this many bytes, then never send it: a
    /// reader that does not refuse by the declared length waits forever.
    DeclaredLengthOnly(u64),
}

/// What the next token request gets instead of a token, for tests of the
/// token source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFault {
    /// The HTTP status to answer.
    pub status: u16,
    /// A `Retry-After` header, in seconds.
    pub retry_after: Option<u64>,
}

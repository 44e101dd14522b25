//! One issuer key, parsed once into the verifier of each algorithm it signs with.

use std::fmt;

use aws_lc_rs::signature::ParsedPublicKey;

use super::Algorithm;

/// One public key from the issuer, parsed once into the verifier of every
/// algorithm it may sign with.
pub struct VerifyingKey {
    pub(super) kid: Option<Box<str>>,
    /// The JWK's public parameters, to tell a key that a refresh lists again
    /// (reused as is) from a new key under an old `kid`.
    pub(super) material: Box<str>,
    /// One parsed key per algorithm: the JWK's declared `alg` alone when it
    /// has one, otherwise every algorithm of its type.
    pub(super) verifiers: Box<[(Algorithm, ParsedPublicKey)]>,
}

impl VerifyingKey {
    /// The key's `kid`, if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithms this key verifies.
    pub fn algorithms(&self) -> impl Iterator<Item = Algorithm> + '_ {
        self.verifiers.iter().map(|(alg, _)| *alg)
    }

    /// Whether this key verifies `alg`.
    #[inline]
    pub fn verifies(&self, alg: Algorithm) -> bool {
        self.verifiers.iter().any(|(a, _)| *a == alg)
    }

    /// Whether `signature` over `message` verifies with this key under `alg`.
    /// `None` when the key is not for `alg`.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> Option<bool> {
        let (_, key) = self.verifiers.iter().find(|(a, _)| *a == alg)?;
        Some(key.verify_sig(message, signature).is_ok())
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms().collect::<Vec<_>>())
            .finish()
    }
}

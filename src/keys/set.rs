//! The immutable key set the refresher publishes, parsed from a JWKS key by key.

use std::{collections::HashMap, sync::Arc};

use serde::Deserialize;

use super::jwk::Jwk;
use super::{Algorithm, VerifyingKey};
use crate::util::json_error;

/// A key the JWKS listed that authgate will not verify with, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// The key's `kid`, if it had a readable one.
    pub kid: Option<String>,
    /// Why it was skipped.
    pub reason: String,
}

/// The issuer's usable keys at one moment. Immutable: a refresh builds a new
/// one and publishes it whole, so a key the issuer withdraws is gone at once.
/// It may be empty: an issuer that lists no usable key has withdrawn them all.
#[derive(Debug, Default)]
pub struct KeySet {
    /// Keys by `kid`. A `kid` may name several keys of different types (RFC
    /// 7517 §4.5), in the order listed; no two of them verify the same
    /// algorithm, so the token's `alg` picks at most one. Almost always one.
    by_kid: HashMap<Box<str>, Vec<Arc<VerifyingKey>>>,
    /// Keys the JWKS listed without a `kid`.
    unnamed: Vec<Arc<VerifyingKey>>,
    /// How many keys in all.
    len: usize,
}

/// Why a document is not a JWKS at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    /// Not JSON, or no `keys` array.
    Invalid(String),
}

impl KeySet {
    /// Parses a JWKS document key by key: a key authgate cannot use is skipped
    /// and reported, the rest still load. Keys that `previous` already holds
    /// with the same parameters are reused rather than parsed again.
    ///
    /// A document that parses yields a set even when no key in it is usable:
    /// what the issuer publishes is its word, and an empty set withdraws
    /// every key it listed before.
    pub fn from_jwks(
        document: &[u8],
        previous: Option<&KeySet>,
    ) -> Result<(KeySet, Vec<SkippedKey>), JwksError> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document = serde_json::from_slice(document).map_err(|e| {
            JwksError::Invalid(format!(
                "not a JWKS (`{{\"keys\": [...]}}`): {}",
                json_error(&e)
            ))
        })?;

        let mut set = KeySet::default();
        let mut skipped = Vec::new();
        for value in document.keys {
            let jwk = match Jwk::deserialize(&value) {
                Ok(jwk) => jwk,
                Err(e) => {
                    let kid = value.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
                    skipped.push(SkippedKey {
                        kid,
                        reason: format!("not a JWK: {e}"),
                    });
                    continue;
                }
            };
            let kid = jwk.kid.clone();
            // Every key is judged afresh, reused or not: a key that a later
            // fetch lists with private material, or for encryption, goes.
            let key = match jwk.check_purpose() {
                Err(reason) => Err(reason),
                Ok(declared) => match previous.and_then(|p| p.reusable(&jwk)) {
                    Some(key) => Ok(key),
                    None => jwk.into_verifying_key(declared).map(Arc::new),
                },
            };
            match key {
                Ok(key) => {
                    if let Err(reason) = set.insert(key) {
                        skipped.push(SkippedKey { kid, reason });
                    }
                }
                Err(reason) => skipped.push(SkippedKey { kid, reason }),
            }
        }
        Ok((set, skipped))
    }

    fn insert(&mut self, key: Arc<VerifyingKey>) -> Result<(), String> {
        match &key.kid {
            Some(kid) => {
                let named = self.by_kid.entry(kid.clone()).or_default();
                // Two keys under one kid that verify the same algorithm would
                // leave a token's `alg` unable to pick one.
                if named
                    .iter()
                    .any(|other| key.algorithms().any(|alg| other.verifies(alg)))
                {
                    return Err("another usable key with the same kid verifies the same \
                                algorithm; the first one listed is used"
                        .into());
                }
                named.push(key);
            }
            None => self.unnamed.push(key),
        }
        self.len += 1;
        Ok(())
    }

    fn reusable(&self, jwk: &Jwk) -> Option<Arc<VerifyingKey>> {
        let material = jwk.material();
        let same = |key: &&Arc<VerifyingKey>| *key.material == *material;
        match jwk.kid.as_deref() {
            Some(kid) => self.by_kid.get(kid)?.iter().find(same).cloned(),
            None => self.unnamed.iter().find(same).cloned(),
        }
    }

    /// How many usable keys the set holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first key listed with this `kid`; [`KeySet::named`] has them all.
    pub fn get(&self, kid: &str) -> Option<&Arc<VerifyingKey>> {
        self.by_kid.get(kid)?.first()
    }

    /// Every key listed with this `kid`, in the order listed: usually one,
    /// several only when they are of different types and verify different
    /// algorithms. `None` when the set has no such `kid`.
    #[inline]
    pub fn named(&self, kid: &str) -> Option<&[Arc<VerifyingKey>]> {
        self.by_kid.get(kid).map(Vec::as_slice)
    }

    /// Every key, named or not.
    pub fn keys(&self) -> impl Iterator<Item = &Arc<VerifyingKey>> {
        self.by_kid.values().flatten().chain(self.unnamed.iter())
    }

    /// Whether this very key (not merely one with its `kid`) is in the set.
    #[inline]
    pub fn holds(&self, key: &Arc<VerifyingKey>) -> bool {
        let same = |k: &Arc<VerifyingKey>| Arc::ptr_eq(k, key);
        match key.kid.as_deref() {
            Some(kid) => self
                .by_kid
                .get(kid)
                .is_some_and(|keys| keys.iter().any(same)),
            None => self.unnamed.iter().any(same),
        }
    }

    /// For a token without `kid`: the one key that could have signed it with
    /// `alg`. `None` when no key or several could, since trying each would let
    /// one token cost many verifications.
    pub fn sole_key_for(&self, alg: Algorithm) -> Option<&Arc<VerifyingKey>> {
        let mut candidates = self.keys().filter(|k| k.verifies(alg));
        let first = candidates.next()?;
        candidates.next().is_none().then_some(first)
    }
}

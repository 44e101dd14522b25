//! The verified-token cache: a token that verified once is not verified again
//! until it expires. Lock-free, fixed in size, and only verified tokens enter.

use std::{
    hash::{BuildHasher, Hasher, RandomState},
    sync::Arc,
};

use arc_swap::ArcSwapOption;

use crate::{
    gate::validate::{MAX_TOKEN_BYTES, Principal, Verified},
    keys::{KeyStore, VerifyingKey},
};

/// A direct-mapped table of verified tokens: each token has one slot, chosen
/// by a randomly keyed hash, and a newer token in that slot replaces the
/// older one. So the cache never holds more than its slot count of entries,
/// each at most one token (8 KiB) and its claims, and a lookup is one atomic
/// load with no lock.
///
/// An entry counts only for the exact token that made it: the whole token is
/// compared, in constant time. It stops counting at the token's `exp` (plus
/// leeway) and as soon as the key set of the issuer that verified it no
/// longer holds the key that did: each entry keeps that issuer's key store,
/// so with several issuers an entry answers only for its own. Only tokens
/// that passed every check are inserted, so hostile traffic cannot fill it;
/// scopes are still checked on every call, outside it.
pub struct TokenCache {
    slots: Box<[ArcSwapOption<Entry>]>,
    /// Slot count minus one: the count is a power of two.
    mask: usize,
    /// Keyed per process, so no one can aim tokens at a slot.
    hasher: RandomState,
}

struct Entry {
    token: Box<[u8]>,
    principal: Principal,
    key: Arc<VerifyingKey>,
    /// The key store of the issuer whose key verified the token.
    keys: Arc<KeyStore>,
    /// `exp` plus leeway: the entry is dead from this second on.
    dies_at: i64,
}

impl TokenCache {
    /// A cache of at least `entries` slots (rounded up to a power of two).
    /// `None` for 0.
    pub fn new(entries: usize) -> Option<TokenCache> {
        if entries == 0 {
            return None;
        }
        let size = entries.next_power_of_two();
        Some(TokenCache {
            slots: (0..size).map(|_| ArcSwapOption::empty()).collect(),
            mask: size - 1,
            hasher: RandomState::new(),
        })
    }

    /// How many slots it has: the most entries it can hold.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// How many slots hold an entry now (walks every slot).
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.load().is_some()).count()
    }

    /// Whether no slot holds an entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most memory its entries can take, in bytes: every slot holding a
    /// token of the largest size with claims of the same size.
    pub fn max_bytes(&self) -> usize {
        self.capacity() * (2 * MAX_TOKEN_BYTES + 256)
    }

    fn slot(&self, token: &[u8]) -> &ArcSwapOption<Entry> {
        // The tail is the signature: what differs between any two tokens.
        let tail = &token[token.len().saturating_sub(32)..];
        let mut hasher = self.hasher.build_hasher();
        hasher.write(tail);
        hasher.write_usize(token.len());
        &self.slots[hasher.finish() as usize & self.mask]
    }

    /// The principal of `token` if it verified before, has not expired at
    /// `now`, and its key is still in the key set of the issuer it verified
    /// against.
    #[inline]
    pub fn get(&self, token: &[u8], now: i64) -> Option<Principal> {
        let guard = self.slot(token).load();
        let entry = guard.as_deref()?;
        if !constant_time_eq(&entry.token, token) || now >= entry.dies_at {
            return None;
        }
        if !entry.keys.load().as_deref()?.holds(&entry.key) {
            return None;
        }
        Some(entry.principal.clone())
    }

    /// Remembers a token that passed every check against the key set in
    /// `keys`, until its `exp` plus its issuer's leeway.
    pub fn insert(&self, token: &[u8], verified: &Verified, keys: &Arc<KeyStore>) {
        let entry = Entry {
            token: token.into(),
            principal: verified.principal.clone(),
            key: verified.key.clone(),
            keys: keys.clone(),
            dies_at: verified.principal.accepted_until(),
        };
        self.slot(token).store(Some(Arc::new(entry)));
    }
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

/// Equality whose time depends only on the lengths, so that comparing a
/// presented token with a cached one reveals nothing of the cached one.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u64;
    let (a_words, a_rest) = a.as_chunks::<8>();
    let (b_words, b_rest) = b.as_chunks::<8>();
    for (x, y) in a_words.iter().zip(b_words) {
        diff |= u64::from_ne_bytes(*x) ^ u64::from_ne_bytes(*y);
    }
    for (x, y) in a_rest.iter().zip(b_rest) {
        diff |= u64::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_every_byte() {
        let a: Vec<u8> = (0..=255).collect();
        assert!(constant_time_eq(&a, &a.clone()));
        for i in 0..a.len() {
            let mut b = a.clone();
            b[i] ^= 0x40;
            assert!(!constant_time_eq(&a, &b), "byte {i}");
        }
        assert!(!constant_time_eq(&a, &a[..255]));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn sizes_round_up_and_zero_disables() {
        assert!(TokenCache::new(0).is_none());
        assert_eq!(TokenCache::new(1000).unwrap().capacity(), 1024);
        assert_eq!(TokenCache::new(4096).unwrap().capacity(), 4096);
    }
}

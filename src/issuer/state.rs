//! What the dev issuer's routes and its handle share: its keys, clients and
//! the faults the tests set.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, atomic::AtomicUsize},
    time::Duration,
};

use serde_json::{Value, json};

use super::{
    DevClient, JwksFault, RsaKeyPool, TokenFault,
    signing::{Keys, SigningKey},
};
use crate::util::lock;

/// The issuer's state, behind an `Arc` that the routes and the
/// [`DevIssuer`](super::DevIssuer) share.
pub(super) struct IssuerState {
    /// `http://127.0.0.1:PORT/`: what tokens carry in `iss`.
    pub(super) issuer: String,
    pub(super) audience: String,
    pub(super) keys: Mutex<Keys>,
    pub(super) clients: Mutex<Vec<DevClient>>,
    pub(super) token_ttl: Mutex<Duration>,
    pub(super) jwks_fault: Mutex<JwksFault>,
    pub(super) jwks_max_age: Mutex<Option<u64>>,
    pub(super) extra_jwks: Mutex<Vec<Value>>,
    pub(super) discovery_enabled: Mutex<bool>,
    /// Members that replace the discovery document's own.
    pub(super) discovery_overrides: Mutex<serde_json::Map<String, Value>>,
    pub(super) rsa_keys: Option<Arc<RsaKeyPool>>,
    pub(super) token_faults: Mutex<VecDeque<TokenFault>>,
    pub(super) jwks_hits: AtomicUsize,
    pub(super) discovery_hits: AtomicUsize,
    pub(super) token_hits: AtomicUsize,
}

impl IssuerState {
    pub(super) fn jwks_document(&self) -> Value {
        let mut keys: Vec<Value> = lock(&self.keys)
            .all
            .iter()
            .filter(|k| k.published)
            .map(SigningKey::jwk)
            .collect();
        keys.extend(lock(&self.extra_jwks).iter().cloned());
        json!({ "keys": keys })
    }
}

/// Seconds since the Unix epoch, as the claims write them.
pub(super) fn unix_now() -> u64 {
    crate::util::unix_now().unsigned_abs()
}

//! The issuers a gate trusts, each with its rules and its own key set.

use std::sync::Arc;

use crate::{gate::validate::Validator, keys::KeyStore};

/// One issuer the gate trusts: the rules its tokens are checked by, and the
/// key set, its own, that verifies them.
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    pub(super) validator: Validator,
    /// Read with one atomic load per call; this issuer's refresher writes it.
    pub(super) keys: Arc<KeyStore>,
    /// The issuer, as refusals name it.
    pub(super) name: Arc<str>,
}

impl TrustedIssuer {
    /// The issuer `validator` checks for, with its key store.
    pub fn new(validator: Validator, keys: Arc<KeyStore>) -> TrustedIssuer {
        let name = validator.issuer().into();
        TrustedIssuer {
            validator,
            keys,
            name,
        }
    }

    /// The exact `iss` of its tokens.
    pub fn issuer(&self) -> &str {
        self.validator.issuer()
    }

    /// Its key store.
    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }
}

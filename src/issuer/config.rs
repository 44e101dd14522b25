//! How to start a dev issuer, and the client it grants tokens to.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use super::{DevSigningKey, RsaKeyPool};
use crate::keys::Algorithm;

/// A client the dev issuer grants tokens to.
#[derive(Clone)]
pub struct DevClient {
    /// `client_id`.
    pub id: String,
    /// `client_secret`.
    pub secret: String,
    /// The scopes it may be granted.
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for DevClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevClient")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// How to start a dev issuer.
#[derive(Debug, Clone)]
pub struct DevIssuerConfig {
    /// Where to listen; a loopback address, port 0 for any.
    pub listen: SocketAddr,
    /// The API identifier tokens are issued for (`aud`).
    pub audience: String,
    /// The algorithm of the first signing key.
    pub algorithm: Algorithm,
    /// How long issued tokens last.
    pub token_ttl: Duration,
    /// The client allowed the client-credentials grant.
    pub client: DevClient,
    /// Pre-generated RSA keys to sign with before generating any: generating
    /// an RSA-2048 key takes some 80 ms, and a test suite starts many issuers.
    pub rsa_keys: Option<Arc<RsaKeyPool>>,
    /// The first signing key, for `algorithm`, instead of a new one: a key
    /// kept across restarts keeps its `kid`, and the tokens signed with it
    /// stay valid.
    pub signing_key: Option<DevSigningKey>,
}

impl DevIssuerConfig {
    /// A config for tests: any port, RS256, one-hour tokens, client
    /// `test-client` / `test-secret` granted `read:private`.
    pub fn for_tests() -> DevIssuerConfig {
        DevIssuerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            audience: "https://authgate.test/api".into(),
            algorithm: Algorithm::RS256,
            token_ttl: Duration::from_secs(3600),
            client: DevClient {
                id: "test-client".into(),
                secret: "test-secret".into(),
                scopes: vec!["read:private".into()],
            },
            rsa_keys: None,
            signing_key: None,
        }
    }
}

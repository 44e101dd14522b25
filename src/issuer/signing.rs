//! The dev issuer's signing keys: made (or taken from a pool), published,
//! and used to sign tokens.

use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::{
    encoding::{AsDer, Pkcs8V1Der},
    rand::SystemRandom,
    rsa::KeySize,
    signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::keys::Algorithm;

/// RSA-2048 key pairs made ahead of time (PKCS#8), each handed out once, so
/// that issuers sharing a pool never share a key; once it runs dry, keys are
/// generated as usual.
pub struct RsaKeyPool {
    pkcs8: Vec<Vec<u8>>,
    next: AtomicUsize,
}

impl RsaKeyPool {
    /// A pool of these PKCS#8 documents, each an RSA-2048 private key.
    pub fn new(pkcs8: Vec<Vec<u8>>) -> RsaKeyPool {
        RsaKeyPool {
            pkcs8,
            next: AtomicUsize::new(0),
        }
    }

    /// The next key no one has taken, if any is left.
    ///
    /// # Panics
    /// If a document in the pool is not an RSA-2048 private key.
    pub(super) fn take(&self) -> Option<RsaKeyPair> {
        let der = self.pkcs8.get(self.next.fetch_add(1, Ordering::Relaxed))?;
        let pair = RsaKeyPair::from_pkcs8(der).expect("an RSA private key in PKCS#8");
        assert_eq!(
            pair.public_modulus_len(),
            256,
            "the pool holds RSA-2048 keys"
        );
        Some(pair)
    }

    /// How many keys are left.
    pub fn remaining(&self) -> usize {
        self.pkcs8
            .len()
            .saturating_sub(self.next.load(Ordering::Relaxed))
    }
}

impl std::fmt::Debug for RsaKeyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaKeyPool")
            .field("remaining", &self.remaining())
            .finish_non_exhaustive()
    }
}

pub(super) struct Keys {
    pub(super) all: Vec<SigningKey>,
    /// The `kid` that [`DevIssuer::mint`] signs with.
    pub(super) current: String,
}

pub(super) struct SigningKey {
    pub(super) kid: String,
    pub(super) alg: Algorithm,
    pub(super) pair: Pair,
    pub(super) published: bool,
}

pub(super) enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl Keys {
    /// The `kid` and algorithm of the key that signs by default.
    pub(super) fn current(&self) -> (&str, Algorithm) {
        let key = self
            .all
            .iter()
            .find(|k| k.kid == self.current)
            .expect("the current key exists");
        (&key.kid, key.alg)
    }

    /// `header.payload.signature`, signed by `kid` under `alg`.
    pub(super) fn sign(
        &self,
        kid: &str,
        alg: Algorithm,
        header: &[u8],
        payload: &[u8],
    ) -> Option<String> {
        let key = self.all.iter().find(|k| k.kid == kid)?;
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = key.sign(alg, message.as_bytes());
        Some(format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

impl SigningKey {
    /// A new key for `alg` (an RSA-2048 one from `pool` while it lasts),
    /// named by its RFC 7638 thumbprint: a new key always has a new `kid`, so
    /// a token from an earlier run of the issuer names a key that is gone
    /// instead of failing as a bad signature.
    pub(super) fn generate(alg: Algorithm, size: KeySize, pool: Option<&RsaKeyPool>) -> SigningKey {
        let pair = match alg {
            Algorithm::ES256 => Pair::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .expect("P-256 key generation"),
            ),
            Algorithm::ES384 => Pair::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING)
                    .expect("P-384 key generation"),
            ),
            Algorithm::EdDSA => Pair::Ed(Ed25519KeyPair::generate().expect("Ed25519 generation")),
            _ => Pair::Rsa(
                pool.filter(|_| size == KeySize::Rsa2048)
                    .and_then(RsaKeyPool::take)
                    .unwrap_or_else(|| RsaKeyPair::generate(size).expect("RSA key generation")),
            ),
        };
        let mut key = SigningKey {
            kid: String::new(),
            alg,
            pair,
            published: true,
        };
        key.kid = key.thumbprint();
        key
    }

    /// The key for `alg` in a PKCS#8 document (DER), named by its thumbprint
    /// as a new one is, so that the same key always has the same `kid`; or
    /// what key `alg` needs, when the document holds none.
    pub(super) fn from_pkcs8(alg: Algorithm, der: &[u8]) -> Result<SigningKey, String> {
        let pair = match alg {
            Algorithm::ES256 => {
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map(Pair::Ec)
            }
            Algorithm::ES384 => {
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, der)
                    .map(Pair::Ec)
            }
            Algorithm::EdDSA => Ed25519KeyPair::from_pkcs8(der).map(Pair::Ed),
            _ => RsaKeyPair::from_pkcs8(der).map(Pair::Rsa),
        };
        let pair = pair.map_err(|_| {
            let needs = match alg {
                Algorithm::ES256 => "a P-256 key",
                Algorithm::ES384 => "a P-384 key",
                Algorithm::EdDSA => "an Ed25519 key",
                _ => "an RSA key of 2048 bits or more",
            };
            format!("no private key that {alg} signs with ({needs}) in PKCS#8")
        })?;
        let mut key = SigningKey {
            kid: String::new(),
            alg,
            pair,
            published: true,
        };
        key.kid = key.thumbprint();
        Ok(key)
    }

    /// The private key as a PKCS#8 document (DER), which
    /// [`SigningKey::from_pkcs8`] reads back.
    pub(super) fn to_pkcs8(&self) -> Vec<u8> {
        let der = match &self.pair {
            Pair::Rsa(pair) => AsDer::<Pkcs8V1Der>::as_der(pair).map(|d| d.as_ref().to_vec()),
            Pair::Ec(pair) => pair.to_pkcs8v1().map(|d| d.as_ref().to_vec()),
            Pair::Ed(pair) => pair.to_pkcs8v1().map(|d| d.as_ref().to_vec()),
        };
        der.expect("a key pair aws-lc made or read encodes as PKCS#8")
    }

    /// The RFC 7638 thumbprint: SHA-256 of the required public members in
    /// lexicographic order, without white space, base64url.
    pub(super) fn thumbprint(&self) -> String {
        let members = self.public_members();
        let text = |name: &str| members[name].as_str().unwrap_or_default().to_owned();
        let canonical = match &self.pair {
            Pair::Rsa(_) => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, text("e"), text("n")),
            Pair::Ec(_) => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                text("crv"),
                text("x"),
                text("y")
            ),
            Pair::Ed(_) => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, text("x")),
        };
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        URL_SAFE_NO_PAD.encode(digest.as_ref())
    }

    /// The public JWK, with `use`, `alg` and `kid` as Auth0 publishes them.
    pub(super) fn jwk(&self) -> Value {
        let mut jwk = self.public_members();
        jwk["use"] = "sig".into();
        jwk["alg"] = self.alg.name().into();
        jwk["kid"] = self.kid.clone().into();
        jwk
    }

    /// The members of the public key that RFC 7638 requires.
    pub(super) fn public_members(&self) -> Value {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        match &self.pair {
            Pair::Rsa(pair) => json!({
                "kty": "RSA",
                "n": b64(pair.public_key().modulus().big_endian_without_leading_zero()),
                "e": b64(pair.public_key().exponent().big_endian_without_leading_zero()),
            }),
            Pair::Ec(pair) => {
                let point = pair.public_key().as_ref();
                let size = (point.len() - 1) / 2;
                json!({
                    "kty": "EC",
                    "crv": if size == 32 { "P-256" } else { "P-384" },
                    "x": b64(&point[1..1 + size]),
                    "y": b64(&point[1 + size..]),
                })
            }
            Pair::Ed(pair) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": b64(pair.public_key().as_ref()),
            }),
        }
    }

    /// Signs `message` under `alg`, which for an RSA key may be any RSA
    /// algorithm (tests sign with one the JWK does not declare).
    pub(super) fn sign(&self, alg: Algorithm, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Rsa(pair) => {
                let padding: &dyn signature::RsaEncoding = match alg {
                    Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
                    Algorithm::PS256 => &signature::RSA_PSS_SHA256,
                    Algorithm::PS384 => &signature::RSA_PSS_SHA384,
                    Algorithm::PS512 => &signature::RSA_PSS_SHA512,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, message, &mut sig)
                    .expect("RSA signing");
                sig
            }
            Pair::Ec(pair) => pair
                .sign(&rng, message)
                .expect("ECDSA signing")
                .as_ref()
                .to_vec(),
            Pair::Ed(pair) => pair.sign(message).as_ref().to_vec(),
        }
    }
}

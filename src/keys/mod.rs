//! The issuer's key set: JWKS documents parsed key by key into verifying keys
//! that are parsed once, and the immutable [`KeySet`] the refresher publishes.

use std::{collections::HashMap, fmt, sync::Arc};

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;

pub mod refresher;

pub use refresher::{JwksSource, KeyStatus, KeyStore, RefreshConfig, Refresher};

/// The signature algorithms authgate verifies. `none` and every HMAC
/// algorithm are absent on purpose: a public key set cannot vouch for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

impl Algorithm {
    /// Every algorithm authgate verifies.
    pub const ALL: [Algorithm; 9] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];
    const RSA: [Algorithm; 6] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ];

    /// The algorithm a JWS `alg` names, if authgate verifies it. `Ed25519`,
    /// RFC 9864's fully specified name, is [`Algorithm::EdDSA`]: the only
    /// EdDSA curve authgate verifies with is Ed25519, so the two names mean
    /// the same verification with the same key.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "Ed25519" => Some(Algorithm::EdDSA),
            _ => Algorithm::ALL.into_iter().find(|alg| alg.name() == name),
        }
    }

    /// The JWS name (`RS256`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// aws-lc-rs's verification parameters. RSA accepts 2048 to 8192 bits;
    /// ECDSA takes the fixed-width `r || s` form that JWS uses.
    pub(crate) fn verification(self) -> &'static dyn signature::VerificationAlgorithm {
        match self {
            Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
            Algorithm::EdDSA => &signature::ED25519,
        }
    }

    fn rsa_parameters(self) -> Option<&'static signature::RsaParameters> {
        Some(match self {
            Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            _ => return None,
        })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The smallest RSA modulus authgate trusts.
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus authgate verifies with: larger keys cost a
/// verification time that an attacker could spend for us.
pub const MAX_RSA_BITS: usize = 8192;

/// One public key from the issuer, parsed once into the verifier of every
/// algorithm it may sign with.
pub struct VerifyingKey {
    kid: Option<Box<str>>,
    /// The JWK's public parameters, to tell a key that a refresh lists again
    /// (reused as is) from a new key under an old `kid`.
    material: Box<str>,
    /// One parsed key per algorithm: the JWK's declared `alg` alone when it
    /// has one, otherwise every algorithm of its type.
    verifiers: Box<[(Algorithm, ParsedPublicKey)]>,
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
        let document: Document = serde_json::from_slice(document)
            .map_err(|e| JwksError::Invalid(format!("not a JWKS (`{{\"keys\": [...]}}`): {e}")))?;

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

/// The members of a JWK that authgate reads (RFC 7517, 7518, 8037). Every
/// member is optional here so that a key of any shape parses and can then be
/// judged, and skipped with a reason, on its own.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    d: Option<serde::de::IgnoredAny>,
    p: Option<serde::de::IgnoredAny>,
}

impl Jwk {
    fn material(&self) -> String {
        let part = |v: &Option<String>| v.as_deref().unwrap_or("").to_owned();
        [
            self.kty.clone(),
            part(&self.alg),
            part(&self.n),
            part(&self.e),
            part(&self.crv),
            part(&self.x),
            part(&self.y),
        ]
        .join(".")
    }

    /// Whether the key is meant for verifying signatures, and with which
    /// algorithm it says it is used, if any.
    fn check_purpose(&self) -> Result<Option<Algorithm>, String> {
        match self.use_.as_deref() {
            None | Some("sig") => {}
            Some("enc") => {
                return Err("`use` is `enc`: an encryption key, not for signatures".into());
            }
            Some(_) => return Err("`use` is neither `sig` nor absent".into()),
        }
        if let Some(ops) = &self.key_ops
            && !ops.iter().any(|op| op == "verify")
        {
            return Err("`key_ops` does not include `verify`".into());
        }
        if self.d.is_some() || self.p.is_some() {
            return Err(
                "the JWK holds private key material; a key set that publishes it is compromised"
                    .into(),
            );
        }
        match self.alg.as_deref() {
            None => Ok(None),
            Some(name) => Algorithm::from_name(name).map(Some).ok_or_else(|| {
                format!("`alg` {name:?} is not a signature algorithm authgate verifies")
            }),
        }
    }

    /// Parses the key material into a verifier per algorithm it may verify.
    fn into_verifying_key(self, declared: Option<Algorithm>) -> Result<VerifyingKey, String> {
        let allowed = |family: &[Algorithm]| -> Result<Vec<Algorithm>, String> {
            match declared {
                None => Ok(family.to_vec()),
                Some(alg) if family.contains(&alg) => Ok(vec![alg]),
                Some(alg) => Err(format!("`alg` {alg} does not fit a `{}` key", self.kty)),
            }
        };

        let verifiers: Vec<(Algorithm, ParsedPublicKey)> = match self.kty.as_str() {
            "RSA" => {
                let n = strip_leading_zeros(decode_member("n", self.n.as_deref())?);
                let e = strip_leading_zeros(decode_member("e", self.e.as_deref())?);
                let bits = bit_length(&n);
                if bits < MIN_RSA_BITS {
                    return Err(format!(
                        "RSA modulus of {bits} bits is weaker than {MIN_RSA_BITS}"
                    ));
                }
                if bits > MAX_RSA_BITS {
                    return Err(format!("RSA modulus of {bits} bits exceeds {MAX_RSA_BITS}"));
                }
                // e = 1 makes the "signature" the message itself; an even e
                // is no RSA key at all. Either would load and only ever fail
                // at verification, so say so now, with the key's kid.
                if e.last().is_none_or(|low| low & 1 == 0) || e == [1] {
                    return Err("RSA exponent `e` must be odd and greater than 1".into());
                }
                let components = RsaPublicKeyComponents {
                    n: &n[..],
                    e: &e[..],
                };
                allowed(&Algorithm::RSA)?
                    .into_iter()
                    .map(|alg| {
                        let params = alg.rsa_parameters().expect("RSA family");
                        components
                            .to_parsed_public_key(params)
                            .map(|key| (alg, key))
                            .map_err(|e| format!("RSA key rejected: {e}"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "EC" => {
                let (alg, size) = match self.crv.as_deref() {
                    Some("P-256") => (Algorithm::ES256, 32),
                    Some("P-384") => (Algorithm::ES384, 48),
                    Some(crv) => return Err(format!("EC curve {crv:?} is not supported")),
                    None => return Err("EC key has no `crv`".into()),
                };
                let alg = allowed(&[alg])?[0];
                let x = decode_member("x", self.x.as_deref())?;
                let y = decode_member("y", self.y.as_deref())?;
                if x.len() != size || y.len() != size {
                    return Err(format!("EC coordinates are not {size} bytes each"));
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let key = ParsedPublicKey::new(alg.verification(), point)
                    .map_err(|e| format!("EC key rejected: {e}"))?;
                vec![(alg, key)]
            }
            "OKP" => {
                match self.crv.as_deref() {
                    Some("Ed25519") => {}
                    Some(crv) => {
                        return Err(format!(
                            "OKP curve {crv:?} is not a signature curve authgate verifies"
                        ));
                    }
                    None => return Err("OKP key has no `crv`".into()),
                }
                let alg = allowed(&[Algorithm::EdDSA])?[0];
                let x = decode_member("x", self.x.as_deref())?;
                if x.len() != 32 {
                    return Err("Ed25519 key is not 32 bytes".into());
                }
                let key = ParsedPublicKey::new(alg.verification(), x)
                    .map_err(|e| format!("Ed25519 key rejected: {e}"))?;
                vec![(alg, key)]
            }
            "oct" => {
                return Err("symmetric (`oct`) keys are never used to verify tokens".into());
            }
            other => return Err(format!("key type {other:?} is not supported")),
        };

        let material = self.material().into_boxed_str();
        Ok(VerifyingKey {
            kid: self.kid.map(String::into_boxed_str),
            material,
            verifiers: verifiers.into_boxed_slice(),
        })
    }
}

fn decode_member(name: &str, value: Option<&str>) -> Result<Vec<u8>, String> {
    let value = value.ok_or_else(|| format!("missing `{name}`"))?;
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| format!("`{name}` is not base64url"))
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

fn bit_length(be: &[u8]) -> usize {
    match be.first() {
        None => 0,
        Some(top) => be.len() * 8 - top.leading_zeros() as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_round_trip_and_refuse_the_rest() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
        }
        // RFC 9864's fully specified name for EdDSA with Ed25519.
        assert_eq!(Algorithm::from_name("Ed25519"), Some(Algorithm::EdDSA));
        for name in [
            "none", "HS256", "HS384", "HS512", "ES512", "rs256", "", "RS1", "ed25519", "Ed448",
            "ESP256",
        ] {
            assert_eq!(Algorithm::from_name(name), None, "{name}");
        }
    }

    #[test]
    fn bit_length_counts_from_the_top_set_bit() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[1]), 1);
        assert_eq!(bit_length(&[0x80, 0]), 16);
        assert_eq!(bit_length(&[0x7f; 256]), 2047);
    }

    #[test]
    fn a_document_that_is_not_a_jwks_is_invalid() {
        for doc in [&b"garbage"[..], b"{}", b"[]", b"{\"keys\": {}}", b""] {
            assert!(matches!(
                KeySet::from_jwks(doc, None),
                Err(JwksError::Invalid(_))
            ));
        }
    }

    #[test]
    fn a_reused_key_is_judged_again() {
        let ed = r#"{"kty":"OKP","crv":"Ed25519","kid":"k","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo""#;
        let (first, _) =
            KeySet::from_jwks(format!("{{\"keys\":[{ed}}}]}}").as_bytes(), None).unwrap();
        assert_eq!(first.len(), 1);
        for change in [
            r#","d":"AAAA""#,
            r#","use":"enc""#,
            r#","key_ops":["sign"]"#,
        ] {
            let doc = format!("{{\"keys\":[{ed}{change}}}]}}");
            let (again, skipped) = KeySet::from_jwks(doc.as_bytes(), Some(&first)).unwrap();
            assert!(again.is_empty(), "{change} kept the key");
            assert_eq!(skipped.len(), 1);
        }
    }

    #[test]
    fn a_jwk_may_declare_the_rfc_9864_name() {
        let ed = r#"{"kty":"OKP","crv":"Ed25519","kid":"k","alg":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
        let (set, skipped) =
            KeySet::from_jwks(format!("{{\"keys\":[{ed}]}}").as_bytes(), None).unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        let key = set.get("k").unwrap();
        assert_eq!(key.algorithms().collect::<Vec<_>>(), [Algorithm::EdDSA]);
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// An RSA-2048 public JWK with `kid` and extra members.
    fn rsa_jwk(kid: &str, extra: &str) -> String {
        use aws_lc_rs::{
            rsa::KeySize,
            signature::{KeyPair, RsaKeyPair},
        };
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let n = b64(pair
            .public_key()
            .modulus()
            .big_endian_without_leading_zero());
        format!(r#"{{"kty":"RSA","kid":"{kid}","n":"{n}","e":"AQAB"{extra}}}"#)
    }

    fn p256_jwk(kid: &str) -> String {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let point = pair.public_key().as_ref();
        let (x, y) = (b64(&point[1..33]), b64(&point[33..]));
        format!(r#"{{"kty":"EC","crv":"P-256","kid":"{kid}","x":"{x}","y":"{y}"}}"#)
    }

    #[test]
    fn rsa_exponents_of_one_or_even_are_refused_at_load() {
        let good = rsa_jwk("k", "");
        let (set, skipped) =
            KeySet::from_jwks(format!("{{\"keys\":[{good}]}}").as_bytes(), None).unwrap();
        assert_eq!((set.len(), skipped.len()), (1, 0));
        // 1, 1 with a leading zero byte, 2, 65536, 0.
        for e in ["AQ", "AAE", "Ag", "AQAA", "AA"] {
            let jwk = good.replace(r#""e":"AQAB""#, &format!(r#""e":"{e}""#));
            let (set, skipped) =
                KeySet::from_jwks(format!("{{\"keys\":[{jwk}]}}").as_bytes(), None).unwrap();
            assert!(set.is_empty(), "e = {e} loaded");
            assert_eq!(
                skipped[0].kid.as_deref(),
                Some("k"),
                "the warning names the key"
            );
            assert!(skipped[0].reason.contains("exponent"), "{:?}", skipped[0]);
        }
    }

    #[test]
    fn a_kid_may_name_keys_of_different_types_but_not_of_one_algorithm() {
        let doc = format!(
            r#"{{"keys":[{},{},{},{},{}]}}"#,
            rsa_jwk("k", ""),
            p256_jwk("k"),
            // Another RSA key under k would verify the same algorithms.
            rsa_jwk("k", ""),
            rsa_jwk("r", r#","alg":"RS256""#),
            rsa_jwk("r", r#","alg":"PS256""#),
        );
        let (set, skipped) = KeySet::from_jwks(doc.as_bytes(), None).unwrap();
        assert_eq!(set.len(), 4, "{skipped:?}");
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].reason.contains("same kid"), "{skipped:?}");
        let k = set.named("k").unwrap();
        assert_eq!(k.len(), 2);
        assert!(k[0].verifies(Algorithm::PS512) && !k[0].verifies(Algorithm::ES256));
        assert!(k[1].verifies(Algorithm::ES256) && !k[1].verifies(Algorithm::RS256));
        let r = set.named("r").unwrap();
        assert!(r[0].verifies(Algorithm::RS256) && r[1].verifies(Algorithm::PS256));
        for key in set.keys() {
            assert!(set.holds(key));
        }
        // Reparsed against itself, every key is reused, both under k included.
        let (again, _) = KeySet::from_jwks(doc.as_bytes(), Some(&set)).unwrap();
        assert!(again.keys().all(|key| set.holds(key)));
        assert!(set.named("nope").is_none());
    }

    #[test]
    fn junk_keys_are_skipped_each_with_a_reason() {
        let doc = br#"{"keys": [
            42,
            {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "weak", "n": "AQAB", "e": "AQAB"},
            {"kty": "OKP", "kid": "x", "crv": "X25519", "x": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
            {"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"},
            {"kty": "weird", "kid": "w"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}
        ]}"#;
        let (set, skipped) = KeySet::from_jwks(doc, None).unwrap();
        assert!(set.is_empty());
        assert_eq!(skipped.len(), 7);
    }
}

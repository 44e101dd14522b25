//! The issuer's keys: JWKS documents parsed key by key (`jwk`) into
//! verifying keys parsed once (`key`, `algorithm`), the immutable
//! [`KeySet`] (`set`), the [`KeyStore`] the request path reads without
//! waiting (`store`), and the background [`Refresher`] that alone fetches,
//! retries, backs off and publishes (`refresher`).

mod algorithm;
mod jwk;
mod key;
mod refresher;
mod set;
mod store;

pub use algorithm::{Algorithm, MAX_RSA_BITS, MIN_RSA_BITS};
pub use key::VerifyingKey;
pub use refresher::{DEFAULT_MAX_STALE, JwksSource, RefreshConfig, Refresher};
pub use set::{JwksError, KeySet, SkippedKey};
pub use store::{Availability, KeyStatus, KeyStore};

#[cfg(test)]
mod tests {
    use super::jwk::bit_length;
    use super::*;
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

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

    /// Issue 27: serde's message quoted the value it tripped on, so a
    /// document holding a secret or an attacker's junk reached the logs.
    #[test]
    fn why_a_document_is_not_a_jwks_never_quotes_it() {
        for (doc, why) in [
            (
                &b"\"hunter2\""[..],
                "JSON of another shape, at line 1 column 9",
            ),
            (
                b"{\"keys\": \"hunter2\"}",
                "JSON of another shape, at line 1 column 18",
            ),
            (
                b"{\"keys\": [1], \"keys\": \"hunter2\"}",
                "JSON of another shape",
            ),
            (b"{\"keys\": true, \"hunter2\": 1}", "JSON of another shape"),
            (
                b"{\"keys\": [\"hunter2",
                "JSON that ends early, at line 1 column 18",
            ),
            (b"hunter2", "not JSON, at line 1 column 1"),
        ] {
            let Err(JwksError::Invalid(detail)) = KeySet::from_jwks(doc, None) else {
                panic!("{doc:?} parsed");
            };
            assert!(detail.contains(why), "{detail}");
            assert!(!detail.contains("hunter2"), "{detail}");
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

//! The key set built from real JWKS documents: which keys it keeps, which it
//! skips and why, and which key a `kid` names when the document is ambiguous.

use serde_json::json;
use tonic::Code;

use crate::common::{Options, SCOPE, code, spawn_app_for, spawn_issuer};
use authgate::keys::{Algorithm, KeySet};

/// The public JWK of a 1024-bit RSA key (tests/fixtures/keys/generate.sh):
/// aws-lc-rs will not generate one.
const RSA_1024: &str = include_str!("../fixtures/keys/rsa-1024.jwk.json");

#[tokio::test]
async fn an_rsa_key_under_2048_bits_is_skipped_as_weak() {
    let issuer = spawn_issuer().await;
    let good = issuer.jwk(&issuer.current_kid()).unwrap();
    let weak: serde_json::Value = serde_json::from_str(RSA_1024).unwrap();
    let doc = json!({ "keys": [good, weak] }).to_string();
    let (set, skipped) = KeySet::from_jwks(doc.as_bytes(), None).unwrap();
    assert_eq!(set.len(), 1);
    assert!(set.get("rsa-1024").is_none());
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].kid.as_deref(), Some("rsa-1024"));
    assert_eq!(
        skipped[0].reason,
        "RSA modulus of 1024 bits is weaker than 2048"
    );
    // Alone, it leaves no usable key: the set parses, and is empty.
    let doc = json!({ "keys": [weak] }).to_string();
    let (set, skipped) = KeySet::from_jwks(doc.as_bytes(), None).unwrap();
    assert!(set.is_empty());
    assert_eq!(skipped.len(), 1);
}

#[tokio::test]
async fn of_two_keys_under_one_kid_the_first_listed_is_used() {
    let issuer = spawn_issuer().await;
    let first = issuer.current_kid();
    let second = issuer.add_unpublished_key(Algorithm::RS256);
    // The JWKS lists `first`, then `second`'s key under `first`'s kid.
    let mut impostor = issuer.jwk(&second).unwrap();
    impostor["kid"] = first.clone().into();
    issuer.set_extra_jwks(vec![impostor.clone()]);
    let doc = json!({ "keys": [issuer.jwk(&first).unwrap(), impostor] }).to_string();
    let (set, skipped) = KeySet::from_jwks(doc.as_bytes(), None).unwrap();
    assert_eq!(set.len(), 1);
    assert_eq!(skipped.len(), 1);
    assert_eq!(
        skipped[0].reason,
        "another usable key with the same kid verifies the same algorithm; the first one listed is used"
    );

    // Through the server: the first key's tokens pass, the second's do not.
    let app = spawn_app_for(issuer, Options::default()).await;
    let claims = app.issuer.claims("u", &[SCOPE]);
    let header = json!({"alg": "RS256", "kid": first}).to_string();
    let by_first = app.issuer.sign_raw(
        &first,
        Algorithm::RS256,
        header.as_bytes(),
        claims.to_string().as_bytes(),
    );
    let by_second = app.issuer.sign_raw(
        &second,
        Algorithm::RS256,
        header.as_bytes(),
        claims.to_string().as_bytes(),
    );
    assert_eq!(code(&app.call(&by_first).await), Code::Ok);
    let status = app.call(&by_second).await.unwrap_err();
    assert_eq!(status.message(), "token signature is invalid");
}

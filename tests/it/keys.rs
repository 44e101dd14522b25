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

/// The public JWK of an 8192-bit RSA key (tests/fixtures/keys/generate.sh).
const RSA_8192: &str = include_str!("../fixtures/keys/rsa-8192.jwk.json");

#[tokio::test]
async fn each_unusable_key_is_skipped_with_its_reason() {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let issuer = spawn_issuer().await;
    let rsa = issuer.jwk(&issuer.current_kid()).unwrap();
    let ec = issuer.jwk(&issuer.add_key(Algorithm::ES256)).unwrap();
    let with = |jwk: &serde_json::Value, kid: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut jwk = jwk.clone();
        jwk["kid"] = kid.into();
        edit(&mut jwk);
        jwk
    };
    // One bit over the largest modulus taken.
    let mut n = vec![0x01];
    n.extend([0xff; 1024]);
    let cases = [
        (
            with(&rsa, "rsa-as-ec", &|j| j["alg"] = "ES256".into()),
            "`alg` ES256 does not fit a `RSA` key",
        ),
        (
            with(&rsa, "rsa-8193", &|j| {
                j["n"] = URL_SAFE_NO_PAD.encode(&n).into()
            }),
            "RSA modulus of 8193 bits exceeds 8192",
        ),
        (
            with(&ec, "short-y", &|j| {
                let y = URL_SAFE_NO_PAD.decode(j["y"].as_str().unwrap()).unwrap();
                j["y"] = URL_SAFE_NO_PAD.encode(&y[1..]).into();
            }),
            "EC coordinates are not 32 bytes each",
        ),
    ];
    for (jwk, reason) in cases {
        let doc = json!({ "keys": [rsa, jwk] }).to_string();
        let (set, skipped) = KeySet::from_jwks(doc.as_bytes(), None).unwrap();
        assert_eq!(set.len(), 1, "{reason}");
        assert_eq!(skipped.len(), 1, "{reason}: {skipped:?}");
        assert_eq!(skipped[0].reason, reason);
    }
    // The largest modulus itself is taken.
    let large: serde_json::Value = serde_json::from_str(RSA_8192).unwrap();
    let doc = json!({ "keys": [large] }).to_string();
    let (set, skipped) = KeySet::from_jwks(doc.as_bytes(), None).unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    let key = set.get("rsa-8192").expect("the 8192-bit key");
    assert_eq!(key.algorithms().collect::<Vec<_>>(), [Algorithm::RS256]);
}

#[tokio::test]
async fn keys_without_kid_count_and_say_what_they_are() {
    let issuer = spawn_issuer().await;
    let kid = issuer.current_kid();
    let named = issuer.jwk(&kid).unwrap();
    let mut unnamed = issuer.jwk(&issuer.add_key(Algorithm::EdDSA)).unwrap();
    unnamed.as_object_mut().unwrap().remove("kid");
    let doc = json!({ "keys": [named, unnamed] }).to_string();
    let (set, _) = KeySet::from_jwks(doc.as_bytes(), None).unwrap();
    assert_eq!(set.len(), 2);
    assert_eq!(set.keys().count(), 2);
    assert!(set.keys().any(|k| k.kid().is_none()));
    // A key's Debug names it and its algorithms, never its material.
    let key = set.get(&kid).unwrap();
    let debug = format!("{key:?}");
    assert_eq!(
        debug,
        format!(r#"VerifyingKey {{ kid: Some({kid:?}), algorithms: [RS256] }}"#)
    );
    // Algorithms display as their JWS names.
    for alg in Algorithm::ALL {
        assert_eq!(alg.to_string(), alg.name());
    }
}

#[tokio::test]
async fn a_token_without_kid_is_checked_with_the_one_key_for_its_algorithm() {
    // An RSA key and an EC key: each algorithm has exactly one candidate.
    let issuer = spawn_issuer().await;
    let rsa = issuer.current_kid();
    let ec = issuer.add_key(Algorithm::ES256);
    let app = spawn_app_for(issuer, Options::default()).await;
    let claims = app.issuer.claims("no-kid", &[SCOPE]).to_string();
    for (kid, alg) in [(&rsa, Algorithm::RS256), (&ec, Algorithm::ES256)] {
        let header = json!({ "alg": alg.name() }).to_string();
        let token = app
            .issuer
            .sign_raw(kid, alg, header.as_bytes(), claims.as_bytes());
        let response = app.call(&token).await;
        assert_eq!(code(&response), Code::Ok, "{alg}: {response:?}");
        assert_eq!(response.unwrap().subject, "no-kid");
    }
}

/// What an operator sees of a key the refresher skipped: a warning naming
/// its `kid` and why, while the good keys load. Read from the binary's
/// logs, as an operator would.
#[tokio::test]
async fn the_refresher_logs_each_key_it_skips_with_kid_and_reason() {
    use std::process::Stdio;

    use tokio::io::{AsyncBufReadExt, BufReader};

    use crate::cli::{authgate, lines_until, signal, spawn, wait};

    let issuer = spawn_issuer().await;
    issuer.set_extra_jwks(vec![
        json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
        serde_json::from_str(RSA_1024).unwrap(),
    ]);
    let mut command = authgate();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--issuer", issuer.url()])
        .args(["--audience", issuer.audience()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = spawn(&mut command);
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let is_skip = |line: &str| line.contains("skipped a JWKS key");
    let mut seen = 0;
    let said = lines_until(&mut stderr, |line| {
        seen += usize::from(is_skip(line));
        seen == 2
    })
    .await;
    let skipped: Vec<&String> = said.iter().filter(|line| is_skip(line)).collect();
    signal(&child, libc::SIGTERM);
    assert_eq!(wait(&mut child).await.code(), Some(0));
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(
        skipped[0].contains(r#"kid=Some("hmac")"#) && skipped[0].contains("reason="),
        "{skipped:?}"
    );
    assert!(
        skipped[1].contains(r#"kid=Some("rsa-1024")"#)
            && skipped[1].contains("RSA modulus of 1024 bits is weaker than 2048"),
        "{skipped:?}"
    );
}

//! The verified-token cache on its own: bounded, exact, and dropping entries
//! whose key left the key set.

use std::time::Duration;

use authgate::{
    keys::{Algorithm, KeySet, KeyStore},
    test_util::TokenCache,
    {ValidationConfig, Validator},
};
use serde_json::json;

use crate::common::{SCOPE, now, spawn_issuer};

fn key_set(
    issuer: &authgate::issuer::DevIssuer,
    kids: &[&str],
    previous: Option<&KeySet>,
) -> KeySet {
    let keys: Vec<_> = kids.iter().map(|k| issuer.jwk(k).unwrap()).collect();
    let doc = json!({ "keys": keys }).to_string();
    KeySet::from_jwks(doc.as_bytes(), previous).unwrap().0
}

#[tokio::test]
async fn the_cache_is_bounded_exact_and_follows_the_key_set() {
    let issuer = spawn_issuer().await;
    let rsa = issuer.current_kid();
    let ed = issuer.add_key(Algorithm::EdDSA);
    let store = KeyStore::new();
    store.publish(key_set(&issuer, &[&rsa, &ed], None));
    let keys = store.load().clone().expect("published");
    let validator = Validator::new(ValidationConfig {
        issuer: issuer.url().to_owned(),
        audiences: vec![issuer.audience().to_owned()],
        leeway: Duration::from_secs(30),
        require_typ: None,
        ..Default::default()
    });
    let cache = TokenCache::new(64).unwrap();
    let t = now();
    assert!(cache.is_empty());
    assert_eq!(cache.len(), 0);
    // Its bound: every slot a token of the largest size and claims as large.
    assert_eq!(cache.max_bytes(), 64 * (2 * 8192 + 256));
    assert!(format!("{cache:?}").contains("capacity: 64"), "{cache:?}");

    // A repeated token is served from the cache.
    let first = issuer.mint_with(&ed, &issuer.claims("user-first", &[SCOPE]));
    assert!(cache.get(first.as_bytes(), t).is_none());
    let verified = validator.validate(&first, &keys, t).unwrap();
    cache.insert(first.as_bytes(), &verified, &store);
    assert_eq!(cache.len(), 1);
    assert!(!cache.is_empty());
    let hit = cache.get(first.as_bytes(), t).expect("a hit");
    assert_eq!(hit.subject(), "user-first");
    assert_eq!(hit.kid(), Some(ed.as_str()));
    assert_eq!(hit.scopes().collect::<Vec<_>>(), [SCOPE]);
    // The principal's Debug says who, never the claims it was read from.
    let debug = format!("{hit:?}");
    assert!(
        debug.contains("user-first") && debug.contains(SCOPE),
        "{debug}"
    );
    assert!(!debug.contains(issuer.audience()), "{debug}");

    // A thousand distinct valid tokens: never more than 64 entries, and
    // nearly every slot used.
    let mut last = String::new();
    for i in 0..1000 {
        let token = issuer.mint_with(&ed, &issuer.claims(&format!("user-{i}"), &[SCOPE]));
        let verified = validator.validate(&token, &keys, t).unwrap();
        cache.insert(token.as_bytes(), &verified, &store);
        last = token;
    }
    assert!((48..=64).contains(&cache.len()), "{} entries", cache.len());
    let hit = cache
        .get(last.as_bytes(), t)
        .expect("the last token is cached");
    assert_eq!(hit.subject(), "user-999");

    // Only the exact token hits: any other bytes miss.
    let mut tampered = last.clone().into_bytes();
    let i = tampered.len() - 5;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    assert!(cache.get(&tampered, t).is_none());
    assert!(cache.get(&last.as_bytes()[..last.len() - 1], t).is_none());
    // The same signature and length, so the same slot, with other claims:
    // only comparing the whole token tells them apart.
    let (_, signature) = last.rsplit_once('.').unwrap();
    let forged_payload = {
        let payload = last.split('.').nth(1).unwrap().as_bytes();
        let mut forged = payload.to_vec();
        forged[0] = if forged[0] == b'e' { b'f' } else { b'e' };
        String::from_utf8(forged).unwrap()
    };
    let header = last.split('.').next().unwrap();
    let forged = format!("{header}.{forged_payload}.{signature}");
    assert_eq!(forged.len(), last.len());
    assert!(cache.get(forged.as_bytes(), t).is_none());

    // Dead at exp plus leeway.
    let exp = hit.expires_at();
    assert!(cache.get(last.as_bytes(), exp + 29).is_some());
    assert!(cache.get(last.as_bytes(), exp + 30).is_none());

    // A refresh that lists the key again keeps the entry; one without it drops it.
    store.publish(key_set(&issuer, &[&rsa, &ed], Some(&keys)));
    assert!(
        cache.get(last.as_bytes(), t).is_some(),
        "an unchanged key was rebuilt"
    );
    store.publish(key_set(&issuer, &[&rsa], Some(&keys)));
    assert!(
        cache.get(last.as_bytes(), t).is_none(),
        "a withdrawn key still serves"
    );
    // A new key under the old kid is another key.
    let mut impostor = issuer.jwk(&issuer.add_key(Algorithm::EdDSA)).unwrap();
    impostor["kid"] = ed.clone().into();
    let doc = json!({ "keys": [issuer.jwk(&rsa).unwrap(), impostor] }).to_string();
    store.publish(KeySet::from_jwks(doc.as_bytes(), Some(&keys)).unwrap().0);
    assert!(cache.get(last.as_bytes(), t).is_none());
}

//! The whole gate decision, from a raw `authorization` value to allow or
//! deny, against a fixed key set. Beyond not panicking, it checks the gate's
//! one promise: only a token the issuer signed is ever let through.
#![no_main]

use std::{sync::OnceLock, time::Duration};

use authgate::{
    Gate, ScopePolicy, ValidationConfig, Validator, bearer_token,
    keys::{KeySet, KeyStore},
};
use libfuzzer_sys::fuzz_target;

const JWKS: &str = include_str!("../../tests/fixtures/fuzz/jwks.json");
const TOKENS: &str = include_str!("../../tests/fixtures/fuzz/tokens.txt");
const METHOD: &str = "/authgate.v1.PrivateService/GetPrivate";
/// 2026-01-01: inside every fixture token's validity, as in tests/it/fuzz.rs,
/// so that a run judges the same input the same way on any day.
const NOW: i64 = 1_767_225_600;

fn fixed_now() -> i64 {
    NOW
}

/// The gate under test, and the tokens its issuer signed.
struct Fixture {
    gate: Gate,
    issued: Vec<&'static str>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let store = KeyStore::new();
        store.publish(KeySet::from_jwks(JWKS.as_bytes(), None).unwrap().0);
        let validator = Validator::new(ValidationConfig {
            issuer: "https://fuzz.authgate.test/".into(),
            audiences: vec!["https://api.fuzz.test".into()],
            leeway: Duration::from_secs(30),
            require_typ: None,
            ..Default::default()
        });
        let policy = ScopePolicy::new([format!("{METHOD}=read:private").parse().unwrap()]);
        Fixture {
            // A small cache, so that the fuzzer also runs hits and evictions.
            gate: Gate::with_token_cache(validator, store, policy, 16).with_clock(fixed_now),
            issued: TOKENS.lines().filter(|l| !l.is_empty()).collect(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let gate = fixture();
    // A NUL splits the input into two authorization values, so the fuzzer
    // reaches the duplicate-header check too.
    let values: Vec<&[u8]> = data.splitn(2, |b| *b == 0).collect();
    if gate.gate.check(METHOD, values.iter().copied()).is_ok() {
        let token = bearer_token(values.iter().copied()).expect("an accepted bearer value");
        assert!(
            gate.issued.iter().any(|t| t.as_bytes() == token),
            "accepted a token the issuer never signed: {:?}",
            String::from_utf8_lossy(token)
        );
    }
});

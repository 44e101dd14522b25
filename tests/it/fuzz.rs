//! Mutation properties and fuzzing regressions, against the fixed key set
//! and tokens in `tests/fixtures/fuzz` (written by `fuzz_seeds`, shared with
//! the fuzz targets): no change to a valid token's header, payload or
//! signature is ever accepted, and no input the fuzzers kept panics the gate
//! or gets through it.

use std::{path::Path, time::Duration};

use authgate::{
    keys::KeySet,
    keys::KeyStore,
    {Gate, ScopePolicy, TrustedIssuer, bearer_token}, {ValidationConfig, Validator},
};

const JWKS: &str = include_str!("../fixtures/fuzz/jwks.json");
const TOKENS: &str = include_str!("../fixtures/fuzz/tokens.txt");
const METHOD: &str = "/authgate.v1.PrivateService/GetPrivate";
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// 2026-01-01: inside every fixture token's validity.
const NOW: i64 = 1_767_225_600;

fn keys() -> KeySet {
    KeySet::from_jwks(JWKS.as_bytes(), None).unwrap().0
}

fn validator() -> Validator {
    Validator::new(ValidationConfig {
        issuer: "https://fuzz.authgate.test/".into(),
        audiences: vec!["https://api.fuzz.test".into()],
        leeway: Duration::from_secs(30),
        require_typ: None,
        ..Default::default()
    })
}

fn store_of(keys: KeySet) -> std::sync::Arc<KeyStore> {
    let store = KeyStore::new();
    store.publish(keys);
    store
}

fn tokens() -> Vec<&'static str> {
    TOKENS.lines().filter(|l| !l.is_empty()).collect()
}

/// A small deterministic generator: the same mutations on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn every_fixture_token_is_valid() {
    // Without this the mutation tests below would prove nothing.
    let (keys, validator) = (keys(), validator());
    let tokens = tokens();
    assert_eq!(tokens.len(), 19);
    for token in tokens {
        if let Err(e) = validator.validate(token, &keys, NOW) {
            panic!("fixture token refused ({e}): regenerate with fuzz_seeds");
        }
    }
}

#[test]
fn no_single_character_substitution_is_accepted() {
    let (keys, validator) = (keys(), validator());
    let mut checked = 0usize;
    for (t, token) in tokens().into_iter().enumerate() {
        // Every position; every replacement for two of the tokens (RS256 and
        // ES256), four chosen ones for the rest, to keep the debug build quick.
        let exhaustive = t == 0 || t == 12;
        for i in 0..token.len() {
            let original = token.as_bytes()[i];
            let replacements: Vec<u8> = if exhaustive {
                ALPHABET.iter().copied().chain([b'.', b'=', b'+']).collect()
            } else {
                let j = ALPHABET.iter().position(|c| *c == original).unwrap_or(0);
                vec![ALPHABET[(j + 1) % 64], ALPHABET[(j + 32) % 64], b'.', b'A']
            };
            for replacement in replacements {
                if replacement == original {
                    continue;
                }
                let mut mutated = token.as_bytes().to_vec();
                mutated[i] = replacement;
                let mutated = String::from_utf8(mutated).unwrap();
                assert!(
                    validator.validate(&mutated, &keys, NOW).is_err(),
                    "token {t}: changing byte {i} to {:?} was accepted",
                    replacement as char
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 90_000, "{checked}");
}

#[test]
fn no_random_mutation_is_accepted() {
    let (keys, validator) = (keys(), validator());
    let mut rng = XorShift(0x5eed_f0a1_19a7);
    for (t, token) in tokens().into_iter().enumerate() {
        let parts: Vec<&str> = token.split('.').collect();
        for round in 0..1500 {
            let mut bytes = token.as_bytes().to_vec();
            let edits = 1 + rng.below(4);
            for _ in 0..edits {
                if bytes.is_empty() {
                    bytes.push(b'.');
                }
                match rng.below(6) {
                    0 => {
                        let i = rng.below(bytes.len());
                        bytes[i] = ALPHABET[rng.below(64)];
                    }
                    1 => {
                        let i = rng.below(bytes.len() + 1);
                        bytes.insert(i, ALPHABET[rng.below(64)]);
                    }
                    2 if bytes.len() > 1 => {
                        bytes.remove(rng.below(bytes.len()));
                    }
                    3 => bytes.truncate(rng.below(bytes.len())),
                    4 => {
                        // Splice a part of another token in.
                        let other: Vec<&str> = TOKENS
                            .lines()
                            .nth(rng.below(19))
                            .unwrap()
                            .split('.')
                            .collect();
                        let which = rng.below(3);
                        let mut mixed = parts.clone();
                        mixed[which] = other[which];
                        bytes = mixed.join(".").into_bytes();
                    }
                    _ => {
                        let i = rng.below(bytes.len());
                        bytes[i] ^= 1 << rng.below(7);
                    }
                }
            }
            let Ok(mutated) = String::from_utf8(bytes) else {
                continue;
            };
            if mutated == token || tokens().contains(&mutated.as_str()) {
                continue;
            }
            assert!(
                validator.validate(&mutated, &keys, NOW).is_err(),
                "token {t}, round {round}: a mutation was accepted: {mutated}"
            );
        }
    }
}

/// Runs what the fuzzers kept through the same checks as the fuzz targets.
#[test]
fn fuzzing_regressions_neither_panic_nor_pass() {
    let store = KeyStore::new();
    store.publish(keys());
    fn fixed_now() -> i64 {
        NOW
    }
    let gate = Gate::with_token_cache(
        validator(),
        store,
        ScopePolicy::new([format!("{METHOD}=read:private").parse().unwrap()]),
        16,
    )
    .with_clock(fixed_now);
    // The same key set trusted as a second issuer too: the inputs also go
    // through finding the issuer a token claims.
    let two = Gate::with_issuers(
        vec![
            TrustedIssuer::new(
                Validator::new(ValidationConfig {
                    issuer: "https://other.authgate.test/".into(),
                    audiences: vec!["https://api.fuzz.test".into()],
                    leeway: Duration::from_secs(30),
                    require_typ: None,
                    ..Default::default()
                }),
                store_of(keys()),
            ),
            TrustedIssuer::new(validator(), store_of(keys())),
        ],
        ScopePolicy::new([format!("{METHOD}=read:private").parse().unwrap()]),
        16,
    )
    .with_clock(fixed_now);
    let issued = tokens();
    // The gate judges at the fixture tokens' time, so that it can tell a
    // pass from a refusal: every issued token passes it.
    for (i, token) in issued.iter().enumerate() {
        let value = format!("Bearer {token}");
        let judged = gate.authenticate([value.as_bytes()]);
        assert!(judged.is_ok(), "fixture token {i}: {judged:?}");
    }
    for data in regression_inputs("authorize") {
        let values: Vec<&[u8]> = data.splitn(2, |b| *b == 0).collect();
        for gate in [&gate, &two] {
            if gate.check(METHOD, values.iter().copied()).is_ok() {
                let token = bearer_token(values.iter().copied()).unwrap();
                assert!(issued.iter().any(|t| t.as_bytes() == token));
            }
        }
    }
    // Every fixture token passes the two-issuer gate too: the test above
    // could otherwise pass by refusing everything.
    for token in &issued {
        let value = format!("Bearer {token}");
        assert!(two.authenticate([value.as_bytes()]).is_ok(), "{token}");
    }
    for data in regression_inputs("jwks") {
        if let Ok((first, _)) = KeySet::from_jwks(&data, None) {
            let (again, _) = KeySet::from_jwks(&data, Some(&first)).unwrap();
            assert!(again.keys().all(|k| first.holds(k)));
        }
    }
}

/// Every input kept for `target` under tests/fixtures/fuzz/regressions: a
/// folder that is missing or empty fails the test, which would otherwise
/// pass having replayed nothing.
fn regression_inputs(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz/regressions")
        .join(target);
    let inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(
        !inputs.is_empty(),
        "no regression inputs in {}",
        dir.display()
    );
    inputs
}

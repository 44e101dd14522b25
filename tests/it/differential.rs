//! jsonwebtoken, the crate our stack names, as the independent reference our
//! validator is checked against. Over a corpus (valid tokens of every
//! algorithm and of every shape authgate accepts, the hostile tokens of
//! `gate`, the inputs the fuzzers kept, and mutations of them all), with the
//! same key set, algorithms, issuer, audience and leeway:
//!
//! - a token jsonwebtoken refuses, authgate refuses too;
//! - a token authgate refuses and jsonwebtoken accepts is refused for one of
//!   the reasons SECURITY.md lists under "Where authgate is stricter than
//!   jsonwebtoken", and for no other.
//!
//! jsonwebtoken 12 does not know RFC 9864's `Ed25519` name. A token naming it
//! is judged by jsonwebtoken's own parts: its header and claims checks on the
//! same header (renamed HS256, under a secret of ours) and payload, and its
//! EdDSA verification of the same signature with the same keys.

use std::{collections::BTreeMap, path::Path, time::Duration};

use authgate::{
    keys::{Algorithm, KeySet},
    {ValidationConfig, Validator, bearer_token},
};
use aws_lc_rs::hmac;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm as Alg, DecodingKey, Validation, decode};
use serde_json::{Value, json};

use crate::{
    common::{SCOPE, now, spawn_app, spawn_issuer},
    gate::{Hostile, hostile_cases},
};

const LEEWAY: u64 = 30;

/// Why authgate may refuse a token that jsonwebtoken accepts: each is in
/// SECURITY.md with its reason. Any other refusal of a token jsonwebtoken
/// accepts is a bug in one of the two.
const STRICTER: [&str; 11] = [
    "typ_not_accepted",
    "unsupported_crit",
    "invalid_header",
    "embedded_key",
    "missing_kid",
    "invalid_claim",
    "malformed",
    "too_long",
    "expired",
    "not_yet_valid",
    // A key authgate skips (`use: enc`, no `verify` in `key_ops`, private
    // material published) is not in its set; jsonwebtoken is handed every key.
    "unknown_kid",
];

/// A key set and the rules, as both validators get them.
struct Rules {
    jwks: Vec<Value>,
    keys: KeySet,
    validator: Validator,
    issuer: String,
    audience: String,
}

impl Rules {
    fn new(jwks: &Value, issuer: &str, audience: &str) -> Rules {
        let document = jwks.to_string();
        let (keys, _) = KeySet::from_jwks(document.as_bytes(), None).unwrap();
        Rules {
            jwks: jwks["keys"].as_array().unwrap().clone(),
            keys,
            validator: Validator::new(ValidationConfig {
                issuer: issuer.into(),
                audiences: vec![audience.into()],
                leeway: Duration::from_secs(LEEWAY),
                require_typ: None,
                ..Default::default()
            }),
            issuer: issuer.into(),
            audience: audience.into(),
        }
    }

    fn authgate(&self, token: &[u8], now: i64) -> Result<(), &'static str> {
        self.validator
            .validate(token, &self.keys, now)
            .map(|_| ())
            .map_err(|e| e.reason())
    }

    /// jsonwebtoken configured as carefully as it allows: the algorithms the
    /// key is for, `exp`, `iss` and `aud` required, `nbf` checked.
    fn validation(&self, algorithms: Vec<Alg>) -> Validation {
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        validation.leeway = LEEWAY;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation
    }

    /// The keys jsonwebtoken is handed for a token naming `kid` (every key
    /// when it names none), each with the algorithms its JWK allows: its
    /// `alg`, or its type's.
    fn candidates(&self, kid: Option<&str>) -> Vec<(DecodingKey, Vec<Alg>)> {
        let s = |jwk: &Value, member: &str| jwk[member].as_str().unwrap_or("").to_owned();
        self.jwks
            .iter()
            .filter(|jwk| kid.is_none_or(|kid| jwk["kid"].as_str() == Some(kid)))
            .filter_map(|jwk| {
                let (key, family): (_, Vec<Alg>) = match jwk["kty"].as_str()? {
                    "RSA" => (
                        DecodingKey::from_rsa_components(&s(jwk, "n"), &s(jwk, "e")).ok()?,
                        jsonwebtoken::AlgorithmFamily::Rsa.algorithms().to_vec(),
                    ),
                    "EC" => (
                        DecodingKey::from_ec_components(&s(jwk, "x"), &s(jwk, "y")).ok()?,
                        match jwk["crv"].as_str()? {
                            "P-256" => vec![Alg::ES256],
                            "P-384" => vec![Alg::ES384],
                            _ => return None,
                        },
                    ),
                    "OKP" if jwk["crv"] == "Ed25519" => (
                        DecodingKey::from_ed_components(&s(jwk, "x")).ok()?,
                        vec![Alg::EdDSA],
                    ),
                    _ => return None,
                };
                let algorithms = match jwk["alg"].as_str() {
                    None => family.clone(),
                    // The configuration's side of RFC 9864: a key published
                    // for `Ed25519` is an EdDSA key.
                    Some("Ed25519") => vec![Alg::EdDSA],
                    Some(name) => vec![name.parse::<Alg>().ok()?],
                };
                algorithms
                    .iter()
                    .all(|alg| family.contains(alg))
                    .then_some((key, algorithms))
            })
            .collect()
    }

    fn jsonwebtoken(&self, token: &[u8]) -> bool {
        if let Some(verdict) = self.rfc9864(token) {
            return verdict;
        }
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return false;
        };
        self.candidates(header.kid.as_deref())
            .into_iter()
            .any(|(key, algorithms)| {
                decode::<Value>(token, &key, &self.validation(algorithms)).is_ok()
            })
    }

    /// For a token whose header names `Ed25519`, jsonwebtoken's verdict from
    /// its parts; `None` for any other token.
    fn rfc9864(&self, token: &[u8]) -> Option<bool> {
        const NAMED: &str = r#""alg":"Ed25519""#;
        let text = std::str::from_utf8(token).ok()?;
        let parts: Vec<&str> = text.split('.').collect();
        let [h, p, signature] = parts[..] else {
            return None;
        };
        let header = String::from_utf8(URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
        if !header.contains(NAMED) {
            return None;
        }
        let secret = b"the differential's own secret";
        let renamed = header.replacen(NAMED, r#""alg":"HS256""#, 1);
        let input = format!("{}.{p}", URL_SAFE_NO_PAD.encode(&renamed));
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
        let twin = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        let validation = self.validation(vec![Alg::HS256]);
        if decode::<Value>(
            &twin,
            &DecodingKey::from_secret(secret).unwrap(),
            &validation,
        )
        .is_err()
        {
            return Some(false);
        }
        let kid = jsonwebtoken::decode_header(&twin).ok()?.kid;
        let signed = format!("{h}.{p}");
        Some(
            self.candidates(kid.as_deref())
                .into_iter()
                .filter(|(_, algorithms)| algorithms.contains(&Alg::EdDSA))
                .any(|(key, _)| {
                    jsonwebtoken::crypto::verify(signature, signed.as_bytes(), &key, Alg::EdDSA)
                        .unwrap_or(false)
                }),
        )
    }
}

/// What the comparison found.
#[derive(Default)]
struct Tally {
    both_accept: usize,
    both_refuse: usize,
    /// Tokens authgate refuses and jsonwebtoken accepts, by authgate's reason.
    stricter: BTreeMap<&'static str, usize>,
    failures: Vec<String>,
}

impl Tally {
    fn compare(&mut self, rules: &Rules, what: &str, token: &[u8]) {
        let theirs = rules.jsonwebtoken(token);
        // Read after jsonwebtoken's own clock, never before it.
        let now = jsonwebtoken::get_current_timestamp() as i64;
        match (rules.authgate(token, now), theirs) {
            (Ok(()), true) => self.both_accept += 1,
            (Err(_), false) => self.both_refuse += 1,
            (Ok(()), false) => self.failures.push(format!(
                "{what}: authgate accepts a token jsonwebtoken refuses: {}",
                String::from_utf8_lossy(token)
            )),
            (Err(reason), true) if STRICTER.contains(&reason) => {
                *self.stricter.entry(reason).or_default() += 1;
            }
            (Err(reason), true) => self.failures.push(format!(
                "{what}: authgate refuses ({reason}) a token jsonwebtoken accepts, for a reason \
                 SECURITY.md does not list: {}",
                String::from_utf8_lossy(token)
            )),
        }
    }

    fn total(&self) -> usize {
        self.both_accept + self.both_refuse + self.stricter.values().sum::<usize>()
    }
}

/// A small deterministic generator: the same corpus on every run.
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
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Byte-level mutations of `token`: most break the signature, some the
/// encoding or the structure.
fn mutations(token: &str, rng: &mut XorShift, rounds: usize) -> Vec<Vec<u8>> {
    (0..rounds)
        .filter_map(|_| {
            let mut bytes = token.as_bytes().to_vec();
            for _ in 0..1 + rng.below(3) {
                if bytes.is_empty() {
                    bytes.push(b'.');
                }
                let i = rng.below(bytes.len());
                match rng.below(5) {
                    0 => bytes[i] = ALPHABET[rng.below(64)],
                    1 => bytes.insert(i, *rng.pick(b".=A ")),
                    2 => drop(bytes.remove(i)),
                    3 => bytes.truncate(i),
                    _ => bytes[i] ^= 1 << rng.below(8),
                }
            }
            // A mutation that changed nothing is the token itself.
            (bytes != token.as_bytes()).then_some(bytes)
        })
        .collect()
}

#[test]
fn the_fixture_corpus_and_the_fuzzers_inputs_agree_with_jsonwebtoken() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let jwks: Value = serde_json::from_str(include_str!("../fixtures/fuzz/jwks.json")).unwrap();
    let rules = Rules::new(
        &jwks,
        "https://fuzz.authgate.test/",
        "https://api.fuzz.test",
    );
    let tokens: Vec<&str> = include_str!("../fixtures/fuzz/tokens.txt")
        .lines()
        .filter(|l| !l.is_empty())
        .collect();
    let mut tally = Tally::default();
    let mut rng = XorShift(0x0d1f_fe7e_71a1);
    for (t, token) in tokens.iter().enumerate() {
        // Without this the rest would prove little.
        assert_eq!(rules.authgate(token.as_bytes(), now()), Ok(()));
        assert!(rules.jsonwebtoken(token.as_bytes()), "fixture token {t}");
        tally.compare(&rules, &format!("fixture token {t}"), token.as_bytes());
        for mutated in mutations(token, &mut rng, 300) {
            tally.compare(&rules, &format!("mutation of fixture token {t}"), &mutated);
        }
    }
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz/regressions/authorize");
    let mut kept = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let values: Vec<&[u8]> = data.splitn(2, |b| *b == 0).collect();
        if let Ok(token) = bearer_token(values.iter().copied()) {
            tally.compare(&rules, "fuzz regression", token);
            kept += 1;
        }
    }
    assert!(kept > 50, "only {kept} fuzz regressions are bearer tokens");
    report("fixtures, fuzz regressions and their mutations", &tally);
}

#[tokio::test]
async fn every_shape_and_every_hostile_token_agree_with_jsonwebtoken() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let app = spawn_app().await;
    let recorder = spawn_issuer().await;
    let Hostile { cases, good } = hostile_cases(&app, &recorder).await;
    let issuer = &app.issuer;

    // The key set: a key of every algorithm (the ones the hostile cases
    // added among them), an RSA key published without `alg`, an Ed25519 key
    // published as `Ed25519`, an EC key sharing the RSA key's kid, and keys
    // authgate skips.
    let mut signers: Vec<(String, Algorithm)> = Algorithm::ALL
        .iter()
        .map(|&alg| (issuer.add_key(alg), alg))
        .collect();
    let rsa_bare = issuer.add_unpublished_key(Algorithm::RS256);
    let ed_named = issuer.add_unpublished_key(Algorithm::EdDSA);
    let shared = issuer.current_kid();
    let ec_shared = issuer.add_unpublished_key(Algorithm::ES256);
    let enc = issuer.add_unpublished_key(Algorithm::RS256);
    let mut extra = Vec::new();
    let mut jwk = issuer.jwk(&rsa_bare).unwrap();
    jwk.as_object_mut().unwrap().remove("alg");
    extra.push(jwk);
    let mut jwk = issuer.jwk(&ed_named).unwrap();
    jwk["alg"] = "Ed25519".into();
    extra.push(jwk);
    let mut jwk = issuer.jwk(&ec_shared).unwrap();
    jwk["kid"] = shared.clone().into();
    extra.push(jwk);
    let mut jwk = issuer.jwk(&enc).unwrap();
    jwk["use"] = "enc".into();
    extra.push(jwk);
    extra.push(json!({"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"}));
    extra.push(json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}));
    issuer.set_extra_jwks(extra);
    signers.extend([
        (rsa_bare.clone(), Algorithm::PS384),
        (ed_named.clone(), Algorithm::EdDSA),
        (enc.clone(), Algorithm::RS256),
    ]);
    let rules = Rules::new(&issuer.jwks_document(), issuer.url(), issuer.audience());

    let mut tally = Tally::default();
    // The hostile cases, as tokens.
    let mut hostile = 0;
    for case in &cases {
        if let [value] = &case.authorization[..]
            && let Some(token) = value.strip_prefix("Bearer ")
        {
            tally.compare(&rules, case.name, token.as_bytes());
            hostile += 1;
        }
    }
    assert!(hostile > 60, "only {hostile} hostile tokens");
    tally.compare(&rules, "the good token", good.as_bytes());

    // Tokens of every algorithm and shape, valid and not: headers and claims
    // drawn at random, each signed by a key of the set (or one it lacks).
    let mut rng = XorShift(0x5ca1_ab1e_d1ff);
    let t = now();
    let sign = |rng: &mut XorShift, header: &str, claims: &str| {
        let (kid, alg) = rng.pick(&signers).clone();
        let alg = match alg {
            // An RSA key signs with any RSA algorithm; the header may say another.
            Algorithm::RS256 | Algorithm::PS384 => *rng.pick(&[
                Algorithm::RS256,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
            ]),
            alg => alg,
        };
        let header = header
            .replace("$ALG", alg_name(rng, alg))
            .replace("$KID", &kid);
        (
            issuer.sign_raw(&kid, alg, header.as_bytes(), claims.as_bytes()),
            kid,
        )
    };
    let mut valid = 0;
    for round in 0..2500 {
        let (header, claims) = random_token(&mut rng, &shared, issuer.url(), issuer.audience(), t);
        let (token, kid) = sign(&mut rng, &header, &claims);
        let before = tally.both_accept;
        tally.compare(
            &rules,
            &format!("round {round}, signed by {kid}"),
            token.as_bytes(),
        );
        valid += tally.both_accept - before;
        if round % 10 == 0 {
            for mutated in mutations(&token, &mut rng, 3) {
                tally.compare(&rules, &format!("mutation of round {round}"), &mutated);
            }
        }
    }
    // Every algorithm and shape that should pass did, on both sides.
    let mut shapes = 0;
    for (kid, alg) in &signers {
        for (typ, scopes) in [
            (None, json!({"scope": SCOPE})),
            (Some("at+jwt"), json!({"scp": [SCOPE]})),
            (
                Some("application/at+jwt"),
                json!({"scp": format!("a {SCOPE}")}),
            ),
            (Some("JWT"), json!({"scope": ["openid", SCOPE]})),
        ] {
            let mut claims = issuer.claims("shape", &[]);
            for (k, v) in scopes.as_object().unwrap() {
                claims[k] = v.clone();
            }
            let mut header = json!({"alg": alg.name(), "kid": kid});
            if let Some(typ) = typ {
                header["typ"] = typ.into();
            }
            if *kid == ed_named {
                header["alg"] = "Ed25519".into();
            }
            let token = issuer.sign_raw(
                kid,
                *alg,
                header.to_string().as_bytes(),
                claims.to_string().as_bytes(),
            );
            let ours = rules.authgate(token.as_bytes(), now());
            if *kid == enc {
                assert_eq!(ours, Err("unknown_kid"), "an encryption key verified");
                continue;
            }
            assert_eq!(ours, Ok(()), "{header} {claims}");
            tally.compare(&rules, &format!("shape {header}"), token.as_bytes());
            shapes += 1;
        }
    }
    assert!(shapes >= 40, "{shapes}");
    assert!(
        valid > 100,
        "only {valid} random tokens were valid: the corpus is mostly noise"
    );
    report(
        "every algorithm and shape, the hostile tokens, random and mutated",
        &tally,
    );
}

fn alg_name(rng: &mut XorShift, alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::EdDSA if rng.below(2) == 0 => "Ed25519",
        alg => alg.name(),
    }
}

/// A header and claims: right but for up to three members, each then drawn
/// from values that are wrong, of the wrong type, repeated, or of another
/// shape that one validator or the other takes. The first value of each list
/// is the right one; an empty value leaves the member out.
fn random_token(
    rng: &mut XorShift,
    shared: &str,
    iss: &str,
    aud: &str,
    t: i64,
) -> (String, String) {
    let q = |s: &str| format!("\"{s}\"");
    let shared = q(shared);
    // Dates keep five seconds from every edge: the two validators read the
    // clock a moment apart.
    let at = |offset: i64| (t + offset).to_string();
    let header: Vec<(&str, Vec<String>)> = vec![
        (
            "alg",
            [
                "\"$ALG\"",
                "\"RS256\"",
                "\"ES256\"",
                "\"EdDSA\"",
                "\"Ed25519\"",
                "\"none\"",
                "\"HS256\"",
                "7",
            ]
            .map(String::from)
            .to_vec(),
        ),
        (
            "kid",
            vec![
                "\"$KID\"".into(),
                shared,
                "\"nobody\"".into(),
                "".into(),
                "5".into(),
            ],
        ),
        (
            "typ",
            [
                "",
                "\"JWT\"",
                "\"at+jwt\"",
                "\"application/at+jwt\"",
                "\"AT+JWT\"",
                "\"dpop+jwt\"",
                "\"logout+jwt\"",
                "\"\"",
                "1",
                "[\"JWT\"]",
            ]
            .map(String::from)
            .to_vec(),
        ),
        (
            "",
            [
                "",
                r#""cty":"JWT""#,
                r#""x5t":"abc""#,
                r#""x5c":["MIIB"]"#,
                r#""x5c":"MIIB""#,
                r#""crit":["b64"],"b64":true"#,
                r#""crit":["exp"]"#,
                r#""b64":true"#,
                r#""b64":false"#,
                r#""jku":"https://evil.example/jwks""#,
                r#""jwk":{"kty":"oct","k":"AA"}"#,
                r#""x-extra":{"a":1,"a":2}"#,
                r#""x-extra":"\ud800""#,
                r#""x-extra":1e999"#,
                r#""x-extra":[1,{"b":null}]"#,
                r#""kid":"again""#,
                r#""typ":"JWT""#,
            ]
            .map(String::from)
            .to_vec(),
        ),
    ];
    let claims: Vec<(&str, Vec<String>)> = vec![
        (
            "iss",
            vec![
                q(iss),
                q(iss.trim_end_matches('/')),
                format!("[{}]", q(iss)),
                q("https://evil.example/"),
                "7".into(),
                "".into(),
            ],
        ),
        (
            "aud",
            vec![
                q(aud),
                format!("[\"x\",{}]", q(aud)),
                format!("[{}]", q(aud)),
                "[]".into(),
                q("x"),
                "7".into(),
                "null".into(),
                "".into(),
            ],
        ),
        (
            "exp",
            vec![
                at(3600),
                format!("{}.5", t + 600),
                at(-100),
                at(-20),
                at(-40),
                q("9999999999"),
                "-1".into(),
                "1e300".into(),
                "18446744073709551615".into(),
                "null".into(),
                "".into(),
            ],
        ),
        (
            "nbf",
            vec![
                "".into(),
                at(100),
                at(20),
                format!("{}.5", t - 100),
                at(-100),
                "-5".into(),
                q("0"),
                "-0.5".into(),
                "0".into(),
            ],
        ),
        (
            "iat",
            vec![at(0), "".into(), q("now"), "1.5".into(), "-3".into()],
        ),
        (
            "sub",
            vec![q("u"), q(""), "7".into(), "[\"u\"]".into(), "".into()],
        ),
        (
            "scope",
            vec![
                q("read:private openid"),
                "".into(),
                "[\"read:private\"]".into(),
                "[]".into(),
                "7".into(),
                "[\"a\",7]".into(),
            ],
        ),
        (
            "scp",
            vec![
                "".into(),
                q("a b"),
                "[\"read:private\"]".into(),
                "{\"a\":1}".into(),
            ],
        ),
        (
            "permissions",
            vec![
                "".into(),
                "[\"read:private\"]".into(),
                q("read:private"),
                "[7]".into(),
            ],
        ),
        (
            "",
            [
                "",
                r#""email":"a@example.com""#,
                r#""org":{"id":"acme","roles":["a"]}"#,
                r#""email":"a","email":"b""#,
                r#""org":{"id":1,"id":2}"#,
                r#""name":"\udc00""#,
                r#""name":"caf\u00e9""#,
                r#""big":1e400"#,
                r#""n":-0"#,
                r#""exp":1"#,
                r#""sub":"v""#,
                r#""iat":5"#,
            ]
            .map(String::from)
            .to_vec(),
        ),
    ];
    let fields = header.len() + claims.len();
    let edited: Vec<usize> = (0..rng.below(4)).map(|_| rng.below(fields)).collect();
    let mut object = |members: &[(&str, Vec<String>)], offset: usize| {
        let mut out: Vec<String> = Vec::new();
        for (i, (name, values)) in members.iter().enumerate() {
            let value = if edited.contains(&(offset + i)) {
                rng.pick(values).clone()
            } else {
                values[0].clone()
            };
            match (value.is_empty(), name.is_empty()) {
                (true, _) => {}
                (false, true) => out.push(value),
                (false, false) => out.push(format!("\"{name}\":{value}")),
            }
        }
        // Order matters to parsers that keep the first or the last of a pair.
        if out.len() > 1 && rng.below(3) == 0 {
            let (i, j) = (rng.below(out.len()), rng.below(out.len()));
            out.swap(i, j);
        }
        format!("{{{}}}", out.join(","))
    };
    let header = object(&header, 0);
    let claims = object(&claims, 4);
    match rng.below(60) {
        0 => (header, "[1,2]".into()),
        1 => (header, format!("{claims} x")),
        _ => (header, claims),
    }
}

fn report(what: &str, tally: &Tally) {
    println!(
        "differential ({what}): {} tokens; both accept {}, both refuse {}; authgate stricter: {:?}",
        tally.total(),
        tally.both_accept,
        tally.both_refuse,
        tally.stricter
    );
    assert!(
        tally.failures.is_empty(),
        "{} divergences:\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
}

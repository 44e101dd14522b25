//! Token validation through the real server: every accepted algorithm, and
//! hostile tokens that must each be refused with their code.

use aws_lc_rs::hmac;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tonic::Code;

use crate::common::{SCOPE, TestApp, code, now, spawn_app, spawn_issuer};
use authgate::{issuer::DevIssuer, keys::Algorithm};

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with any header and payload JSON text, signed by `kid` under `alg`.
fn signed(issuer: &DevIssuer, kid: &str, alg: Algorithm, header: &str, payload: &str) -> String {
    issuer.sign_raw(kid, alg, header.as_bytes(), payload.as_bytes())
}

fn header(alg: &str, kid: &str) -> String {
    json!({"alg": alg, "typ": "JWT", "kid": kid}).to_string()
}

/// Claims the server accepts, with `edit` applied.
fn claims_with(app: &TestApp, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut claims = app.issuer.claims("user|1", &[SCOPE]);
    edit(claims.as_object_mut().unwrap());
    claims.to_string()
}

#[tokio::test]
async fn a_valid_token_of_every_algorithm_is_accepted() {
    let app = spawn_app().await;
    let kids: Vec<(Algorithm, String)> = Algorithm::ALL
        .iter()
        .map(|&alg| (alg, app.issuer.add_key(alg)))
        .collect();
    // New keys are in the JWKS; the first token naming one fetches it.
    for (alg, kid) in &kids {
        let token = app
            .issuer
            .mint_with(kid, &app.issuer.claims("svc@clients", &[SCOPE]));
        let ok = crate::common::eventually(std::time::Duration::from_secs(5), || async {
            app.call(&token).await.is_ok()
        })
        .await;
        assert!(ok, "{alg} token refused: {:?}", app.call(&token).await);
        let response = app.call(&token).await.unwrap();
        assert_eq!(response.message, "This is private");
        assert_eq!(response.subject, "svc@clients");
        assert_eq!(response.scopes, [SCOPE]);
    }
}

#[tokio::test]
async fn an_rsa_jwk_without_alg_verifies_every_rsa_algorithm_and_nothing_else() {
    let app = spawn_app().await;
    let kid = app.issuer.add_unpublished_key(Algorithm::RS256);
    let mut jwk = app.issuer.jwk(&kid).unwrap();
    jwk.as_object_mut().unwrap().remove("alg");
    app.issuer.set_extra_jwks(vec![jwk]);
    let claims = app.issuer.claims("u", &[SCOPE]).to_string();
    let first = signed(
        &app.issuer,
        &kid,
        Algorithm::PS512,
        &header("PS512", &kid),
        &claims,
    );
    assert!(
        crate::common::eventually(std::time::Duration::from_secs(5), || async {
            app.call(&first).await.is_ok()
        })
        .await
    );
    for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
        let a = Algorithm::from_name(alg).unwrap();
        let token = signed(&app.issuer, &kid, a, &header(alg, &kid), &claims);
        assert_eq!(code(&app.call(&token).await), Code::Ok, "{alg}");
    }
    let es = signed(
        &app.issuer,
        &kid,
        Algorithm::RS256,
        &header("ES256", &kid),
        &claims,
    );
    let status = app.call(&es).await.unwrap_err();
    assert_eq!(status.message(), "token algorithm does not match its key");
}

#[tokio::test]
async fn leeway_forgives_small_clock_skew() {
    let app = spawn_app().await;
    let kid = app.issuer.current_kid();
    let alg = Algorithm::RS256;
    let h = header("RS256", &kid);
    let just_expired = claims_with(&app, |c| {
        c.insert("exp".into(), (now() - 10).into());
    });
    let almost_valid = claims_with(&app, |c| {
        c.insert("nbf".into(), (now() + 10).into());
    });
    for claims in [just_expired, almost_valid] {
        let token = signed(&app.issuer, &kid, alg, &h, &claims);
        assert_eq!(code(&app.call(&token).await), Code::Ok, "{claims}");
    }
}

#[tokio::test]
async fn aud_may_be_an_array_that_contains_ours() {
    let app = spawn_app().await;
    let kid = app.issuer.current_kid();
    let aud = app.issuer.audience().to_owned();
    let claims = claims_with(&app, |c| {
        c.insert("aud".into(), json!(["https://other/api", aud]));
    });
    let token = signed(
        &app.issuer,
        &kid,
        Algorithm::RS256,
        &header("RS256", &kid),
        &claims,
    );
    assert_eq!(code(&app.call(&token).await), Code::Ok);
}

/// A hostile case: what is sent as `authorization` values, and what the
/// server must answer.
struct Case {
    name: &'static str,
    authorization: Vec<String>,
    expect: Code,
    /// The message must contain this.
    says: &'static str,
}

fn bearer(name: &'static str, token: String, expect: Code, says: &'static str) -> Case {
    Case {
        name,
        authorization: vec![format!("Bearer {token}")],
        expect,
        says,
    }
}

#[tokio::test]
async fn hostile_tokens_are_refused_each_with_its_code() {
    let app = spawn_app().await;
    let recorder = spawn_issuer().await;
    let issuer = &app.issuer;
    let kid = issuer.current_kid();
    let rs = Algorithm::RS256;
    let good_header = header("RS256", &kid);
    let good_claims = claims_with(&app, |_| {});
    let good = signed(issuer, &kid, rs, &good_header, &good_claims);
    let (h64, p64, s64) = {
        let parts: Vec<&str> = good.split('.').collect();
        (
            parts[0].to_owned(),
            parts[1].to_owned(),
            parts[2].to_owned(),
        )
    };
    let attacker = issuer.add_unpublished_key(rs);
    let ec_kid = issuer.add_key(Algorithm::ES256);
    let second_rsa = issuer.add_key(rs);
    // Let the server learn the new keys before the cases run.
    let warm = issuer.mint_with(&ec_kid, &issuer.claims("u", &[SCOPE]));
    assert!(
        crate::common::eventually(std::time::Duration::from_secs(5), || async {
            app.call(&warm).await.is_ok()
        })
        .await
    );

    // The RSA public key, as an attacker would feed it to HMAC.
    let jwk = issuer.jwk(&kid).unwrap();
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    let hmac_token = |alg: &str, algorithm: hmac::Algorithm, secret: &[u8]| {
        let message = format!("{}.{p64}", b64(header(alg, &kid)));
        let tag = hmac::sign(&hmac::Key::new(algorithm, secret), message.as_bytes());
        format!("{message}.{}", b64(tag.as_ref()))
    };
    let jwk_text = jwk.to_string();
    let with = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let claims = claims_with(&app, |c| edit(c));
        signed(issuer, &kid, rs, &good_header, &claims)
    };
    // A token with one claim set to `value`, or removed, and what it must say.
    let set = |name, claim: &str, value: Value, says| {
        bearer(
            name,
            with(&|c| drop(c.insert(claim.into(), value.clone()))),
            Code::Unauthenticated,
            says,
        )
    };
    let unset = |name, claim: &str, says| {
        bearer(
            name,
            with(&|c| drop(c.remove(claim))),
            Code::Unauthenticated,
            says,
        )
    };
    let iss = issuer.url().to_owned();
    let attacker_jwk = issuer.jwk(&attacker).unwrap();
    let recorder_url = recorder.jwks_url();
    let ec_claims = issuer.claims("u", &[SCOPE]).to_string();
    let ec_header = header("ES256", &ec_kid);

    let mut big = good_claims.clone();
    big.insert_str(1, &format!("\"pad\":\"{}\",", "A".repeat(9000)));
    let mut flipped_sig = URL_SAFE_NO_PAD.decode(&s64).unwrap();
    flipped_sig[10] ^= 1;
    let tampered_payload = b64(claims_with(&app, |c| {
        c.insert("sub".into(), "admin".into());
    }));

    // The good token is verified once and cached: every case below is checked
    // with a cached token beside it, and none may ride on it.
    assert_eq!(code(&app.call(&good).await), Code::Ok);
    let u = Code::Unauthenticated;
    let cases = vec![
        bearer(
            "alg none",
            format!("{}.{p64}.", b64(r#"{"alg":"none","typ":"JWT"}"#)),
            u,
            "not allowed",
        ),
        bearer(
            "alg none with a signature",
            format!(
                "{}.{p64}.{s64}",
                b64(format!(r#"{{"alg":"none","kid":"{kid}"}}"#))
            ),
            u,
            "`none` is not allowed",
        ),
        bearer(
            "alg NoNe",
            format!("{}.{p64}.", b64(r#"{"alg":"NoNe"}"#)),
            u,
            "not allowed",
        ),
        bearer(
            "HS256 keyed with the RSA modulus",
            hmac_token("HS256", hmac::HMAC_SHA256, &n),
            u,
            "`HS256` is not allowed",
        ),
        bearer(
            "HS256 keyed with the JWK text",
            hmac_token("HS256", hmac::HMAC_SHA256, jwk_text.as_bytes()),
            u,
            "not allowed",
        ),
        bearer(
            "HS512",
            hmac_token("HS512", hmac::HMAC_SHA512, &n),
            u,
            "not allowed",
        ),
        bearer(
            "unknown alg",
            signed(issuer, &kid, rs, &header("XS999", &kid), &good_claims),
            u,
            "algorithm is not allowed",
        ),
        bearer(
            "tampered signature",
            format!("{h64}.{p64}.{}", b64(&flipped_sig)),
            u,
            "signature is invalid",
        ),
        bearer(
            "tampered payload",
            format!("{h64}.{tampered_payload}.{s64}"),
            u,
            "signature is invalid",
        ),
        bearer(
            "tampered header",
            format!(
                "{}.{p64}.{s64}",
                b64(json!({"alg":"RS256","kid":kid,"typ":"at+jwt"}).to_string())
            ),
            u,
            "signature is invalid",
        ),
        bearer(
            "signature of another token",
            format!("{h64}.{p64}.{}", warm.split('.').nth(2).unwrap()),
            u,
            "signature is invalid",
        ),
        bearer(
            "ECDSA all-zero signature",
            format!("{}.{}.{}", b64(&ec_header), b64(&ec_claims), b64([0u8; 64])),
            u,
            "signature is invalid",
        ),
        bearer(
            "ECDSA signature of the wrong length",
            format!("{}.{}.{}", b64(&ec_header), b64(&ec_claims), b64([1u8; 63])),
            u,
            "signature is invalid",
        ),
        bearer(
            "unknown kid",
            signed(
                issuer,
                &attacker,
                rs,
                &header("RS256", &attacker),
                &good_claims,
            ),
            u,
            "not in the issuer's key set",
        ),
        bearer(
            "lying kid",
            signed(issuer, &attacker, rs, &good_header, &good_claims),
            u,
            "signature is invalid",
        ),
        bearer(
            "key/algorithm mismatch: PS256 on an RS256 key",
            signed(
                issuer,
                &kid,
                Algorithm::PS256,
                &header("PS256", &kid),
                &good_claims,
            ),
            u,
            "does not match its key",
        ),
        bearer(
            "key/algorithm mismatch: ES256 names an RSA key",
            signed(
                issuer,
                &ec_kid,
                Algorithm::ES256,
                &header("ES256", &kid),
                &good_claims,
            ),
            u,
            "does not match its key",
        ),
        bearer(
            "key/algorithm mismatch: RS256 names an EC key",
            signed(issuer, &kid, rs, &header("RS256", &ec_kid), &good_claims),
            u,
            "does not match its key",
        ),
        bearer(
            "RS512 signature under RS256",
            signed(issuer, &kid, Algorithm::RS512, &good_header, &good_claims),
            u,
            "signature is invalid",
        ),
        bearer(
            "embedded jwk with its kid",
            signed(
                issuer,
                &attacker,
                rs,
                &json!({"alg":"RS256","kid":attacker,"jwk":attacker_jwk}).to_string(),
                &good_claims,
            ),
            u,
            "not in the issuer's key set",
        ),
        bearer(
            "embedded jwk without kid",
            signed(
                issuer,
                &attacker,
                rs,
                &json!({"alg":"RS256","jwk":attacker_jwk}).to_string(),
                &good_claims,
            ),
            u,
            "no key id",
        ),
        bearer(
            "jku to a server that records being asked",
            signed(
                issuer,
                &attacker,
                rs,
                &json!({"alg":"RS256","kid":attacker,"jku":recorder_url}).to_string(),
                &good_claims,
            ),
            u,
            "not in the issuer's key set",
        ),
        bearer(
            "x5u to a server that records being asked",
            signed(
                issuer,
                &attacker,
                rs,
                &json!({"alg":"RS256","kid":kid,"x5u":recorder_url}).to_string(),
                &good_claims,
            ),
            u,
            "signature is invalid",
        ),
        bearer(
            "x5c chain naming another key",
            signed(
                issuer,
                &attacker,
                rs,
                &json!({"alg":"RS256","kid":kid,"x5c":["MIIB"]}).to_string(),
                &good_claims,
            ),
            u,
            "signature is invalid",
        ),
        bearer(
            "unknown crit",
            signed(
                issuer,
                &kid,
                rs,
                &json!({"alg":"RS256","kid":kid,"crit":["urn:x"],"urn:x":1}).to_string(),
                &good_claims,
            ),
            u,
            "critical extension",
        ),
        bearer(
            "crit b64=false",
            signed(
                issuer,
                &kid,
                rs,
                &json!({"alg":"RS256","kid":kid,"crit":["b64"],"b64":false}).to_string(),
                &good_claims,
            ),
            u,
            "critical extension",
        ),
        set("expired", "exp", (now() - 120).into(), "expired"),
        set(
            "not yet valid",
            "nbf",
            (now() + 120).into(),
            "not yet valid",
        ),
        set(
            "wrong issuer",
            "iss",
            "https://evil.example/".into(),
            "issuer is not accepted",
        ),
        set(
            "issuer without its trailing slash",
            "iss",
            iss.trim_end_matches('/').into(),
            "issuer is not accepted",
        ),
        unset("missing iss", "iss", "no `iss`"),
        set(
            "wrong aud",
            "aud",
            "https://other/api".into(),
            "audience is not accepted",
        ),
        set(
            "empty aud array",
            "aud",
            json!([]),
            "audience is not accepted",
        ),
        unset("missing aud", "aud", "no `aud`"),
        unset("missing exp", "exp", "no `exp`"),
        set(
            "exp as a string",
            "exp",
            (now() + 600).to_string().into(),
            "`exp` is invalid",
        ),
        set("nbf as a string", "nbf", "0".into(), "`nbf` is invalid"),
        set("aud as a number", "aud", 7.into(), "`aud` is invalid"),
        set("iss as an array", "iss", json!([iss]), "`iss` is invalid"),
        set(
            "scope as an array",
            "scope",
            json!([SCOPE]),
            "`scope` is invalid",
        ),
        set(
            "permissions as a string",
            "permissions",
            SCOPE.into(),
            "`permissions` is invalid",
        ),
        set(
            "sub as an object",
            "sub",
            json!({"id": 1}),
            "`sub` is invalid",
        ),
        bearer(
            "exp twice, the second one later",
            signed(
                issuer,
                &kid,
                rs,
                &good_header,
                &format!(r#"{{"exp":{},{}"#, now() - 100, &good_claims[1..]),
            ),
            u,
            "`exp` is invalid",
        ),
        bearer(
            "alg twice",
            signed(
                issuer,
                &kid,
                rs,
                &format!(r#"{{"alg":"none","alg":"RS256","kid":"{kid}"}}"#),
                &good_claims,
            ),
            u,
            "malformed",
        ),
        bearer(
            "payload not JSON",
            signed(issuer, &kid, rs, &good_header, "not json"),
            u,
            "claims are not a JSON object",
        ),
        bearer(
            "payload a JSON array",
            signed(issuer, &kid, rs, &good_header, "[1,2]"),
            u,
            "claims are not a JSON object",
        ),
        bearer(
            "header not JSON",
            format!("{}.{p64}.{s64}", b64("not json")),
            u,
            "malformed",
        ),
        bearer(
            "header without alg",
            format!("{}.{p64}.{s64}", b64(format!(r#"{{"kid":"{kid}"}}"#))),
            u,
            "malformed",
        ),
        bearer(
            "oversize token",
            signed(issuer, &kid, rs, &good_header, &big),
            u,
            "longer than 8192",
        ),
        bearer(
            "base64 padding",
            format!("{h64}.{p64}.{s64}=="),
            u,
            "malformed",
        ),
        bearer(
            "standard base64 alphabet",
            format!("{h64}.{p64}.{}", s64.replace('-', "+").replace('_', "/")),
            u,
            "malformed",
        ),
        bearer(
            "empty signature",
            format!("{h64}.{p64}."),
            u,
            "signature is invalid",
        ),
        bearer(
            "JWE-shaped, five parts",
            format!("{h64}.{p64}.{s64}.AA.AA"),
            u,
            "three",
        ),
        bearer("two parts", format!("{h64}.{p64}"), u, "three"),
        bearer(
            "no kid, two keys for RS256",
            signed(issuer, &second_rsa, rs, r#"{"alg":"RS256"}"#, &good_claims),
            u,
            "no key id",
        ),
        bearer(
            "two tokens in one value",
            format!("{good} {good}"),
            u,
            "malformed",
        ),
        bearer(
            "two tokens comma-separated",
            format!("{good},{good}"),
            u,
            "malformed",
        ),
        Case {
            name: "two authorization entries",
            authorization: vec![format!("Bearer {good}"), format!("Bearer {good}")],
            expect: u,
            says: "more than one",
        },
        Case {
            name: "no authorization",
            authorization: vec![],
            expect: u,
            says: "missing authorization",
        },
        Case {
            name: "Basic scheme",
            authorization: vec![format!("Basic {good}")],
            expect: u,
            says: "not `Bearer",
        },
        Case {
            name: "bare token, no scheme",
            authorization: vec![good.clone()],
            expect: u,
            says: "not `Bearer",
        },
        Case {
            name: "Bearer and nothing",
            authorization: vec!["Bearer ".into()],
            expect: u,
            says: "not `Bearer",
        },
        Case {
            name: "Bearer without a space",
            authorization: vec![format!("Bearer{good}")],
            expect: u,
            says: "not `Bearer",
        },
    ];
    assert!(cases.len() >= 30, "only {} cases", cases.len());

    let mut failures = Vec::new();
    for case in &cases {
        let result = app.call_with(&case.authorization).await;
        let got = code(&result);
        let message = result
            .as_ref()
            .err()
            .map(|s| s.message().to_owned())
            .unwrap_or_default();
        if got != case.expect || !message.contains(case.says) {
            failures.push(format!(
                "{}: got {got:?} {message:?}, want {:?} saying {:?}",
                case.name, case.expect, case.says
            ));
        }
        // The refusal never quotes the token back.
        for value in &case.authorization {
            if let Some(token) = value.strip_prefix("Bearer ") {
                for part in token.split('.').filter(|p| p.len() > 8) {
                    assert!(
                        !message.contains(part),
                        "{}: message echoes the token",
                        case.name
                    );
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // The token's own URLs were never fetched.
    assert_eq!(recorder.jwks_hits(), 0, "a jku/x5u URL was fetched");
    assert_eq!(recorder.discovery_hits(), 0);
    // And the good token, beside them all, still passes.
    assert_eq!(code(&app.call(&good).await), Code::Ok);
}

#[tokio::test]
async fn a_cached_token_still_expires_on_time() {
    let app = crate::common::spawn_app_with(crate::common::Options {
        leeway: std::time::Duration::ZERO,
        ..Default::default()
    })
    .await;
    let exp = now() + 2;
    let claims = claims_with(&app, |c| {
        c.insert("exp".into(), exp.into());
    });
    let kid = app.issuer.current_kid();
    let token = signed(
        &app.issuer,
        &kid,
        Algorithm::RS256,
        &header("RS256", &kid),
        &claims,
    );
    assert_eq!(code(&app.call(&token).await), Code::Ok);
    assert_eq!(
        code(&app.call(&token).await),
        Code::Ok,
        "served again, from the cache"
    );
    while now() < exp {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let status = app.call(&token).await.unwrap_err();
    assert_eq!(status.message(), "token has expired");
}

#[tokio::test]
async fn large_headers_and_payloads_within_the_limit_pass() {
    // Past the stack buffers, into the heap path: a 2 KB header (an x5c
    // chain, ignored) and a 3 KB claim, still under the 8 KiB limit.
    let app = spawn_app().await;
    let kid = app.issuer.current_kid();
    let header = json!({"alg": "RS256", "kid": kid, "x5c": ["A".repeat(2000)]}).to_string();
    let claims = claims_with(&app, |c| {
        c.insert("profile".into(), "p".repeat(3000).into());
    });
    let token = signed(&app.issuer, &kid, Algorithm::RS256, &header, &claims);
    assert!(token.len() < 8192);
    let response = app.call(&token).await.expect("a large valid token passes");
    assert_eq!(response.subject, "user|1");
}

//! Token validation through the real server: every accepted algorithm, and
//! hostile tokens that must each be refused with their code.

use aws_lc_rs::hmac;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tonic::Code;

use crate::common::{
    Options, SCOPE, TestApp, code, manual_clock, now, set_clock, spawn_app, spawn_app_with,
    spawn_issuer,
};
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
        let ok = crate::common::eventually(crate::common::patience(), || async {
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
        crate::common::eventually(crate::common::patience(), || async {
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

/// A server whose gate reads the time from `clock`, with 30 s of leeway.
async fn app_with_clock(clock: authgate::Clock) -> TestApp {
    spawn_app_with(Options {
        clock: Some(clock),
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn leeway_forgives_skew_on_exp_to_the_second_even_from_the_cache() {
    let (clock, read) = manual_clock!(now());
    let app = app_with_clock(read).await;
    let kid = app.issuer.current_kid();
    let exp = now() + 600;
    let claims = claims_with(&app, |c| {
        c.insert("exp".into(), exp.into());
    });
    let token = signed(
        &app.issuer,
        &kid,
        Algorithm::RS256,
        &header("RS256", &kid),
        &claims,
    );
    // Valid up to the last second of `exp` plus the 30 s of leeway: verified
    // once, then served from the cache...
    set_clock(clock, exp + 29);
    assert_eq!(code(&app.call(&token).await), Code::Ok);
    assert_eq!(code(&app.call(&token).await), Code::Ok);
    // ...which does not outlive it by a second.
    set_clock(clock, exp + 30);
    let status = app.call(&token).await.unwrap_err();
    assert_eq!(status.message(), "token has expired");
    // Nor does a fresh check of the same token.
    let again = signed(
        &app.issuer,
        &kid,
        Algorithm::RS256,
        &header("RS256", &kid),
        &claims,
    );
    assert_eq!(
        app.call(&again).await.unwrap_err().message(),
        "token has expired"
    );
}

#[tokio::test]
async fn leeway_forgives_skew_on_nbf_to_the_second() {
    let (clock, read) = manual_clock!(now());
    let app = app_with_clock(read).await;
    let kid = app.issuer.current_kid();
    let nbf = now() + 600;
    let claims = claims_with(&app, |c| {
        c.insert("nbf".into(), nbf.into());
        c.insert("exp".into(), (nbf + 3600).into());
    });
    let token = signed(
        &app.issuer,
        &kid,
        Algorithm::RS256,
        &header("RS256", &kid),
        &claims,
    );
    // A refusal is not cached: the same token passes once its time comes.
    set_clock(clock, nbf - 31);
    let status = app.call(&token).await.unwrap_err();
    assert_eq!(status.message(), "token is not yet valid");
    set_clock(clock, nbf - 30);
    assert_eq!(code(&app.call(&token).await), Code::Ok);
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
pub(crate) struct Case {
    pub name: &'static str,
    pub authorization: Vec<String>,
    pub expect: Code,
    /// The message must contain this.
    pub says: &'static str,
}

/// Every hostile case, and the good token they are variations of.
pub(crate) struct Hostile {
    pub cases: Vec<Case>,
    pub good: String,
}

fn bearer(name: &'static str, token: String, expect: Code, says: &'static str) -> Case {
    Case {
        name,
        authorization: vec![format!("Bearer {token}")],
        expect,
        says,
    }
}

/// The hostile cases against `app`'s issuer and key set, once the server has
/// learnt the keys they use. `recorder` is an issuer that must never be asked
/// for anything: headers point at it.
pub(crate) async fn hostile_cases(app: &TestApp, recorder: &DevIssuer) -> Hostile {
    let issuer = &app.issuer;
    let kid = issuer.current_kid();
    let rs = Algorithm::RS256;
    let good_header = header("RS256", &kid);
    let good_claims = claims_with(app, |_| {});
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
        crate::common::eventually(crate::common::patience(), || async {
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
        let claims = claims_with(app, |c| edit(c));
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
    let tampered_payload = b64(claims_with(app, |c| {
        c.insert("sub".into(), "admin".into());
    }));

    let u = Code::Unauthenticated;
    let mut cases = vec![
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
            "carries its own key",
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
            "carries its own key",
        ),
        bearer(
            "embedded jwk, signed by the issuer's own key",
            signed(
                issuer,
                &kid,
                rs,
                &json!({"alg":"RS256","kid":kid,"jwk":attacker_jwk}).to_string(),
                &good_claims,
            ),
            u,
            "carries its own key",
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
            "`b64` is invalid",
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
        set(
            "aud array without ours",
            "aud",
            json!(["https://other/api", "https://another/api"]),
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
        set("scope as a number", "scope", json!(7), "`scope` is invalid"),
        set(
            "scope as an array holding a number",
            "scope",
            json!([SCOPE, 7]),
            "`scope` is invalid",
        ),
        set(
            "scp as an object",
            "scp",
            json!({"a": SCOPE}),
            "`scp` is invalid",
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
            "`alg` is invalid",
        ),
        bearer(
            "kid twice",
            signed(
                issuer,
                &kid,
                rs,
                &format!(r#"{{"alg":"RS256","kid":"{kid}","kid":"{kid}"}}"#),
                &good_claims,
            ),
            u,
            "member `kid` is invalid",
        ),
        bearer(
            "crit twice",
            signed(
                issuer,
                &kid,
                rs,
                &format!(r#"{{"alg":"RS256","kid":"{kid}","crit":["urn:x"],"crit":["urn:y"]}}"#),
                &good_claims,
            ),
            u,
            "member `crit` is invalid",
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
    // Header members that say what the token is, or that jsonwebtoken reads.
    let with_header = |h: &str| signed(issuer, &kid, rs, h, &good_claims);
    let typ = |name, typ: Value| {
        let h = json!({"alg": "RS256", "kid": kid, "typ": typ}).to_string();
        bearer(
            name,
            with_header(&h),
            u,
            "token type (`typ`) is not accepted",
        )
    };
    let header_member = |name, member: &str, says| {
        let h = format!(r#"{{"alg":"RS256","kid":"{kid}",{member}}}"#);
        bearer(name, with_header(&h), u, says)
    };
    // Claims that the gate does not check, but that must read back as checked.
    let claims_text = |name, extra: &str| {
        let claims = format!("{{{extra},{}", &good_claims[1..]);
        bearer(
            name,
            signed(issuer, &kid, rs, &good_header, &claims),
            u,
            "a claim is repeated, or holds",
        )
    };
    let mut bad_utf8 = br#"{"name":""#.to_vec();
    bad_utf8.extend_from_slice(b"\xff\xfe\",");
    bad_utf8.extend_from_slice(&good_claims.as_bytes()[1..]);
    cases.extend([
        typ("typ dpop+jwt: a DPoP proof", "dpop+jwt".into()),
        typ("typ logout+jwt: a logout token", "logout+jwt".into()),
        typ("typ secevent+jwt", "secevent+jwt".into()),
        typ("typ application/jwt+dpop", "application/dpop+jwt".into()),
        typ("typ empty", "".into()),
        typ("typ at+jwt with a space", "at+jwt ".into()),
        header_member("typ as an array", r#""typ":["JWT"]"#, "`typ` is invalid"),
        header_member(
            "typ twice, the second a DPoP proof's",
            r#""typ":"JWT","typ":"dpop+jwt""#,
            "`typ` is invalid",
        ),
        header_member("x5c as a string", r#""x5c":"MIIB""#, "`x5c` is invalid"),
        header_member("cty as a number", r#""cty":1"#, "`cty` is invalid"),
        header_member(
            "b64 false without crit",
            r#""b64":false"#,
            "`b64` is invalid",
        ),
        header_member("b64 as a string", r#""b64":"true""#, "`b64` is invalid"),
        header_member(
            "another header member twice",
            r#""x-tenant":"a","x-tenant":"b""#,
            "is invalid",
        ),
        header_member(
            "a header member with a lone surrogate",
            r#""x-tenant":"\ud800""#,
            "is invalid",
        ),
        bearer(
            "alg Ed25519 naming an RSA key",
            signed(issuer, &kid, rs, &header("Ed25519", &kid), &good_claims),
            u,
            "does not match its key",
        ),
        bearer(
            "alg ed25519, in the wrong case",
            signed(issuer, &kid, rs, &header("ed25519", &kid), &good_claims),
            u,
            "algorithm is not allowed",
        ),
        claims_text("a claim twice", r#""email":"a@x","email":"root@x""#),
        claims_text(
            "a member twice inside a claim",
            r#""org":{"id":"a","id":"admin"}"#,
        ),
        claims_text("a claim with a lone surrogate", r#""name":"\udc00""#),
        claims_text("a claim with a number out of range", r#""n":1e400"#),
        bearer(
            "a claim of invalid UTF-8",
            issuer.sign_raw(&kid, rs, good_header.as_bytes(), &bad_utf8),
            u,
            "a claim is repeated, or holds",
        ),
        set("exp negative", "exp", json!(-1), "`exp` is invalid"),
        set("exp 1e300", "exp", json!(1e300), "`exp` is invalid"),
        set("nbf negative", "nbf", json!(-0.5), "`nbf` is invalid"),
        set("iat as a string", "iat", json!("0"), "`iat` is invalid"),
    ]);
    Hostile { cases, good }
}

#[tokio::test]
async fn hostile_tokens_are_refused_each_with_its_code() {
    let app = spawn_app().await;
    let recorder = spawn_issuer().await;
    let Hostile { cases, good } = hostile_cases(&app, &recorder).await;
    // The good token is verified once and cached: every case below is checked
    // with a cached token beside it, and none may ride on it.
    assert_eq!(code(&app.call(&good).await), Code::Ok);
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

#[tokio::test]
async fn every_access_token_typ_is_accepted() {
    let app = spawn_app().await;
    let kid = app.issuer.current_kid();
    let claims = claims_with(&app, |_| {});
    let headers = [
        json!({"alg": "RS256", "kid": kid}),
        json!({"alg": "RS256", "kid": kid, "typ": "JWT"}),
        json!({"alg": "RS256", "kid": kid, "typ": "jwt"}),
        json!({"alg": "RS256", "kid": kid, "typ": "at+jwt"}),
        json!({"alg": "RS256", "kid": kid, "typ": "AT+JWT"}),
        json!({"alg": "RS256", "kid": kid, "typ": "application/at+jwt"}),
        json!({"alg": "RS256", "kid": kid, "typ": "Application/At+JWT"}),
    ];
    for h in headers {
        let token = signed(&app.issuer, &kid, Algorithm::RS256, &h.to_string(), &claims);
        let result = app.call(&token).await;
        assert_eq!(code(&result), Code::Ok, "{h}: {result:?}");
    }
}

#[tokio::test]
async fn require_typ_accepts_only_that_typ() {
    let app = crate::common::spawn_app_with(crate::common::Options {
        require_typ: Some("at+jwt".into()),
        ..Default::default()
    })
    .await;
    let kid = app.issuer.current_kid();
    let claims = claims_with(&app, |_| {});
    let token = |typ: Option<&str>| {
        let mut h = json!({"alg": "RS256", "kid": kid});
        if let Some(typ) = typ {
            h["typ"] = typ.into();
        }
        signed(&app.issuer, &kid, Algorithm::RS256, &h.to_string(), &claims)
    };
    for typ in ["at+jwt", "application/at+jwt", "AT+JWT"] {
        let result = app.call(&token(Some(typ))).await;
        assert_eq!(code(&result), Code::Ok, "{typ}: {result:?}");
    }
    // Only `application/` may be dropped, not any twelve characters.
    for typ in [
        None,
        Some("JWT"),
        Some("dpop+jwt"),
        Some("applicatiox/at+jwt"),
    ] {
        let status = app.call(&token(typ)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{typ:?}");
        assert_eq!(status.message(), "token type (`typ`) is not accepted");
    }
}

#[tokio::test]
async fn ed25519_by_its_rfc_9864_name_is_eddsa() {
    let app = spawn_app().await;
    // A key published as `alg: EdDSA`, and one published as `alg: Ed25519`.
    let eddsa = app.issuer.add_key(Algorithm::EdDSA);
    let named = app.issuer.add_unpublished_key(Algorithm::EdDSA);
    let mut jwk = app.issuer.jwk(&named).unwrap();
    jwk["alg"] = "Ed25519".into();
    app.issuer.set_extra_jwks(vec![jwk]);
    let claims = claims_with(&app, |_| {});
    let warm = app
        .issuer
        .mint_with(&eddsa, &app.issuer.claims("u", &[SCOPE]));
    assert!(
        crate::common::eventually(crate::common::patience(), || async {
            app.call(&warm).await.is_ok()
        })
        .await
    );
    for kid in [&eddsa, &named] {
        for alg in ["Ed25519", "EdDSA"] {
            let token = signed(
                &app.issuer,
                kid,
                Algorithm::EdDSA,
                &header(alg, kid),
                &claims,
            );
            let result = app.call(&token).await;
            assert_eq!(code(&result), Code::Ok, "{alg} with {kid}: {result:?}");
        }
    }
    // The name is an algorithm, not a way around one: it verifies only
    // with an Ed25519 key, and only an Ed25519 signature.
    let rsa = app.issuer.current_kid();
    let forged = signed(
        &app.issuer,
        &rsa,
        Algorithm::RS256,
        &header("Ed25519", &eddsa),
        &claims,
    );
    assert_eq!(
        app.call(&forged).await.unwrap_err().message(),
        "token signature is invalid"
    );
}

#[tokio::test]
async fn a_kid_naming_keys_of_two_types_picks_the_one_for_the_alg() {
    let app = spawn_app().await;
    // RFC 7517 §4.5: an RSA key and an EC key under one kid.
    let kid = app.issuer.current_kid();
    let ec = app.issuer.add_unpublished_key(Algorithm::ES256);
    let mut jwk = app.issuer.jwk(&ec).unwrap();
    jwk["kid"] = kid.clone().into();
    app.issuer.set_extra_jwks(vec![jwk]);
    let claims = claims_with(&app, |_| {});
    let es256 = signed(
        &app.issuer,
        &ec,
        Algorithm::ES256,
        &header("ES256", &kid),
        &claims,
    );
    let rs256 = signed(
        &app.issuer,
        &kid,
        Algorithm::RS256,
        &header("RS256", &kid),
        &claims,
    );
    // The first call may predate the fetch that lists the EC key.
    let refetch = app.issuer.add_unpublished_key(Algorithm::ES256);
    let probe = app.issuer.mint_with(&refetch, &app.issuer.claims("u", &[]));
    assert!(
        crate::common::eventually(crate::common::patience(), || async {
            let _ = app.call(&probe).await;
            app.call(&es256).await.is_ok()
        })
        .await,
        "{:?}",
        app.call(&es256).await
    );
    assert_eq!(code(&app.call(&rs256).await), Code::Ok);
    // Neither key is for ES384, nor verifies the other's signatures.
    let es384 = signed(
        &app.issuer,
        &ec,
        Algorithm::ES256,
        &header("ES384", &kid),
        &claims,
    );
    assert_eq!(
        app.call(&es384).await.unwrap_err().message(),
        "token algorithm does not match its key"
    );
    let swapped = signed(
        &app.issuer,
        &kid,
        Algorithm::RS256,
        &header("ES256", &kid),
        &claims,
    );
    assert_eq!(
        app.call(&swapped).await.unwrap_err().message(),
        "token signature is invalid"
    );
}

#[tokio::test]
async fn fractions_of_a_second_count_against_the_token() {
    // `exp` rounds down and `nbf` up, checked at a fixed `now` so that no
    // second can tick between the token and the check.
    let issuer = spawn_issuer().await;
    let kid = issuer.current_kid();
    let keys = {
        let doc = json!({"keys": [issuer.jwk(&kid).unwrap()]}).to_string();
        authgate::keys::KeySet::from_jwks(doc.as_bytes(), None)
            .unwrap()
            .0
    };
    let validator = authgate::Validator::new(authgate::ValidationConfig {
        issuer: issuer.url().to_owned(),
        audiences: vec![issuer.audience().to_owned()],
        leeway: std::time::Duration::from_secs(30),
        require_typ: None,
        ..Default::default()
    });
    let at = 2_000_000_000i64;
    let token = |claim: &str, value: f64| {
        let mut claims = issuer.claims("u", &[SCOPE]);
        claims["exp"] = (at + 3600).into();
        claims[claim] = value.into();
        issuer.mint(&claims)
    };
    let check = |token: &str| validator.validate(token, &keys, at).map(|_| ());
    // exp + leeway must be after now: 1969.9 + 30 rounds down to 1999 + 30.
    assert_eq!(
        check(&token("exp", (at - 30) as f64 + 0.9)),
        Err(authgate::AuthError::Expired)
    );
    assert_eq!(check(&token("exp", (at - 29) as f64 + 0.1)), Ok(()));
    // nbf - leeway must not be after now: at + 30.1 rounds up to at + 31.
    assert_eq!(
        check(&token("nbf", (at + 30) as f64 + 0.1)),
        Err(authgate::AuthError::NotYetValid)
    );
    assert_eq!(check(&token("nbf", (at + 30) as f64)), Ok(()));
}

#[tokio::test]
async fn the_claims_a_handler_reads_are_the_claims_the_gate_checked() {
    // What the gate accepts reads back whole, whatever type it is read into;
    // what would read back differently (a repeat, a lone surrogate) was
    // refused at the gate (see the hostile cases).
    let issuer = spawn_issuer().await;
    let kid = issuer.current_kid();
    let keys = {
        let doc = json!({"keys": [issuer.jwk(&kid).unwrap()]}).to_string();
        authgate::keys::KeySet::from_jwks(doc.as_bytes(), None)
            .unwrap()
            .0
    };
    let validator = authgate::Validator::new(authgate::ValidationConfig {
        issuer: issuer.url().to_owned(),
        audiences: vec![issuer.audience().to_owned()],
        leeway: std::time::Duration::from_secs(30),
        require_typ: None,
        ..Default::default()
    });
    let mut claims = issuer.claims("u", &[SCOPE]);
    claims["org"] = json!({"id": "acme", "roles": ["a", "b"], "n": 1.5e300});
    claims["email"] = "\u{e9}@x".into();
    let token = issuer.mint(&claims);
    let principal = validator.validate(&token, &keys, now()).unwrap().principal;
    let read: Value = principal.claims().unwrap();
    assert_eq!(read, claims);
    #[derive(serde::Deserialize)]
    struct Org {
        id: String,
        roles: Vec<String>,
    }
    #[derive(serde::Deserialize)]
    struct Mine {
        email: String,
        org: Org,
    }
    let mine: Mine = principal.claims().unwrap();
    assert_eq!(
        (mine.email.as_str(), mine.org.id.as_str()),
        ("\u{e9}@x", "acme")
    );
    assert_eq!(mine.org.roles, ["a", "b"]);
}

/// A token signed by the issuer's current key whose compact form is exactly
/// `length` bytes long, padded in a claim and, for the lengths base64url
/// cannot reach that way, in the header.
fn token_of_length(app: &TestApp, length: usize) -> String {
    let kid = app.issuer.current_kid();
    let b64_len = |n: usize| (4 * n).div_ceil(3);
    let signature = b64_len(256);
    for extra in 0..3 {
        let header = json!({"alg": "RS256", "kid": kid, "x": "h".repeat(extra)}).to_string();
        let base = claims_with(app, |c| {
            c.insert("pad".into(), "".into());
        });
        for pad in 0..length {
            let payload_len = base.len() + pad;
            if b64_len(header.len()) + b64_len(payload_len) + signature + 2 == length {
                let claims = claims_with(app, |c| {
                    c.insert("pad".into(), "p".repeat(pad).into());
                });
                let token = signed(&app.issuer, &kid, Algorithm::RS256, &header, &claims);
                assert_eq!(token.len(), length);
                return token;
            }
        }
    }
    panic!("no token of {length} bytes");
}

#[tokio::test]
async fn a_token_of_8192_bytes_passes_and_one_of_8193_does_not() {
    let app = spawn_app().await;
    let longest = token_of_length(&app, 8192);
    let too_long = token_of_length(&app, 8193);
    // Through the gate...
    assert_eq!(code(&app.call(&longest).await), Code::Ok);
    let status = app.call(&too_long).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "token is longer than 8192 bytes");
    // ...and the validator alone, which must not rely on the gate's own check.
    let keys = app.keys.load().clone().expect("the key set loaded");
    let validator = authgate::Validator::new(authgate::ValidationConfig {
        issuer: app.issuer.url().to_owned(),
        audiences: vec![app.issuer.audience().to_owned()],
        leeway: std::time::Duration::from_secs(30),
        require_typ: None,
        ..Default::default()
    });
    assert_eq!(validator.leeway(), 30);
    assert!(validator.validate(&longest, &keys, now()).is_ok());
    assert_eq!(
        validator.validate(&too_long, &keys, now()).unwrap_err(),
        authgate::AuthError::TooLong { max: 8192 }
    );
    // ...and the look at `iss` that picks among several issuers, which reads
    // the payload before anything else does.
    let claimed = |token: &str| {
        authgate::test_util::claimed_issuer(token.as_bytes(), |iss| Some(iss.to_owned()))
    };
    assert_eq!(claimed(&longest).as_deref(), Ok(app.issuer.url()));
    assert_eq!(
        claimed(&too_long),
        Err(authgate::AuthError::TooLong { max: 8192 })
    );
}

/// A server of `PrivateService` alone behind the gate as an interceptor
/// (`PrivateServiceServer::with_interceptor`), fed by a refresher of
/// `issuer`'s JWKS, as a user of the library would assemble it.
async fn serve_with_interceptor(
    issuer: &DevIssuer,
    policy: authgate::ScopePolicy,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    use authgate::{
        keys::{JwksSource, KeyStore, RefreshConfig, Refresher},
        pb::private_service_server::PrivateServiceServer,
        server::PrivateService,
        {Gate, ValidationConfig, Validator},
    };
    let store = KeyStore::new();
    let refresher = Refresher::new(
        store.clone(),
        JwksSource::Url(issuer.jwks_url().parse().unwrap()),
        RefreshConfig::default(),
    )
    .unwrap();
    let gate = Gate::new(
        Validator::new(ValidationConfig {
            issuer: issuer.url().to_owned(),
            audiences: vec![issuer.audience().to_owned()],
            leeway: std::time::Duration::from_secs(30),
            require_typ: None,
            ..Default::default()
        }),
        store.clone(),
        policy,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let refresher = tokio::spawn(refresher.run());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(PrivateServiceServer::with_interceptor(PrivateService, gate))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async {
                    let _ = stopped.await;
                },
            )
            .await
            .unwrap();
        refresher.abort();
    });
    tokio::time::timeout(crate::common::patience(), store.wait_loaded())
        .await
        .expect("the key set loads");
    (addr, stop)
}

async fn call_one_service(
    addr: std::net::SocketAddr,
    token: &str,
) -> Result<String, tonic::Status> {
    let mut client = authgate::pb::private_service_client::PrivateServiceClient::connect(format!(
        "http://{addr}"
    ))
    .await
    .unwrap();
    let mut request = tonic::Request::new(authgate::pb::GetPrivateRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    Ok(client.get_private(request).await?.into_inner().subject)
}

#[tokio::test]
async fn the_one_service_interceptor_refuses_rather_than_skip_scope_rules() {
    let issuer = spawn_issuer().await;
    let token = issuer.mint(&issuer.claims("user|1", &[SCOPE]));
    // Without rules it authenticates and hands the handler the caller.
    let (addr, _stop) = serve_with_interceptor(&issuer, Default::default()).await;
    assert_eq!(call_one_service(addr, &token).await.unwrap(), "user|1");
    assert_eq!(
        call_one_service(addr, "a.b.c").await.unwrap_err().code(),
        Code::Unauthenticated
    );
    // With a rule it cannot know which method is called, so it cannot apply
    // the rule: every call is refused, even one whose token has the scope.
    let rules = [format!("{}={SCOPE}", crate::common::GET_PRIVATE)
        .parse()
        .unwrap()];
    let (addr, _stop) = serve_with_interceptor(&issuer, authgate::ScopePolicy::new(rules)).await;
    let status = call_one_service(addr, &token).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "the method being called is unknown, so its scopes cannot be checked"
    );
}

/// The gate as a library user drives it, on a clock the test sets: the
/// deadline a call gets is what its token has left on the gate's clock,
/// counted from now on the runtime's (so a stream is cut at `exp` plus the
/// leeway), and every decision is counted by its reason.
#[tokio::test]
async fn a_calls_deadline_is_what_its_token_has_left_and_decisions_are_counted() {
    use authgate::{
        AuthError,
        keys::{JwksSource, KeyStore, RefreshConfig, Refresher},
        {Gate, ScopePolicy, ValidationConfig, Validator},
    };
    use tokio::time::Instant;
    let issuer = spawn_issuer().await;
    let keys = KeyStore::new();
    let source = JwksSource::Url(issuer.jwks_url().parse().unwrap());
    let refresher = tokio::spawn(
        Refresher::new(keys.clone(), source, RefreshConfig::default())
            .unwrap()
            .run(),
    );
    keys.wait_loaded().await;
    let (clock, read) = manual_clock!(now());
    let gate = Gate::new(
        Validator::new(ValidationConfig {
            issuer: issuer.url().into(),
            audiences: vec![issuer.audience().into()],
            leeway: std::time::Duration::from_secs(30),
            require_typ: None,
            ..Default::default()
        }),
        keys,
        ScopePolicy::default(),
    )
    .with_clock(read);
    let mut claims = issuer.claims("deadline", &[]);
    claims["exp"] = (read() + 600).into();
    let bearer = format!("Bearer {}", issuer.mint(&claims));
    let check = || {
        gate.check(
            "/authgate.v1.PrivateService/GetPrivate",
            [bearer.as_bytes()],
        )
    };

    let principal = check().expect("a valid token");
    let left = std::time::Duration::from_secs(630);
    let before = Instant::now();
    let deadline = gate.deadline(&principal);
    let after = Instant::now();
    assert!(before + left <= deadline && deadline <= after + left);
    // Ten minutes later on the gate's clock, thirty seconds are left.
    set_clock(clock, read() + 600);
    let principal = check().expect("within the leeway");
    let before = Instant::now();
    let deadline = gate.deadline(&principal);
    let after = Instant::now();
    let left = std::time::Duration::from_secs(30);
    assert!(before + left <= deadline && deadline <= after + left);
    // At exp plus the leeway, refused; and nothing is left of any deadline.
    set_clock(clock, read() + 30);
    assert_eq!(check().unwrap_err().error, AuthError::Expired);
    let before = Instant::now();
    let deadline = gate.deadline(&principal);
    assert!(before <= deadline && deadline <= Instant::now());

    let stats = gate.stats();
    assert_eq!(stats.allowed(), 2);
    assert_eq!(stats.denied_for(&AuthError::Expired), 1);
    assert_eq!(stats.denied_for(&AuthError::BadSignature), 0);
    refresher.abort();
}

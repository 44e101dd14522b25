//! Several issuers, each a real dev issuer over HTTP: every issuer's tokens
//! pass, checked only with its own keys; a token naming an issuer that is
//! not configured is refused without a fetch; one issuer down or rotating
//! leaves the others untouched.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use authgate::{issuer::DevIssuer, keys::Algorithm};
use serde_json::{Value, json};
use tonic::Code;

use crate::common::{
    Options, SCOPE, TestApp, code, eventually, held_address, patience, spawn_app_trusting,
    spawn_issuer, start_issuer_on,
};

/// A `kid` every issuer from [`issuers`] publishes, each for a key of its own.
const SHARED_KID: &str = "shared-kid";

/// `n` dev issuers, each publishing its signing key under its own `kid`
/// and under [`SHARED_KID`] as well.
async fn issuers(n: usize) -> Vec<DevIssuer> {
    let mut all = Vec::new();
    for _ in 0..n {
        let issuer = spawn_issuer().await;
        let mut jwk = issuer.jwk(&issuer.current_kid()).unwrap();
        jwk["kid"] = SHARED_KID.into();
        issuer.set_extra_jwks(vec![jwk]);
        all.push(issuer);
    }
    all
}

/// `claims` signed by `signer`'s current key, the header naming [`SHARED_KID`].
fn under_shared_kid(signer: &DevIssuer, claims: &Value) -> String {
    let kid = signer.current_kid();
    let alg = signer.key_algorithm(&kid);
    let header = json!({"alg": alg.name(), "typ": "JWT", "kid": SHARED_KID}).to_string();
    signer.sign_raw(&kid, alg, header.as_bytes(), claims.to_string().as_bytes())
}

/// Every dev issuer trusted, in order: the first, then the others.
fn all(app: &TestApp) -> Vec<&DevIssuer> {
    std::iter::once(&app.issuer).chain(&app.others).collect()
}

fn token_of(issuer: &DevIssuer, subject: &str) -> String {
    issuer.mint(&issuer.claims(subject, &[SCOPE]))
}

/// `claims` signed by `signer`'s key `kid`, whatever they say.
fn signed_by(signer: &DevIssuer, kid: &str, claims: &Value) -> String {
    signer.mint_with(kid, claims)
}

async fn passes_each_and_never_across(app: &TestApp) {
    let issuers = all(app);
    for (i, issuer) in issuers.iter().enumerate() {
        let response = app.call(&token_of(issuer, &format!("user-{i}"))).await;
        assert_eq!(
            response.map(|r| r.subject).ok(),
            Some(format!("user-{i}")),
            "issuer {i}'s token"
        );
    }
    // Every issuer publishes its key under the same kid as well: a token of
    // each under that kid passes...
    for (i, issuer) in issuers.iter().enumerate() {
        let token = under_shared_kid(issuer, &issuer.claims(&format!("shared-{i}"), &[SCOPE]));
        assert!(
            app.call(&token).await.is_ok(),
            "issuer {i} under the shared kid"
        );
    }
    // ...and a token claiming one issuer, signed by another's key under that
    // kid, is checked with the claimed issuer's key only.
    for (i, claimed) in issuers.iter().enumerate() {
        for (j, signer) in issuers.iter().enumerate() {
            if i == j {
                continue;
            }
            let forged = under_shared_kid(signer, &claimed.claims("forger", &[SCOPE]));
            let status = app.call(&forged).await.unwrap_err();
            assert_eq!(
                status.code(),
                Code::Unauthenticated,
                "issuer {i}'s claims signed by issuer {j}'s key: {status:?}"
            );
            assert_eq!(status.message(), "token signature is invalid");
        }
    }
}

#[tokio::test]
async fn two_issuers_each_pass_and_keys_never_cross() {
    let app = spawn_app_trusting(issuers(2).await, &[], Options::default()).await;
    passes_each_and_never_across(&app).await;
}

#[tokio::test]
async fn three_issuers_each_pass_and_keys_never_cross() {
    let app = spawn_app_trusting(issuers(3).await, &[], Options::default()).await;
    passes_each_and_never_across(&app).await;
    // And without the token cache, every call verified afresh.
    let app = spawn_app_trusting(
        issuers(3).await,
        &[],
        Options {
            token_cache_entries: 0,
            ..Options::default()
        },
    )
    .await;
    passes_each_and_never_across(&app).await;
}

/// Whether the server has fetched nothing new from `issuer` since `jwks`
/// and `discovery` hits.
fn untouched(issuer: &DevIssuer, (jwks, discovery): (usize, usize)) -> bool {
    issuer.jwks_hits() == jwks && issuer.discovery_hits() == discovery
}

fn hits(issuer: &DevIssuer) -> (usize, usize) {
    (issuer.jwks_hits(), issuer.discovery_hits())
}

#[tokio::test]
async fn an_unconfigured_issuer_is_refused_and_never_contacted() {
    let mut options = Options::default();
    // A refresher that is woken stays asked for a minute: the flags below
    // show every wake-up without waiting for a fetch.
    options.refresh.interval = Duration::from_secs(60);
    options.refresh.min_interval = Duration::from_secs(60);
    let app = spawn_app_trusting(issuers(2).await, &[], options).await;
    let stranger = spawn_issuer().await;
    let before: Vec<_> = all(&app).into_iter().map(hits).collect();

    // Its own token, a well-formed one with an unknown kid, and one signed
    // by a trusted issuer's key: all name an issuer nobody configured.
    let unknown_kid = stranger.add_unpublished_key(Algorithm::ES256);
    let claims = stranger.claims("stranger", &[SCOPE]);
    let tokens = [
        stranger.mint(&claims),
        stranger.mint_with(&unknown_kid, &claims),
        signed_by(&app.issuer, &app.issuer.current_kid(), &claims),
    ];
    for token in &tokens {
        let status = app.call(token).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert_eq!(status.message(), "token issuer is not accepted");
    }
    assert_eq!(
        hits(&stranger),
        (0, 0),
        "the gate contacted the token's issuer"
    );
    for (issuer, store) in all(&app).into_iter().zip(&app.stores) {
        assert!(
            !store.refresh_asked(),
            "{}'s refresher was woken",
            issuer.url()
        );
    }

    // What a wake-up looks like: an unknown kid of the first issuer wakes
    // its refresher and no other.
    let rotated = app.issuer.add_unpublished_key(Algorithm::ES256);
    let probe = app
        .issuer
        .mint_with(&rotated, &app.issuer.claims("x", &[SCOPE]));
    assert_eq!(code(&app.call(&probe).await), Code::Unauthenticated);
    assert!(app.stores[0].refresh_asked());
    assert!(
        !app.stores[1].refresh_asked(),
        "another issuer's refresher woke"
    );
    for (issuer, before) in all(&app).into_iter().zip(before) {
        assert!(
            untouched(issuer, before),
            "{} was fetched from",
            issuer.url()
        );
    }
    assert_eq!(hits(&stranger), (0, 0));
}

#[tokio::test]
async fn the_issuer_is_chosen_by_its_exact_iss() {
    let mut options = Options::default();
    // A woken refresher stays asked: see `an_unconfigured_issuer_...`.
    options.refresh.interval = Duration::from_secs(60);
    options.refresh.min_interval = Duration::from_secs(60);
    let app = spawn_app_trusting(issuers(2).await, &[], options).await;
    let (a, b) = (&app.issuer, &app.others[0]);
    let kid = a.current_kid();
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut claims = a.claims("u", &[SCOPE]);
        edit(&mut claims);
        a.mint(&claims)
    };
    let url = a.url().to_owned();
    // Near misses name no issuer: even with a `kid` nobody has, they are
    // refused before any key set is looked at, so no refresher is woken.
    let stranger = a.add_unpublished_key(Algorithm::ES256);
    for near in [
        url.trim_end_matches('/').to_owned(),
        url.to_uppercase(),
        format!("{url} "),
    ] {
        let mut claims = a.claims("u", &[SCOPE]);
        claims["iss"] = near.into();
        let status = app
            .call(&a.mint_with(&stranger, &claims))
            .await
            .unwrap_err();
        assert_eq!(status.message(), "token issuer is not accepted");
    }
    assert!(
        app.stores.iter().all(|s| !s.refresh_asked()),
        "a near miss woke a refresher"
    );

    let refused = [
        (
            with(&|c| c["iss"] = url.trim_end_matches('/').into()),
            "token issuer is not accepted",
        ),
        (
            with(&|c| c["iss"] = url.to_uppercase().into()),
            "token issuer is not accepted",
        ),
        (
            with(&|c| c["iss"] = format!("{url} ").into()),
            "token issuer is not accepted",
        ),
        // B's claims under a kid B knows, signed by A: B's key checks it.
        (
            under_shared_kid(a, &{
                let mut c = a.claims("u", &[SCOPE]);
                c["iss"] = b.url().into();
                c
            }),
            "token signature is invalid",
        ),
        // Under A's own kid, which B's key set does not have.
        (
            with(&|c| c["iss"] = b.url().into()),
            "token key id (`kid`) is not in the issuer's key set",
        ),
        (
            with(&|c| {
                c.as_object_mut().unwrap().remove("iss");
            }),
            "token has no `iss` claim",
        ),
        (
            with(&|c| c["iss"] = json!([url.clone()])),
            "token claim `iss` is invalid (wrong type or repeated)",
        ),
        (
            with(&|c| c["iss"] = Value::Null),
            "token claim `iss` is invalid (wrong type or repeated)",
        ),
    ];
    for (token, message) in &refused {
        let status = app.call(token).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert_eq!(status.message(), *message);
    }
    // `iss` twice, the first naming this issuer: the verified parse refuses it.
    let payload = format!(
        r#"{{"iss":"{}","iss":"{}","aud":"{}","sub":"u","exp":{},"scope":"{SCOPE}"}}"#,
        a.url(),
        b.url(),
        a.audience(),
        crate::common::now() + 600
    );
    let header = json!({"alg": "RS256", "kid": kid}).to_string();
    let twice = a.sign_raw(
        &kid,
        Algorithm::RS256,
        header.as_bytes(),
        payload.as_bytes(),
    );
    let status = app.call(&twice).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("`iss`"), "{status:?}");

    // `iss` far into a large payload, past the part read on the stack, and
    // `iss` written with JSON escapes: still found, still this issuer.
    let mut claims = a.claims("big", &[SCOPE]);
    claims["aaa"] = "x".repeat(3000).into();
    assert_eq!(app.call(&a.mint(&claims)).await.unwrap().subject, "big");
    let mut claims = b.claims("big-b", &[SCOPE]);
    claims["zzz"] = "x".repeat(3000).into();
    assert_eq!(app.call(&b.mint(&claims)).await.unwrap().subject, "big-b");
    let escaped = payload
        .replacen(&format!(r#","iss":"{}""#, b.url()), "", 1)
        .replace('/', "\\/");
    let token = a.sign_raw(
        &kid,
        Algorithm::RS256,
        header.as_bytes(),
        escaped.as_bytes(),
    );
    assert_eq!(app.call(&token).await.unwrap().subject, "u");
}

#[tokio::test]
async fn one_issuer_down_at_start_while_the_other_serves() {
    let (held, down) = held_address();
    let down_url = format!("http://{down}/");
    let mut options = Options::default();
    options.refresh.initial_backoff = Duration::from_millis(100);
    options.refresh.interval = Duration::from_secs(2);
    let app = spawn_app_trusting(issuers(1).await, std::slice::from_ref(&down_url), options).await;

    // The issuer that is up: serving, its tokens pass.
    assert_eq!(crate::refresh::health_status(&app, "").await, Some(1));
    assert_eq!(
        crate::refresh::health_status(&app, "authgate.v1.PrivateService").await,
        Some(1)
    );
    let up_token = app.token();
    assert!(app.call(&up_token).await.is_ok());
    // A token of the one that is down: UNAVAILABLE, naming it.
    let mut claims = app.issuer.claims("late", &[SCOPE]);
    claims["iss"] = down_url.clone().into();
    let status = app.call(&app.issuer.mint(&claims)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(
        status.message(),
        format!("the signing keys of issuer `{down_url}` have not loaded yet")
    );

    // It comes up; the refresher's retries find it, and the other issuer's
    // tokens passed throughout.
    let late = start_issuer_on(held);
    let late_token = late.mint(&late.claims("late", &[SCOPE]));
    assert!(eventually(patience(), || async { app.call(&late_token).await.is_ok() }).await);
    assert!(app.call(&up_token).await.is_ok());
}

#[tokio::test]
async fn not_serving_until_some_issuer_has_keys() {
    let ((_one_held, one), (two_held, two)) = (held_address(), held_address());
    let urls = [format!("http://{one}/"), format!("http://{two}/")];
    // A third issuer that is up but whose key set never loads.
    let broken = spawn_issuer().await;
    broken.set_discovery(false);
    broken.set_jwks_fault(authgate::issuer::JwksFault::Status(503));
    let mut options = Options {
        wait_for_keys: false,
        ..Options::default()
    };
    options.refresh.initial_backoff = Duration::from_millis(100);
    options.refresh.interval = Duration::from_secs(2);
    let app = spawn_app_trusting(vec![broken], &urls, options).await;
    assert!(eventually(patience(), || async { app.issuer.jwks_hits() >= 2 }).await);
    assert_eq!(crate::refresh::health_status(&app, "").await, Some(2));
    for url in urls.iter().chain([&app.issuer.url().to_owned()]) {
        let mut claims = app.issuer.claims("x", &[SCOPE]);
        claims["iss"] = url.clone().into();
        let status = app.call(&app.issuer.mint(&claims)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(status.message().contains(url.as_str()), "{status:?}");
    }

    // One of them comes up: serving, its tokens pass, the others' still
    // cannot be checked.
    let late = start_issuer_on(two_held);
    assert!(
        eventually(patience(), || async {
            crate::refresh::health_status(&app, "").await == Some(1)
        })
        .await
    );
    assert!(app.call(&token_of(&late, "late")).await.is_ok());
    let status = app.call(&app.token()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

#[tokio::test]
async fn rotating_one_issuers_keys_under_load_leaves_the_others_untouched() {
    let app = Arc::new(spawn_app_trusting(issuers(2).await, &[], Options::default()).await);
    let (a, b) = (&app.issuer, &app.others[0]);
    let b_hits = hits(b);
    // B's callers, each with tokens of its own, in a loop until told to stop.
    let b_tokens: Arc<Vec<String>> =
        Arc::new((0..50).map(|i| token_of(b, &format!("b-{i}"))).collect());
    let (stop, calls, failures) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut load = Vec::new();
    for worker in 0..4 {
        let (app, tokens) = (app.clone(), b_tokens.clone());
        let (stop, calls, failures) = (stop.clone(), calls.clone(), failures.clone());
        load.push(tokio::spawn(async move {
            let mut client = app.client().await;
            let mut i = worker;
            while !stop.load(Ordering::Relaxed) {
                let mut request = tonic::Request::new(authgate::pb::GetPrivateRequest {});
                let value = format!("Bearer {}", tokens[i % tokens.len()]);
                request
                    .metadata_mut()
                    .insert("authorization", value.parse().unwrap());
                if client.get_private(request).await.is_err() {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                calls.fetch_add(1, Ordering::Relaxed);
                i += 4;
            }
        }));
    }
    let calls_so_far = || calls.load(Ordering::Relaxed);
    assert!(eventually(patience(), || async { calls_so_far() >= 100 }).await);

    // A rotates: a new key signs, the server finds it; then the old key is
    // withdrawn, and A's old tokens (cached ones included) stop passing.
    let old_kid = a.current_kid();
    let old = token_of(a, "a-old");
    assert!(app.call(&old).await.is_ok());
    a.rotate(Algorithm::ES256);
    let new = token_of(a, "a-new");
    assert!(eventually(patience(), || async { app.call(&new).await.is_ok() }).await);
    a.set_published(&old_kid, false);
    let probe_kid = a.add_unpublished_key(Algorithm::RS256);
    let probe = a.mint_with(&probe_kid, &a.claims("probe", &[SCOPE]));
    assert!(
        eventually(patience(), || async {
            // Each probe asks A's refresher for a fetch, spaced by its minimum interval.
            let _ = app.call(&probe).await;
            code(&app.call(&old).await) == Code::Unauthenticated
        })
        .await,
        "A's withdrawn key still verifies"
    );
    assert!(app.call(&new).await.is_ok());

    let during = calls_so_far();
    assert!(eventually(patience(), || async { calls_so_far() >= during + 100 }).await);
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "B's calls failed while A rotated ({} calls)",
        calls.load(Ordering::Relaxed)
    );
    assert!(
        untouched(b, b_hits),
        "A's rotation made B's keys be fetched"
    );
    assert!(b_tokens.iter().all(|t| !t.is_empty()));
}

#[tokio::test]
async fn metrics_count_each_issuers_keys_and_fetches_apart() {
    let (_held, down) = held_address();
    let down_url = format!("http://{down}/");
    let app = spawn_app_trusting(
        issuers(2).await,
        std::slice::from_ref(&down_url),
        Options {
            metrics: true,
            ..Options::default()
        },
    )
    .await;
    let (a, b) = (&app.issuer, &app.others[0]);
    // The one that is down has tried at least once.
    assert!(
        eventually(patience(), || async {
            let failures =
                format!("authgate_jwks_fetches_total{{issuer=\"{down_url}\",result=\"failure\"}}");
            app.metric(&failures).await.is_some_and(|n| n >= 1.0)
        })
        .await
    );
    let series = |name: &str, issuer: &str| format!("{name}{{issuer=\"{issuer}\"}}");
    // Each issuer publishes its key under its own kid and the shared one.
    for issuer in [a.url(), b.url()] {
        assert_eq!(
            app.metric(&series("authgate_jwks_keys", issuer)).await,
            Some(2.0)
        );
        let fetched =
            format!("authgate_jwks_fetches_total{{issuer=\"{issuer}\",result=\"success\"}}");
        assert!(
            app.metric(&fetched).await.is_some_and(|n| n >= 1.0),
            "{issuer}"
        );
    }
    assert_eq!(
        app.metric(&series("authgate_jwks_keys", &down_url)).await,
        Some(0.0)
    );

    // Refusals are counted by reason, whichever issuer: unconfigured, and
    // not loaded.
    let stranger = spawn_issuer().await;
    let _ = app.call(&token_of(&stranger, "s")).await;
    let mut claims = a.claims("late", &[SCOPE]);
    claims["iss"] = down_url.clone().into();
    let _ = app.call(&a.mint(&claims)).await;
    let denied = |reason: &str| {
        format!(r#"authgate_auth_decisions_total{{result="denied",reason="{reason}"}}"#)
    };
    assert_eq!(app.metric(&denied("wrong_issuer")).await, Some(1.0));
    assert_eq!(app.metric(&denied("keys_not_loaded")).await, Some(1.0));
}

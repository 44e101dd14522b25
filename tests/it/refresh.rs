//! The key set and its refresher, through the real issuer over HTTP:
//! rotation, withdrawal, JWKS faults, floods of unknown `kid`s, discovery
//! that lies, start-up while the JWKS is down.
//!
//! Nothing here waits on the clock. A fetch is made to happen by a token with
//! an unknown `kid` (or, while fetches fail, by the backoff's next try), and
//! seen happening by the issuer's request count; the refresher fetches one
//! document at a time, so its next request shows that it has dealt with the
//! previous answer.

use std::time::Duration;

use serde_json::json;
use tonic::Code;

use crate::common::{
    Options, SCOPE, TestApp, code, eventually, held_address, patience, spawn_app, spawn_app_for,
    spawn_app_for_issuer_url, spawn_app_trusting, spawn_app_with, spawn_issuer, start_issuer_on,
};
use authgate::{
    issuer::{DevIssuer, JwksFault},
    keys::Algorithm,
    keys::{Availability, RefreshConfig},
};

async fn accepted(app: &TestApp, token: &str) -> bool {
    app.call(token).await.is_ok()
}

async fn refused_with(app: &TestApp, token: &str, want: Code) -> bool {
    code(&app.call(token).await) == want
}

/// Makes the server fetch the JWKS: a token with a `kid` it does not know
/// wakes the refresher, which fetches within its minimum interval (or, while
/// fetches fail, at its backoff's next try). The token is refused at once;
/// whether a fetch followed is returned.
async fn provoke_fetch(app: &TestApp) -> bool {
    provoke_fetch_expecting(app, Code::Unauthenticated).await
}

/// As [`provoke_fetch`], where the probe is refused with `code`.
async fn provoke_fetch_expecting(app: &TestApp, code: Code) -> bool {
    let stranger = app.issuer.add_unpublished_key(Algorithm::EdDSA);
    let probe = app
        .issuer
        .mint_with(&stranger, &app.issuer.claims("x", &[]));
    let before = app.issuer.jwks_hits();
    assert!(refused_with(app, &probe, code).await);
    fetches_after(app, before, 1).await
}

/// Makes the server fetch the JWKS and waits until it has dealt with the
/// answer, whatever the answer was: the fetch after it shows that.
async fn fetch_and_settle(app: &TestApp) {
    assert!(provoke_fetch(app).await, "no fetch");
    assert!(provoke_fetch(app).await, "no fetch after the first");
}

/// Waits until the server has fetched the JWKS at least `n` more times.
async fn fetches_after(app: &TestApp, before: usize, n: usize) -> bool {
    eventually(patience(), || async {
        app.issuer.jwks_hits() >= before + n
    })
    .await
}

#[tokio::test]
async fn rotation_then_withdrawal() {
    let app = spawn_app().await;
    let old_kid = app.issuer.current_kid();
    let old = app.token();
    assert!(accepted(&app, &old).await);

    // Auth0-style rotation: a new key is published and signs from now on.
    let new_kid = app.issuer.rotate(Algorithm::RS256);
    let new = app.token();
    assert!(new.len() > 10 && new_kid != old_kid);
    // The first call with the new kid is refused without waiting, and asks
    // the refresher for the new key set; calls soon after pass.
    assert!(eventually(patience(), || accepted(&app, &new)).await);
    assert!(accepted(&app, &old).await, "the old key is still listed");

    // Withdrawn: the next successful fetch drops it at once.
    app.issuer.set_published(&old_kid, false);
    assert!(provoke_fetch(&app).await);
    assert!(
        eventually(patience(), || refused_with(
            &app,
            &old,
            Code::Unauthenticated
        ))
        .await,
        "a withdrawn key still verifies"
    );
    let status = app.call(&old).await.unwrap_err();
    assert!(status.message().contains("kid"), "{status:?}");
    assert!(accepted(&app, &new).await);
}

#[tokio::test]
async fn jwks_faults_keep_the_last_good_key_set() {
    let mut options = Options::default();
    // A hanging JWKS fails the fetch at this timeout.
    options.refresh.fetch_timeout = Duration::from_millis(300);
    // Failures follow one another here, and their backoff, which paces the
    // retries, grows up to the interval: keep that short.
    options.refresh.interval = Duration::from_millis(500);
    let app = spawn_app_with(options).await;
    let token = app.token();
    let faults = [
        JwksFault::Status(500),
        JwksFault::Status(404),
        JwksFault::Garbage,
        JwksFault::Hang,
    ];
    for fault in faults {
        app.issuer.set_jwks_fault(fault.clone());
        fetch_and_settle(&app).await;
        assert!(accepted(&app, &token).await, "{fault:?}: known key refused");
    }
    // Recovery: the next fetch after the faults end brings new keys.
    app.issuer.set_jwks_fault(JwksFault::None);
    let kid = app.issuer.rotate(Algorithm::EdDSA);
    let fresh = app
        .issuer
        .mint_with(&kid, &app.issuer.claims("u", &[SCOPE]));
    assert!(eventually(patience(), || accepted(&app, &fresh)).await);
    assert!(accepted(&app, &token).await);
    app.stop().await;
}

#[tokio::test]
async fn calls_are_served_while_a_fetch_hangs() {
    let mut options = Options::default();
    options.refresh.fetch_timeout = Duration::from_secs(3600);
    let app = spawn_app_with(options).await;
    let token = app.token();
    app.issuer.set_jwks_fault(JwksFault::Hang);
    // The refresher is now inside a request that will not end for an hour.
    assert!(provoke_fetch(&app).await);
    assert!(
        accepted(&app, &token).await,
        "a call waited on the refresher"
    );
    // A kid it does not know is refused at once, not after the fetch.
    let kid = app.issuer.rotate(Algorithm::EdDSA);
    let new = app
        .issuer
        .mint_with(&kid, &app.issuer.claims("u", &[SCOPE]));
    assert!(refused_with(&app, &new, Code::Unauthenticated).await);
    // And shutting down does not wait for the refresher either.
    app.stop().await;
}

/// Withdraws the key that signs `app.token()` and publishes a new one: a
/// JWKS document that, if the server took it, would refuse the old key's
/// tokens and accept the new key's.
fn publish_a_new_key_set(app: &TestApp) -> (String, String) {
    let old = app.token();
    let old_kid = app.issuer.current_kid();
    let kid = app.issuer.add_key(Algorithm::EdDSA);
    app.issuer.set_published(&old_kid, false);
    let new = app
        .issuer
        .mint_with(&kid, &app.issuer.claims("u", &[SCOPE]));
    (old, new)
}

#[tokio::test]
async fn a_jwks_one_byte_over_the_limit_is_a_failed_fetch_however_it_is_sent() {
    const LIMIT: usize = 64 * 1024;
    // Declared up front with its length, and streamed in chunks with no
    // length declared, which only counting the bytes can stop.
    for (over, exactly) in [
        (JwksFault::Padded(LIMIT + 1), JwksFault::Padded(LIMIT)),
        (
            JwksFault::PaddedChunked(LIMIT + 1),
            JwksFault::PaddedChunked(LIMIT),
        ),
    ] {
        let mut options = Options::default();
        options.refresh.max_document_bytes = LIMIT;
        let app = spawn_app_with(options).await;
        app.issuer.set_jwks_fault(over.clone());
        let (old, new) = publish_a_new_key_set(&app);
        fetch_and_settle(&app).await;
        assert!(accepted(&app, &old).await, "{over:?}: the set was taken");
        let status = app.call(&new).await.unwrap_err();
        assert_eq!(
            status.message(),
            "token key id (`kid`) is not in the issuer's key set",
            "{over:?}"
        );
        // The same set at exactly the limit is taken: the refusal above was
        // the limit's, and the limit is inclusive.
        app.issuer.set_jwks_fault(exactly.clone());
        assert!(
            eventually(patience(), || accepted(&app, &new)).await,
            "{exactly:?}: the set was not taken"
        );
        assert!(refused_with(&app, &old, Code::Unauthenticated).await);
        app.stop().await;
    }
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_the_body() {
    let mut options = Options::default();
    options.refresh.max_document_bytes = 64 * 1024;
    // Were the body awaited, the refresher would wait here for an hour.
    options.refresh.fetch_timeout = Duration::from_secs(3600);
    let app = spawn_app_with(options).await;
    let token = app.token();
    app.issuer
        .set_jwks_fault(JwksFault::DeclaredLengthOnly(64 * 1024 + 1));
    // The refresher fetches again: it did not wait for the body.
    fetch_and_settle(&app).await;
    assert!(accepted(&app, &token).await);
}

#[tokio::test]
async fn a_slow_jwks_within_the_timeout_still_loads() {
    let app = spawn_app().await;
    app.issuer
        .set_jwks_fault(JwksFault::Delay(Duration::from_millis(300)));
    let kid = app.issuer.rotate(Algorithm::ES384);
    let token = app.token();
    assert!(eventually(patience(), || accepted(&app, &token)).await);
    assert_eq!(app.issuer.current_kid(), kid);
}

/// A sound RSA-2048 modulus with exponent `e`, as the JWK `kid`.
fn rsa_with_exponent(issuer: &DevIssuer, kid: &str, e: &str) -> serde_json::Value {
    let mut jwk = issuer
        .jwk(&issuer.add_unpublished_key(Algorithm::RS256))
        .unwrap();
    jwk["kid"] = kid.into();
    jwk["e"] = e.into();
    jwk
}

#[tokio::test]
async fn a_mixed_set_loads_its_good_keys_and_skips_the_junk() {
    let issuer = spawn_issuer().await;
    issuer.set_extra_jwks(vec![
        json!(42),
        json!("a string"),
        json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
        json!({"kty": "RSA", "kid": "weak", "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "OKP", "kid": "ecdh", "crv": "X25519", "x": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}),
        json!({"kty": "EC", "kid": "off-curve", "crv": "P-256", "x": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "y": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}),
        json!({"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"}),
        json!({"kty": "PQC", "kid": "future"}),
        json!({"kid": "no-kty"}),
        json!({"kty": "RSA", "kid": "bad-b64", "n": "!!!", "e": "AQAB"}),
        json!({"kty": "RSA", "kid": "hs-alg", "alg": "HS256", "n": "AQAB", "e": "AQAB"}),
        rsa_with_exponent(&issuer, "e-one", "AQ"),
        rsa_with_exponent(&issuer, "e-even", "AQAA"),
    ]);
    let app = spawn_app_for(issuer, Options::default()).await;
    assert_eq!(app.keys.load().as_ref().unwrap().len(), 1);
    assert!(accepted(&app, &app.token()).await);
}

/// Waits, through the server's own `grpc.health.v1.Health/Watch` stream,
/// until both the server (`""`) and the guarded service report `want`
/// (1 SERVING, 2 NOT_SERVING).
async fn health_becomes(app: &TestApp, want: i32) -> bool {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let mut client = HealthClient::new(app.channel().await);
    for service in ["", "authgate.v1.PrivateService"] {
        let request = HealthCheckRequest {
            service: service.into(),
        };
        let mut stream = client.watch(request).await.unwrap().into_inner();
        let reached = tokio::time::timeout(patience(), async {
            while let Ok(Some(update)) = stream.message().await {
                if update.status == want {
                    return true;
                }
            }
            false
        });
        if !reached.await.unwrap_or(false) {
            return false;
        }
    }
    true
}

/// Waits until the key store is in `want`: the refresher's own event.
async fn keys_become(app: &TestApp, want: Availability) -> bool {
    tokio::time::timeout(patience(), app.keys.wait_for(|a| a == want))
        .await
        .is_ok()
}

/// The issuer withdraws every key in one of the two ways a JWKS that parses
/// can: listing none, or listing only keys authgate cannot use. Either way
/// the old keys stop verifying at the next fetch, calls get UNAVAILABLE, and
/// health turns NOT_SERVING; when keys come back, so does everything.
async fn withdrawal_by(withdraw: impl Fn(&DevIssuer), restore: impl Fn(&DevIssuer)) {
    let app = spawn_app().await;
    let token = app.token();
    assert!(accepted(&app, &token).await);
    assert!(health_becomes(&app, 1).await);

    withdraw(&app.issuer);
    assert!(provoke_fetch_expecting(&app, Code::Unauthenticated).await);
    assert!(keys_become(&app, Availability::NoUsableKey).await);
    // Read without waiting, as a library user's health check would.
    assert_eq!(app.keys.availability(), Availability::NoUsableKey);
    assert_eq!(app.keys.status().availability, Availability::NoUsableKey);
    assert_eq!(app.keys.issuer(), app.issuer.url());
    let status = app.call(&token).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(
        status.message(),
        format!("issuer `{}` lists no usable signing key", app.issuer.url())
    );
    assert!(health_becomes(&app, 2).await, "health still SERVING");

    // Keys are back: the next call asks for a fetch, as an unknown kid
    // does, and calls soon after pass without waiting for the interval.
    restore(&app.issuer);
    assert!(eventually(patience(), || accepted(&app, &token)).await);
    assert!(health_becomes(&app, 1).await);
}

#[tokio::test]
async fn an_empty_set_withdraws_every_key_at_once() {
    withdrawal_by(
        |issuer| issuer.set_jwks_fault(JwksFault::Empty),
        |issuer| issuer.set_jwks_fault(JwksFault::None),
    )
    .await;
}

#[tokio::test]
async fn a_set_of_only_unusable_keys_withdraws_every_key_at_once() {
    withdrawal_by(
        |issuer| {
            issuer.set_published(&issuer.current_kid(), false);
            issuer.set_extra_jwks(vec![
                json!({"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"}),
                json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
            ]);
        },
        |issuer| issuer.set_published(&issuer.current_kid(), true),
    )
    .await;
}

#[tokio::test]
async fn a_key_set_that_no_fetch_renews_goes_stale_and_comes_back() {
    let mut options = Options::default();
    options.refresh.interval = Duration::from_millis(300);
    options.refresh.min_interval = Duration::from_millis(100);
    options.refresh.max_stale = Duration::from_millis(900);
    let app = spawn_app_with(options).await;
    let token = app.token();
    assert!(accepted(&app, &token).await);
    assert!(health_becomes(&app, 1).await);

    // Fetches fail: the last good set serves, then is dropped.
    app.issuer.set_jwks_fault(JwksFault::Status(503));
    assert!(
        keys_become(&app, Availability::Stale).await,
        "never went stale"
    );
    let status = app.call(&token).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("went stale"), "{status:?}");
    assert!(health_becomes(&app, 2).await, "health still SERVING");

    // The first fetch that succeeds brings it all back.
    app.issuer.set_jwks_fault(JwksFault::None);
    assert!(keys_become(&app, Availability::Usable).await);
    assert!(accepted(&app, &token).await);
    assert!(health_becomes(&app, 1).await);
}

#[tokio::test]
async fn failed_fetches_within_the_maximum_staleness_keep_the_set() {
    // The same faults, with a max-stale that outlasts them: nothing drops.
    let mut options = Options::default();
    options.refresh.interval = Duration::from_millis(300);
    options.refresh.min_interval = Duration::from_millis(100);
    options.refresh.max_stale = Duration::from_secs(3600);
    let app = spawn_app_with(options).await;
    let token = app.token();
    app.issuer.set_jwks_fault(JwksFault::Status(503));
    let before = app.issuer.jwks_hits();
    // Several failed fetches later, the set still serves.
    assert!(fetches_after(&app, before, 4).await);
    assert_eq!(app.keys.availability(), Availability::Usable);
    assert!(accepted(&app, &token).await);
}

#[tokio::test]
async fn cache_control_does_not_shorten_the_refresh() {
    // Two servers, each with its own issuer. `fast` refreshes every 100 ms
    // and is the clock; `slow` refreshes every 60 s while its issuer answers
    // `max-age=0`, which used to bring it down to the 100 ms floor.
    let fast_options = || {
        let mut options = Options::default();
        options.refresh.interval = Duration::from_millis(100);
        options.refresh.min_interval = Duration::from_millis(100);
        options
    };
    let fast = spawn_app_with(fast_options()).await;
    let slow_issuer = spawn_issuer().await;
    slow_issuer.set_jwks_max_age(Some(0));
    let slow = spawn_app_for(
        slow_issuer,
        Options {
            refresh: RefreshConfig {
                interval: Duration::from_secs(60),
                ..fast_options().refresh
            },
            ..Options::default()
        },
    )
    .await;
    let slow_start = slow.issuer.jwks_hits();
    let fast_start = fast.issuer.jwks_hits();
    // While the fast one fetches ten times, the slow one must not refetch.
    assert!(fetches_after(&fast, fast_start, 10).await);
    assert_eq!(
        slow.issuer.jwks_hits(),
        slow_start,
        "max-age=0 shortened the refresh"
    );
}

#[tokio::test]
async fn a_flood_of_unknown_kids_fetches_no_sooner_than_the_minimum_interval() {
    // The first fetch was at start-up; the next one an unknown kid may cause
    // is an hour later, so however many arrive now, none fetches.
    let mut options = Options::default();
    options.refresh.interval = Duration::from_secs(3600);
    options.refresh.min_interval = Duration::from_secs(3600);
    let app = spawn_app_with(options).await;
    let attacker = app.issuer.add_unpublished_key(Algorithm::ES256);
    let claims = app.issuer.claims("x", &[SCOPE]).to_string();
    let start_hits = app.issuer.jwks_hits();
    let client = app.client().await;
    for round in 0..10 {
        let mut handles = Vec::new();
        for i in 0..50 {
            let kid = format!("random-{round}-{i}");
            let header = json!({"alg": "ES256", "kid": kid}).to_string();
            let token = app.issuer.sign_raw(
                &attacker,
                Algorithm::ES256,
                header.as_bytes(),
                claims.as_bytes(),
            );
            let mut client = client.clone();
            handles.push(tokio::spawn(async move {
                let mut request = tonic::Request::new(authgate::pb::GetPrivateRequest {});
                request
                    .metadata_mut()
                    .insert("authorization", format!("Bearer {token}").parse().unwrap());
                client.get_private(request).await
            }));
        }
        for handle in handles {
            let result = handle.await.unwrap();
            assert_eq!(code(&result), Code::Unauthenticated);
        }
    }
    assert_eq!(
        app.issuer.jwks_hits(),
        start_hits,
        "500 unknown kids fetched within the minimum interval"
    );
    assert!(accepted(&app, &app.token()).await);
}

/// While an issuer fails, its backoff alone decides when to try again: a
/// flood of unknown `kid`s is coalesced into the backoff's next try, however
/// short the minimum interval. The same flood against a healthy issuer of the
/// same server, under the same settings, is the clock: each of its fetches
/// shows that the flood has woken the refreshers again.
#[tokio::test]
async fn a_flood_of_unknown_kids_during_an_outage_waits_for_the_backoff() {
    let mut options = Options::default();
    options.refresh.interval = Duration::from_secs(3600);
    options.refresh.min_interval = Duration::from_millis(100);
    // The first retry after a failure comes 30 to 60 minutes later.
    options.refresh.initial_backoff = Duration::from_secs(3600);
    let issuers = vec![spawn_issuer().await, spawn_issuer().await];
    let app = spawn_app_trusting(issuers, &[], options).await;
    let (healthy, failing) = (&app.issuer, &app.others[0]);
    let unknown_kid = |issuer: &DevIssuer| {
        let kid = issuer.add_unpublished_key(Algorithm::EdDSA);
        issuer.mint_with(&kid, &issuer.claims("x", &[SCOPE]))
    };
    let (healthy_probe, failing_probe) = (unknown_kid(healthy), unknown_kid(failing));

    // The issuer fails; an unknown kid makes the first fetch that sees it.
    failing.set_jwks_fault(JwksFault::Status(500));
    assert!(refused_with(&app, &failing_probe, Code::Unauthenticated).await);
    let failed = eventually(patience(), || async {
        app.stores[1].status().fetch_failures >= 1
    })
    .await;
    assert!(failed, "no fetch failed");
    let failing_hits = failing.jwks_hits();

    // The flood: the healthy issuer's refresher fetches at each minimum
    // interval, the failing one's must wait for its backoff.
    let healthy_start = healthy.jwks_hits();
    let flooded = eventually(patience(), || async {
        for probe in [&healthy_probe, &failing_probe] {
            assert!(refused_with(&app, probe, Code::Unauthenticated).await);
        }
        healthy.jwks_hits() >= healthy_start + 4
    })
    .await;
    assert!(
        flooded,
        "unknown kids no longer wake a healthy issuer's refresher"
    );
    assert_eq!(
        failing.jwks_hits(),
        failing_hits,
        "unknown kids brought a retry forward, past the backoff"
    );
    assert_eq!(app.stores[1].status().fetch_failures, 1);
    // Not dropped: the ask waits for the backoff's next try.
    assert!(app.stores[1].refresh_asked());
    app.stop().await;
}

#[tokio::test]
async fn start_up_while_the_jwks_is_down() {
    // An address held but not listened on: connections to it are refused,
    // and no one else can take it before the issuer does.
    let (held, addr) = held_address();
    let issuer_url = format!("http://{addr}/");
    // A server pointed at an issuer that is not there yet.
    let mut options = Options {
        wait_for_keys: false,
        jwks_url: Some(format!("{issuer_url}.well-known/jwks.json")),
        ..Options::default()
    };
    options.refresh.initial_backoff = Duration::from_millis(100);
    options.refresh.interval = Duration::from_secs(2);
    let placeholder = spawn_issuer().await;
    // The server must use the future issuer's URL as `iss`: build it by hand.
    let app = spawn_app_for_issuer_url(placeholder, options, &issuer_url).await;

    let health = health_status(&app, "").await;
    assert_eq!(
        health,
        Some(2),
        "health should be NOT_SERVING before keys load"
    );
    let status = app.call("a.b.c").await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("not loaded"));

    // The issuer comes up on that address; the refresher's retries find it.
    let issuer = start_issuer_on(held);
    let token = issuer.mint(&issuer.claims("late", &[SCOPE]));
    assert!(eventually(patience(), || accepted(&app, &token)).await);
    assert_eq!(health_status(&app, "").await, Some(1));
    assert_eq!(
        health_status(&app, "authgate.v1.PrivateService").await,
        Some(1)
    );
}

/// The health status code for `service` (1 SERVING, 2 NOT_SERVING).
pub async fn health_status(app: &TestApp, service: &str) -> Option<i32> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let mut client = HealthClient::new(app.channel().await);
    client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .ok()
        .map(|r| r.into_inner().status)
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_a_failed_fetch() {
    let elsewhere = spawn_issuer().await;
    let issuer = spawn_issuer().await;
    let app = spawn_app_for(issuer, Options::default()).await;
    let token = app.token();
    app.issuer
        .set_jwks_fault(JwksFault::Redirect(elsewhere.jwks_url()));
    fetch_and_settle(&app).await;
    assert_eq!(
        elsewhere.jwks_hits(),
        0,
        "followed a redirect to another origin"
    );
    assert!(accepted(&app, &token).await);
}

#[tokio::test]
async fn discovery_falls_back_to_the_usual_jwks_path() {
    let issuer = spawn_issuer().await;
    issuer.set_discovery(false);
    let app = spawn_app_for(issuer, Options::default()).await;
    assert!(app.issuer.discovery_hits() >= 1);
    assert!(accepted(&app, &app.token()).await);
}

/// Waits until the refresher has asked for discovery twice (it asks again
/// after each failed fetch) or fetched from `elsewhere`.
async fn discovery_retried_or(app: &TestApp, elsewhere: &DevIssuer) {
    let settled = eventually(patience(), || async {
        app.issuer.discovery_hits() >= 2 || elsewhere.jwks_hits() > 0
    })
    .await;
    assert!(settled, "the refresher stopped");
}

#[tokio::test]
async fn discovery_naming_another_issuer_is_not_followed() {
    let attacker = spawn_issuer().await;
    let issuer = spawn_issuer().await;
    issuer.set_discovery_member("issuer", json!(attacker.url()));
    issuer.set_discovery_member("jwks_uri", json!(attacker.jwks_url()));
    let options = Options {
        wait_for_keys: false,
        ..Options::default()
    };
    let app = spawn_app_for(issuer, options).await;
    discovery_retried_or(&app, &attacker).await;
    assert_eq!(
        attacker.jwks_hits(),
        0,
        "took keys from a discovery document of another issuer"
    );
    // The attacker's token, claiming our issuer, signed under a kid we use.
    let forged = attacker.mint(&app.issuer.claims("x", &[SCOPE]));
    assert_ne!(code(&app.call(&forged).await), Code::Ok);
}

#[tokio::test]
async fn discovery_naming_a_plain_http_jwks_off_loopback_is_not_followed() {
    let attacker = spawn_issuer().await;
    let issuer = spawn_issuer().await;
    // http to 0.0.0.0, which is not loopback, yet reaches this machine's
    // listeners: were the rule not applied, the fetch would succeed.
    let insecure = format!(
        "http://0.0.0.0:{}/.well-known/jwks.json",
        attacker.addr().port()
    );
    issuer.set_discovery_member("jwks_uri", json!(insecure));
    let options = Options {
        wait_for_keys: false,
        ..Options::default()
    };
    let app = spawn_app_for(issuer, options).await;
    discovery_retried_or(&app, &attacker).await;
    assert_eq!(attacker.jwks_hits(), 0, "fetched keys over plain http");
    let forged = attacker.mint(&app.issuer.claims("x", &[SCOPE]));
    assert_ne!(code(&app.call(&forged).await), Code::Ok);
}

/// A fetch that brings the same keys again keeps them, parsed once: tokens
/// the gate verified before stay in its cache. Were every key rebuilt on
/// each fetch, every refresh would empty the cache (and cost a signature
/// check per caller after each).
#[tokio::test]
async fn a_fetch_of_the_same_keys_keeps_the_verified_tokens_cached() {
    let app = spawn_app_with(Options {
        metrics: true,
        ..Options::default()
    })
    .await;
    let token = app.token();
    let hits = || app.metric("authgate_token_cache_hits_total");
    assert!(accepted(&app, &token).await);
    assert!(accepted(&app, &token).await);
    assert_eq!(hits().await, Some(1.0));
    // The key set is fetched again, unchanged, and published anew.
    fetch_and_settle(&app).await;
    assert!(accepted(&app, &token).await);
    assert_eq!(hits().await, Some(2.0), "the refetched key was rebuilt");
    app.stop().await;
}

/// Redirects within the issuer's origin are followed, five and no more: a
/// sixth is a failed fetch, and the last good key set stays.
#[tokio::test]
async fn redirects_within_the_origin_are_followed_five_times_and_no_more() {
    let app = spawn_app().await;
    let (old, new) = publish_a_new_key_set(&app);
    app.issuer.set_jwks_fault(JwksFault::Redirects(6));
    fetch_and_settle(&app).await;
    assert!(accepted(&app, &old).await, "six redirects were followed");
    assert_eq!(
        app.call(&new).await.unwrap_err().message(),
        "token key id (`kid`) is not in the issuer's key set"
    );
    app.issuer.set_jwks_fault(JwksFault::Redirects(5));
    fetch_and_settle(&app).await;
    assert!(
        accepted(&app, &new).await,
        "five redirects were not followed"
    );
    assert!(refused_with(&app, &old, Code::Unauthenticated).await);
    app.stop().await;
}

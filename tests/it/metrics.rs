//! Metrics as Prometheus scrapes them from `GET /metrics`, and the key
//! store's status as a library user reads it: every count exact, after real
//! calls over gRPC.

use authgate::{issuer::JwksFault, pb::GetPrivateRequest};
use tonic::{Code, Request};

use crate::common::{
    Options, code, eventually, metric_value, patience, spawn_app, spawn_app_with, spawn_issuer,
};

const PRIVATE: &str =
    r#"grpc_type="unary",grpc_service="authgate.v1.PrivateService",grpc_method="GetPrivate""#;
const CHECK: &str = r#"grpc_type="unary",grpc_service="grpc.health.v1.Health",grpc_method="Check""#;
const UNKNOWN: &str = r#"grpc_type="unknown",grpc_service="unknown",grpc_method="unknown""#;

fn series(name: &str, labels: &str) -> String {
    format!("{name}{{{labels}}}")
}

fn handled(labels: &str, code: &str) -> String {
    format!(r#"grpc_server_handled_total{{{labels},grpc_code="{code}"}}"#)
}

/// Calls `path` with an empty message, as a client of some other proto would.
async fn call_path(channel: tonic::transport::Channel, path: &'static str, token: &str) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut request = Request::new(GetPrivateRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let codec = tonic_prost::ProstCodec::<GetPrivateRequest, GetPrivateRequest>::default();
    let path = http::uri::PathAndQuery::from_static(path);
    code(&grpc.unary(request, path, codec).await)
}

#[tokio::test]
async fn calls_are_counted_by_method_and_code_and_decisions_by_reason() {
    let started = crate::common::now();
    let app = spawn_app().await;
    let before = app.scrape().await;
    // Every known method is there before its first call, `unknown` too.
    for labels in [PRIVATE, CHECK, UNKNOWN] {
        assert_eq!(
            metric_value(&before, &series("grpc_server_started_total", labels)),
            Some(0.0),
            "{labels}"
        );
    }
    for watch in [
        r#"grpc_type="server_stream",grpc_service="grpc.health.v1.Health",grpc_method="Watch""#,
        r#"grpc_type="bidi_stream",grpc_service="grpc.reflection.v1.ServerReflection",grpc_method="ServerReflectionInfo""#,
        r#"grpc_type="bidi_stream",grpc_service="grpc.reflection.v1alpha.ServerReflection",grpc_method="ServerReflectionInfo""#,
    ] {
        assert!(
            before.contains(&series("grpc_server_started_total", watch)),
            "{watch}"
        );
    }

    let token = app.token();
    assert_eq!(code(&app.call(&token).await), Code::Ok); // cache miss
    assert_eq!(code(&app.call(&token).await), Code::Ok); // cache hit
    assert_eq!(code(&app.call_with(&[]).await), Code::Unauthenticated);
    let mut forged = token.clone();
    forged.truncate(token.len() - 4);
    forged.push_str("AAAA");
    assert_eq!(code(&app.call(&forged).await), Code::Unauthenticated); // a miss, then refused
    let other = app.issuer.mint(&app.issuer.claims("user|2", &[]));
    assert_eq!(code(&app.call(&other).await), Code::PermissionDenied); // a miss, then no scope
    assert_eq!(crate::refresh::health_status(&app, "").await, Some(1));
    // A method the server lacks, under a name chosen to break a label: it
    // is counted as `unknown`, and its name appears nowhere.
    let channel = app.channel().await;
    assert_eq!(
        call_path(channel, "/evil\"svc/Drop\\\"Tables", &token).await,
        Code::Unimplemented // the gate let it through (valid token, no rule), a cache hit
    );

    let text = app.scrape().await;
    let value = |s: &str| metric_value(&text, s).unwrap_or_else(|| panic!("no {s} in\n{text}"));
    assert_eq!(value(&series("grpc_server_started_total", PRIVATE)), 5.0);
    assert_eq!(value(&handled(PRIVATE, "OK")), 2.0);
    assert_eq!(value(&handled(PRIVATE, "Unauthenticated")), 2.0);
    assert_eq!(value(&handled(PRIVATE, "PermissionDenied")), 1.0);
    assert_eq!(
        value(&series("grpc_server_handling_seconds_count", PRIVATE)),
        5.0
    );
    assert_eq!(
        value(&format!(
            "grpc_server_handling_seconds_bucket{{{PRIVATE},le=\"+Inf\"}}"
        )),
        5.0
    );
    assert!(value(&series("grpc_server_handling_seconds_sum", PRIVATE)) > 0.0);
    assert_eq!(value(&series("grpc_server_started_total", CHECK)), 1.0);
    assert_eq!(value(&handled(CHECK, "OK")), 1.0);
    assert_eq!(value(&series("grpc_server_started_total", UNKNOWN)), 1.0);
    assert_eq!(value(&handled(UNKNOWN, "Unimplemented")), 1.0);
    assert!(!text.contains("evil") && !text.contains("Tables"), "{text}");

    let decisions = |result: &str, reason: &str| {
        value(&format!(
            r#"authgate_auth_decisions_total{{result="{result}",reason="{reason}"}}"#
        ))
    };
    assert_eq!(decisions("allowed", "none"), 3.0);
    assert_eq!(decisions("denied", "missing_authorization"), 1.0);
    assert_eq!(decisions("denied", "bad_signature"), 1.0);
    assert_eq!(decisions("denied", "missing_scope"), 1.0);
    assert_eq!(decisions("denied", "expired"), 0.0);
    assert_eq!(value("authgate_token_cache_hits_total"), 2.0);
    assert_eq!(value("authgate_token_cache_misses_total"), 3.0);

    let issuer = app.issuer.url();
    let jwks = |name: &str, extra: &str| value(&format!("{name}{{issuer=\"{issuer}\"{extra}}}"));
    assert!(jwks("authgate_jwks_fetches_total", r#",result="success""#) >= 1.0);
    assert_eq!(
        jwks("authgate_jwks_fetches_total", r#",result="failure""#),
        0.0
    );
    assert_eq!(jwks("authgate_jwks_keys", ""), 1.0);
    let last = jwks("authgate_jwks_last_success_timestamp_seconds", "");
    // The first fetch happened between the test's start and now.
    let range = started as f64..=(crate::common::now() + 1) as f64;
    assert!(range.contains(&last), "{last} not in {range:?}");
    assert_eq!(
        value(&format!(
            "authgate_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
}

#[tokio::test]
async fn the_metrics_listener_serves_only_get_metrics() {
    let app = spawn_app().await;
    let base = format!("http://{}", app.metrics_addr.unwrap());
    let client = reqwest::Client::new();
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(client.get(format!("{base}/")).send().await.unwrap()),
        404
    );
    assert_eq!(
        status(client.get(format!("{base}/metricsx")).send().await.unwrap()),
        404
    );
    assert_eq!(
        status(client.post(format!("{base}/metrics")).send().await.unwrap()),
        405
    );
    assert_eq!(
        status(client.get(format!("{base}/metrics")).send().await.unwrap()),
        200
    );
}

#[tokio::test]
async fn metrics_are_off_unless_asked_for() {
    let app = spawn_app_with(Options {
        metrics: false,
        ..Options::default()
    })
    .await;
    assert!(app.metrics_addr.is_none());
    assert_eq!(code(&app.call(&app.token()).await), Code::Ok);
}

#[tokio::test]
async fn key_status_tells_loads_failures_and_the_last_error() {
    let issuer = spawn_issuer().await;
    issuer.set_jwks_fault(JwksFault::Status(503));
    let app = crate::common::spawn_app_for(
        issuer,
        Options {
            wait_for_keys: false,
            ..Options::default()
        },
    )
    .await;
    assert!(
        eventually(patience(), || async {
            app.keys.status().fetch_failures >= 2
        })
        .await,
        "no failed fetch counted"
    );
    let status = app.keys.status();
    assert_eq!(status.issuer, app.issuer.url());
    assert!(!status.loaded);
    assert_eq!(status.keys, 0);
    assert_eq!(status.last_success, None);
    assert_eq!(status.fetch_successes, 0);
    let (_, error) = status.last_error.clone().expect("the failure is kept");
    assert!(error.contains("HTTP 503"), "{error}");
    let text = app.scrape().await;
    let failures = format!(
        "authgate_jwks_fetches_total{{issuer=\"{}\",result=\"failure\"}}",
        app.issuer.url()
    );
    assert!(metric_value(&text, &failures).unwrap() >= 2.0);
    assert_eq!(
        metric_value(
            &text,
            &format!("authgate_jwks_keys{{issuer=\"{}\"}}", app.issuer.url())
        ),
        Some(0.0)
    );
    assert_eq!(code(&app.call(&app.token()).await), Code::Unavailable);
    // Not ready, yet alive: a liveness probe must not restart it.
    assert_eq!(crate::refresh::health_status(&app, "").await, Some(2));
    assert_eq!(
        crate::refresh::health_status(&app, authgate::server::LIVENESS_SERVICE).await,
        Some(1)
    );
    let keys_not_loaded =
        r#"authgate_auth_decisions_total{result="denied",reason="keys_not_loaded"}"#;
    assert_eq!(app.metric(keys_not_loaded).await, Some(1.0));

    app.issuer.set_jwks_fault(JwksFault::None);
    tokio::time::timeout(patience(), app.keys.wait_loaded())
        .await
        .expect("the keys load once the JWKS answers");
    let status = app.keys.status();
    assert!(status.loaded);
    assert_eq!(status.keys, 1);
    assert!(status.fetch_successes >= 1);
    assert!(status.last_success.is_some());
    assert!(status.last_error.is_some(), "the last error is still told");
    assert_eq!(code(&app.call(&app.token()).await), Code::Ok);
}

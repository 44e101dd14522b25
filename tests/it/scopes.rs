//! Per-method scopes: from `scope`, `scp` and `permissions`, each as the
//! issuers write them, matched exactly, every required one needed; the
//! refusal names what is missing.

use serde_json::json;
use tonic::Code;

use crate::common::{GET_PRIVATE, Options, SCOPE, code, spawn_app, spawn_app_with};

#[tokio::test]
async fn scope_and_permissions_grant_exactly_what_they_name() {
    let app = spawn_app().await;
    let mint = |edit: serde_json::Value| {
        let mut claims = app.issuer.claims("user|7", &[]);
        for (k, v) in edit.as_object().unwrap() {
            claims[k] = v.clone();
        }
        app.issuer.mint(&claims)
    };
    let allowed = [
        json!({"scope": SCOPE}),
        json!({"scope": format!("openid {SCOPE} write:other")}),
        json!({"permissions": [SCOPE]}),
        json!({"scope": "openid", "permissions": ["x", SCOPE]}),
        // Okta writes `scp` as an array, Azure AD as a space-separated string.
        json!({"scp": [SCOPE]}),
        json!({"scp": ["openid", SCOPE]}),
        json!({"scp": format!("profile {SCOPE}")}),
        // Some issuers write `scope` as an array.
        json!({"scope": ["openid", SCOPE]}),
        json!({"scope": "openid", "scp": [SCOPE]}),
    ];
    for claims in allowed {
        let response = app.call(&mint(claims.clone())).await;
        assert_eq!(code(&response), Code::Ok, "{claims}");
        assert!(response.unwrap().scopes.iter().any(|s| s == SCOPE));
    }
    let denied = [
        json!({}),
        json!({"scope": ""}),
        json!({"scope": "read:privatex"}),
        json!({"scope": "READ:PRIVATE"}),
        json!({"scope": "read:"}),
        json!({"scope": "read:private,other"}),
        json!({"permissions": ["read:private "]}),
        json!({"permissions": []}),
        json!({"scp": []}),
        json!({"scp": ["READ:PRIVATE"]}),
        json!({"scp": "read:privatex"}),
        // An array's elements are scopes as they are, never split.
        json!({"scope": [format!("openid {SCOPE}")]}),
        json!({"scp": [format!("{SCOPE} ")]}),
        // Claims whose names merely resemble the scope claims grant nothing.
        json!({"scopes": [SCOPE]}),
        json!({"Scp": SCOPE}),
        json!({"roles": [SCOPE]}),
    ];
    for claims in denied {
        let status = app.call(&mint(claims.clone())).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{claims}");
        assert_eq!(
            status.message(),
            format!("missing required scope `{SCOPE}`")
        );
    }
}

#[tokio::test]
async fn every_required_scope_is_needed() {
    let app = spawn_app_with(Options {
        rules: vec![
            format!("{GET_PRIVATE}={SCOPE}").parse().unwrap(),
            format!("{GET_PRIVATE}=audit").parse().unwrap(),
        ],
        ..Options::default()
    })
    .await;
    let one = app.issuer.mint(&app.issuer.claims("u", &[SCOPE]));
    let status = app.call(&one).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("`audit`"));
    let both = app.issuer.mint(&app.issuer.claims("u", &[SCOPE, "audit"]));
    let response = app.call(&both).await.unwrap();
    assert_eq!(response.scopes, [SCOPE, "audit"]);
}

#[tokio::test]
async fn without_rules_any_valid_token_passes_and_scopes_are_reported() {
    let app = spawn_app_with(Options {
        rules: vec![],
        ..Options::default()
    })
    .await;
    let mut claims = app.issuer.claims("machine@clients", &["a", "b", "a"]);
    claims["permissions"] = json!(["b", "c"]);
    let response = app.call(&app.issuer.mint(&claims)).await.unwrap();
    assert_eq!(response.subject, "machine@clients");
    assert_eq!(response.scopes, ["a", "b", "c"]);
    let bare = app.issuer.mint(&app.issuer.claims("", &[]));
    assert_eq!(app.call(&bare).await.unwrap().scopes, Vec::<String>::new());
}

#[tokio::test]
async fn a_scope_array_passes_where_no_scope_is_required() {
    // It used to refuse the whole token as UNAUTHENTICATED.
    let app = spawn_app_with(Options {
        rules: vec![],
        ..Options::default()
    })
    .await;
    let mut claims = app.issuer.claims("okta-user", &[]);
    claims["scope"] = json!(["openid", "profile"]);
    claims["scp"] = json!(["email", "openid"]);
    let response = app.call(&app.issuer.mint(&claims)).await.unwrap();
    assert_eq!(response.scopes, ["openid", "profile", "email"]);
    // Azure AD's shape.
    let mut claims = app.issuer.claims("aad-user", &[]);
    claims["scp"] = "User.Read profile".into();
    let response = app.call(&app.issuer.mint(&claims)).await.unwrap();
    assert_eq!(response.scopes, ["User.Read", "profile"]);
}

fn rules(rules: &[&str]) -> Options {
    Options {
        rules: rules.iter().map(|r| r.parse().unwrap()).collect(),
        // Some rules here are for methods no handler serves, to see the
        // policy apply to any path.
        rules_for_other_methods: true,
        ..Options::default()
    }
}

/// Calls with a token granted `scopes`, and returns the code and message.
async fn outcome(app: &crate::common::TestApp, scopes: &[&str]) -> (Code, String) {
    let token = app.issuer.mint(&app.issuer.claims("u", scopes));
    match app.call(&token).await {
        Ok(_) => (Code::Ok, String::new()),
        Err(status) => (status.code(), status.message().to_owned()),
    }
}

#[tokio::test]
async fn any_one_of_a_rules_scopes_will_do() {
    let app = spawn_app_with(rules(&[&format!("{GET_PRIVATE}={SCOPE}|admin")])).await;
    for granted in [&[SCOPE][..], &["admin"], &["admin", SCOPE], &["x", "admin"]] {
        assert_eq!(outcome(&app, granted).await.0, Code::Ok, "{granted:?}");
    }
    let needs = format!("missing required scope: needs one of {SCOPE}, admin");
    for granted in [
        &[][..],
        &["x"],
        &["read:private|admin"],
        &["Admin"],
        &["admin:x"],
    ] {
        assert_eq!(
            outcome(&app, granted).await,
            (Code::PermissionDenied, needs.clone()),
            "{granted:?}"
        );
    }
    // Through `permissions` as well.
    let mut claims = app.issuer.claims("u", &[]);
    claims["permissions"] = json!(["admin"]);
    assert!(app.call(&app.issuer.mint(&claims)).await.is_ok());
}

#[tokio::test]
async fn a_service_rule_covers_every_method_of_that_service_only() {
    let app = spawn_app_with(rules(&[
        "/authgate.v1.PrivateService/*=svc",
        "/other.v1.Elsewhere/*=never-granted",
        "/authgate.v1.PrivateService/SomethingElse=never-granted",
    ]))
    .await;
    assert_eq!(outcome(&app, &["svc"]).await.0, Code::Ok);
    for granted in [&[][..], &[SCOPE], &["svc:read"], &["never-granted"]] {
        assert_eq!(
            outcome(&app, granted).await,
            (
                Code::PermissionDenied,
                "missing required scope `svc`".to_owned()
            ),
            "{granted:?}"
        );
    }
    // Another method of the service (no handler behind it): the service
    // rule and its own rule both apply, and without a token it is refused.
    let call_path = |path: &'static str, token: Option<String>| {
        let channel = app.channel();
        async move {
            let mut client = tonic::client::Grpc::new(channel.await);
            client.ready().await.unwrap();
            let mut request = tonic::Request::new(authgate::pb::GetPrivateRequest {});
            if let Some(token) = token {
                let value = format!("Bearer {token}").parse().unwrap();
                request.metadata_mut().insert("authorization", value);
            }
            client
                .unary::<_, authgate::pb::GetPrivateResponse, _>(
                    request,
                    path.parse().unwrap(),
                    tonic_prost::ProstCodec::default(),
                )
                .await
                .unwrap_err()
        }
    };
    let call = |token| call_path("/authgate.v1.PrivateService/SomethingElse", token);
    let with = |scopes: &[&str]| Some(app.issuer.mint(&app.issuer.claims("u", scopes)));
    let status = call(with(&["svc"])).await;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(status.message(), "missing required scope `never-granted`");
    let status = call(with(&["never-granted"])).await;
    assert_eq!(status.message(), "missing required scope `svc`");
    let status = call(with(&["svc", "never-granted"])).await;
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    assert_eq!(call(None).await.code(), Code::Unauthenticated);
    // The service is the path's first segment, however many follow.
    let nested = call_path(
        "/authgate.v1.PrivateService/Nested/GetPrivate",
        with(&[SCOPE]),
    )
    .await;
    assert_eq!(
        nested.message(),
        "missing required scope `svc`",
        "{nested:?}"
    );
}

#[tokio::test]
async fn method_and_service_rules_both_apply() {
    let app = spawn_app_with(rules(&[
        &format!("{GET_PRIVATE}={SCOPE}"),
        "/authgate.v1.PrivateService/*=svc|admin",
        &format!("{GET_PRIVATE}=audit|admin"),
    ]))
    .await;
    for granted in [&[SCOPE, "svc", "audit"][..], &[SCOPE, "admin"]] {
        assert_eq!(outcome(&app, granted).await.0, Code::Ok, "{granted:?}");
    }
    let missing_read = format!("missing required scope `{SCOPE}`");
    for (granted, says) in [
        (&["svc", "audit"][..], missing_read.as_str()),
        (&["admin"], &missing_read),
        (
            &[SCOPE, "svc"],
            "missing required scope: needs one of audit, admin",
        ),
        (
            &[SCOPE, "audit"],
            "missing required scope: needs one of svc, admin",
        ),
        (&[], &missing_read),
    ] {
        assert_eq!(
            outcome(&app, granted).await,
            (Code::PermissionDenied, says.to_owned()),
            "{granted:?}"
        );
    }
}

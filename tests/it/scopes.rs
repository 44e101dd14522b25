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

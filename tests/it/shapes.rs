//! Tokens as the issuers people use shape them, minted by a real dev issuer
//! and checked against its JWKS over HTTP: AWS Cognito's access tokens
//! (`client_id`, `token_use`, no `aud`) and ID tokens, Azure AD's app-only
//! tokens (`roles`), Google's `iss` with and without `https://`, a service
//! account's email as `iss`, `typ: application/jwt`, and an issuer whose
//! tokens may call only some methods.

use std::time::Duration;

use authgate::{AuthError, Gate, IssuerConfig, Principal, issuer::DevIssuer, keys::Algorithm};
use serde_json::{Value, json};
use tonic::{Code, Status, service::Interceptor};

use crate::common::{GET_PRIVATE, Options, now, patience, spawn_app_configured, spawn_issuer};

const LEEWAY: Duration = Duration::from_secs(30);

/// A Cognito user pool: its `iss`, and the app client its tokens are for.
const COGNITO_POOL: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example";
const COGNITO_APP: &str = "6example0app0client0id0";

/// Azure AD's v2.0 issuer for a tenant, and the API's application ID URI.
const AZURE_TENANT: &str =
    "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0";
const AZURE_API: &str = "api://orders";
const LIST_ORDERS: &str = "/orders.v1.Orders/List";

/// Google's OAuth client an ID token is for.
const GOOGLE_CLIENT: &str = "1234567890-example.apps.googleusercontent.com";

/// `issuer`, trusted as `iss`, with the dev issuer's keys by their JWKS URL.
fn with_keys_of(dev: &DevIssuer, iss: &str, audience: &str) -> IssuerConfig {
    IssuerConfig::with_jwks(iss, &dev.jwks_url(), vec![audience.into()], LEEWAY)
        .expect("a loopback JWKS URL")
}

/// A user pool's access tokens, as Cognito's documentation says to check
/// them: `client_id` is the app client, `token_use` is `access`.
fn cognito(dev: &DevIssuer, pool: &str) -> IssuerConfig {
    let mut config = with_keys_of(dev, pool, COGNITO_APP);
    config.validation.audience_claim = "client_id".into();
    config.validation.token_use = Some("access".into());
    config
}

/// A Cognito access token: `client_id`, `token_use`, `scope`, and no `aud`.
fn cognito_access(pool: &str, client_id: &str) -> Value {
    json!({
        "sub": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "iss": pool,
        "client_id": client_id,
        "origin_jti": "f4bd5d21-0000-4000-8000-000000000000",
        "event_id": "a1a1a1a1-0000-4000-8000-000000000000",
        "token_use": "access",
        "scope": "a b",
        "auth_time": now(),
        "exp": now() + 3600,
        "iat": now(),
        "jti": "c0ffee00-0000-4000-8000-000000000000",
        "username": "alice"
    })
}

/// A Cognito ID token: `aud` is the app client, `token_use` is `id`.
fn cognito_id(pool: &str) -> Value {
    json!({
        "sub": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "email_verified": true,
        "iss": pool,
        "cognito:username": "alice",
        "aud": COGNITO_APP,
        "token_use": "id",
        "auth_time": now(),
        "exp": now() + 3600,
        "iat": now(),
        "email": "alice@example.com"
    })
}

/// A gate trusting `issuers`, with these scope rules, once every issuer's
/// keys have loaded.
async fn gate_for(issuers: Vec<IssuerConfig>, rules: &[&str]) -> Gate {
    let mut builder = Gate::builder().refresh(Options::default().refresh);
    for issuer in issuers {
        builder = builder.issuer_config(issuer);
    }
    for rule in rules {
        builder = builder.require_scope(rule);
    }
    let gate = builder.build().expect("the gate builds");
    for issuer in gate.issuers() {
        tokio::time::timeout(patience(), issuer.keys().wait_loaded())
            .await
            .expect("the key set loads");
    }
    gate
}

/// The gate's decision on a call to `method` with `token`.
fn check(gate: &Gate, method: &str, token: &str) -> Result<Principal, AuthError> {
    let value = format!("Bearer {token}");
    gate.check(method, [value.as_bytes()]).map_err(|r| r.error)
}

/// The refusal's code and message, as a caller gets them.
fn said(error: &AuthError) -> (Code, String) {
    let status = Status::from(error);
    (status.code(), status.message().to_owned())
}

#[tokio::test]
async fn a_cognito_access_token_passes_on_client_id_and_token_use_and_only_so() {
    let dev = spawn_issuer().await;
    let token = dev.mint(&cognito_access(COGNITO_POOL, COGNITO_APP));
    let options = Options {
        rules: vec![format!("{GET_PRIVATE}=a").parse().unwrap()],
        ..Options::default()
    };
    let cognito_config = cognito(&dev, COGNITO_POOL);
    let app = spawn_app_configured(dev, Vec::new(), vec![cognito_config], options).await;

    let response = app.call(&token).await.expect("the access token passes");
    assert_eq!(response.subject, "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");
    assert_eq!(response.scopes, ["a", "b"]);

    // `client_id` is held to the audiences as `aud` would be.
    let issuer = &app.issuer;
    for (claims, message) in [
        (
            cognito_access(COGNITO_POOL, "another-app-client"),
            "token audience is not accepted",
        ),
        (
            {
                let mut c = cognito_access(COGNITO_POOL, COGNITO_APP);
                c.as_object_mut().unwrap().remove("client_id");
                c["aud"] = COGNITO_APP.into();
                c
            },
            "token has no `client_id` claim",
        ),
        (
            {
                let mut c = cognito_access(COGNITO_POOL, COGNITO_APP);
                c["client_id"] = json!([COGNITO_APP]);
                c
            },
            "token claim `client_id` is invalid (wrong type or repeated)",
        ),
    ] {
        let status = app.call(&issuer.mint(&claims)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert_eq!(status.message(), message);
    }

    // By default the audience is in `aud`, which Cognito access tokens lack.
    let gate = gate_for(vec![with_keys_of(issuer, COGNITO_POOL, COGNITO_APP)], &[]).await;
    let refused = check(&gate, GET_PRIVATE, &token).unwrap_err();
    assert_eq!(refused, AuthError::MissingClaim("aud"));
    assert_eq!(
        said(&refused),
        (Code::Unauthenticated, "token has no `aud` claim".into())
    );
}

#[tokio::test]
async fn a_cognito_id_token_is_refused_where_access_tokens_are_required() {
    let dev = spawn_issuer().await;
    // Three pools on the same keys: Cognito's settings; `aud` with
    // `token_use`; and the defaults, which do not read `token_use`.
    let (pool_b, pool_c) = (format!("{COGNITO_POOL}b"), format!("{COGNITO_POOL}c"));
    let mut access_by_aud = with_keys_of(&dev, &pool_b, COGNITO_APP);
    access_by_aud.validation.token_use = Some("access".into());
    let gate = gate_for(
        vec![
            cognito(&dev, COGNITO_POOL),
            access_by_aud,
            with_keys_of(&dev, &pool_c, COGNITO_APP),
        ],
        &[],
    )
    .await;
    let wrong_use = (
        Code::Unauthenticated,
        "token use (`token_use`) is not accepted".to_owned(),
    );

    for pool in [COGNITO_POOL, pool_b.as_str()] {
        let refused = check(&gate, GET_PRIVATE, &dev.mint(&cognito_id(pool))).unwrap_err();
        assert_eq!(refused, AuthError::WrongTokenUse, "{pool}");
        assert_eq!(said(&refused), wrong_use);
        assert_eq!(refused.reason(), "wrong_token_use");
    }
    // The same token with `token_use: access` passes on `aud`; without any
    // `token_use` it is refused.
    let mut access = cognito_id(&pool_b);
    access["token_use"] = "access".into();
    assert!(check(&gate, GET_PRIVATE, &dev.mint(&access)).is_ok());
    access.as_object_mut().unwrap().remove("token_use");
    assert_eq!(
        check(&gate, GET_PRIVATE, &dev.mint(&access)).unwrap_err(),
        AuthError::MissingClaim("token_use")
    );
    // Where `token_use` is not asked for, it is not read.
    let principal = check(&gate, GET_PRIVATE, &dev.mint(&cognito_id(&pool_c))).unwrap();
    assert_eq!(principal.subject(), "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");
}

#[tokio::test]
async fn azure_app_roles_count_as_scopes_only_where_roles_is_a_scope_claim() {
    let dev = spawn_issuer().await;
    let tenant_roles = format!("{AZURE_TENANT}/roles");
    let mut with_roles = with_keys_of(&dev, &tenant_roles, AZURE_API);
    with_roles.validation.scope_claims.push("roles".into());
    let gate = gate_for(
        vec![with_keys_of(&dev, AZURE_TENANT, AZURE_API), with_roles],
        &[&format!("{LIST_ORDERS}=Orders.Read")],
    )
    .await;
    // An app-only (client-credentials) token: `roles`, no `scp`.
    let app_only = |iss: &str, roles: Value| {
        dev.mint(&json!({
            "aud": AZURE_API,
            "iss": iss,
            "iat": now(),
            "nbf": now(),
            "exp": now() + 3600,
            "aio": "E2ZgYJjm",
            "azp": "00000000-0000-0000-0000-0000000000a1",
            "azpacr": "1",
            "oid": "00000000-0000-0000-0000-0000000000b2",
            "roles": roles,
            "sub": "00000000-0000-0000-0000-0000000000b2",
            "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "ver": "2.0"
        }))
    };

    let refused = check(
        &gate,
        LIST_ORDERS,
        &app_only(AZURE_TENANT, json!(["Orders.Read"])),
    );
    let refused = refused.unwrap_err();
    assert_eq!(
        said(&refused),
        (
            Code::PermissionDenied,
            "missing required scope `Orders.Read`".into()
        )
    );
    let token = app_only(&tenant_roles, json!(["Orders.Read"]));
    let principal = check(&gate, LIST_ORDERS, &token).expect("a role counts as a scope");
    assert_eq!(principal.scopes().collect::<Vec<_>>(), ["Orders.Read"]);
    // Exactly the roles granted, and the default claims still count.
    let token = app_only(&tenant_roles, json!(["Orders.Write"]));
    assert!(matches!(
        check(&gate, LIST_ORDERS, &token),
        Err(AuthError::MissingScope(_))
    ));
    let mut delegated: Value = json!({
        "aud": AZURE_API, "iss": tenant_roles, "exp": now() + 3600, "scp": "Orders.Read",
    });
    assert!(check(&gate, LIST_ORDERS, &dev.mint(&delegated)).is_ok());
    delegated["roles"] = "Orders.Read".into();
    assert!(
        check(&gate, LIST_ORDERS, &dev.mint(&delegated)).is_ok(),
        "a space-separated string"
    );
}

#[tokio::test]
async fn issuers_that_are_not_urls_pass_with_their_jwks_url() {
    let dev = spawn_issuer().await;
    const SERVICE_ACCOUNT: &str = "deployer@example-project.iam.gserviceaccount.com";
    const SERVICE_API: &str = "https://orders.example.com/";
    let configs = vec![
        with_keys_of(&dev, "accounts.google.com", GOOGLE_CLIENT),
        with_keys_of(&dev, "https://accounts.google.com", GOOGLE_CLIENT),
        with_keys_of(&dev, SERVICE_ACCOUNT, SERVICE_API),
    ];
    let google_id = |iss: &str| {
        json!({
            "iss": iss,
            "azp": GOOGLE_CLIENT,
            "aud": GOOGLE_CLIENT,
            "sub": "110169484474386276334",
            "email": "alice@example.com",
            "email_verified": true,
            "iat": now(),
            "exp": now() + 3600
        })
    };
    // A service account signs its own JWT: `iss` and `sub` are its email.
    let self_signed = json!({
        "iss": SERVICE_ACCOUNT,
        "sub": SERVICE_ACCOUNT,
        "aud": SERVICE_API,
        "iat": now(),
        "exp": now() + 3600
    });
    let tokens = [
        dev.mint(&google_id("accounts.google.com")),
        dev.mint(&google_id("https://accounts.google.com")),
        dev.mint(&self_signed),
    ];
    let stranger = dev.mint(&google_id("https://accounts.google.com/"));
    let options = Options {
        rules: Vec::new(),
        ..Options::default()
    };
    let app = spawn_app_configured(dev, Vec::new(), configs, options).await;

    for (token, subject) in tokens.iter().zip([
        "110169484474386276334",
        "110169484474386276334",
        SERVICE_ACCOUNT,
    ]) {
        let response = app.call(token).await.expect("the token passes");
        assert_eq!(response.subject, subject);
    }
    let status = app.call(&stranger).await.unwrap_err();
    assert_eq!(status.message(), "token issuer is not accepted");

    // Only discovery needs a URL, and says what to give instead.
    let no_url = Gate::builder()
        .issuer("accounts.google.com")
        .audience(GOOGLE_CLIENT)
        .check()
        .unwrap_err()
        .to_string();
    assert!(
        no_url.starts_with("issuer `accounts.google.com` is not a valid URL")
            && no_url.contains("give its JWKS URL"),
        "{no_url}"
    );
    let email = IssuerConfig::discovered(SERVICE_ACCOUNT, vec![SERVICE_API.into()], LEEWAY)
        .unwrap_err()
        .to_string();
    assert!(email.contains("`IssuerConfig::with_jwks`"), "{email}");
    // A JWKS URL is still held to https, or http on loopback.
    let insecure = Gate::builder()
        .issuer_with_jwks("accounts.google.com", "http://keys.example.com/certs")
        .audience(GOOGLE_CLIENT)
        .check()
        .unwrap_err()
        .to_string();
    assert!(insecure.contains("must use https"), "{insecure}");
    // So is an issuer written as a URL, though nothing is fetched from it.
    let insecure = IssuerConfig::with_jwks(
        "http://accounts.example.com/",
        "http://127.0.0.1:9/certs",
        vec![GOOGLE_CLIENT.into()],
        LEEWAY,
    )
    .unwrap_err()
    .to_string();
    assert!(
        insecure.starts_with("issuer `http://accounts.example.com/` must use https"),
        "{insecure}"
    );
}

#[tokio::test]
async fn typ_application_jwt_is_a_plain_jwt() {
    let dev = spawn_issuer().await;
    let kid = dev.current_kid();
    let token = |typ: &str| {
        let header = json!({"alg": "RS256", "typ": typ, "kid": kid}).to_string();
        let claims = dev.claims("user|1", &[]).to_string();
        dev.sign_raw(&kid, Algorithm::RS256, header.as_bytes(), claims.as_bytes())
    };
    let gate = gate_for(vec![with_keys_of(&dev, dev.url(), dev.audience())], &[]).await;
    for typ in ["application/jwt", "Application/JWT", "APPLICATION/jwt"] {
        assert!(check(&gate, GET_PRIVATE, &token(typ)).is_ok(), "{typ}");
    }
    for typ in [
        "application/dpop+jwt",
        "application/jwt+x",
        "application/ jwt",
    ] {
        assert_eq!(
            check(&gate, GET_PRIVATE, &token(typ)).unwrap_err(),
            AuthError::TypeNotAccepted,
            "{typ}"
        );
    }
    // `--require-typ at+jwt` still takes only access tokens.
    let mut narrow = with_keys_of(&dev, dev.url(), dev.audience());
    narrow.validation.require_typ = Some("at+jwt".into());
    let gate = gate_for(vec![narrow], &[]).await;
    assert_eq!(
        check(&gate, GET_PRIVATE, &token("application/jwt")).unwrap_err(),
        AuthError::TypeNotAccepted
    );
    assert!(check(&gate, GET_PRIVATE, &token("application/at+jwt")).is_ok());
}

/// Issue 19, finding 7: scope rules are the same for every issuer, so a
/// partner's token granted `admin` would pass a rule written for the
/// company's own `admin`. An issuer's `methods` keeps its tokens to the
/// paths listed, whatever their scopes.
#[tokio::test]
async fn an_issuers_methods_keep_its_tokens_to_them_whatever_their_scopes() {
    let own = spawn_issuer().await;
    let mut partners = Vec::new();
    for _ in 0..3 {
        partners.push(spawn_issuer().await);
    }
    let limited = |dev: &DevIssuer, methods: &[&str]| {
        let mut config = with_keys_of(dev, dev.url(), own.audience());
        config.validation.methods = Some(methods.iter().map(|m| (*m).into()).collect());
        config
    };
    let configs = vec![
        with_keys_of(&own, own.url(), own.audience()),
        // Another service's methods, and a near miss of GetPrivate.
        limited(
            &partners[0],
            &["/other.v1.Thing/*", "/authgate.v1.PrivateService/GetPrivat"],
        ),
        limited(&partners[1], &["/authgate.v1.PrivateService/*"]),
        limited(&partners[2], &[GET_PRIVATE]),
    ];
    let admin = |dev: &DevIssuer| {
        let mut claims = dev.claims("someone", &["admin"]);
        claims["aud"] = own.audience().into();
        dev.mint(&claims)
    };
    let tokens: Vec<String> = std::iter::once(&own).chain(&partners).map(admin).collect();
    let refused_partner = partners[0].url().to_owned();
    let options = Options {
        rules: vec![format!("{GET_PRIVATE}=read:private|admin").parse().unwrap()],
        ..Options::default()
    };
    let app = spawn_app_configured(own, partners, configs, options).await;

    assert!(
        app.call(&tokens[0]).await.is_ok(),
        "the company's own admin"
    );
    // Twice: the second answer comes from the verified-token cache.
    for _ in 0..2 {
        let status = app.call(&tokens[1]).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert_eq!(
            status.message(),
            format!("tokens of issuer `{refused_partner}` may not call this method")
        );
    }
    for (i, token) in tokens.iter().enumerate().skip(2) {
        assert!(app.call(token).await.is_ok(), "partner {i} on its list");
    }
    // A token from a partner on its list still needs the scope.
    let partner = &app.others[2];
    let mut claims = partner.claims("someone", &["read:other"]);
    claims["aud"] = app.issuer.audience().into();
    let status = app.call(&partner.mint(&claims)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "missing required scope: needs one of read:private, admin"
    );
}

/// tonic does not tell an interceptor the method, so it cannot apply an
/// issuer's `methods`: it refuses that issuer's tokens rather than let them
/// call anything. The layer, which knows the method, is the way.
#[tokio::test]
async fn the_one_service_interceptor_refuses_tokens_limited_to_methods() {
    let own = spawn_issuer().await;
    let partner = spawn_issuer().await;
    let mut limited = with_keys_of(&partner, partner.url(), own.audience());
    limited.validation.methods = Some(vec![GET_PRIVATE.into()]);
    let mut gate = gate_for(
        vec![with_keys_of(&own, own.url(), own.audience()), limited],
        &[],
    )
    .await;
    let token = |dev: &DevIssuer| {
        let mut claims = dev.claims("someone", &[]);
        claims["aud"] = own.audience().into();
        dev.mint(&claims)
    };
    let call = |gate: &mut Gate, token: &str| {
        let mut request = tonic::Request::new(());
        let value = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
        gate.call(request).map(|_| ())
    };
    assert!(call(&mut gate, &token(&own)).is_ok());
    let status = call(&mut gate, &token(&partner)).unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "the method being called is unknown, so its scopes cannot be checked"
    );
    // What a handler can ask of the principal itself.
    let value = format!("Bearer {}", token(&partner));
    let principal = gate.authenticate([value.as_bytes()]).unwrap();
    assert!(principal.may_call(GET_PRIVATE));
    assert!(!principal.may_call("/authgate.v1.PrivateService/Other"));
}

#[test]
fn settings_that_cannot_mean_what_they_say_are_refused_before_serving() {
    let base = || {
        IssuerConfig::with_jwks(
            "https://issuer.example/",
            "https://issuer.example/jwks.json",
            vec!["api".into()],
            LEEWAY,
        )
        .unwrap()
    };
    let refused = |change: &dyn Fn(&mut IssuerConfig), why: &str| {
        let mut config = base();
        change(&mut config);
        let error = Gate::builder()
            .issuer_config(config)
            .check()
            .expect_err(why)
            .to_string();
        assert!(
            error.starts_with("issuer `https://issuer.example/`: ") && error.contains(why),
            "{why}: {error}"
        );
    };
    refused(
        &|c| c.validation.audience_claim = String::new(),
        "audience claim",
    );
    refused(
        &|c| c.validation.audience_claim = "sub".into(),
        "`sub` cannot be the audience claim",
    );
    refused(
        &|c| c.validation.token_use = Some(String::new()),
        "`ValidationConfig::token_use` is empty",
    );
    refused(
        &|c| c.validation.scope_claims = (0..9).map(|i| format!("s{i}")).collect(),
        "9 scope claims: at most 8",
    );
    for claims in [&["scope", "scope"][..], &["exp"], &["aud"], &[""]] {
        refused(
            &|c| c.validation.scope_claims = claims.iter().map(|s| (*s).into()).collect(),
            "cannot be a scope claim",
        );
    }
    refused(
        &|c| {
            c.validation.token_use = Some("access".into());
            c.validation.scope_claims = vec!["token_use".into()];
        },
        "`token_use` cannot be a scope claim",
    );
    for method in ["GetPrivate", "/a/*/b", "/a*", "/a /b", ""] {
        refused(
            &|c| c.validation.methods = Some(vec![GET_PRIVATE.into(), method.into()]),
            "is not a request path",
        );
    }
    let mut fine = base();
    fine.validation.audience_claim = "client_id".into();
    fine.validation.token_use = Some("access".into());
    fine.validation.scope_claims = vec!["scope".into(), "roles".into()];
    fine.validation.methods = Some(vec!["/a.S/*".into(), GET_PRIVATE.into(), "/*".into()]);
    Gate::builder().issuer_config(fine).check().unwrap();
    // The builder's own settings, for the issuers it is given by URL.
    let error = Gate::builder()
        .issuer_with_jwks(
            "https://issuer.example/",
            "https://issuer.example/jwks.json",
        )
        .audience("api")
        .scope_claims(["scope", "scope"])
        .check()
        .unwrap_err();
    assert!(
        error.to_string().contains("cannot be a scope claim"),
        "{error}"
    );
}

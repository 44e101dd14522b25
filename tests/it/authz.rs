//! `authgate authz`'s library half asked as the proxies ask: Envoy's
//! `Check` through a client generated from Envoy's own protos (envoy-types'),
//! filled as Envoy fills it, and HTTP forward auth with each header that
//! names the original request. The real nginx and Caddy are
//! tests/authz/run.sh's.

use std::{collections::HashMap, net::SocketAddr};

use authgate::{ScopePolicy, ScopeRule, authz::Authz, issuer::DevIssuer, server::Application};
use envoy_types::ext_authz::v3::pb::{
    CheckRequest, CheckResponse, HeaderAppendAction, HttpResponse,
};
use envoy_types::pb::envoy::{
    config::core::v3::{HeaderMap, HeaderValue},
    service::auth::v3::{
        AttributeContext, attribute_context, authorization_client::AuthorizationClient,
    },
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{Code, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_check_response, health_client::HealthClient};

use crate::common::{
    eventually, held_address, metric_value, patience, spawn_issuer, start_issuer_on,
};

struct TestAuthz {
    addr: SocketAddr,
    metrics: SocketAddr,
    _close: oneshot::Sender<()>,
    _server: JoinHandle<Result<(), authgate::StartupError>>,
}

struct AuthzOptions {
    rules: Vec<&'static str>,
    public: Vec<&'static str>,
    authz: Authz,
    wait_for_keys: bool,
}

impl Default for AuthzOptions {
    fn default() -> Self {
        AuthzOptions {
            rules: vec!["/admin/*=admin", "POST /items=items:write"],
            public: vec!["/docs/*"],
            authz: Authz::new(),
            wait_for_keys: true,
        }
    }
}

async fn spawn_authz(issuer_url: &str, options: AuthzOptions) -> TestAuthz {
    // The same gate settings as the proxy's tests: one dev issuer.
    let mut config = crate::proxy::server_config(issuer_url);
    let rules: Vec<ScopeRule> = options.rules.iter().map(|r| r.parse().unwrap()).collect();
    config.policy = ScopePolicy::new(rules);
    config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let app = options
        .public
        .iter()
        .fold(Application::builder(config), |app, path| {
            app.public_path(*path)
        });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = options.authz.install(app).with_listener(listener).unwrap();
    let (addr, metrics) = (app.local_addr(), app.metrics_addr().unwrap());
    let keys = app.keys();
    let (close, closed) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = closed.await;
    }));
    if options.wait_for_keys {
        tokio::time::timeout(patience(), keys.wait_loaded())
            .await
            .expect("the key set loads");
    }
    TestAuthz {
        addr,
        metrics,
        _close: close,
        _server: server,
    }
}

fn token(issuer: &DevIssuer, scopes: &[&str]) -> String {
    issuer.mint(&issuer.claims("user|1", scopes))
}

/// `attributes.request.http` as Envoy fills it: method, path with its
/// query, scheme, host, and the headers in lowercase, pseudo-headers too.
fn http_request(method: &str, path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    let mut map: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    map.insert(":method".into(), method.into());
    map.insert(":path".into(), path.into());
    map.insert(":authority".into(), "api.example.com".into());
    let http = attribute_context::HttpRequest {
        id: "1".into(),
        method: method.into(),
        path: path.into(),
        host: "api.example.com".into(),
        scheme: "https".into(),
        protocol: "HTTP/1.1".into(),
        headers: map,
        ..Default::default()
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(attribute_context::Request {
                http: Some(http),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

impl TestAuthz {
    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn check(&self, request: CheckRequest) -> Result<CheckResponse, tonic::Status> {
        let mut client = AuthorizationClient::new(self.channel().await);
        tokio::time::timeout(patience(), client.check(request))
            .await
            .expect("an answer within the patience")
            .map(|r| r.into_inner())
    }

    async fn health(&self, service: &str) -> i32 {
        let mut health = HealthClient::new(self.channel().await);
        let request = HealthCheckRequest {
            service: service.into(),
        };
        health.check(request).await.unwrap().into_inner().status
    }

    /// A forward auth request: `path` on authz itself, with `headers`.
    async fn forward_auth(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = reqwest::Client::new().get(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    async fn scrape(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.metrics))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// The answer's parts: code, and the allowed or denied HTTP answer.
struct Answer {
    code: i32,
    message: String,
    /// Allowed: headers set, each with its append action.
    set: HashMap<String, (String, i32)>,
    removed: Vec<String>,
    /// Refused: the HTTP status, headers and body.
    status: Option<i32>,
    headers: HashMap<String, String>,
    body: String,
}

fn answer(response: CheckResponse) -> Answer {
    let status = response.status.expect("a status");
    let mut answer = Answer {
        code: status.code,
        message: status.message,
        set: HashMap::new(),
        removed: Vec::new(),
        status: None,
        headers: HashMap::new(),
        body: String::new(),
    };
    match response.http_response.expect("an HTTP answer") {
        HttpResponse::OkResponse(ok) => {
            for option in ok.headers {
                let header = option.header.unwrap();
                answer
                    .set
                    .insert(header.key, (header.value, option.append_action));
            }
            answer.removed = ok.headers_to_remove;
        }
        HttpResponse::DeniedResponse(denied) => {
            answer.status = denied.status.map(|s| s.code);
            for option in denied.headers {
                let header = option.header.unwrap();
                answer.headers.insert(header.key, header.value);
            }
            answer.body = denied.body;
        }
        other => panic!("neither allowed nor denied: {other:?}"),
    }
    answer
}

const OVERWRITE: i32 = HeaderAppendAction::OverwriteIfExistsOrAdd as i32;

#[tokio::test]
async fn an_allowed_check_sets_who_called_and_removes_what_the_caller_forged() {
    let issuer = spawn_issuer().await;
    let authz = spawn_authz(issuer.url(), AuthzOptions::default()).await;
    let token = token(&issuer, &["admin"]);
    let auth = bearer(&token);
    let request = http_request(
        "GET",
        "/admin/users?page=2",
        &[
            ("authorization", &auth),
            ("x-authgate-subject", "forged"),
            ("x_authgate_subject", "forged"),
            ("x-authgate-roles", "forged"),
            ("x-other", "kept"),
        ],
    );
    let answer = answer(authz.check(request).await.unwrap());
    assert_eq!(answer.code, Code::Ok as i32);
    assert_eq!(
        answer.set["x-authgate-subject"],
        ("user|1".into(), OVERWRITE)
    );
    assert_eq!(
        answer.set["x-authgate-issuer"],
        (issuer.url().into(), OVERWRITE)
    );
    assert_eq!(answer.set["x-authgate-scopes"], ("admin".into(), OVERWRITE));
    assert_eq!(answer.set["x-authgate-claims"].1, OVERWRITE);
    assert_eq!(answer.set.len(), 4);
    let mut removed = answer.removed.clone();
    removed.sort();
    assert_eq!(
        removed,
        ["authorization", "x-authgate-roles", "x_authgate_subject"]
    );

    // With --forward-authorization, the token stays.
    let options = AuthzOptions {
        authz: Authz::new().forward_authorization(true),
        ..AuthzOptions::default()
    };
    let forwarding = spawn_authz(issuer.url(), options).await;
    let request = http_request("GET", "/admin/users", &[("authorization", &auth)]);
    let answer = self::answer(forwarding.check(request).await.unwrap());
    assert_eq!(answer.code, Code::Ok as i32);
    assert!(answer.removed.is_empty(), "{:?}", answer.removed);
}

#[tokio::test]
async fn each_refusal_carries_its_code_and_its_http_answer() {
    let issuer = spawn_issuer().await;
    let authz = spawn_authz(issuer.url(), AuthzOptions::default()).await;
    let check = |path: &'static str, headers: Vec<(&'static str, String)>| {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let request = http_request("GET", path, &headers);
        let authz = &authz;
        async move { answer(authz.check(request).await.unwrap()) }
    };
    let detail = |body: &str| -> String {
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        json["detail"].as_str().unwrap().to_owned()
    };

    let none = check("/admin/users", vec![]).await;
    assert_eq!(none.code, Code::Unauthenticated as i32);
    assert_eq!(none.status, Some(401));
    assert_eq!(
        none.headers["www-authenticate"],
        r#"Bearer realm="authgate""#
    );
    assert_eq!(none.headers["content-type"], "application/json");
    assert_eq!(detail(&none.body), none.message);

    let forged = check("/admin/users", vec![("authorization", bearer("a.b.c"))]).await;
    assert_eq!(forged.code, Code::Unauthenticated as i32);
    assert_eq!(forged.status, Some(401));
    assert!(
        forged.headers["www-authenticate"].contains(r#"error="invalid_token""#),
        "{:?}",
        forged.headers
    );

    let weak = token(&issuer, &["read"]);
    let scopeless = check("/admin/users", vec![("authorization", bearer(&weak))]).await;
    assert_eq!(scopeless.code, Code::PermissionDenied as i32);
    assert_eq!(scopeless.status, Some(403));
    assert_eq!(
        scopeless.headers["www-authenticate"],
        r#"Bearer realm="authgate", error="insufficient_scope", scope="admin""#
    );
    assert_eq!(detail(&scopeless.body), scopeless.message);
    assert!(!scopeless.body.contains(&weak));

    // A path the upstream may read as another: refused before the token.
    let strong = token(&issuer, &["admin"]);
    for path in [
        "/docs/../admin/users",
        "/docs/%2e%2e/admin",
        "/docs//x",
        "/a;b",
    ] {
        let ambiguous = check(path, vec![("authorization", bearer(&strong))]).await;
        assert_eq!(ambiguous.code, Code::InvalidArgument as i32, "{path}");
        assert_eq!(ambiguous.status, Some(400), "{path}");
    }
}

#[tokio::test]
async fn keys_not_loaded_are_unavailable_and_health_follows_them() {
    let (socket, addr) = held_address();
    let url = format!("http://{addr}/");
    let options = AuthzOptions {
        wait_for_keys: false,
        ..AuthzOptions::default()
    };
    let authz = spawn_authz(&url, options).await;
    const NOT_SERVING: i32 = health_check_response::ServingStatus::NotServing as i32;
    const SERVING: i32 = health_check_response::ServingStatus::Serving as i32;
    assert_eq!(authz.health("").await, NOT_SERVING);
    assert_eq!(
        authz.health("envoy.service.auth.v3.Authorization").await,
        NOT_SERVING
    );
    assert_eq!(authz.health("grpc.health.v1.Health").await, SERVING);
    let answer = answer(
        authz
            .check(http_request(
                "GET",
                "/x",
                &[("authorization", "Bearer a.b.c")],
            ))
            .await
            .unwrap(),
    );
    assert_eq!(answer.code, Code::Unavailable as i32);
    assert_eq!(answer.status, Some(503));
    assert_eq!(answer.headers["retry-after"], "5");

    let _issuer = start_issuer_on(socket);
    assert!(
        eventually(patience(), || async {
            authz.health("envoy.service.auth.v3.Authorization").await == SERVING
                && authz.health("").await == SERVING
        })
        .await
    );
}

#[tokio::test]
async fn public_paths_pass_with_no_identity_and_every_forged_one_removed() {
    let issuer = spawn_issuer().await;
    let authz = spawn_authz(issuer.url(), AuthzOptions::default()).await;
    let request = http_request(
        "GET",
        "/docs/index.html",
        &[
            ("x-authgate-subject", "forged"),
            ("x-authgate-scopes", "admin"),
        ],
    );
    let answer = answer(authz.check(request).await.unwrap());
    assert_eq!(answer.code, Code::Ok as i32);
    assert!(answer.set.is_empty());
    let mut removed = answer.removed;
    removed.sort();
    assert_eq!(
        removed,
        ["authorization", "x-authgate-scopes", "x-authgate-subject"]
    );

    // Health is public to gRPC callers only.
    let health = "/grpc.health.v1.Health/Check";
    let grpc = http_request("POST", health, &[("content-type", "application/grpc")]);
    assert_eq!(self::answer(authz.check(grpc).await.unwrap()).code, 0);
    let plain = http_request("POST", health, &[("content-type", "application/json")]);
    let plain = self::answer(authz.check(plain).await.unwrap());
    assert_eq!(plain.code, Code::Unauthenticated as i32);

    // The service authz answers on is not a public path of the upstream's.
    let check = "/envoy.service.auth.v3.Authorization/Check";
    let own = http_request("POST", check, &[("content-type", "application/grpc")]);
    let own = self::answer(authz.check(own).await.unwrap());
    assert_eq!(own.code, Code::Unauthenticated as i32);
}

#[tokio::test]
async fn the_query_is_not_the_path() {
    let issuer = spawn_issuer().await;
    let options = AuthzOptions {
        rules: vec!["/admin=admin"],
        public: vec!["/healthz"],
        ..AuthzOptions::default()
    };
    let authz = spawn_authz(issuer.url(), options).await;
    // An exact rule still binds with a query or a fragment after the path.
    let reader = bearer(&token(&issuer, &["read"]));
    for path in ["/admin?x=1", "/admin?", "/admin#top"] {
        let headers = [("authorization", reader.as_str())];
        let answer = answer(
            authz
                .check(http_request("GET", path, &headers))
                .await
                .unwrap(),
        );
        assert_eq!(answer.code, Code::PermissionDenied as i32, "{path}");
        let forwarded = [
            ("x-forwarded-uri", path),
            ("authorization", reader.as_str()),
        ];
        assert_eq!(
            authz.forward_auth("/", &forwarded).await.status(),
            403,
            "{path}"
        );
    }
    // A public path in the query opens nothing.
    let answer = answer(
        authz
            .check(http_request("GET", "/admin?/healthz", &[]))
            .await
            .unwrap(),
    );
    assert_eq!(answer.code, Code::Unauthenticated as i32);
    let public = answer_of(&authz, "/healthz?probe=1").await;
    assert_eq!(public.code, Code::Ok as i32);
}

async fn answer_of(authz: &TestAuthz, path: &str) -> Answer {
    answer(authz.check(http_request("GET", path, &[])).await.unwrap())
}

#[tokio::test]
async fn a_method_bound_rule_binds_its_method_only() {
    let issuer = spawn_issuer().await;
    let authz = spawn_authz(issuer.url(), AuthzOptions::default()).await;
    let auth = bearer(&token(&issuer, &["read"]));
    let headers = [("authorization", auth.as_str())];
    let get = answer(
        authz
            .check(http_request("GET", "/items", &headers))
            .await
            .unwrap(),
    );
    assert_eq!(get.code, Code::Ok as i32);
    let post = answer(
        authz
            .check(http_request("POST", "/items", &headers))
            .await
            .unwrap(),
    );
    assert_eq!(post.code, Code::PermissionDenied as i32);
    assert_eq!(post.status, Some(403));
    let writer = bearer(&token(&issuer, &["items:write"]));
    let headers = [("authorization", writer.as_str())];
    let post = answer(
        authz
            .check(http_request("POST", "/items", &headers))
            .await
            .unwrap(),
    );
    assert_eq!(post.code, Code::Ok as i32);
}

#[tokio::test]
async fn headers_come_as_a_header_map_too() {
    let issuer = spawn_issuer().await;
    let authz = spawn_authz(issuer.url(), AuthzOptions::default()).await;
    let auth = bearer(&token(&issuer, &["admin"]));
    let mut request = http_request("GET", "/admin/x", &[]);
    let http = request
        .attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http
        .as_mut()
        .unwrap();
    http.headers.clear();
    http.header_map = Some(HeaderMap {
        headers: vec![
            HeaderValue {
                key: "authorization".into(),
                raw_value: auth.into_bytes(),
                ..Default::default()
            },
            HeaderValue {
                key: "x-authgate-subject".into(),
                raw_value: b"forged".to_vec(),
                ..Default::default()
            },
        ],
    });
    let answer = answer(authz.check(request).await.unwrap());
    assert_eq!(answer.code, Code::Ok as i32);
    assert_eq!(answer.set["x-authgate-subject"].0, "user|1");
}

#[tokio::test]
async fn a_check_without_the_http_request_is_invalid() {
    let issuer = spawn_issuer().await;
    let authz = spawn_authz(issuer.url(), AuthzOptions::default()).await;
    let empty = CheckRequest { attributes: None };
    assert_eq!(
        authz.check(empty).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let no_http = CheckRequest {
        attributes: Some(AttributeContext::default()),
    };
    let status = authz.check(no_http).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn check_is_counted_as_grpc_and_its_decision_once() {
    let issuer = spawn_issuer().await;
    let authz = spawn_authz(issuer.url(), AuthzOptions::default()).await;
    let auth = bearer(&token(&issuer, &["admin"]));
    authz
        .check(http_request("GET", "/admin/x", &[("authorization", &auth)]))
        .await
        .unwrap();
    authz
        .check(http_request("GET", "/admin/x", &[]))
        .await
        .unwrap();
    let text = authz.scrape().await;
    let handled = r#"grpc_server_handled_total{grpc_type="unary",grpc_service="envoy.service.auth.v3.Authorization",grpc_method="Check",grpc_code="OK"}"#;
    assert_eq!(metric_value(&text, handled), Some(2.0), "{text}");
    let allowed = r#"authgate_auth_decisions_total{result="allowed",reason="none"}"#;
    assert_eq!(metric_value(&text, allowed), Some(1.0), "{text}");
    let denied = r#"authgate_auth_decisions_total{result="denied",reason="missing_authorization"}"#;
    assert_eq!(metric_value(&text, denied), Some(1.0), "{text}");
}

#[tokio::test]
async fn forward_auth_reads_each_header_source_and_the_path_prefix() {
    let issuer = spawn_issuer().await;
    let options = AuthzOptions {
        authz: Authz::new().path_prefix("/authz"),
        ..AuthzOptions::default()
    };
    let authz = spawn_authz(issuer.url(), options).await;
    let admin = bearer(&token(&issuer, &["admin"]));
    let reader = bearer(&token(&issuer, &["read"]));

    // Traefik's and Caddy's headers.
    let allowed = authz
        .forward_auth(
            "/whatever",
            &[
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", "/admin/x?y=1"),
                ("authorization", &admin),
            ],
        )
        .await;
    assert_eq!(allowed.status(), 200);
    let headers = allowed.headers().clone();
    assert_eq!(headers["x-authgate-subject"], "user|1");
    assert_eq!(headers["x-authgate-issuer"], issuer.url());
    assert_eq!(headers["x-authgate-scopes"], "admin");
    assert!(headers.contains_key("x-authgate-claims"));
    assert_eq!(allowed.text().await.unwrap(), "");

    let refused = authz
        .forward_auth(
            "/whatever",
            &[("x-forwarded-uri", "/admin/x"), ("authorization", &reader)],
        )
        .await;
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.headers()["www-authenticate"],
        r#"Bearer realm="authgate", error="insufficient_scope", scope="admin""#
    );
    let body: serde_json::Value = serde_json::from_str(&refused.text().await.unwrap()).unwrap();
    assert!(body["detail"].as_str().unwrap().contains("admin"));

    // nginx's, as the docs set them.
    let post = [
        ("x-original-method", "POST"),
        ("x-original-uri", "/items"),
        ("authorization", reader.as_str()),
    ];
    assert_eq!(authz.forward_auth("/auth", &post).await.status(), 403);
    let get = [("x-original-method", "GET"), ("x-original-uri", "/items")];
    let get: Vec<_> = get
        .into_iter()
        .chain([("authorization", reader.as_str())])
        .collect();
    assert_eq!(authz.forward_auth("/auth", &get).await.status(), 200);
    // X-Forwarded-* comes first.
    let both = [
        ("x-forwarded-method", "POST"),
        ("x-original-method", "GET"),
        ("x-forwarded-uri", "/items"),
        ("x-original-uri", "/docs/x"),
        ("authorization", reader.as_str()),
    ];
    assert_eq!(authz.forward_auth("/auth", &both).await.status(), 403);

    // Envoy's HTTP ext_authz: the request's own method and path, less the prefix.
    let own = authz.forward_auth("/authz/admin/x", &[]).await;
    assert_eq!(own.status(), 401);
    assert_eq!(
        own.headers()["www-authenticate"],
        r#"Bearer realm="authgate""#
    );
    let own = authz
        .forward_auth("/authz/admin/x", &[("authorization", &admin)])
        .await;
    assert_eq!(own.status(), 200);
    assert_eq!(own.headers()["x-authgate-subject"], "user|1");
    // Outside the prefix there is no original to allow.
    let outside = authz
        .forward_auth("/admin/x", &[("authorization", &admin)])
        .await;
    assert_eq!(outside.status(), 400);

    // A public path: allowed, with none of the four headers.
    let public = authz.forward_auth("/authz/docs/a", &[]).await;
    assert_eq!(public.status(), 200);
    assert!(
        public
            .headers()
            .keys()
            .all(|k| !k.as_str().starts_with("x-authgate-"))
    );
    let ambiguous = [("x-forwarded-uri", "/docs/../admin/x")];
    assert_eq!(authz.forward_auth("/", &ambiguous).await.status(), 400);
    let query = [("x-forwarded-uri", "/admin/x?/docs/")];
    assert_eq!(authz.forward_auth("/", &query).await.status(), 401);
}

#[tokio::test]
async fn a_forward_auth_question_about_a_grpc_call_is_answered_as_forward_auth() {
    // nginx's auth_request copies the original's `content-type:
    // application/grpc` into its HTTP/1.1 question: were it answered as
    // gRPC, its refusal would be HTTP 200 with grpc-status, which nginx
    // takes for an allowed request.
    let issuer = spawn_issuer().await;
    let authz = spawn_authz(issuer.url(), AuthzOptions::default()).await;
    let grpc = [
        ("content-type", "application/grpc"),
        ("x-original-method", "POST"),
        ("x-original-uri", "/pkg.Service/Method"),
    ];
    let refused = authz.forward_auth("/auth", &grpc).await;
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().get("grpc-status").is_none());
    let web = [
        ("content-type", "application/grpc-web+proto"),
        ("x-original-uri", "/pkg.Service/Method"),
    ];
    assert_eq!(authz.forward_auth("/auth", &web).await.status(), 401);
    // Health and reflection stay public to gRPC originals.
    let health = [
        ("content-type", "application/grpc"),
        ("x-original-uri", "/grpc.health.v1.Health/Check"),
    ];
    assert_eq!(authz.forward_auth("/auth", &health).await.status(), 200);
}

#[tokio::test]
async fn reflection_lists_check_beside_health() {
    let issuer = spawn_issuer().await;
    let authz = spawn_authz(issuer.url(), AuthzOptions::default()).await;
    let services = crate::common::reflected_services(authz.channel().await).await;
    assert!(
        services
            .iter()
            .any(|s| s == "envoy.service.auth.v3.Authorization"),
        "{services:?}"
    );
    assert!(
        services.iter().any(|s| s == "grpc.health.v1.Health"),
        "{services:?}"
    );
}

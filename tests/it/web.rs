//! One port, three protocols: gRPC-Web (binary and text, unary and server
//! streaming, HTTP/1.1 and HTTP/2) and plain HTTP (`GET /`, RFC 6750
//! refusals) through the same gate as gRPC, CORS for the allowed origins
//! only, and hostile HTTP/1.1 refused without disturbing anyone else. The
//! requests are written byte by byte on a TcpStream, as a client (or an
//! attacker) would send them.

use std::{net::SocketAddr, time::Duration};

use authgate::pb::{GetPrivateRequest, GetPrivateResponse};
use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use prost::Message;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::common::{
    GET_PRIVATE, Options, SCOPE, TestApp, held_address, manual_clock, now, patience, spawn_app,
    spawn_app_with,
};

use crate::streams::ticker;

const ORIGIN: &str = "http://app.example:8080";
const OTHER_ORIGIN: &str = "http://evil.example:8080";

/// One HTTP/1.1 response as it came over the wire.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether any `access-control-*` header came back.
    fn has_cors_headers(&self) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.to_ascii_lowercase().starts_with("access-control-"))
    }
}

/// Writes `raw` on a new connection and reads until the server closes it
/// (or resets it): every byte the server sent.
async fn exchange(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // A server may close before reading all of it: that is an answer too.
    let _ = stream.write_all(raw).await;
    let mut out = Vec::new();
    let read = async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(patience(), read)
        .await
        .expect("the server closed the connection");
    out
}

/// Every response in `bytes`, in order.
fn parse_all(mut bytes: &[u8]) -> Vec<Reply> {
    let mut replies = Vec::new();
    while !bytes.is_empty() {
        let (reply, used) = parse_one(bytes);
        replies.push(reply);
        bytes = &bytes[used..];
    }
    replies
}

fn parse_one(bytes: &[u8]) -> (Reply, usize) {
    let end = find(bytes, b"\r\n\r\n").expect("a complete response head") + 4;
    let head = std::str::from_utf8(&bytes[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &bytes[end..];
    if let Some(len) = reply.header("content-length") {
        let len: usize = len.parse().unwrap();
        reply.body = rest[..len].to_vec();
        (reply, end + len)
    } else if reply.header("transfer-encoding") == Some("chunked") {
        let mut at = 0;
        loop {
            let line_end = at + find(&rest[at..], b"\r\n").expect("a chunk size");
            let size_text = std::str::from_utf8(&rest[at..line_end]).unwrap();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap(), 16).unwrap();
            at = line_end + 2;
            if size == 0 {
                at += find(&rest[at..], b"\r\n").expect("the chunked body's end") + 2;
                break;
            }
            reply.body.extend_from_slice(&rest[at..at + size]);
            at += size + 2;
        }
        (reply, end + at)
    } else {
        reply.body = rest.to_vec();
        (reply, bytes.len())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An HTTP/1.1 request that asks the server to close after answering.
fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// Sends one request and returns its one response.
async fn http1(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut replies = parse_all(&exchange(addr, &request(method, path, headers, body)).await);
    assert_eq!(replies.len(), 1, "one request, one response: {replies:?}");
    replies.remove(0)
}

async fn get_root(app: &TestApp, headers: &[(&str, &str)]) -> Reply {
    http1(app.addr, "GET", "/", headers, b"").await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn token_without_scope(app: &TestApp) -> String {
    app.issuer.mint(&app.issuer.claims("user|2", &[]))
}

fn expired_token(app: &TestApp) -> String {
    let mut claims = app.issuer.claims("user|1", &[SCOPE]);
    claims["iat"] = (now() - 7200).into();
    claims["exp"] = (now() - 3600).into();
    app.issuer.mint(&claims)
}

// ---------------------------------------------------------------- gRPC-Web

/// A gRPC message in its 5-byte frame: flag 0, big-endian length, bytes.
fn frame(message: &impl Message) -> Vec<u8> {
    let bytes = message.encode_to_vec();
    let mut framed = vec![0];
    framed.extend_from_slice(&u32::try_from(bytes.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(&bytes);
    framed
}

/// A gRPC-Web response body: its messages, and its trailers frame (flag
/// 0x80) as `name:value` pairs.
#[derive(Debug, Default)]
struct WebBody {
    messages: Vec<Vec<u8>>,
    trailers: Vec<(String, String)>,
}

fn web_body(mut body: &[u8]) -> WebBody {
    let mut out = WebBody::default();
    while !body.is_empty() {
        let flag = body[0];
        let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        let payload = &body[5..5 + len];
        if flag & 0x80 != 0 {
            let text = std::str::from_utf8(payload).unwrap();
            out.trailers = text
                .split("\r\n")
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (n, v) = l.split_once(':').unwrap();
                    (n.trim().to_ascii_lowercase(), v.trim().to_owned())
                })
                .collect();
        } else {
            assert_eq!(flag, 0, "an uncompressed message");
            out.messages.push(payload.to_vec());
        }
        body = &body[5 + len..];
    }
    out
}

/// `-text` bodies are base64 with each frame padded on its own: decode
/// quantum by quantum.
fn decode_text(body: &[u8]) -> Vec<u8> {
    body.chunks(4)
        .flat_map(|quantum| STANDARD.decode(quantum).expect("base64"))
        .collect()
}

impl WebBody {
    fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The `grpc-status` of a gRPC-Web answer: in its trailers frame, or in
/// its headers when it is trailers-only.
fn web_status(reply: &Reply, body: &WebBody) -> String {
    body.trailer("grpc-status")
        .or_else(|| reply.header("grpc-status"))
        .expect("a grpc-status")
        .to_owned()
}

/// Calls `GetPrivate` over gRPC-Web on HTTP/1.1; `text` uses
/// `application/grpc-web-text` both ways.
async fn web_get_private(app: &TestApp, text: bool, extra: &[(&str, &str)]) -> (Reply, WebBody) {
    let framed = frame(&GetPrivateRequest {});
    let (content_type, body) = if text {
        (
            "application/grpc-web-text",
            STANDARD.encode(&framed).into_bytes(),
        )
    } else {
        ("application/grpc-web+proto", framed)
    };
    let mut headers = vec![("content-type", content_type), ("x-grpc-web", "1")];
    if text {
        headers.push(("accept", "application/grpc-web-text"));
    }
    headers.extend_from_slice(extra);
    let reply = http1(app.addr, "POST", GET_PRIVATE, &headers, &body).await;
    let raw = if text {
        decode_text(&reply.body)
    } else {
        reply.body.clone()
    };
    let body = web_body(&raw);
    (reply, body)
}

#[tokio::test]
async fn grpc_web_unary_answers_over_http1_in_binary_and_text() {
    let app = spawn_app().await;
    let token = bearer(&app.token());
    for text in [false, true] {
        let (reply, body) = web_get_private(&app, text, &[("authorization", &token)]).await;
        assert_eq!(reply.status, 200);
        let expected = if text {
            "application/grpc-web-text+proto"
        } else {
            "application/grpc-web+proto"
        };
        assert_eq!(reply.header("content-type"), Some(expected));
        assert_eq!(web_status(&reply, &body), "0", "text: {text}");
        assert_eq!(body.messages.len(), 1);
        let answer = GetPrivateResponse::decode(&body.messages[0][..]).unwrap();
        assert_eq!(answer.message, "This is private");
        assert_eq!(answer.subject, "user|1");
    }
    // The metrics count gRPC-Web calls by their path, as gRPC ones.
    let handled = r#"grpc_server_handled_total{grpc_type="unary",grpc_service="authgate.v1.PrivateService",grpc_method="GetPrivate",grpc_code="OK"}"#;
    assert_eq!(app.metric(handled).await, Some(2.0));
    let (_, _) = web_get_private(&app, false, &[]).await;
    let refused = r#"grpc_server_handled_total{grpc_type="unary",grpc_service="authgate.v1.PrivateService",grpc_method="GetPrivate",grpc_code="Unauthenticated"}"#;
    assert_eq!(app.metric(refused).await, Some(1.0));
    app.stop().await;
}

#[tokio::test]
async fn a_media_type_in_another_case_is_the_same_grpc_web_call() {
    let app = spawn_app().await;
    let token = bearer(&app.token());
    let framed = frame(&GetPrivateRequest {});
    for content_type in ["Application/gRPC-Web+proto", "APPLICATION/GRPC-WEB"] {
        let headers = [("content-type", content_type), ("authorization", &token)];
        let reply = http1(app.addr, "POST", GET_PRIVATE, &headers, &framed).await;
        assert_eq!(reply.status, 200, "{content_type}");
        let body = web_body(&reply.body);
        assert_eq!(web_status(&reply, &body), "0", "{content_type}");
        let answer = GetPrivateResponse::decode(&body.messages[0][..]).unwrap();
        assert_eq!(answer.message, "This is private");
        // Without a token: the gate's gRPC-Web refusal, not plain HTTP's.
        let headers = [("content-type", content_type)];
        let reply = http1(app.addr, "POST", GET_PRIVATE, &headers, &framed).await;
        assert_eq!(reply.status, 200, "{content_type}");
        assert_eq!(reply.header("grpc-status"), Some("16"), "{content_type}");
    }
    app.stop().await;
}

#[tokio::test]
async fn grpc_web_refusals_are_trailers_only() {
    let app = spawn_app().await;
    for text in [false, true] {
        let (reply, body) = web_get_private(&app, text, &[]).await;
        assert_eq!(reply.status, 200);
        assert!(body.messages.is_empty());
        assert_eq!(reply.header("grpc-status"), Some("16"), "text: {text}");
        assert_eq!(
            reply.header("grpc-message"),
            Some("missing%20authorization%20metadata")
        );

        let no_scope = bearer(&token_without_scope(&app));
        let (reply, body) =
            web_get_private(&app, text, &[("authorization", no_scope.as_str())]).await;
        assert_eq!(reply.status, 200);
        assert!(body.messages.is_empty());
        assert_eq!(reply.header("grpc-status"), Some("7"));
        assert!(
            reply
                .header("grpc-message")
                .unwrap()
                .contains("read:private")
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn grpc_web_server_streaming_ends_when_its_token_expires() {
    use ticker::{Ticker, pb::WatchRequest, pb::ticker_server::TickerServer};

    let (_, clock) = manual_clock!(now());
    let app = spawn_app_with(Options {
        clock: Some(clock),
        leeway: Duration::ZERO,
        services: Some(|builder| builder.add_service(TickerServer::new(Ticker))),
        ..Options::default()
    })
    .await;
    let mut claims = app.issuer.claims("streamer", &[]);
    claims["iat"] = clock().into();
    claims["exp"] = (clock() + 1).into();
    let token = bearer(&app.issuer.mint(&claims));
    for text in [false, true] {
        let framed = frame(&WatchRequest { interval_ms: 20 });
        let (content_type, body) = if text {
            (
                "application/grpc-web-text",
                STANDARD.encode(&framed).into_bytes(),
            )
        } else {
            ("application/grpc-web", framed)
        };
        let mut headers = vec![
            ("content-type", content_type),
            ("authorization", token.as_str()),
        ];
        if text {
            headers.push(("accept", "application/grpc-web-text"));
        }
        let reply = http1(
            app.addr,
            "POST",
            "/authgate.example.v1.Ticker/Watch",
            &headers,
            &body,
        )
        .await;
        assert_eq!(reply.status, 200);
        let raw = if text {
            decode_text(&reply.body)
        } else {
            reply.body.clone()
        };
        let body = web_body(&raw);
        assert!(body.messages.len() > 1, "ticks streamed: {body:?}");
        let first = ticker::pb::Tick::decode(&body.messages[0][..]).unwrap();
        assert_eq!((first.n, first.subject.as_str()), (1, "streamer"));
        // The stream ran until the token's expiry ended it, as in gRPC.
        assert_eq!(body.trailer("grpc-status"), Some("16"), "text: {text}");
    }
    app.stop().await;
}

#[tokio::test]
async fn grpc_web_answers_over_http2_too() {
    let app = spawn_app().await;
    let tcp = TcpStream::connect(app.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    for (token, status) in [(Some(app.token()), "0"), (None, "16")] {
        let mut client = client.clone().ready().await.unwrap();
        let mut request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{}{GET_PRIVATE}", app.addr))
            .header("content-type", "application/grpc-web+proto")
            .header("x-grpc-web", "1");
        if let Some(token) = &token {
            request = request.header("authorization", bearer(token));
        }
        let (response, mut send) = client
            .send_request(request.body(()).unwrap(), false)
            .unwrap();
        send.send_data(Bytes::from(frame(&GetPrivateRequest {})), true)
            .unwrap();
        let response = tokio::time::timeout(patience(), response)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "application/grpc-web+proto"
        );
        let header_status = response
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned());
        let mut body = response.into_body();
        let mut raw = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            body.flow_control().release_capacity(chunk.len()).unwrap();
            raw.extend_from_slice(&chunk);
        }
        let web = web_body(&raw);
        let got = web
            .trailer("grpc-status")
            .map(str::to_owned)
            .or(header_status)
            .unwrap();
        assert_eq!(got, status);
        if token.is_some() {
            let answer = GetPrivateResponse::decode(&web.messages[0][..]).unwrap();
            assert_eq!(answer.message, "This is private");
        }
    }
    // Native gRPC on the same connection's port still answers.
    assert!(app.call(&app.token()).await.is_ok());
    app.stop().await;
}

// ---------------------------------------------------------- plain HTTP

#[tokio::test]
async fn get_root_with_a_token_answers_the_seeds_json() {
    let app = spawn_app().await;
    let token = bearer(&app.token());
    let reply = get_root(&app, &[("authorization", &token)]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.body_text(), r#"{"message": "This is private"}"#);
    // The scheme is case-insensitive (RFC 7235), as in gRPC.
    let lower = format!("bearer {}", app.token());
    assert_eq!(
        get_root(&app, &[("authorization", &lower)]).await.status,
        200
    );
    let counted = r#"authgate_auth_decisions_total{result="allowed",reason="none"}"#;
    assert_eq!(app.metric(counted).await, Some(2.0));
    app.stop().await;
}

#[tokio::test]
async fn get_root_follows_get_privates_scope_rules() {
    let app = spawn_app().await;
    let token = bearer(&token_without_scope(&app));
    let reply = get_root(&app, &[("authorization", &token)]).await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Bearer realm="authgate", error="insufficient_scope", scope="read:private""#)
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(
        reply.body_text(),
        r#"{"detail": "missing required scope `read:private`"}"#
    );

    // With no rule for GetPrivate, any valid token will do.
    let open = spawn_app_with(Options {
        rules: Vec::new(),
        ..Options::default()
    })
    .await;
    let token = bearer(&token_without_scope(&open));
    assert_eq!(
        get_root(&open, &[("authorization", &token)]).await.status,
        200
    );
    app.stop().await;
    open.stop().await;
}

#[tokio::test]
async fn no_token_or_another_scheme_gets_a_bare_challenge() {
    let app = spawn_app().await;
    for headers in [
        vec![],
        vec![("authorization", "Basic dXNlcjpwYXNz")],
        vec![("authorization", "Bearer")],
    ] {
        let reply = get_root(&app, &headers).await;
        assert_eq!(reply.status, 401, "{headers:?}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some(r#"Bearer realm="authgate""#),
            "{headers:?}"
        );
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let detail: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert!(detail["detail"].is_string(), "{detail}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_bad_token_gets_invalid_token_and_is_never_echoed() {
    let app = spawn_app().await;
    let garbage = "eyJhbGciOiJSUzI1NiJ9.not-a-payload.c2lnbmF0dXJl";
    let expired = expired_token(&app);
    let mut forged = app.token();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    for (token, message) in [
        (garbage, None),
        (expired.as_str(), Some("token has expired")),
        (forged.as_str(), Some("token signature is invalid")),
    ] {
        let reply = get_root(&app, &[("authorization", &bearer(token))]).await;
        assert_eq!(reply.status, 401);
        let challenge = reply.header("www-authenticate").unwrap();
        let detail: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        let detail = detail["detail"].as_str().unwrap();
        assert_eq!(
            challenge,
            format!(
                r#"Bearer realm="authgate", error="invalid_token", error_description="{}""#,
                detail.replace('"', "?")
            )
        );
        if let Some(message) = message {
            assert_eq!(detail, message);
        }
        for part in token.split('.') {
            assert!(!challenge.contains(part), "the challenge echoes the token");
            assert!(
                !reply.body_text().contains(part),
                "the body echoes the token"
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn grpc_grpc_web_and_plain_http_get_one_challenge_per_reason() {
    let app = spawn_app().await;
    let mut forged = app.token();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    let cases = [
        ("no token", None, r#"Bearer realm="authgate""#.to_owned()),
        (
            "a bad token",
            Some(forged),
            r#"Bearer realm="authgate", error="invalid_token", error_description="token signature is invalid""#.to_owned(),
        ),
        (
            "an expired token",
            Some(expired_token(&app)),
            r#"Bearer realm="authgate", error="invalid_token", error_description="token has expired""#.to_owned(),
        ),
        (
            "a missing scope",
            Some(token_without_scope(&app)),
            format!(r#"Bearer realm="authgate", error="insufficient_scope", scope="{SCOPE}""#),
        ),
    ];
    for (reason, token, expected) in cases {
        let authorization: Vec<String> = token.iter().map(|t| bearer(t)).collect();
        let headers: Vec<(&str, &str)> = authorization
            .iter()
            .map(|value| ("authorization", value.as_str()))
            .collect();
        // gRPC over HTTP/2: the status's metadata.
        let status = app.call_with(&authorization).await.unwrap_err();
        let grpc = status
            .metadata()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        // gRPC-Web over HTTP/1.1: the trailers-only answer's headers.
        let (web, _) = web_get_private(&app, false, &headers).await;
        assert_ne!(web.header("grpc-status"), Some("0"), "{reason}");
        // Plain HTTP: the RFC 6750 refusal.
        let plain = get_root(&app, &headers).await;
        assert!(matches!(plain.status, 401 | 403), "{reason}: {plain:?}");
        assert_eq!(
            plain.header("www-authenticate"),
            Some(&*expected),
            "{reason}"
        );
        assert_eq!(grpc.as_deref(), Some(&*expected), "{reason}: gRPC");
        assert_eq!(
            web.header("www-authenticate"),
            Some(&*expected),
            "{reason}: gRPC-Web"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn unavailable_keys_get_503_with_retry_after() {
    let (_held, down) = held_address();
    let app = spawn_app_with(Options {
        jwks_url: Some(format!("http://{down}/jwks.json")),
        wait_for_keys: false,
        ..Options::default()
    })
    .await;
    let token = bearer(&app.token());
    let reply = get_root(&app, &[("authorization", &token)]).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after"), Some("5"));
    assert!(reply.header("www-authenticate").is_none());
    assert!(
        reply.body_text().contains("signing keys"),
        "{}",
        reply.body_text()
    );
    app.stop().await;
}

#[tokio::test]
async fn other_paths_are_refused_without_a_token_and_404_with_one() {
    let app = spawn_app().await;
    let token = bearer(&app.token());
    for path in [
        "/x",
        "/metrics",
        "/authgate.v1.PrivateService/GetPrivate",
        "/a/b?c=d",
    ] {
        let refused = http1(app.addr, "GET", path, &[], b"").await;
        assert_eq!(refused.status, 401, "{path}");
        let found = http1(app.addr, "GET", path, &[("authorization", &token)], b"").await;
        assert_eq!(found.status, 404, "{path}");
        assert_eq!(found.body_text(), r#"{"detail": "Not Found"}"#);
    }
    let post = http1(app.addr, "POST", "/", &[("authorization", &token)], b"{}").await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    app.stop().await;
}

// ---------------------------------------------------------------- CORS

async fn cors_app(origins: &[&str]) -> TestApp {
    spawn_app_with(Options {
        cors: origins.iter().map(|o| (*o).to_owned()).collect(),
        ..Options::default()
    })
    .await
}

fn preflight(origin: &str) -> Vec<(&str, &str)> {
    vec![
        ("origin", origin),
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "authorization,content-type,x-grpc-web,x-user-agent,grpc-timeout",
        ),
    ]
}

fn listed(value: Option<&str>) -> Vec<String> {
    let mut items: Vec<String> = value
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    items.sort();
    items
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_needs_no_token() {
    let app = cors_app(&[ORIGIN, "http://other.example"]).await;
    for path in ["/", GET_PRIVATE] {
        let reply = http1(app.addr, "OPTIONS", path, &preflight(ORIGIN), b"").await;
        assert!((200..300).contains(&reply.status), "{reply:?}");
        assert_eq!(reply.header("access-control-allow-origin"), Some(ORIGIN));
        assert_eq!(
            listed(reply.header("access-control-allow-methods")),
            ["get", "post"]
        );
        assert_eq!(
            listed(reply.header("access-control-allow-headers")),
            [
                "authorization",
                "content-type",
                "grpc-timeout",
                "x-grpc-web",
                "x-user-agent"
            ]
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn every_answer_to_an_allowed_origin_carries_cors_headers() {
    let app = cors_app(&[ORIGIN]).await;
    let exposed = ["grpc-message", "grpc-status", "www-authenticate"];
    let token = bearer(&app.token());
    let with_origin = |extra: &[(&'static str, &'static str)]| {
        let mut headers = vec![("origin", ORIGIN)];
        headers.extend_from_slice(extra);
        headers
    };
    // A plain HTTP refusal, a plain HTTP answer.
    let refused = get_root(&app, &with_origin(&[])).await;
    assert_eq!(refused.status, 401);
    let mut answered_headers = with_origin(&[]);
    answered_headers.push(("authorization", &token));
    let answered = get_root(&app, &answered_headers).await;
    assert_eq!(answered.status, 200);
    // A gRPC-Web refusal (trailers-only) and answer.
    let (web_refused, _) = web_get_private(&app, false, &with_origin(&[])).await;
    assert_eq!(web_refused.header("grpc-status"), Some("16"));
    let (web_answered, body) = web_get_private(&app, false, &answered_headers).await;
    assert_eq!(web_status(&web_answered, &body), "0");
    for reply in [&refused, &answered, &web_refused, &web_answered] {
        assert_eq!(
            reply.header("access-control-allow-origin"),
            Some(ORIGIN),
            "{reply:?}"
        );
        assert_eq!(
            listed(reply.header("access-control-expose-headers")),
            exposed
        );
    }
    app.stop().await;
}

/// Whether a `Vary` header lists `Origin` (in any case, among others).
fn varies_on_origin(reply: &Reply) -> bool {
    reply
        .headers
        .iter()
        .filter(|(name, _)| name == "vary")
        .flat_map(|(_, value)| value.split(','))
        .any(|name| name.trim().eq_ignore_ascii_case("origin"))
}

/// With CORS on: plain HTTP answered and refused, gRPC-Web answered and
/// refused, and a request whose headers are too large, from `origin`.
async fn answers_from(app: &TestApp, origin: Option<&str>) -> Vec<Reply> {
    let token = bearer(&app.token());
    let without: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
    let mut with = without.clone();
    with.push(("authorization", &token));
    let refused = get_root(app, &without).await;
    assert_eq!(refused.status, 401, "{refused:?}");
    let answered = get_root(app, &with).await;
    assert_eq!(answered.status, 200, "{answered:?}");
    let (web_refused, _) = web_get_private(app, false, &without).await;
    assert_eq!(web_refused.header("grpc-status"), Some("16"));
    let (web_answered, body) = web_get_private(app, false, &with).await;
    assert_eq!(web_status(&web_answered, &body), "0");
    // Over the limit (16 KiB) but within what hyper reads: the server's 431.
    let big = "p".repeat(17 * 1024);
    let mut oversized = with.clone();
    oversized.push(("x-padding", &big));
    let too_large = get_root(app, &oversized).await;
    assert_eq!(too_large.status, 431);
    vec![refused, answered, web_refused, web_answered, too_large]
}

#[tokio::test]
async fn with_cors_on_every_answer_varies_on_origin() {
    let app = cors_app(&[ORIGIN]).await;
    for origin in [None, Some(OTHER_ORIGIN), Some(ORIGIN)] {
        for reply in answers_from(&app, origin).await {
            assert!(varies_on_origin(&reply), "origin {origin:?}: {reply:?}");
        }
    }
    let preflight = http1(app.addr, "OPTIONS", "/", &preflight(ORIGIN), b"").await;
    assert!(varies_on_origin(&preflight), "{preflight:?}");
    app.stop().await;

    // With CORS off an answer does not depend on the origin: a `Vary`
    // would only split a shared cache's entries for nothing.
    let off = spawn_app().await;
    for origin in [None, Some(ORIGIN)] {
        for reply in answers_from(&off, origin).await {
            assert!(!varies_on_origin(&reply), "origin {origin:?}: {reply:?}");
        }
    }
    off.stop().await;
}

#[tokio::test]
async fn any_other_origin_gets_no_cors_headers() {
    let app = cors_app(&[ORIGIN]).await;
    let preflight = http1(app.addr, "OPTIONS", "/", &preflight(OTHER_ORIGIN), b"").await;
    assert!(!preflight.has_cors_headers(), "{preflight:?}");
    // Not answered as a preflight: it is a request without a token.
    assert_eq!(preflight.status, 401);
    let token = bearer(&app.token());
    let reply = get_root(
        &app,
        &[("origin", OTHER_ORIGIN), ("authorization", token.as_str())],
    )
    .await;
    assert_eq!(reply.status, 200, "CORS is no access control: the gate is");
    assert!(!reply.has_cors_headers(), "{reply:?}");
    let (web, _) = web_get_private(&app, false, &[("origin", OTHER_ORIGIN)]).await;
    assert!(!web.has_cors_headers(), "{web:?}");
    // A prefix of an allowed origin is another origin.
    let near = get_root(&app, &[("origin", "http://app.example:808")]).await;
    assert!(!near.has_cors_headers(), "{near:?}");
    app.stop().await;
}

#[tokio::test]
async fn cors_is_off_unless_asked_for_and_star_allows_any_origin() {
    let off = spawn_app().await;
    let reply = http1(off.addr, "OPTIONS", "/", &preflight(ORIGIN), b"").await;
    assert!(!reply.has_cors_headers(), "{reply:?}");
    assert_eq!(reply.status, 401);
    off.stop().await;

    let any = cors_app(&["*"]).await;
    let reply = http1(any.addr, "OPTIONS", "/", &preflight(OTHER_ORIGIN), b"").await;
    assert!((200..300).contains(&reply.status));
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    any.stop().await;
}

// ------------------------------------------------- hostile HTTP/1.1 input

/// After a hostile request: a normal call on another connection answers.
async fn still_serving(app: &TestApp) {
    let token = bearer(&app.token());
    assert_eq!(
        get_root(app, &[("authorization", &token)]).await.status,
        200
    );
    assert!(app.call(&app.token()).await.is_ok());
}

fn statuses(out: &[u8]) -> Vec<u16> {
    parse_all(out).iter().map(|r| r.status).collect()
}

#[tokio::test]
async fn content_length_with_transfer_encoding_smuggles_nothing() {
    let app = spawn_app().await;
    let token = app.token();
    // The body, read as chunked, is empty; read by Content-Length it would
    // hold a second request, with a valid token, that must never be served.
    let smuggled =
        format!("GET / HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\r\n");
    let body = format!("0\r\n\r\n{smuggled}");
    let length = format!("content-length: {}", body.len());
    let chunked = "transfer-encoding: chunked".to_owned();
    for (first, second) in [(&length, &chunked), (&chunked, &length)] {
        let raw =
            format!("POST / HTTP/1.1\r\nhost: localhost\r\n{first}\r\n{second}\r\n\r\n{body}");
        let out = exchange(app.addr, raw.as_bytes()).await;
        let statuses = statuses(&out);
        assert!(statuses.len() <= 1, "one answer at most: {statuses:?}");
        assert!(
            statuses.iter().all(|s| (400..500).contains(s)),
            "{statuses:?}"
        );
        assert!(
            find(&out, b"This is private").is_none(),
            "the smuggled request was served"
        );
    }
    still_serving(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn duplicated_content_lengths_that_differ_are_refused() {
    let app = spawn_app().await;
    let token = app.token();
    let raw = format!(
        "GET / HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\ncontent-length: 0\r\ncontent-length: 41\r\n\r\nGET / HTTP/1.1\r\nhost: localhost\r\n\r\n"
    );
    let out = exchange(app.addr, raw.as_bytes()).await;
    let statuses = statuses(&out);
    assert!(statuses.len() <= 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 400), "{statuses:?}");
    assert!(find(&out, b"This is private").is_none());
    // A list in one header is refused the same way.
    let raw = format!(
        "GET / HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\ncontent-length: 0, 41\r\n\r\n"
    );
    let out = exchange(app.addr, raw.as_bytes()).await;
    assert!(statuses_are_4xx_or_nothing(&out), "{out:?}");
    assert!(find(&out, b"This is private").is_none());
    still_serving(&app).await;
    app.stop().await;
}

fn statuses_are_4xx_or_nothing(out: &[u8]) -> bool {
    statuses(out).iter().all(|s| (400..500).contains(s))
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let app = spawn_app().await;
    let token = bearer(&app.token());
    // Over --max-header-list-size (16 KiB), as HTTP/2 callers are held to.
    let big = "p".repeat(17 * 1024);
    let reply = get_root(&app, &[("authorization", &token), ("x-padding", &big)]).await;
    assert_eq!(reply.status, 431);
    // Over what hyper buffers at all: refused or cut off, never served.
    let huge = "p".repeat(1024 * 1024);
    let raw = request(
        "GET",
        "/",
        &[("authorization", &token), ("x-padding", &huge)],
        b"",
    );
    let out = exchange(app.addr, &raw).await;
    assert!(statuses_are_4xx_or_nothing(&out), "{:?}", statuses(&out));
    // Too many header lines.
    let mut many: Vec<(String, String)> = (0..200)
        .map(|i| (format!("x-h{i}"), "v".to_owned()))
        .collect();
    many.push(("authorization".into(), token.clone()));
    let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (&**n, &**v)).collect();
    let out = exchange(app.addr, &request("GET", "/", &many, b"")).await;
    assert!(statuses_are_4xx_or_nothing(&out), "{:?}", statuses(&out));
    still_serving(&app).await;
    app.stop().await;
}

/// A request head that never ends is refused once it passes the header
/// list limit (and a little room), not buffered to hyper's 400 KB default
/// and held until its read timeout: 2,000 such connections held 800 MB.
#[tokio::test]
async fn an_unfinished_head_is_refused_at_the_header_limit() {
    let app = spawn_app().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "GET / HTTP/1.1\r\nhost: localhost\r\nx-padding: {}",
        "p".repeat(64 * 1024)
    );
    // Never finished: no blank line after it.
    let _ = stream.write_all(head.as_bytes()).await;
    let mut answer = [0u8; 12];
    let read = tokio::time::timeout(patience(), stream.read_exact(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        matches!(read, Ok(Ok(_))) && answer.starts_with("HTTP/1.1 431"),
        "refused at once, not held: {read:?} {answer}"
    );
    still_serving(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = spawn_app().await;
    let token = bearer(&app.token());
    // A gRPC-Web message over --max-message-size: OUT_OF_RANGE, as tonic
    // answers it over gRPC (tests/it/limits.rs).
    #[derive(Clone, PartialEq, prost::Message)]
    struct Padded {
        #[prost(bytes = "vec", tag = "15")]
        padding: Vec<u8>,
    }
    let framed = frame(&Padded {
        padding: vec![7; 128 * 1024],
    });
    let headers = [
        ("content-type", "application/grpc-web+proto"),
        ("authorization", token.as_str()),
    ];
    let reply = http1(app.addr, "POST", GET_PRIVATE, &headers, &framed).await;
    let body = web_body(&reply.body);
    assert_eq!(web_status(&reply, &body), "11");
    assert!(body.messages.is_empty());
    // A plain HTTP body announced at 1 GiB: answered without reading it,
    // and the connection is not kept for more.
    let raw = format!(
        "POST / HTTP/1.1\r\nhost: localhost\r\nauthorization: {token}\r\ncontent-length: 1073741824\r\n\r\n{}",
        "x".repeat(64 * 1024)
    );
    let out = exchange(app.addr, raw.as_bytes()).await;
    assert_eq!(statuses(&out), [405]);
    // A chunk size that overflows.
    let raw = "POST / HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffffff\r\n";
    let out = exchange(app.addr, raw.as_bytes()).await;
    assert!(statuses_are_4xx_or_nothing(&out), "{:?}", statuses(&out));
    still_serving(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_slow_client_holds_up_no_one_and_a_silent_one_is_closed() {
    let app = spawn_app_with(Options {
        limits: authgate::server::Limits {
            handshake_timeout: Duration::from_millis(300),
            ..Default::default()
        },
        ..Options::default()
    })
    .await;
    // Slow clients that sent a partial request head and stall.
    let mut stalled = Vec::new();
    for _ in 0..16 {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nx-slow: 1")
            .await
            .unwrap();
        stalled.push(stream);
    }
    still_serving(&app).await;
    // One that trickles less than a request line is closed at the
    // handshake timeout: the read ends (EOF or reset) with no answer.
    let mut trickle = TcpStream::connect(app.addr).await.unwrap();
    trickle.write_all(b"GET /").await.unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(patience(), trickle.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the trickling connection was never closed");
    assert!(statuses_are_4xx_or_nothing(&buf));
    assert!(find(&buf, b"This is private").is_none());
    // The stalled ones are still open (hyper closes them at its own 30 s
    // header timeout), and the server still answers.
    still_serving(&app).await;
    drop(stalled);
    app.stop().await;
}

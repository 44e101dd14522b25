//! The proxy's seams that the third outside review found (issue 27), each
//! a test that fails without its fix, against an upstream that reports
//! what reached it: every header and trailer, and how each request body
//! ended (completely, or cut off). The upstream speaks HTTP/1.1 and h2c on
//! one port, like uvicorn behind a proxy, or a Go or Java gRPC server.

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use authgate::{
    issuer::DevIssuer,
    proxy::{UpstreamConfig, UpstreamProtocol},
};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
    task::JoinHandle,
};

use crate::common::{patience, spawn_app, spawn_issuer};
use crate::proxy::{ProxyOptions, TestProxy, spawn_proxy, token};

/// What the upstream saw of one request, once its body ended.
#[derive(Debug)]
pub(crate) struct Seen {
    pub(crate) path: String,
    /// The host it was asked for: HTTP/2's `:authority`, HTTP/1.1's `Host`.
    pub(crate) authority: Option<String>,
    pub(crate) headers: HeaderMap,
    pub(crate) trailers: Option<HeaderMap>,
    /// How the request body ended: `Ok` at its end, `Err` cut off.
    pub(crate) body: Result<(), String>,
}

/// An upstream on 127.0.0.1 speaking HTTP/1.1 and h2c. `/events` answers
/// at once with an endless stream of events (reading the request body on
/// the side); every other path reads the whole request body, then answers
/// `ok` (gRPC requests: status OK, trailers-only).
pub(crate) struct Reporter {
    pub(crate) addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    task: JoinHandle<()>,
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Reporter {
    pub(crate) async fn spawn() -> Reporter {
        Reporter::spawn_over(None).await
    }

    /// The same upstream over TLS with `acceptor`, when given.
    pub(crate) async fn spawn_over(acceptor: Option<tokio_rustls::TlsAcceptor>) -> Reporter {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, seen) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |r| answer(r, tx.clone()));
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let _ = match acceptor {
                        None => {
                            builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await
                        }
                        Some(acceptor) => {
                            let Ok(tls) = acceptor.accept(stream).await else {
                                return;
                            };
                            builder.serve_connection(TokioIo::new(tls), service).await
                        }
                    };
                });
            }
        });
        Reporter { addr, seen, task }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next request that reached it (but for the proxy's own
    /// reflection calls at start-up), within the patience.
    pub(crate) async fn next(&mut self) -> Seen {
        loop {
            let seen = tokio::time::timeout(patience(), self.seen.recv())
                .await
                .expect("a request reaches the upstream within the patience")
                .expect("the upstream runs");
            if !seen.path.starts_with("/grpc.reflection.") {
                return seen;
            }
        }
    }
}

async fn answer(
    request: Request<Incoming>,
    tx: mpsc::UnboundedSender<Seen>,
) -> Result<Response<Answer>, Infallible> {
    let (parts, body) = request.into_parts();
    let grpc = parts
        .headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let path = parts.uri.path().to_owned();
    let authority = match parts.uri.authority() {
        Some(authority) => Some(authority.to_string()),
        None => (parts.headers.get("host")).map(|h| h.to_str().unwrap().to_owned()),
    };
    let events = path == "/events";
    let report = move |(trailers, body)| {
        let _ = tx.send(Seen {
            path,
            authority,
            headers: parts.headers,
            trailers,
            body,
        });
    };
    let mut response = if events {
        tokio::spawn(async move { report(read(body).await) });
        let interval = tokio::time::interval(Duration::from_millis(20));
        Response::new(Answer::Events(interval))
    } else {
        report(read(body).await);
        Response::new(Answer::Once(if grpc {
            None
        } else {
            Some(Bytes::from_static(b"ok"))
        }))
    };
    if grpc {
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        if matches!(response.body(), Answer::Once(_)) {
            response
                .headers_mut()
                .insert("grpc-status", HeaderValue::from_static("0"));
        }
    }
    Ok(response)
}

/// Reads a request body to its end: its trailers, and whether it ended or
/// was cut off.
async fn read(mut body: Incoming) -> (Option<HeaderMap>, Result<(), String>) {
    let mut trailers = None;
    loop {
        match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            None => return (trailers, Ok(())),
            Some(Ok(frame)) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers = Some(t);
                }
            }
            Some(Err(error)) => return (trailers, Err(error.to_string())),
        }
    }
}

/// The upstream's answers: one body, or an event every tick forever.
enum Answer {
    Once(Option<Bytes>),
    Events(tokio::time::Interval),
}

impl Body for Answer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Answer::Once(body) => Poll::Ready(body.take().map(|b| Ok(Frame::data(b)))),
            Answer::Events(interval) => interval
                .poll_tick(cx)
                .map(|_| Some(Ok(Frame::data(Bytes::from_static(b"data: tick\n\n"))))),
        }
    }
}

/// An HTTP/2 connection (prior knowledge) to `addr`.
async fn h2(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client.ready().await.unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A token the gate lets in for one more second of the runtime's clock:
/// the proxy's clock (`options.clock`) stands at its `iat`.
fn expiring_token(issuer: &DevIssuer, clock: authgate::Clock) -> String {
    let mut claims = issuer.claims("streamer", &[]);
    claims["iat"] = clock().into();
    claims["exp"] = (clock() + 1).into();
    issuer.mint(&claims)
}

fn over(protocol: UpstreamProtocol) -> fn(UpstreamConfig) -> UpstreamConfig {
    match protocol {
        UpstreamProtocol::H2 => |upstream| upstream,
        UpstreamProtocol::Http1 => |upstream| upstream.protocol(UpstreamProtocol::Http1),
    }
}

async fn proxy_to(issuer: &DevIssuer, upstream: &Reporter, options: ProxyOptions) -> TestProxy {
    spawn_proxy(issuer.url(), &upstream.url(), options).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

// --- 1. Health and reflection are public to gRPC only ----------------------

#[tokio::test]
async fn health_and_reflection_paths_open_no_plain_http_route() {
    let issuer = spawn_issuer().await;
    let mut upstream = Reporter::spawn().await;
    let options = ProxyOptions {
        upstream: over(UpstreamProtocol::Http1),
        ..ProxyOptions::default()
    };
    let proxy = proxy_to(&issuer, &upstream, options).await;
    for path in [
        "/grpc.health.v1.Health/orders",
        "/grpc.reflection.v1.ServerReflection/orders",
        "/grpc.reflection.v1alpha.ServerReflection/orders",
    ] {
        let answer = client()
            .get(format!("http://{}{path}", proxy.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 401, "{path}");
    }
    // What reaches the upstream next is the call with a token: none of the
    // refused ones did.
    let answer = client()
        .get(format!("http://{}/acme/orders", proxy.addr))
        .header("authorization", bearer(&token(&issuer, &[])))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(upstream.next().await.path, "/acme/orders");

    // `serve` refuses them too (it has no plain HTTP route there).
    let app = spawn_app().await;
    let answer = client()
        .get(format!("http://{}/grpc.health.v1.Health/Check", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
}

// --- 2. Request trailers -----------------------------------------------------

/// Trailers a caller forges: its own identity, a token, and one to keep.
fn forged_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    for (name, value) in [
        ("x-authgate-subject", "admin-forged"),
        ("x-authgate-scopes", "admin"),
        ("x_authgate_claims", "e30"),
        ("authorization", "Bearer forged"),
        ("x-keep", "kept"),
    ] {
        trailers.insert(name, HeaderValue::from_static(value));
    }
    trailers
}

/// Sends `path` with a body and the forged trailers over HTTP/2; waits for
/// the answer's head.
async fn send_with_trailers(proxy: &TestProxy, path: &str, grpc: bool, token: Option<&str>) {
    let mut client = h2(proxy.addr).await;
    let mut request = Request::post(format!("http://{}{path}", proxy.addr));
    if grpc {
        request = request
            .header("content-type", "application/grpc")
            .header("te", "trailers");
    }
    if let Some(token) = token {
        request = request.header("authorization", bearer(token));
    }
    let (answer, mut send) = client
        .send_request(request.body(()).unwrap(), false)
        .unwrap();
    send.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), false)
        .unwrap();
    send.send_trailers(forged_trailers()).unwrap();
    let answer = tokio::time::timeout(patience(), answer)
        .await
        .expect("an answer within the patience")
        .unwrap();
    assert_eq!(answer.status(), 200, "{path}");
}

#[tokio::test]
async fn request_trailers_reach_a_grpc_upstream_filtered_and_plain_http_drops_them() {
    let issuer = spawn_issuer().await;
    let mut upstream = Reporter::spawn().await;
    let options = ProxyOptions {
        public: vec!["/open/*"],
        ..ProxyOptions::default()
    };
    let proxy = proxy_to(&issuer, &upstream, options).await;
    let token = token(&issuer, &[]);
    for (path, token) in [("/pkg.Svc/Method", Some(&*token)), ("/open/x", None)] {
        send_with_trailers(&proxy, path, true, token).await;
        let seen = upstream.next().await;
        let trailers = seen.trailers.expect("gRPC request trailers are forwarded");
        let names: Vec<&str> = trailers.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["x-keep"], "{path}: only what the caller may say");
    }
    send_with_trailers(&proxy, "/items", false, Some(&token)).await;
    let seen = upstream.next().await;
    assert_eq!(seen.path, "/items");
    assert!(seen.trailers.is_none(), "plain HTTP: {:?}", seen.trailers);
}

// --- 3. Streams end with their token, both ways ----------------------------

/// Reads `answer` until it breaks off or ends; how many chunks came, and
/// whether it broke off (rather than ending as if complete).
async fn read_until_cut(answer: &mut reqwest::Response) -> (usize, bool) {
    let mut chunks = 0;
    let read = async {
        loop {
            match answer.chunk().await {
                Ok(Some(_)) => chunks += 1,
                Ok(None) => return false,
                Err(_) => return true,
            }
        }
    };
    let cut = tokio::time::timeout(patience(), read)
        .await
        .expect("the stream ends within the patience");
    (chunks, cut)
}

#[tokio::test]
async fn a_plain_http_response_stream_ends_when_its_token_expires() {
    for protocol in [UpstreamProtocol::H2, UpstreamProtocol::Http1] {
        let (_, clock) = crate::common::manual_clock!(crate::common::now());
        let issuer = spawn_issuer().await;
        let upstream = Reporter::spawn().await;
        let options = ProxyOptions {
            clock: Some(clock),
            upstream: over(protocol),
            ..ProxyOptions::default()
        };
        let proxy = proxy_to(&issuer, &upstream, options).await;
        let mut answer = client()
            .get(format!("http://{}/events", proxy.addr))
            .header("authorization", bearer(&expiring_token(&issuer, clock)))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let (chunks, cut) = read_until_cut(&mut answer).await;
        assert!(
            chunks > 1,
            "{protocol:?}: events before the expiry: {chunks}"
        );
        assert!(cut, "{protocol:?}: broken off, not ended as if complete");
    }
}

/// Sends `path` over HTTP/2 with a token good for one second and a body
/// that never ends (a chunk every 20 ms, until the stream is gone).
async fn endless_upload(
    proxy: &TestProxy,
    path: &str,
    grpc: bool,
    token: &str,
) -> h2::client::ResponseFuture {
    let mut client = h2(proxy.addr).await;
    let mut request = Request::post(format!("http://{}{path}", proxy.addr))
        .header("authorization", bearer(token));
    if grpc {
        request = request
            .header("content-type", "application/grpc")
            .header("te", "trailers");
    }
    let (answer, mut send) = client
        .send_request(request.body(()).unwrap(), false)
        .unwrap();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            if send
                .send_data(Bytes::from_static(&[0, 0, 0, 0, 1, 7]), false)
                .is_err()
            {
                break;
            }
        }
    });
    answer
}

#[tokio::test]
async fn a_client_stream_stops_reaching_the_upstream_when_its_token_expires() {
    for (protocol, grpc) in [
        (UpstreamProtocol::H2, true),
        (UpstreamProtocol::H2, false),
        (UpstreamProtocol::Http1, false),
    ] {
        let (_, clock) = crate::common::manual_clock!(crate::common::now());
        let issuer = spawn_issuer().await;
        let mut upstream = Reporter::spawn().await;
        let options = ProxyOptions {
            clock: Some(clock),
            upstream: over(protocol),
            ..ProxyOptions::default()
        };
        let proxy = proxy_to(&issuer, &upstream, options).await;
        let token = expiring_token(&issuer, clock);
        let answer = endless_upload(&proxy, "/upload", grpc, &token).await;
        let seen = upstream.next().await;
        assert!(
            seen.body.is_err(),
            "{protocol:?} grpc={grpc}: cut off upstream"
        );
        let answer = tokio::time::timeout(patience(), answer)
            .await
            .expect("an answer within the patience")
            .unwrap();
        if grpc {
            assert_eq!(answer.headers()["grpc-status"], "16", "UNAUTHENTICATED");
        } else {
            assert_eq!(answer.status(), 401, "{protocol:?}");
        }
    }
}

#[tokio::test]
async fn a_bidi_stream_is_cut_both_ways_when_its_token_expires() {
    for grpc in [true, false] {
        let (_, clock) = crate::common::manual_clock!(crate::common::now());
        let issuer = spawn_issuer().await;
        let mut upstream = Reporter::spawn().await;
        let options = ProxyOptions {
            clock: Some(clock),
            ..ProxyOptions::default()
        };
        let proxy = proxy_to(&issuer, &upstream, options).await;
        let token = expiring_token(&issuer, clock);
        let answer = endless_upload(&proxy, "/events", grpc, &token).await;
        let answer = tokio::time::timeout(patience(), answer)
            .await
            .expect("an answer within the patience")
            .unwrap();
        assert_eq!(answer.status(), 200);
        let mut body = answer.into_body();
        let ended = tokio::time::timeout(patience(), async {
            while let Some(Ok(_)) = body.data().await {}
            body.trailers().await
        })
        .await
        .expect("the answer ends within the patience");
        if grpc {
            let trailers = ended.unwrap().expect("the answer ends with trailers");
            assert_eq!(trailers["grpc-status"], "16", "UNAUTHENTICATED");
        } else {
            assert!(ended.is_err(), "plain HTTP: the stream is reset");
        }
        let seen = upstream.next().await;
        assert_eq!(seen.path, "/events");
        assert!(
            seen.body.is_err(),
            "grpc={grpc}: the request side is cut too"
        );
    }
}

#[tokio::test]
async fn public_plain_http_streams_end_at_their_maximum_age() {
    let issuer = spawn_issuer().await;
    let upstream = Reporter::spawn().await;
    let options = ProxyOptions {
        public: vec!["/events"],
        limits: |limits| limits.public_stream_max_age = Duration::from_secs(1),
        ..ProxyOptions::default()
    };
    let proxy = proxy_to(&issuer, &upstream, options).await;
    let mut answer = client()
        .get(format!("http://{}/events", proxy.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let (chunks, cut) = read_until_cut(&mut answer).await;
    assert!(chunks > 1, "events before the maximum age: {chunks}");
    assert!(cut, "broken off, not ended as if complete");
}

// --- 4. Where a call came from ----------------------------------------------

/// A call through `proxy` to `/orders` with the caller's own word on where
/// it came from, over HTTP/1.1 as `app.example`; what the upstream saw.
async fn forged_origin(proxy: &TestProxy, upstream: &mut Reporter, token: &str) -> HeaderMap {
    let answer = client()
        .get(format!("http://{}/orders", proxy.addr))
        .header("host", "app.example")
        .header("authorization", bearer(token))
        .header("x-forwarded-for", "10.1.2.3")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "for=10.9.9.9;proto=https")
        .header("x-real-ip", "10.9.9.9")
        .header("x_forwarded_for", "10.7.7.7")
        .header("x-http-method-override", "DELETE")
        .header("x-original-url", "/admin")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    upstream.next().await.headers
}

#[tokio::test]
async fn the_upstream_hears_where_a_call_came_from_not_what_the_caller_forged() {
    let issuer = spawn_issuer().await;
    let token = token(&issuer, &[]);
    let mut upstream = Reporter::spawn().await;
    let options = ProxyOptions {
        upstream: over(UpstreamProtocol::Http1),
        ..ProxyOptions::default()
    };
    let proxy = proxy_to(&issuer, &upstream, options).await;
    let seen = forged_origin(&proxy, &mut upstream, &token).await;
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], "app.example");
    assert_eq!(seen["host"], upstream.addr.to_string());
    for forged in [
        "forwarded",
        "x-real-ip",
        "x_forwarded_for",
        "x-http-method-override",
        "x-original-url",
    ] {
        assert!(!seen.contains_key(forged), "{forged}: {seen:?}");
    }

    // A balancer in front keeps its chain; the caller's host is kept when
    // asked for.
    let options = ProxyOptions {
        upstream: |upstream| {
            let mut upstream = upstream.protocol(UpstreamProtocol::Http1);
            upstream.trust_forwarded = vec!["127.0.0.0/8".parse().unwrap()];
            upstream.preserve_host = true;
            upstream
        },
        ..ProxyOptions::default()
    };
    let trusting = proxy_to(&issuer, &upstream, options).await;
    let seen = forged_origin(&trusting, &mut upstream, &token).await;
    assert_eq!(seen["x-forwarded-for"], "10.1.2.3, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["host"], "app.example");

    // Over HTTP/2 to an HTTP/2 upstream: the :authority is the host, and
    // cookies split by HTTP/2 reach an HTTP/1.1 upstream as one header.
    let mut h2_upstream = Reporter::spawn().await;
    let h2_proxy = proxy_to(&issuer, &h2_upstream, ProxyOptions::default()).await;
    let mut client = h2(h2_proxy.addr).await;
    let request = Request::get("http://app.example:8080/orders")
        .header("authorization", bearer(&token))
        .header("x-forwarded-for", "10.1.2.3")
        .body(())
        .unwrap();
    let (answer, _) = client.send_request(request, true).unwrap();
    assert_eq!(answer.await.unwrap().status(), 200);
    let seen = h2_upstream.next().await;
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-host"], "app.example:8080");
    let upstream_authority = h2_upstream.addr.to_string();
    assert_eq!(seen.authority.as_deref(), Some(&*upstream_authority));

    // The caller's :authority kept for an HTTP/2 upstream, for gRPC calls
    // and plain HTTP alike; never as a second `host` header.
    let options = ProxyOptions {
        upstream: |upstream| {
            let mut upstream = upstream;
            upstream.preserve_host = true;
            upstream
        },
        ..ProxyOptions::default()
    };
    let keeping = proxy_to(&issuer, &h2_upstream, options).await;
    for content_type in ["text/plain", "application/grpc"] {
        let mut client = h2(keeping.addr).await;
        let request = Request::post("http://app.example:8080/orders")
            .header("authorization", bearer(&token))
            .header("content-type", content_type)
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (answer, _) = client.send_request(request, true).unwrap();
        assert_eq!(answer.await.unwrap().status(), 200);
        let seen = h2_upstream.next().await;
        assert_eq!(
            seen.authority.as_deref(),
            Some("app.example:8080"),
            "{content_type}"
        );
        assert!(
            !seen.headers.contains_key("host"),
            "{content_type}: {seen:?}"
        );
    }

    let mut client = h2(proxy.addr).await;
    let request = Request::get(format!("http://{}/orders", proxy.addr))
        .header("authorization", bearer(&token))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(())
        .unwrap();
    let (answer, _) = client.send_request(request, true).unwrap();
    assert_eq!(answer.await.unwrap().status(), 200);
    let seen = upstream.next().await.headers;
    let cookies: Vec<_> = seen.get_all("cookie").iter().collect();
    assert_eq!(cookies, ["a=1; b=2"]);
}

// --- 5. What a caller is told when forwarding fails -------------------------

#[tokio::test]
async fn an_unreachable_upstream_and_a_broken_body_say_only_what_the_caller_may_know() {
    let issuer = spawn_issuer().await;
    let token = token(&issuer, &[]);
    // A port held but not listened on: connections are refused.
    let (_held, addr) = crate::common::held_address();
    for protocol in [UpstreamProtocol::H2, UpstreamProtocol::Http1] {
        let options = ProxyOptions {
            upstream: over(protocol),
            ..ProxyOptions::default()
        };
        let proxy = spawn_proxy(issuer.url(), &format!("http://{addr}"), options).await;
        let answer = client()
            .get(format!("http://{}/orders", proxy.addr))
            .header("authorization", bearer(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 502, "{protocol:?}");
        let body = answer.text().await.unwrap();
        assert_eq!(
            body, r#"{"detail": "upstream unavailable"}"#,
            "{protocol:?}"
        );
    }
    let proxy = spawn_proxy(
        issuer.url(),
        &format!("http://{addr}"),
        ProxyOptions::default(),
    )
    .await;
    let status = proxy.call(Some(&token), &[]).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "upstream unavailable");

    // A request body the caller breaks (a chunk size that is no number) is
    // the caller's fault, not the upstream's.
    for protocol in [UpstreamProtocol::H2, UpstreamProtocol::Http1] {
        let upstream = Reporter::spawn().await;
        let options = ProxyOptions {
            upstream: over(protocol),
            ..ProxyOptions::default()
        };
        let proxy = proxy_to(&issuer, &upstream, options).await;
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        let head = format!(
            "POST /upload HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
             transfer-encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"
        );
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(patience(), stream.read_to_end(&mut answer))
            .await
            .expect("an answer within the patience")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{protocol:?}: {answer}");
        assert!(
            answer.contains("malformed request body"),
            "{protocol:?}: {answer}"
        );
    }
}

// --- 6. REST rules by method ------------------------------------------------

#[tokio::test]
async fn a_rule_with_an_http_method_binds_only_that_method() {
    let issuer = spawn_issuer().await;
    let mut upstream = Reporter::spawn().await;
    let options = ProxyOptions {
        rules: vec![
            "POST /items=items:write".parse().unwrap(),
            "GET /reports/*=reports:read".parse().unwrap(),
        ],
        upstream: over(UpstreamProtocol::Http1),
        ..ProxyOptions::default()
    };
    let proxy = proxy_to(&issuer, &upstream, options).await;
    let reader = token(&issuer, &[]);
    let writer = token(&issuer, &["items:write"]);
    let ask = |method: &str, path: &str, token: &str| {
        client()
            .request(
                method.parse().unwrap(),
                format!("http://{}{path}", proxy.addr),
            )
            .header("authorization", bearer(token))
            .send()
    };
    // Reading the items needs only a valid token; adding one needs the scope.
    assert_eq!(ask("GET", "/items", &reader).await.unwrap().status(), 200);
    assert_eq!(upstream.next().await.path, "/items");
    let refused = ask("POST", "/items", &reader).await.unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.headers()["www-authenticate"],
        r#"Bearer realm="authgate", error="insufficient_scope", scope="items:write""#
    );
    assert_eq!(ask("POST", "/items", &writer).await.unwrap().status(), 200);
    assert_eq!(upstream.next().await.path, "/items");
    // HEAD is GET's route; other methods are not bound.
    for method in ["GET", "HEAD"] {
        let answer = ask(method, "/reports/q3", &reader).await.unwrap();
        assert_eq!(answer.status(), 403, "{method}");
    }
    assert_eq!(
        ask("DELETE", "/reports/q3", &reader)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(upstream.next().await.path, "/reports/q3");
}

// --- 7. The request timeout, as each protocol reads it ----------------------

#[tokio::test]
async fn a_request_past_the_timeout_is_504_for_plain_http_and_cancelled_for_grpc() {
    let issuer = spawn_issuer().await;
    let upstream = Reporter::spawn().await;
    let options = ProxyOptions {
        public: vec!["/upload"],
        limits: |limits| limits.request_timeout = Duration::from_millis(500),
        ..ProxyOptions::default()
    };
    let proxy = proxy_to(&issuer, &upstream, options).await;
    let token = token(&issuer, &[]);
    // The upstream answers only once the body ends, which it never does.
    let answer = endless_upload(&proxy, "/upload", false, &token).await;
    let answer = tokio::time::timeout(patience(), answer)
        .await
        .expect("an answer within the patience")
        .unwrap();
    assert_eq!(answer.status(), 504);
    let answer = endless_upload(&proxy, "/upload", true, &token).await;
    let answer = tokio::time::timeout(patience(), answer)
        .await
        .expect("an answer within the patience")
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["grpc-status"], "1", "CANCELLED");
}

#[tokio::test]
async fn a_grpc_call_is_post_to_the_rules_whatever_method_it_came_with() {
    let issuer = spawn_issuer().await;
    let mut upstream = Reporter::spawn().await;
    let options = ProxyOptions {
        rules: vec!["POST /pkg.Svc/Write=write".parse().unwrap()],
        ..ProxyOptions::default()
    };
    let proxy = proxy_to(&issuer, &upstream, options).await;
    let reader = token(&issuer, &[]);
    // tonic's router serves a gRPC call whatever its HTTP method: a GET
    // must not escape the rule for POST.
    for method in ["POST", "GET", "PUT"] {
        let mut client = h2(proxy.addr).await;
        let request = Request::builder()
            .method(method)
            .uri(format!("http://{}/pkg.Svc/Write", proxy.addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", bearer(&reader))
            .body(())
            .unwrap();
        let (answer, mut send) = client.send_request(request, false).unwrap();
        send.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)
            .unwrap();
        let answer = tokio::time::timeout(patience(), answer)
            .await
            .expect("an answer within the patience")
            .unwrap();
        assert_eq!(
            answer.headers()["grpc-status"],
            "7",
            "{method}: PERMISSION_DENIED"
        );
    }
    let writer = token(&issuer, &["write"]);
    let mut client = h2(proxy.addr).await;
    let request = Request::post(format!("http://{}/pkg.Svc/Write", proxy.addr))
        .header("content-type", "application/grpc")
        .header("authorization", bearer(&writer))
        .body(())
        .unwrap();
    let (answer, mut send) = client.send_request(request, false).unwrap();
    send.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .unwrap();
    assert_eq!(answer.await.unwrap().headers()["grpc-status"], "0");
    assert_eq!(upstream.next().await.path, "/pkg.Svc/Write");
}

// --- 6. Upstreams over TLS ----------------------------------------------------

#[tokio::test]
async fn an_https_upstream_is_reached_over_tls_by_http2_and_by_http1() {
    use std::sync::Arc;
    use tokio_rustls::rustls::{
        ServerConfig,
        crypto::aws_lc_rs,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    };
    let pems = crate::common::LocalhostCert::new();
    let chain = CertificateDer::pem_slice_iter(pems.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(pems.key.as_bytes()).unwrap();
    let mut tls = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut upstream = Reporter::spawn_over(Some(Arc::new(tls).into())).await;
    let url = format!("https://localhost:{}", upstream.addr.port());

    let issuer = spawn_issuer().await;
    let token = token(&issuer, &[]);
    for protocol in [UpstreamProtocol::H2, UpstreamProtocol::Http1] {
        let mut config = UpstreamConfig::new(&url).unwrap().protocol(protocol);
        config.ca_pem = Some(pems.ca.clone().into_bytes());
        let proxy = crate::proxy::spawn_proxy_to(issuer.url(), config).await;
        let answer = client()
            .get(format!("http://{}/orders", proxy.addr))
            .header("authorization", bearer(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{protocol:?}");
        assert_eq!(answer.text().await.unwrap(), "ok", "{protocol:?}");
        let seen = upstream.next().await;
        assert_eq!(seen.path, "/orders", "{protocol:?}");
        assert_eq!(
            seen.authority.as_deref(),
            Some(&*format!("localhost:{}", upstream.addr.port())),
            "{protocol:?}"
        );

        // Checked against the system roots instead, the private CA fails.
        let strict = UpstreamConfig::new(&url).unwrap().protocol(protocol);
        let proxy = crate::proxy::spawn_proxy_to(issuer.url(), strict).await;
        let answer = client()
            .get(format!("http://{}/orders", proxy.addr))
            .header("authorization", bearer(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 502, "{protocol:?}");
    }
}

//! `authgate proxy`'s library half in front of a tonic upstream inside the
//! test: what arrives upstream (identity headers, never forged ones, never
//! a refused call), public paths, health before keys and while draining,
//! an upstream that is down or restarts, and the metrics' method names.
//! The other-language upstreams are tests/proxy/run.sh's.

use std::{net::SocketAddr, time::Duration};

use authgate::{
    IssuerConfig, ScopePolicy, ScopeRule,
    issuer::DevIssuer,
    pb::{
        GetPrivateRequest, GetPrivateResponse,
        private_service_client::PrivateServiceClient,
        private_service_server::{PrivateService, PrivateServiceServer},
    },
    proxy::{Proxy, UpstreamConfig},
    server::{Application, ServerConfig},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use tokio::{
    net::TcpListener,
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tonic::{
    Code, Request, Response, Status, metadata::MetadataMap, transport::Channel,
    transport::server::TcpIncoming,
};
use tonic_health::{
    ServingStatus,
    pb::{HealthCheckRequest, health_check_response, health_client::HealthClient},
};

use crate::common::{
    Options, SCOPE, eventually, held_address, metric_value, patience, spawn_issuer, start_issuer_on,
};
use crate::streams::ticker::{
    self,
    pb::{Tick, WatchRequest, ticker_client::TickerClient, ticker_server::TickerServer},
};

/// What the upstream saw of each call: its metadata.
type Seen = mpsc::UnboundedReceiver<MetadataMap>;

/// The upstream: `GetPrivate` records the metadata it got and answers with
/// a message of its own, so a test can tell its answer from the gate's.
struct Recorder(mpsc::UnboundedSender<MetadataMap>);

const UPSTREAM_MESSAGE: &str = "from the upstream";

#[tonic::async_trait]
impl PrivateService for Recorder {
    async fn get_private(
        &self,
        request: Request<GetPrivateRequest>,
    ) -> Result<Response<GetPrivateResponse>, Status> {
        let refuse = request.metadata().get("x-fail").is_some();
        let _ = self.0.send(request.metadata().clone());
        if refuse {
            let mut status = Status::failed_precondition("the upstream says no");
            status
                .metadata_mut()
                .insert("x-why", "because".parse().unwrap());
            return Err(status);
        }
        Ok(Response::new(GetPrivateResponse {
            message: UPSTREAM_MESSAGE.into(),
            ..Default::default()
        }))
    }
}

/// A tonic upstream with `PrivateService`, health (`authgate.v1.PrivateService`
/// NOT_SERVING, to tell its answers from the proxy's) and reflection.
struct Upstream {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// A ticker upstream: ticks for whoever `x-authgate-subject` names, until
/// the call ends.
struct HeaderTicker;

#[tonic::async_trait]
impl ticker::pb::ticker_server::Ticker for HeaderTicker {
    type WatchStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<Tick, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let subject = header(request.metadata(), "x-authgate-subject")
            .unwrap_or_default()
            .to_owned();
        let every = Duration::from_millis(request.get_ref().interval_ms.max(10).into());
        let mut n = 0;
        let interval = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(every));
        let ticks = tokio_stream::StreamExt::map(interval, move |_| {
            n += 1;
            Ok(Tick {
                n,
                subject: subject.clone(),
            })
        });
        Ok(Response::new(Box::pin(ticks)))
    }
}

async fn spawn_upstream_on(listener: TcpListener) -> (Upstream, Seen) {
    let addr = listener.local_addr().unwrap();
    let (tx, seen) = mpsc::unbounded_channel();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("authgate.v1.PrivateService", ServingStatus::NotServing)
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(authgate::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(PrivateServiceServer::new(Recorder(tx)))
            .add_service(TickerServer::new(HeaderTicker))
            .add_service(health)
            .add_service(reflection)
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        // Keep the reporter: dropping it ends health's watchers.
        drop(reporter);
    });
    (
        Upstream {
            addr,
            stop: Some(stop),
            task,
        },
        seen,
    )
}

async fn spawn_upstream() -> (Upstream, Seen) {
    spawn_upstream_on(TcpListener::bind("127.0.0.1:0").await.unwrap()).await
}

impl Upstream {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops it and waits until it no longer listens.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(patience(), &mut self.task)
            .await
            .expect("the upstream stops")
            .unwrap();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A proxy in front of `upstream`, trusting `issuer`.
pub(crate) struct TestProxy {
    pub(crate) addr: SocketAddr,
    metrics: SocketAddr,
    drain: Option<oneshot::Sender<()>>,
    _close: oneshot::Sender<()>,
    _server: JoinHandle<Result<(), authgate::StartupError>>,
}

pub(crate) struct ProxyOptions {
    pub(crate) rules: Vec<ScopeRule>,
    pub(crate) public: Vec<&'static str>,
    pub(crate) wait_for_keys: bool,
    /// The gate's clock, with no leeway: for expiry edges.
    pub(crate) clock: Option<authgate::Clock>,
    /// The upstream's settings but its URL.
    pub(crate) upstream: fn(UpstreamConfig) -> UpstreamConfig,
    /// The server's limits.
    pub(crate) limits: fn(&mut authgate::server::Limits),
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            rules: Vec::new(),
            public: Vec::new(),
            wait_for_keys: true,
            clock: None,
            upstream: |upstream| upstream,
            limits: |_| {},
        }
    }
}

/// The server settings of a proxy on 127.0.0.1:0 trusting the dev issuer
/// at `issuer_url` (which need not be up yet).
pub(crate) fn server_config(issuer_url: &str) -> ServerConfig {
    let mut config = ServerConfig::listening("127.0.0.1:0".parse().unwrap());
    config.issuers = vec![
        IssuerConfig::discovered(
            issuer_url,
            vec![authgate::issuer::DevIssuerConfig::for_tests().audience],
            Duration::from_secs(30),
        )
        .unwrap(),
    ];
    config.refresh = Options::default().refresh;
    config
}

pub(crate) async fn spawn_proxy(
    issuer_url: &str,
    upstream: &str,
    options: ProxyOptions,
) -> TestProxy {
    spawn_proxy_with(issuer_url, UpstreamConfig::new(upstream).unwrap(), options).await
}

/// A proxy to `upstream` as configured, the other options at their
/// defaults.
pub(crate) async fn spawn_proxy_to(issuer_url: &str, upstream: UpstreamConfig) -> TestProxy {
    spawn_proxy_with(issuer_url, upstream, ProxyOptions::default()).await
}

async fn spawn_proxy_with(
    issuer_url: &str,
    upstream: UpstreamConfig,
    options: ProxyOptions,
) -> TestProxy {
    let mut config = server_config(issuer_url);
    config.policy = ScopePolicy::new(options.rules);
    (options.limits)(&mut config.limits);
    config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let mut app = Application::builder(config.clone());
    if let Some(clock) = options.clock {
        config.issuers[0].validation.leeway = Duration::ZERO;
        app = Application::builder(config).clock(clock);
    }
    let app = options
        .public
        .iter()
        .fold(app, |app, path| app.public_path(*path));
    let proxy = Proxy::new((options.upstream)(upstream)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = proxy.install(app).await.with_listener(listener).unwrap();
    let (addr, metrics) = (app.local_addr(), app.metrics_addr().unwrap());
    let keys = app.keys();
    let (drain, drained) = oneshot::channel::<()>();
    let (close, closed) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_draining(
        async {
            let _ = drained.await;
        },
        async {
            let _ = closed.await;
        },
    ));
    if options.wait_for_keys {
        tokio::time::timeout(patience(), keys.wait_loaded())
            .await
            .expect("the key set loads");
    }
    TestProxy {
        addr,
        metrics,
        drain: Some(drain),
        _close: close,
        _server: server,
    }
}

impl TestProxy {
    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// `GetPrivate` through the proxy with `token` (if any) and `metadata`.
    pub(crate) async fn call(
        &self,
        token: Option<&str>,
        metadata: &[(&'static str, &str)],
    ) -> Result<Response<GetPrivateResponse>, Status> {
        let mut request = Request::new(GetPrivateRequest {});
        if let Some(token) = token {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        for (key, value) in metadata {
            request.metadata_mut().insert(*key, value.parse().unwrap());
        }
        let mut client = PrivateServiceClient::new(self.channel().await);
        tokio::time::timeout(patience(), client.get_private(request))
            .await
            .expect("an answer within the patience")
    }

    async fn health(&self, service: &str) -> Result<i32, Status> {
        let mut health = HealthClient::new(self.channel().await);
        let request = HealthCheckRequest {
            service: service.into(),
        };
        tokio::time::timeout(patience(), health.check(request))
            .await
            .expect("an answer within the patience")
            .map(|r| r.into_inner().status)
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

pub(crate) fn token(issuer: &DevIssuer, scopes: &[&str]) -> String {
    issuer.mint(&issuer.claims("user|1", scopes))
}

/// The next call the upstream saw, within the patience.
async fn next(seen: &mut Seen) -> MetadataMap {
    tokio::time::timeout(patience(), seen.recv())
        .await
        .expect("the call reaches the upstream")
        .expect("the upstream runs")
}

fn header<'a>(metadata: &'a MetadataMap, name: &str) -> Option<&'a str> {
    metadata.get(name).map(|v| v.to_str().unwrap())
}

const SERVING: i32 = health_check_response::ServingStatus::Serving as i32;
const NOT_SERVING: i32 = health_check_response::ServingStatus::NotServing as i32;

#[tokio::test]
async fn the_upstream_is_told_who_called_and_never_what_the_caller_forged() {
    let issuer = spawn_issuer().await;
    let (upstream, mut seen) = spawn_upstream().await;
    let proxy = spawn_proxy(issuer.url(), &upstream.url(), ProxyOptions::default()).await;
    let token = token(&issuer, &[SCOPE, "write:things"]);

    let answer = proxy
        .call(
            Some(&token),
            &[
                ("x-trace", "abc"),
                ("x-authgate-subject", "mallory"),
                ("x-authgate-issuer", "https://evil.example/"),
                ("x-authgate-scopes", "admin"),
                ("x-authgate-claims", "e30"),
            ],
        )
        .await
        .expect("the call goes through");
    assert_eq!(answer.get_ref().message, UPSTREAM_MESSAGE);

    let got = next(&mut seen).await;
    assert_eq!(header(&got, "x-trace"), Some("abc"));
    assert_eq!(header(&got, "x-authgate-subject"), Some("user|1"));
    assert_eq!(header(&got, "x-authgate-issuer"), Some(issuer.url()));
    assert_eq!(
        header(&got, "x-authgate-scopes"),
        Some("read:private write:things")
    );
    let claims = URL_SAFE_NO_PAD
        .decode(header(&got, "x-authgate-claims").unwrap())
        .unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&claims).unwrap();
    assert_eq!(claims["sub"], "user|1");
    assert_eq!(claims["iss"], issuer.url());
    for name in authgate::proxy::IDENTITY_HEADERS {
        assert_eq!(got.get_all(name).iter().count(), 1, "{name} once");
    }
    assert!(got.get("authorization").is_none(), "the token stays here");
    // The proxy's own Host never reaches an HTTP/2 upstream.
    assert!(got.get("host").is_none());
}

#[tokio::test]
async fn a_refused_call_never_reaches_the_upstream() {
    let issuer = spawn_issuer().await;
    let (upstream, mut seen) = spawn_upstream().await;
    let rules = vec![
        format!("/authgate.v1.PrivateService/GetPrivate={SCOPE}")
            .parse()
            .unwrap(),
    ];
    let options = ProxyOptions {
        rules,
        ..ProxyOptions::default()
    };
    let proxy = spawn_proxy(issuer.url(), &upstream.url(), options).await;

    let none = proxy.call(None, &[("x-trace", "refused")]).await;
    assert_eq!(none.unwrap_err().code(), Code::Unauthenticated);
    let junk = proxy.call(Some("a.b.c"), &[("x-trace", "refused")]).await;
    assert_eq!(junk.unwrap_err().code(), Code::Unauthenticated);
    let unscoped = token(&issuer, &["other"]);
    let denied = proxy
        .call(Some(&unscoped), &[("x-trace", "refused")])
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(denied.message().contains(SCOPE), "{}", denied.message());

    let scoped = token(&issuer, &[SCOPE]);
    proxy
        .call(Some(&scoped), &[("x-trace", "allowed")])
        .await
        .unwrap();
    // Calls arrive in order on one channel: the first to arrive is the
    // allowed one, and nothing else came.
    assert_eq!(header(&next(&mut seen).await, "x-trace"), Some("allowed"));
    assert!(seen.try_recv().is_err());
    drop(upstream);
}

#[tokio::test]
async fn statuses_messages_and_trailers_come_back_unchanged() {
    let issuer = spawn_issuer().await;
    let (upstream, _seen) = spawn_upstream().await;
    let proxy = spawn_proxy(issuer.url(), &upstream.url(), ProxyOptions::default()).await;
    let token = token(&issuer, &[SCOPE]);
    let status = proxy
        .call(Some(&token), &[("x-fail", "1")])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "the upstream says no");
    assert_eq!(header(status.metadata(), "x-why"), Some("because"));
}

#[tokio::test]
async fn public_paths_pass_without_a_token_and_carry_no_identity() {
    let issuer = spawn_issuer().await;
    let (upstream, mut seen) = spawn_upstream().await;
    let options = ProxyOptions {
        public: vec!["/authgate.v1.PrivateService/GetPrivate"],
        ..ProxyOptions::default()
    };
    let proxy = spawn_proxy(issuer.url(), &upstream.url(), options).await;
    proxy
        .call(None, &[("x-authgate-subject", "mallory")])
        .await
        .expect("a public path needs no token");
    let got = next(&mut seen).await;
    for name in authgate::proxy::IDENTITY_HEADERS {
        assert!(got.get(name).is_none(), "{name} on a public path");
    }
    // With a token too: public paths carry no identity at all.
    let token = token(&issuer, &[SCOPE]);
    proxy.call(Some(&token), &[]).await.unwrap();
    assert!(next(&mut seen).await.get("x-authgate-subject").is_none());
}

#[tokio::test]
async fn health_is_not_serving_until_keys_load_then_the_upstreams_until_draining() {
    // The issuer is down when the proxy starts.
    let (socket, issuer_addr) = held_address();
    let issuer_url = format!("http://{issuer_addr}/");
    let (upstream, mut seen) = spawn_upstream().await;
    let options = ProxyOptions {
        wait_for_keys: false,
        ..ProxyOptions::default()
    };
    let mut proxy = spawn_proxy(&issuer_url, &upstream.url(), options).await;

    assert_eq!(proxy.health("").await.unwrap(), NOT_SERVING);
    assert_eq!(
        proxy.health("authgate.v1.PrivateService").await.unwrap(),
        NOT_SERVING
    );
    // Liveness: the process runs.
    assert_eq!(
        proxy.health("grpc.health.v1.Health").await.unwrap(),
        SERVING
    );

    let issuer = start_issuer_on(socket);
    assert_eq!(issuer.url(), issuer_url);
    assert!(
        eventually(patience(), || async {
            proxy.health("").await.ok() == Some(SERVING)
        })
        .await,
        "health turns SERVING once the keys load"
    );
    // Now the upstream answers: it says its PrivateService is NOT_SERVING.
    assert_eq!(
        proxy.health("authgate.v1.PrivateService").await.unwrap(),
        NOT_SERVING
    );
    let unknown = proxy.health("no.such.Service").await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "the upstream's answer");
    // Health calls reached the upstream's health, not its PrivateService.
    assert!(seen.try_recv().is_err());

    proxy.drain.take().unwrap().send(()).unwrap();
    assert!(
        eventually(patience(), || async {
            proxy.health("").await.ok() == Some(NOT_SERVING)
        })
        .await,
        "health turns NOT_SERVING when draining"
    );
    assert_eq!(
        proxy.health("grpc.health.v1.Health").await.unwrap(),
        SERVING
    );
}

#[tokio::test]
async fn an_upstream_that_is_down_is_unavailable_and_back_when_it_is() {
    let issuer = spawn_issuer().await;
    let (upstream, _seen) = spawn_upstream().await;
    let (addr, url) = (upstream.addr, upstream.url());
    let proxy = spawn_proxy(issuer.url(), &url, ProxyOptions::default()).await;
    let token = token(&issuer, &[SCOPE]);
    proxy.call(Some(&token), &[]).await.unwrap();

    upstream.stop().await;
    let down = proxy.call(Some(&token), &[]).await.unwrap_err();
    assert_eq!(down.code(), Code::Unavailable, "{}", down.message());
    // Its address and the OS's error are the operator's, in the log.
    assert_eq!(down.message(), "upstream unavailable");

    // Back on the same address: calls go through again, on a new connection.
    let (_upstream, mut seen) = spawn_upstream_on(TcpListener::bind(addr).await.unwrap()).await;
    assert!(
        eventually(patience(), || async {
            proxy.call(Some(&token), &[]).await.is_ok()
        })
        .await,
        "the proxy reconnects"
    );
    next(&mut seen).await;
}

#[tokio::test]
async fn metrics_name_the_upstreams_methods_from_its_reflection() {
    let issuer = spawn_issuer().await;
    let (upstream, _seen) = spawn_upstream().await;
    let proxy = spawn_proxy(issuer.url(), &upstream.url(), ProxyOptions::default()).await;
    let token = token(&issuer, &[SCOPE]);
    proxy.call(Some(&token), &[]).await.unwrap();
    proxy.call(None, &[]).await.unwrap_err();
    let text = proxy.scrape().await;
    let labels =
        r#"grpc_type="unary",grpc_service="authgate.v1.PrivateService",grpc_method="GetPrivate""#;
    let handled =
        |code: &str| format!(r#"grpc_server_handled_total{{{labels},grpc_code="{code}"}}"#);
    assert_eq!(metric_value(&text, &handled("OK")), Some(1.0), "{text}");
    assert_eq!(
        metric_value(&text, &handled("Unauthenticated")),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn without_reflection_the_rules_and_public_paths_name_the_methods() {
    let issuer = spawn_issuer().await;
    // Nothing listens: no reflection answers, and calls are UNAVAILABLE.
    let (_socket, nowhere) = held_address();
    let options = ProxyOptions {
        rules: vec!["/echo.v1.Echo/Unary=read:private".parse().unwrap()],
        public: vec!["/echo.v1.Echo/Public", "/docs/*"],
        ..ProxyOptions::default()
    };
    let proxy = spawn_proxy(issuer.url(), &format!("http://{nowhere}"), options).await;
    let channel = proxy.channel().await;
    for path in [
        "/echo.v1.Echo/Unary",
        "/echo.v1.Echo/Public",
        "/echo.v1.Echo/Other",
    ] {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let codec = tonic_prost::ProstCodec::<GetPrivateRequest, GetPrivateRequest>::default();
        let path = http::uri::PathAndQuery::from_static(path);
        let _ = grpc
            .unary(Request::new(GetPrivateRequest {}), path, codec)
            .await;
    }
    let text = proxy.scrape().await;
    let started = |service: &str, method: &str| {
        format!(
            r#"grpc_server_started_total{{grpc_type="unknown",grpc_service="{service}",grpc_method="{method}"}}"#
        )
    };
    assert_eq!(
        metric_value(&text, &started("echo.v1.Echo", "Unary")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric_value(&text, &started("echo.v1.Echo", "Public")),
        Some(1.0),
        "{text}"
    );
    // A method nothing names is `unknown`: no label a caller chooses.
    assert_eq!(
        metric_value(&text, &started("unknown", "unknown")),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("Other"), "{text}");
}

#[tokio::test]
async fn an_https_upstream_is_checked_against_the_given_ca() {
    let pems = crate::common::LocalhostCert::new();
    let identity = tonic::transport::Identity::from_pem(&pems.cert, &pems.key);

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, mut seen) = mpsc::unbounded_channel();
    let upstream = tokio::spawn(
        tonic::transport::Server::builder()
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .unwrap()
            .add_service(PrivateServiceServer::new(Recorder(tx)))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );

    let issuer = spawn_issuer().await;
    let token = token(&issuer, &[SCOPE]);
    let url = format!("https://localhost:{port}");
    let config = server_config(issuer.url());
    let mut upstream_config = UpstreamConfig::new(&url).unwrap();
    upstream_config.ca_pem = Some(pems.ca.into_bytes());
    let proxy = Proxy::new(upstream_config).unwrap();
    let app = Application::builder(config)
        .forward_to(proxy.forward())
        .with_listener(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .unwrap();
    let (addr, keys) = (app.local_addr(), app.keys());
    let _server = tokio::spawn(app.run_until(std::future::pending()));
    tokio::time::timeout(patience(), keys.wait_loaded())
        .await
        .unwrap();
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut request = Request::new(GetPrivateRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let answer = PrivateServiceClient::new(channel.clone())
        .get_private(request)
        .await
        .expect("through TLS to the upstream");
    assert_eq!(answer.get_ref().message, UPSTREAM_MESSAGE);
    next(&mut seen).await;

    // Checked against the system roots instead, the private CA fails.
    let strict = Proxy::new(UpstreamConfig::new(&url).unwrap()).unwrap();
    let config = server_config(issuer.url());
    let app = Application::builder(config)
        .forward_to(strict.forward())
        .with_listener(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .unwrap();
    let (addr, keys) = (app.local_addr(), app.keys());
    let _strict_server = tokio::spawn(app.run_until(std::future::pending()));
    tokio::time::timeout(patience(), keys.wait_loaded())
        .await
        .unwrap();
    let mut request = Request::new(GetPrivateRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let refused = PrivateServiceClient::new(channel)
        .get_private(request)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{}", refused.message());
    assert!(seen.try_recv().is_err(), "nothing reached the upstream");
    upstream.abort();
}

/// `GetPrivate`'s request sent to any `path` through the proxy, with `token`.
async fn call_path(proxy: &TestProxy, path: &'static str, token: Option<&str>) -> Status {
    let mut grpc = tonic::client::Grpc::new(proxy.channel().await);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<GetPrivateRequest, GetPrivateResponse>::default();
    let mut request = Request::new(GetPrivateRequest {});
    if let Some(token) = token {
        let bearer = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", bearer);
    }
    request
        .metadata_mut()
        .insert("x-trace", "refused".parse().unwrap());
    let path = http::uri::PathAndQuery::from_static(path);
    tokio::time::timeout(patience(), grpc.unary(request, path, codec))
        .await
        .expect("an answer within the patience")
        .expect_err("the call is refused")
}

#[tokio::test]
async fn paths_the_upstream_may_read_as_others_never_reach_it() {
    let issuer = spawn_issuer().await;
    let (upstream, mut seen) = spawn_upstream().await;
    let rules = vec![
        format!("/authgate.v1.PrivateService/GetPrivate={SCOPE}")
            .parse()
            .unwrap(),
    ];
    let options = ProxyOptions {
        rules,
        public: vec!["/docs/*"],
        ..ProxyOptions::default()
    };
    let proxy = spawn_proxy(issuer.url(), &upstream.url(), options).await;
    let unscoped = token(&issuer, &["other"]);

    // Under a public prefix (health's, or --public's) without a token, and
    // past the scope rule with a token that lacks its scope: paths that a
    // server resolving `..`, merging `//` or decoding escapes would route
    // to GetPrivate.
    for path in [
        "/grpc.health.v1.Health/../authgate.v1.PrivateService/GetPrivate",
        "/docs/../authgate.v1.PrivateService/GetPrivate",
        "/docs/%2E%2E/authgate.v1.PrivateService/GetPrivate",
    ] {
        let status = call_path(&proxy, path, None).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{path}: {status:?}");
        assert!(
            status.message().starts_with("request path refused"),
            "{status:?}"
        );
    }
    for path in [
        "/authgate.v1.PrivateService/%47etPrivate",
        "/authgate.v1.PrivateService%2FGetPrivate",
        "/authgate.v1.PrivateService/./GetPrivate",
        "//authgate.v1.PrivateService/GetPrivate",
    ] {
        let status = call_path(&proxy, path, Some(&unscoped)).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{path}: {status:?}");
    }
    // A path in another case is under the same rule (some servers route
    // without regard to case).
    let status = call_path(
        &proxy,
        "/AUTHGATE.V1.PRIVATESERVICE/GETPRIVATE",
        Some(&unscoped),
    )
    .await;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    let scoped = token(&issuer, &[SCOPE]);
    proxy
        .call(Some(&scoped), &[("x-trace", "allowed")])
        .await
        .unwrap();
    assert_eq!(header(&next(&mut seen).await, "x-trace"), Some("allowed"));
    assert!(
        seen.try_recv().is_err(),
        "a refused path reached the upstream"
    );
    drop(upstream);
}

#[tokio::test]
async fn a_rule_for_a_service_the_upstream_does_not_list_is_warned_about() {
    let issuer = spawn_issuer().await;
    let (upstream, _seen) = spawn_upstream().await;
    let mut config = server_config(issuer.url());
    config.policy = ScopePolicy::new([
        format!("/authgate.v1.PrivateServise/*={SCOPE}")
            .parse()
            .unwrap(),
        "/admin/*=admin".parse().unwrap(),
    ]);
    let proxy = Proxy::new(UpstreamConfig::new(&upstream.url()).unwrap()).unwrap();
    let app = proxy.install(Application::builder(config)).await;
    let warnings = app.check().unwrap();
    let typo: Vec<&String> = warnings
        .iter()
        .filter(|w| w.contains("PrivateServise"))
        .collect();
    assert_eq!(typo.len(), 1, "{warnings:?}");
    assert!(
        typo[0].contains("reflection does not list")
            && typo[0].contains("/authgate.v1.PrivateService/GetPrivate"),
        "{typo:?}"
    );
    // An HTTP path is the upstream's own business: no warning.
    assert!(
        !warnings.iter().any(|w| w.contains("/admin/")),
        "{warnings:?}"
    );
}

#[tokio::test]
async fn a_forwarded_health_watch_ends_when_the_proxy_drains() {
    let issuer = spawn_issuer().await;
    let (upstream, _seen) = spawn_upstream().await;
    let mut proxy = spawn_proxy(issuer.url(), &upstream.url(), ProxyOptions::default()).await;
    let mut health = HealthClient::new(proxy.channel().await);
    let mut watch = health
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    // The upstream's own answer first: SERVING, where the proxy would say
    // NOT_SERVING itself.
    let first = tokio::time::timeout(patience(), watch.message())
        .await
        .expect("the upstream answers")
        .unwrap()
        .expect("a status");
    assert_eq!(first.status, SERVING, "the upstream's status");

    proxy.drain.take().unwrap().send(()).unwrap();
    let ended = tokio::time::timeout(patience(), watch.message())
        .await
        .expect("the watch ends when the proxy drains")
        .expect_err("it ends with a status");
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    assert!(ended.message().contains("not ready"), "{ended:?}");
    // Watched again, the proxy itself says NOT_SERVING.
    let request = HealthCheckRequest {
        service: String::new(),
    };
    let mut again = health.watch(request).await.unwrap().into_inner();
    let now = again.message().await.unwrap().expect("a status");
    assert_eq!(now.status, NOT_SERVING);
}

#[tokio::test]
async fn a_forwarded_stream_ends_when_its_token_expires() {
    let (_, clock) = crate::common::manual_clock!(crate::common::now());
    let issuer = spawn_issuer().await;
    let (upstream, _seen) = spawn_upstream().await;
    let options = ProxyOptions {
        clock: Some(clock),
        ..ProxyOptions::default()
    };
    let proxy = spawn_proxy(issuer.url(), &upstream.url(), options).await;
    // The gate's clock stands at `iat`: the call is let in however long the
    // test took to get here, then has one second of the runtime's clock.
    let mut claims = issuer.claims("streamer", &[]);
    claims["iat"] = clock().into();
    claims["exp"] = (clock() + 1).into();
    let mut request = Request::new(WatchRequest { interval_ms: 20 });
    let bearer = format!("Bearer {}", issuer.mint(&claims));
    request
        .metadata_mut()
        .insert("authorization", bearer.parse().unwrap());
    let mut client = TickerClient::new(proxy.channel().await);
    let mut ticks = client.watch(request).await.unwrap().into_inner();
    let mut received = 0;
    let ended = tokio::time::timeout(patience(), async {
        loop {
            match ticks.message().await {
                Ok(Some(tick)) => {
                    assert_eq!(tick.subject, "streamer", "the upstream was told who called");
                    received += 1;
                }
                Ok(None) => panic!("the stream ended without a status after {received} ticks"),
                Err(status) => break status,
            }
        }
    })
    .await
    .expect("the stream ends at the token's expiry, within the patience");
    assert!(received > 1, "ticks streamed before the expiry: {received}");
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
    assert!(ended.message().contains("expired"), "{ended:?}");
    drop(upstream);
}

//! What every test needs: its own dev issuer and server on 127.0.0.1:0, a
//! generated gRPC client, a clock the test sets, and waiting on events
//! instead of sleeps.

use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, Once, OnceLock},
    time::Duration,
};

use authgate::{
    StartupError, ValidationConfig,
    issuer::{DevIssuer, DevIssuerConfig, RsaKeyPool},
    keys::{JwksSource, KeyStore, RefreshConfig},
    pb::{GetPrivateRequest, GetPrivateResponse, private_service_client::PrivateServiceClient},
    server::{Application, ApplicationBuilder, Drain, Limits, ServerConfig, TlsFiles},
    {Clock, IssuerConfig, ScopePolicy, ScopeRule},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use futures_util::FutureExt;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{Code, Request, Status, metadata::MetadataValue, transport::Channel};

/// The scope `GetPrivate` needs in tests, as in `authgate dev`.
pub const SCOPE: &str = "read:private";
pub const GET_PRIVATE: &str = "/authgate.v1.PrivateService/GetPrivate";

/// How long a test waits for an event before it calls it a hang: 60 s, or
/// `AUTHGATE_TEST_PATIENCE_SECS` (the mutation run lowers it, so that a
/// mutant that leaves a test waiting fails it sooner). Only a failing test
/// ever waits this long: it is no bound on how fast anything is.
pub fn patience() -> Duration {
    static PATIENCE: OnceLock<Duration> = OnceLock::new();
    *PATIENCE.get_or_init(|| {
        let secs = std::env::var("AUTHGATE_TEST_PATIENCE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60);
        Duration::from_secs(secs)
    })
}

/// The pre-generated RSA keys (tests/fixtures/keys) every dev issuer of this
/// test run signs with, each key handed out once.
fn rsa_keys() -> Arc<RsaKeyPool> {
    static POOL: OnceLock<Arc<RsaKeyPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let keys = include_str!("../fixtures/keys/rsa-2048.pk8.b64")
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| STANDARD.decode(line).expect("base64 PKCS#8"))
            .collect();
        Arc::new(RsaKeyPool::new(keys))
    })
    .clone()
}

/// The dev issuer configuration of the tests: [`DevIssuerConfig::for_tests`]
/// signing with the fixture keys.
pub fn dev_issuer_config() -> DevIssuerConfig {
    DevIssuerConfig {
        rsa_keys: Some(rsa_keys()),
        ..DevIssuerConfig::for_tests()
    }
}

/// A clock for the gate that the test sets: `let (now, clock) =
/// manual_clock!(start);` gives the `AtomicI64` to store seconds in and the
/// [`Clock`] that reads it. Each use has its own static, so tests running
/// side by side keep their own time.
macro_rules! manual_clock {
    ($start:expr) => {{
        static NOW: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
        fn read() -> i64 {
            NOW.load(std::sync::atomic::Ordering::SeqCst)
        }
        NOW.store($start, std::sync::atomic::Ordering::SeqCst);
        (&NOW, read as authgate::Clock)
    }};
}
pub(crate) use manual_clock;

/// Sets a clock made by [`manual_clock!`].
pub fn set_clock(clock: &std::sync::atomic::AtomicI64, now: i64) {
    clock.store(now, std::sync::atomic::Ordering::SeqCst);
}

/// Logs stay quiet unless `TEST_LOG` is set.
fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(
                    "debug,h2=info,hyper=info",
                ))
                .with_test_writer()
                .try_init();
        }
    });
}

/// How a test wants its server.
pub struct Options {
    pub refresh: RefreshConfig,
    pub rules: Vec<ScopeRule>,
    /// Fetch the JWKS from here instead of through the issuer's discovery.
    pub jwks_url: Option<String>,
    pub leeway: Duration,
    /// `--require-typ`.
    pub require_typ: Option<String>,
    /// Wait until the first key set has loaded before returning.
    pub wait_for_keys: bool,
    pub limits: Limits,
    pub tls: Option<TlsFiles>,
    pub token_cache_entries: usize,
    /// Serve metrics on 127.0.0.1:0.
    pub metrics: bool,
    /// The shutdown timeout (its delay is the test's: see [`TestApp::drain`]).
    pub drain: Drain,
    /// The gate reads the time here instead of the system clock.
    pub clock: Option<Clock>,
    /// Scope rules for methods the server lacks are warned about instead
    /// of refused: for tests of the policy on paths no handler serves.
    pub rules_for_other_methods: bool,
    /// `--cors-allow-origin`.
    pub cors: Vec<String>,
    /// Adds more services beside the demo one.
    pub services: Option<fn(ApplicationBuilder) -> ApplicationBuilder>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            refresh: RefreshConfig {
                interval: Duration::from_secs(60),
                min_interval: Duration::from_millis(200),
                fetch_timeout: Duration::from_secs(2),
                initial_backoff: Duration::from_millis(50),
                max_document_bytes: 1024 * 1024,
                max_stale: RefreshConfig::default().max_stale,
            },
            rules: vec![format!("{GET_PRIVATE}={SCOPE}").parse().unwrap()],
            jwks_url: None,
            leeway: Duration::from_secs(30),
            require_typ: None,
            wait_for_keys: true,
            limits: Limits::default(),
            tls: None,
            token_cache_entries: 4096,
            metrics: true,
            drain: Drain::default(),
            clock: None,
            rules_for_other_methods: false,
            cors: Vec::new(),
            services: None,
        }
    }
}

/// A running server with its own issuer (or several).
pub struct TestApp {
    /// The first issuer trusted.
    pub issuer: DevIssuer,
    /// The other dev issuers trusted, in the order configured after the first.
    pub others: Vec<DevIssuer>,
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    /// The first issuer's key store.
    pub keys: Arc<KeyStore>,
    /// Every issuer's key store, in the order configured.
    pub stores: Vec<Arc<KeyStore>>,
    /// Begins draining: health turns NOT_SERVING, calls are still served.
    drain: Option<oneshot::Sender<()>>,
    /// Ends the drain: the listener closes, calls in flight finish.
    close: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), StartupError>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_issuer() -> DevIssuer {
    init_tracing();
    DevIssuer::start(dev_issuer_config())
        .await
        .expect("the dev issuer starts")
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    let issuer = spawn_issuer().await;
    spawn_app_for(issuer, options).await
}

pub async fn spawn_app_for(issuer: DevIssuer, options: Options) -> TestApp {
    let url = issuer.url().to_owned();
    spawn_app_for_issuer_url(issuer, options, &url).await
}

/// A server that requires `iss` to be `issuer_url`, whatever `issuer` is:
/// for tests whose real issuer is not up yet.
pub async fn spawn_app_for_issuer_url(
    issuer: DevIssuer,
    options: Options,
    issuer_url: &str,
) -> TestApp {
    let jwks = match &options.jwks_url {
        Some(url) => JwksSource::Url(url.parse().unwrap()),
        None => discovery(issuer_url),
    };
    let config = issuer_config(issuer_url, issuer.audience(), &options, jwks);
    spawn_server(issuer, Vec::new(), vec![config], 1, options).await
}

/// A server trusting each of `issuers`, by discovery, in this order, then
/// each URL of `also`, where no issuer may be running yet. With
/// `wait_for_keys`, returns once every one of `issuers` has loaded.
pub async fn spawn_app_trusting(
    issuers: Vec<DevIssuer>,
    also: &[String],
    options: Options,
) -> TestApp {
    let audience = issuers[0].audience().to_owned();
    let urls = issuers
        .iter()
        .map(|i| i.url().to_owned())
        .chain(also.iter().cloned());
    let configs = urls
        .map(|url| issuer_config(&url, &audience, &options, discovery(&url)))
        .collect();
    let running = issuers.len();
    let mut issuers = issuers.into_iter();
    let first = issuers.next().expect("at least one issuer");
    spawn_server(first, issuers.collect(), configs, running, options).await
}

/// A server trusting the issuers `configs` describe in full, in this order;
/// `issuer` and `others` are the dev issuers behind them, kept running. With
/// `wait_for_keys`, returns once every one of `configs` has loaded.
pub async fn spawn_app_configured(
    issuer: DevIssuer,
    others: Vec<DevIssuer>,
    configs: Vec<IssuerConfig>,
    options: Options,
) -> TestApp {
    let running = configs.len();
    spawn_server(issuer, others, configs, running, options).await
}

fn discovery(url: &str) -> JwksSource {
    JwksSource::Discovery {
        issuer: url.to_owned(),
        url: url.parse().unwrap(),
    }
}

fn issuer_config(url: &str, audience: &str, options: &Options, jwks: JwksSource) -> IssuerConfig {
    IssuerConfig {
        validation: ValidationConfig {
            issuer: url.to_owned(),
            audiences: vec![audience.to_owned()],
            leeway: options.leeway,
            require_typ: options.require_typ.clone(),
            ..Default::default()
        },
        jwks,
    }
}

async fn spawn_server(
    issuer: DevIssuer,
    others: Vec<DevIssuer>,
    issuers: Vec<IssuerConfig>,
    running: usize,
    options: Options,
) -> TestApp {
    init_tracing();
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        issuers,
        refresh: options.refresh,
        policy: ScopePolicy::new(options.rules),
        tls: options.tls,
        limits: options.limits,
        token_cache_entries: options.token_cache_entries,
        metrics_listen: options.metrics.then(|| "127.0.0.1:0".parse().unwrap()),
        drain: options.drain,
        cors_allow_origins: options.cors,
    };
    let listener = TcpListener::bind(config.listen).await.unwrap();
    let mut builder = Application::builder(config).add_demo_service();
    if options.rules_for_other_methods {
        builder = builder.warn_on_unknown_rules();
    }
    if let Some(services) = options.services {
        builder = services(builder);
    }
    let mut app = builder.with_listener(listener).expect("the server builds");
    if let Some(clock) = options.clock {
        app = app.with_clock(clock);
    }
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let keys = app.keys();
    let stores: Vec<Arc<KeyStore>> = app.key_stores().map(|(_, k)| k.clone()).collect();
    let (drain_tx, drain_rx) = oneshot::channel();
    let (close_tx, close_rx) = oneshot::channel();
    let server = tokio::spawn(async move {
        app.run_draining(
            async {
                let _ = drain_rx.await;
            },
            async {
                let _ = close_rx.await;
            },
        )
        .await
    });
    if options.wait_for_keys {
        for store in &stores[..running] {
            tokio::time::timeout(patience(), store.wait_loaded())
                .await
                .expect("the key set loads");
        }
    }
    TestApp {
        issuer,
        others,
        addr,
        metrics_addr,
        keys,
        stores,
        drain: Some(drain_tx),
        close: Some(close_tx),
        server,
    }
}

impl TestApp {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .expect("connects to the server")
    }

    pub async fn client(&self) -> PrivateServiceClient<Channel> {
        PrivateServiceClient::new(self.channel().await)
    }

    /// A valid token granted `read:private`.
    pub fn token(&self) -> String {
        self.issuer.mint(&self.issuer.claims("user|1", &[SCOPE]))
    }

    /// Calls `GetPrivate` with `authorization: Bearer <token>`.
    pub async fn call(&self, token: &str) -> Result<GetPrivateResponse, Status> {
        self.call_with(&[format!("Bearer {token}")]).await
    }

    /// Calls `GetPrivate` with these `authorization` values, verbatim. A
    /// call that has no answer within the patience fails the test: nothing
    /// on the request path may wait that long.
    pub async fn call_with(&self, authorization: &[String]) -> Result<GetPrivateResponse, Status> {
        let mut request = Request::new(GetPrivateRequest {});
        for value in authorization {
            let value = MetadataValue::try_from(value.as_str()).expect("a valid metadata value");
            request.metadata_mut().append("authorization", value);
        }
        let call = async { self.client().await.get_private(request).await };
        tokio::time::timeout(patience(), call)
            .await
            .expect("a call waited past the test's patience")
            .map(|r| r.into_inner())
    }

    /// Shuts the server down gracefully and waits for it: fails the test if
    /// the server panicked, returned an error, or never finished.
    pub async fn stop(mut self) {
        self.drain();
        self.close();
        match tokio::time::timeout(patience(), &mut self.server).await {
            Err(_) => panic!("graceful shutdown hung"),
            Ok(Err(join)) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Ok(Err(join)) => panic!("the server task was cancelled: {join}"),
            Ok(Ok(Err(error))) => panic!("the server failed: {error}"),
            Ok(Ok(Ok(()))) => {}
        }
    }

    /// Begins draining, as SIGTERM does: health NOT_SERVING, calls still served.
    pub fn drain(&mut self) {
        if let Some(tx) = self.drain.take() {
            let _ = tx.send(());
        }
    }

    /// Ends the drain, as the drain delay passing does: the listener closes.
    pub fn close(&mut self) {
        if let Some(tx) = self.close.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for the server task to end; false if it is still running after `within`.
    pub async fn stopped_within(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, &mut self.server).await.is_ok()
    }

    /// `GET /metrics`, as Prometheus scrapes it.
    pub async fn scrape(&self) -> String {
        let addr = self.metrics_addr.expect("metrics are on");
        let response = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("the metrics listener answers");
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        response.text().await.unwrap()
    }

    /// The value of the series `name{labels}` (labels as written, in the
    /// order rendered) in a scrape; `None` when absent.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.scrape().await, series)
    }
}

impl Drop for TestApp {
    /// A server that ended before the test stopped it has failed: say how,
    /// unless the test is failing already.
    fn drop(&mut self) {
        if self.close.is_some() && !std::thread::panicking() {
            match (&mut self.server).now_or_never() {
                None => {}
                Some(Err(join)) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
                Some(Err(join)) => panic!("the server task was cancelled: {join}"),
                Some(Ok(Err(error))) => panic!("the server failed: {error}"),
                Some(Ok(Ok(()))) => panic!("the server stopped before it was told to"),
            }
        }
        self.server.abort();
    }
}

/// The value of `series` (`name{labels}` exactly as rendered) in `text`.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().expect("a number"))
}

/// Polls `check` until it returns true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The code of a call's outcome, `Ok` as `Code::Ok`.
pub fn code<T>(result: &Result<T, Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// An address on 127.0.0.1 held but not listened on: connections to it are
/// refused, as to an issuer that is down, and no one else can take it
/// before [`start_issuer_on`] serves there.
pub fn held_address() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// A dev issuer that comes up on an address [`held_address`] held.
pub fn start_issuer_on(socket: tokio::net::TcpSocket) -> DevIssuer {
    DevIssuer::start_on(socket.listen(128).unwrap(), dev_issuer_config()).unwrap()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A certificate for `localhost` from a throwaway CA, all as PEM.
pub struct LocalhostCert {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

impl LocalhostCert {
    pub fn new() -> LocalhostCert {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let ca_issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &ca_issuer)
            .unwrap();
        LocalhostCert {
            ca: ca.pem(),
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// A server serving TLS with a certificate for `localhost` from a throwaway
/// CA, and the path of that CA's PEM certificate.
pub async fn spawn_tls_app(name: &str) -> (TestApp, std::path::PathBuf) {
    let pems = LocalhostCert::new();
    let dir = std::env::temp_dir().join(format!("authgate-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path, ca_path) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("ca.pem"),
    );
    std::fs::write(&cert_path, &pems.cert).unwrap();
    std::fs::write(&key_path, &pems.key).unwrap();
    std::fs::write(&ca_path, &pems.ca).unwrap();
    let app = spawn_app_with(Options {
        tls: Some(TlsFiles {
            cert: cert_path,
            key: key_path,
        }),
        ..Options::default()
    })
    .await;
    (app, ca_path)
}

/// The services v1 reflection lists on `channel`, asked without a token.
pub async fn reflected_services(channel: Channel) -> Vec<String> {
    use tokio_stream::StreamExt;
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1 reflection answers without a token")
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        stream.next().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list")
    };
    list.service.into_iter().map(|s| s.name).collect()
}

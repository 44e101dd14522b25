//! An HTTP/2 gRPC load generator, for what h2load cannot do: a different
//! `authorization` value on every call, and counting calls by the
//! `grpc-status` they really ended with (h2load counts an HTTP 200 carrying a
//! gRPC error as a success).
//!
//! It speaks raw HTTP/2 through the `h2` crate, as h2load does, with a fixed
//! number of connections and concurrent streams per connection, each stream
//! sending the next request as soon as the last one answered.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderValue, Request};

/// One kind of call in a mixed load: what it sends and what it must get.
#[derive(Clone)]
pub struct Call {
    /// The `authorization` value, if any.
    pub authorization: Option<HeaderValue>,
    /// The gRPC code it must end with; `None` for any.
    pub expect: Option<u32>,
    /// Which class it belongs to, for the report (`valid`, `expired`, ...).
    pub class: &'static str,
    /// Its own request message (length-prefixed) instead of the run's: a
    /// question that carries its token inside, as authz's `Check` does.
    pub body: Option<Bytes>,
}

impl Call {
    /// `Bearer <token>`, expecting `expect`.
    pub fn bearer(token: &str, expect: Option<u32>, class: &'static str) -> Call {
        Call {
            authorization: Some(
                HeaderValue::try_from(format!("Bearer {token}")).expect("a header value"),
            ),
            expect,
            class,
            body: None,
        }
    }
}

/// One load run.
#[derive(Clone)]
pub struct LoadConfig {
    /// The server.
    pub addr: SocketAddr,
    /// The full method path.
    pub path: String,
    /// The request message, already length-prefixed (5-byte gRPC frame header).
    pub body: Bytes,
    /// The calls, made in turn; a call without authorization when empty.
    pub calls: Arc<Vec<Call>>,
    /// Connections.
    pub connections: usize,
    /// Concurrent streams per connection.
    pub streams: usize,
    /// How long to measure, after the warm-up.
    pub duration: Duration,
    /// How long to run before measuring.
    pub warmup: Duration,
}

/// What a load run saw.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Calls that ended with `grpc-status: 0`.
    pub ok: u64,
    /// Calls that ended with another status, by code.
    pub refused: BTreeMap<u32, u64>,
    /// Streams that failed below gRPC (reset, connection lost).
    pub transport_errors: u64,
    /// The measured span.
    pub elapsed: Duration,
    /// Every measured call's latency, sorted, in microseconds.
    pub latencies_us: Vec<u32>,
    /// Calls per class.
    pub by_class: BTreeMap<&'static str, u64>,
    /// Calls that ended otherwise than expected, by class and code (99 for
    /// a transport error).
    pub unexpected: BTreeMap<(&'static str, u32), u64>,
}

impl LoadReport {
    /// Every call that completed, whatever its status.
    pub fn calls(&self) -> u64 {
        self.ok + self.refused.values().sum::<u64>()
    }

    /// Completed calls per second.
    pub fn calls_per_second(&self) -> f64 {
        self.calls() as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency at quantile `q` (0.5, 0.99), in microseconds.
    pub fn quantile_us(&self, q: f64) -> u32 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * q).round() as usize;
        self.latencies_us[i]
    }

    /// One line for humans.
    pub fn summary(&self) -> String {
        format!(
            "{:>9.0} calls/s  p50 {:>6} us  p99 {:>6} us  max {:>7} us  ok {}  refused {:?}  transport errors {}  unexpected {:?}",
            self.calls_per_second(),
            self.quantile_us(0.5),
            self.quantile_us(0.99),
            self.latencies_us.last().copied().unwrap_or(0),
            self.ok,
            self.refused,
            self.transport_errors,
            self.unexpected
        )
    }

    /// Adds another report's counts (not its span).
    pub fn absorb(&mut self, other: LoadReport) {
        self.ok += other.ok;
        self.transport_errors += other.transport_errors;
        for (code, n) in other.refused {
            *self.refused.entry(code).or_default() += n;
        }
        for (class, n) in other.by_class {
            *self.by_class.entry(class).or_default() += n;
        }
        for (key, n) in other.unexpected {
            *self.unexpected.entry(key).or_default() += n;
        }
        self.latencies_us.extend(other.latencies_us);
    }
}

#[derive(Default)]
struct Shared {
    measuring: AtomicBool,
    stop: AtomicBool,
    next: AtomicUsize,
    report: Mutex<LoadReport>,
    /// Measured calls so far, whatever their outcome, read while the load runs.
    progress: Arc<AtomicU64>,
}

/// Runs the load and reports what the measured span saw.
pub async fn run(config: LoadConfig) -> std::io::Result<LoadReport> {
    let duration = config.duration;
    run_until(config, async move { tokio::time::sleep(duration).await }).await
}

/// As [`run`], measuring from the end of the warm-up until `stop` resolves
/// (`config.duration` is not used): for load that must last as long as
/// something else takes, a rolling restart for instance.
pub async fn run_until(
    config: LoadConfig,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<LoadReport> {
    run_counting(config, stop, Arc::default()).await
}

/// As [`run_until`], adding each measured call (completed or failed) to
/// `progress` as it ends: for a driver that paces its events by the calls
/// made so far.
pub async fn run_counting(
    config: LoadConfig,
    stop: impl std::future::Future<Output = ()>,
    progress: Arc<AtomicU64>,
) -> std::io::Result<LoadReport> {
    let shared = Arc::new(Shared {
        progress,
        ..Shared::default()
    });
    let mut workers = Vec::new();
    for _ in 0..config.connections {
        let stream = tokio::net::TcpStream::connect(config.addr).await?;
        stream.set_nodelay(true)?;
        let (client, connection) = h2::client::Builder::new()
            .initial_window_size(1 << 20)
            .handshake::<_, Bytes>(stream)
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        for _ in 0..config.streams {
            workers.push(tokio::spawn(stream_worker(
                client.clone(),
                config.clone(),
                shared.clone(),
            )));
        }
    }
    tokio::time::sleep(config.warmup).await;
    shared.measuring.store(true, Ordering::SeqCst);
    let started = Instant::now();
    stop.await;
    shared.measuring.store(false, Ordering::SeqCst);
    let elapsed = started.elapsed();
    shared.stop.store(true, Ordering::SeqCst);
    for worker in workers {
        let _ = worker.await;
    }
    let mut report = std::mem::take(&mut *shared.report.lock().unwrap());
    report.elapsed = elapsed;
    report.latencies_us.sort_unstable();
    Ok(report)
}

async fn stream_worker(
    mut client: h2::client::SendRequest<Bytes>,
    config: LoadConfig,
    shared: Arc<Shared>,
) {
    let mut local = LoadReport::default();
    let uri = format!("http://{}{}", config.addr, config.path);
    let anonymous = Call {
        authorization: None,
        expect: None,
        class: "anonymous",
        body: None,
    };
    while !shared.stop.load(Ordering::Relaxed) {
        let mut request = Request::post(&uri)
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        let spec = if config.calls.is_empty() {
            &anonymous
        } else {
            &config.calls[shared.next.fetch_add(1, Ordering::Relaxed) % config.calls.len()]
        };
        if let Some(value) = &spec.authorization {
            request = request.header("authorization", value.clone());
        }
        let request = request.body(()).unwrap();
        let started = Instant::now();
        let body = spec.body.clone().unwrap_or_else(|| config.body.clone());
        let outcome = call(&mut client, request, body).await;
        if !shared.measuring.load(Ordering::Relaxed) {
            continue;
        }
        shared.progress.fetch_add(1, Ordering::Relaxed);
        let code = match outcome {
            Ok(0) => {
                local.ok += 1;
                0
            }
            Ok(code) => {
                *local.refused.entry(code).or_default() += 1;
                code
            }
            Err(_) => {
                local.transport_errors += 1;
                99
            }
        };
        *local.by_class.entry(spec.class).or_default() += 1;
        if spec.expect.is_some_and(|want| want != code) {
            *local.unexpected.entry((spec.class, code)).or_default() += 1;
        }
        local
            .latencies_us
            .push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
    }
    shared.report.lock().unwrap().absorb(local);
}

/// One unary call; the gRPC status it ended with.
async fn call(
    client: &mut h2::client::SendRequest<Bytes>,
    request: Request<()>,
    body: Bytes,
) -> Result<u32, h2::Error> {
    let ready = client.clone().ready().await?;
    *client = ready;
    let (response, mut send) = client.send_request(request, false)?;
    send.send_data(body, true)?;
    let response = response.await?;
    // A trailers-only answer (every refusal) carries the status in its headers.
    if let Some(status) = grpc_status(response.headers()) {
        return Ok(status);
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await?;
    Ok(trailers.as_ref().and_then(grpc_status).unwrap_or(2))
}

fn grpc_status(headers: &http::HeaderMap) -> Option<u32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// A gRPC frame for an empty message: no compression, length 0.
pub const EMPTY_MESSAGE: [u8; 5] = [0, 0, 0, 0, 0];

//! Prometheus metrics: `GET /metrics` on a listener of its own, in the text
//! exposition format, with the names and labels of the contract.
//!
//! The counters are plain atomics owned by what they count: the gate's
//! [`GateStats`](crate::GateStats), each [`KeyStore`]'s status and
//! the [`grpc`] layer's per-method table. A scrape reads them and writes the
//! text; nothing is registered, locked or allocated on the request path.
//! (A metrics crate would put its own registry between the two: the
//! `prometheus-client` histogram takes a lock on every observation, and the
//! `metrics` facade looks series up by key unless handles are kept, which is
//! what the atomics here already are.)

use std::{
    collections::VecDeque,
    convert::Infallible,
    fmt::{self, Write as _},
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, UNIX_EPOCH},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::{Method, StatusCode, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Notify,
};

use crate::{gate::Gate, keys::KeyStore};

pub(super) mod grpc;

pub use grpc::{GrpcMetrics, GrpcMetricsLayer};

/// Everything `GET /metrics` shows.
#[derive(Debug)]
pub(super) struct Metrics {
    grpc: Arc<GrpcMetrics>,
    gate: Gate,
    keys: Vec<Arc<KeyStore>>,
}

/// Connections the metrics listener holds at once. When all are taken, a
/// new one takes the place of the oldest that is not being answered, so
/// that sockets opened and left idle cannot lock a scraper out: each new
/// connection is accepted at once, and only a flood of them faster than a
/// scrape's own round trip could push a scrape out.
const MAX_CONNECTIONS: usize = 64;
/// How long a connection may take to send a request's line and headers,
/// from when it opens or its last answer was sent (hyper's keep-alive
/// timeout too). A scraper sends its request at once, and reconnects for
/// the next scrape, 15 s or more later.
const HEADER_TIMEOUT: Duration = Duration::from_secs(3);

impl Metrics {
    /// Metrics of a server: its gRPC calls, its gate, and each issuer's keys.
    pub(super) fn new(grpc: Arc<GrpcMetrics>, gate: Gate, keys: Vec<Arc<KeyStore>>) -> Metrics {
        Metrics { grpc, gate, keys }
    }

    /// The whole exposition, in the Prometheus text format (0.0.4).
    pub(super) fn render(&self) -> String {
        let mut out = String::with_capacity(32 * 1024);
        self.write(&mut out)
            .expect("writing to a String cannot fail");
        out
    }

    fn write(&self, out: &mut String) -> fmt::Result {
        let methods = self.grpc.methods();
        header(
            out,
            "grpc_server_started_total",
            "counter",
            "RPCs started on the server.",
        )?;
        for m in methods {
            writeln!(
                out,
                "grpc_server_started_total{{grpc_type=\"{}\",grpc_service=\"{}\",grpc_method=\"{}\"}} {}",
                m.kind,
                Escaped(&m.service),
                Escaped(&m.method),
                m.started()
            )?;
        }
        header(
            out,
            "grpc_server_handled_total",
            "counter",
            "RPCs completed on the server, by gRPC code.",
        )?;
        for m in methods {
            for (code, n) in grpc::CODE_NAMES.iter().zip(m.handled()) {
                writeln!(
                    out,
                    "grpc_server_handled_total{{grpc_type=\"{}\",grpc_service=\"{}\",grpc_method=\"{}\",grpc_code=\"{code}\"}} {n}",
                    m.kind,
                    Escaped(&m.service),
                    Escaped(&m.method),
                )?;
            }
        }
        header(
            out,
            "grpc_server_handling_seconds",
            "histogram",
            "How long RPCs took to complete on the server, in seconds.",
        )?;
        for m in methods {
            let labels = format!(
                "grpc_type=\"{}\",grpc_service=\"{}\",grpc_method=\"{}\"",
                m.kind,
                Escaped(&m.service),
                Escaped(&m.method)
            );
            let (buckets, count, sum) = m.histogram();
            for (le, n) in grpc::BUCKETS.iter().zip(buckets) {
                writeln!(
                    out,
                    "grpc_server_handling_seconds_bucket{{{labels},le=\"{le}\"}} {n}"
                )?;
            }
            writeln!(
                out,
                "grpc_server_handling_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
            )?;
            writeln!(out, "grpc_server_handling_seconds_sum{{{labels}}} {sum}")?;
            writeln!(
                out,
                "grpc_server_handling_seconds_count{{{labels}}} {count}"
            )?;
        }

        let stats = self.gate.stats();
        header(
            out,
            "authgate_auth_decisions_total",
            "counter",
            "Calls the gate let through or refused, by the refusal's reason.",
        )?;
        writeln!(
            out,
            "authgate_auth_decisions_total{{result=\"allowed\",reason=\"none\"}} {}",
            stats.allowed()
        )?;
        for (reason, n) in stats.denied() {
            writeln!(
                out,
                "authgate_auth_decisions_total{{result=\"denied\",reason=\"{reason}\"}} {n}"
            )?;
        }
        header(
            out,
            "authgate_token_cache_hits_total",
            "counter",
            "Tokens found in the verified-token cache.",
        )?;
        writeln!(
            out,
            "authgate_token_cache_hits_total {}",
            stats.cache_hits()
        )?;
        header(
            out,
            "authgate_token_cache_misses_total",
            "counter",
            "Tokens looked up in the verified-token cache and verified anew.",
        )?;
        writeln!(
            out,
            "authgate_token_cache_misses_total {}",
            stats.cache_misses()
        )?;

        let statuses: Vec<_> = self.keys.iter().map(|k| k.status()).collect();
        header(
            out,
            "authgate_jwks_fetches_total",
            "counter",
            "JWKS fetches by the refresher, by result.",
        )?;
        for s in &statuses {
            let issuer = Escaped(&s.issuer);
            writeln!(
                out,
                "authgate_jwks_fetches_total{{issuer=\"{issuer}\",result=\"success\"}} {}",
                s.fetch_successes
            )?;
            writeln!(
                out,
                "authgate_jwks_fetches_total{{issuer=\"{issuer}\",result=\"failure\"}} {}",
                s.fetch_failures
            )?;
        }
        header(
            out,
            "authgate_jwks_keys",
            "gauge",
            "Usable keys in the published key set.",
        )?;
        for s in &statuses {
            writeln!(
                out,
                "authgate_jwks_keys{{issuer=\"{}\"}} {}",
                Escaped(&s.issuer),
                s.keys
            )?;
        }
        header(
            out,
            "authgate_jwks_last_success_timestamp_seconds",
            "gauge",
            "When a JWKS fetch last succeeded, in seconds since the Unix epoch (0: never).",
        )?;
        for s in &statuses {
            let seconds = s
                .last_success
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0.0, |d| d.as_secs_f64());
            writeln!(
                out,
                "authgate_jwks_last_success_timestamp_seconds{{issuer=\"{}\"}} {seconds}",
                Escaped(&s.issuer)
            )?;
        }
        header(
            out,
            "authgate_build_info",
            "gauge",
            "The running authgate's version, as a label; always 1.",
        )?;
        writeln!(
            out,
            "authgate_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )?;
        Ok(())
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) -> fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} {kind}")
}

/// A label value with `\`, `"` and newlines escaped, as the format requires.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves: HTTP/1.1,
/// at most [`MAX_CONNECTIONS`] at once, the oldest idle one making room for
/// a new one, each given [`HEADER_TIMEOUT`] for its request.
pub(super) async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(Mutex::new(OpenConnections::default()));
    let accept = async {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let (id, slot) = lock(&open).admit();
            tokio::spawn(serve_connection(
                stream,
                metrics.clone(),
                open.clone(),
                id,
                slot,
            ));
        }
    };
    tokio::select! {
        () = accept => {}
        () = shutdown => {}
    }
}

async fn serve_connection(
    stream: TcpStream,
    metrics: Arc<Metrics>,
    open: Arc<Mutex<OpenConnections>>,
    id: u64,
    slot: Arc<Slot>,
) {
    let service = service_fn({
        let slot = slot.clone();
        move |request: http::Request<Incoming>| {
            let answering = Answering::start(&slot);
            let answer = answer(&metrics, &request).map(|text| AnswerBody {
                text: Some(Bytes::from(text)),
                _answering: answering,
            });
            async move { Ok::<_, Infallible>(answer) }
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "metrics: connection ended");
            }
        }
        () = slot.evicted.notified() => {
            tracing::debug!("metrics: closed an idle connection to make room for a new one");
        }
    }
    lock(&open).leave(id);
}

fn lock(open: &Mutex<OpenConnections>) -> std::sync::MutexGuard<'_, OpenConnections> {
    open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The metrics listener's connections, oldest first. Locked when one opens
/// or closes; scrapes never wait on it.
#[derive(Debug, Default)]
struct OpenConnections {
    next_id: u64,
    slots: VecDeque<(u64, Arc<Slot>)>,
}

impl OpenConnections {
    /// A place for a new connection, made by closing the oldest idle one
    /// (or, if every one is being answered, the oldest) when all are taken.
    fn admit(&mut self) -> (u64, Arc<Slot>) {
        if self.slots.len() >= MAX_CONNECTIONS {
            let oldest_idle = self
                .slots
                .iter()
                .position(|(_, slot)| !slot.answering.load(Ordering::SeqCst))
                .unwrap_or(0);
            if let Some((_, slot)) = self.slots.remove(oldest_idle) {
                slot.evicted.notify_one();
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let slot = Arc::new(Slot::default());
        self.slots.push_back((id, slot.clone()));
        (id, slot)
    }

    fn leave(&mut self, id: u64) {
        if let Some(index) = self.slots.iter().position(|(open, _)| *open == id) {
            self.slots.remove(index);
        }
    }
}

/// One connection's place on the metrics listener.
#[derive(Debug, Default)]
struct Slot {
    /// Between a request's arrival and its answer's last byte.
    answering: AtomicBool,
    /// Told to close, to make room for a newer connection.
    evicted: Notify,
}

/// Marks a connection as being answered until its answer is sent or dropped.
#[derive(Debug)]
struct Answering(Arc<Slot>);

impl Answering {
    fn start(slot: &Arc<Slot>) -> Answering {
        slot.answering.store(true, Ordering::SeqCst);
        Answering(slot.clone())
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.answering.store(false, Ordering::SeqCst);
    }
}

/// An answer's text, holding its connection's [`Answering`] mark.
#[derive(Debug)]
struct AnswerBody {
    text: Option<Bytes>,
    _answering: Answering,
}

impl Body for AnswerBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.text.take().map(|text| Ok(Frame::data(text))))
    }

    fn is_end_stream(&self) -> bool {
        self.text.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.text.as_ref().map_or(0, |text| text.len() as u64))
    }
}

fn answer<B>(metrics: &Metrics, request: &http::Request<B>) -> http::Response<String> {
    let plain = |status: StatusCode, body: &str| {
        http::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(body.to_owned())
            .expect("a valid response")
    };
    if request.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n",
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    http::Response::builder()
        .header(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )
        .body(metrics.render())
        .expect("a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_listener_makes_room_by_closing_its_oldest_idle_connection() {
        let mut open = OpenConnections::default();
        let slots: Vec<_> = (0..MAX_CONNECTIONS).map(|_| open.admit().1).collect();
        // The oldest is being answered: the next oldest goes.
        let answering = Answering::start(&slots[0]);
        let (_, newest) = open.admit();
        assert_eq!(open.slots.len(), MAX_CONNECTIONS);
        assert!(evicted(&slots[1]));
        assert!(!evicted(&slots[0]) && !evicted(&slots[2]) && !evicted(&newest));
        // Its answer sent, it is idle again, and the oldest.
        drop(answering);
        open.admit();
        assert!(evicted(&slots[0]));
        // When every one is being answered, the oldest goes all the same.
        let _answering: Vec<_> = open
            .slots
            .iter()
            .map(|(_, s)| Answering::start(s))
            .collect();
        let (oldest, oldest_slot) = open.slots[0].clone();
        open.admit();
        assert!(evicted(&oldest_slot));
        assert!(open.slots.iter().all(|(id, _)| *id != oldest));
    }

    /// Whether `slot` was told to close.
    fn evicted(slot: &Slot) -> bool {
        use futures_util::FutureExt;
        slot.evicted.notified().now_or_never().is_some()
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(Escaped("a\"b\\c\nd").to_string(), "a\\\"b\\\\c\\nd");
        assert_eq!(
            Escaped("https://t.auth0.com/").to_string(),
            "https://t.auth0.com/"
        );
    }
}

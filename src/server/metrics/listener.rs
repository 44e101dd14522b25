//! The metrics listener: `GET /metrics` over HTTP/1.1 on a port of its own,
//! with a bounded set of connections in which a new one takes the place of
//! the oldest idle one, so that idle sockets cannot lock a scraper out.

use std::{
    collections::VecDeque,
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::{Method, StatusCode, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Notify,
};

use super::Metrics;

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

/// Serves `GET /metrics` on `listener` until `shutdown` resolves: HTTP/1.1,
/// at most [`MAX_CONNECTIONS`] at once, the oldest idle one making room for
/// a new one, each given [`HEADER_TIMEOUT`] for its request.
pub(in crate::server) async fn serve(
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
}

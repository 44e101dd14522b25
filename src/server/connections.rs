//! Serving each connection on its own (server/serve.rs), so that one can
//! be closed on its own: tonic's server closes connections gracefully
//! (GOAWAY, then the calls in flight finish) only all at once, when its
//! shutdown future resolves, and has no idle timeout. Here every
//! connection's server has its own shutdown future, which resolves when the
//! connection has had no call open for the idle timeout, when it reaches its
//! maximum age, or when the whole server stops. A connection that was told
//! to close and is still open after the grace period is cut.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use futures_util::{Stream, StreamExt};
use tokio::{sync::watch, task::JoinSet};

use super::{
    Limits,
    incoming::BoundedStream,
    open_calls::{OpenCalls, OpenCallsLayer},
};

/// What tells one connection's server to close it gracefully.
pub(super) type CloseSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How long connections may live, from the server's [`Limits`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Lifetimes {
    idle_timeout: Duration,
    max_age: Option<Duration>,
    grace: Duration,
}

impl Lifetimes {
    pub(super) fn new(limits: &Limits) -> Lifetimes {
        Lifetimes {
            idle_timeout: limits.idle_timeout,
            max_age: limits.max_connection_age,
            grace: limits.max_connection_age_grace,
        }
    }
}

/// Serves every connection of `incoming` until `shutdown` resolves, then
/// stops accepting (the listener closes), closes every connection
/// gracefully and returns once all have closed.
///
/// `serve` serves one connection: with the layer that counts its calls
/// outermost, until the close signal resolves, then gracefully.
pub(super) async fn serve_each<S, F>(
    incoming: impl Stream<Item = BoundedStream>,
    lifetimes: Lifetimes,
    shutdown: impl Future<Output = ()>,
    serve: S,
) where
    S: Fn(BoundedStream, OpenCallsLayer, CloseSignal) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    {
        let mut incoming = std::pin::pin!(incoming);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                stream = incoming.next() => match stream {
                    Some(stream) => {
                        connections.spawn(connection(stream, lifetimes, stopped.clone(), &serve));
                    }
                    None => break,
                },
                // Reaps the connections that have closed.
                Some(_) = connections.join_next() => {}
            }
        }
    }
    // `incoming`, and with it the listener, is gone: no new connections.
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
}

/// One connection, served until it closes, told to close when it is idle,
/// too old or the server stops, and cut if it outlives its grace period.
fn connection<S, F>(
    mut stream: BoundedStream,
    lifetimes: Lifetimes,
    mut stopped: watch::Receiver<bool>,
    serve: &S,
) -> impl Future<Output = ()> + Send + 'static
where
    S: Fn(BoundedStream, OpenCallsLayer, CloseSignal) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let calls = OpenCalls::new();
    let peer = stream.peer();
    let cutoff = stream.cutoff();
    let closed = stream.on_close();
    let (told, told_rx) = tokio::sync::oneshot::channel::<()>();
    let close: CloseSignal = {
        let calls = calls.clone();
        Box::pin(async move {
            let why = tokio::select! {
                () = calls.idle(lifetimes.idle_timeout) => "it has had no call open for the idle timeout",
                () = max_age(&calls, lifetimes.max_age) => "it has reached its maximum age",
                // It has closed: nothing to tell.
                _ = closed => return,
                // The server is stopping; its drain timeout bounds the rest.
                _ = stopped.wait_for(|stop| *stop) => return,
            };
            tracing::debug!(?peer, "closing a connection (GOAWAY): {why}");
            let _ = told.send(());
        })
    };
    let served = serve(stream, OpenCallsLayer::new(calls), close);
    let grace = lifetimes.grace;
    async move {
        let cut = async move {
            if told_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
                tracing::debug!(
                    ?peer,
                    "cutting a connection still open at the end of its grace period"
                );
                cutoff.cut();
            }
            // Serving ends once the connection notices.
            std::future::pending::<()>().await;
        };
        tokio::select! {
            () = served => {}
            () = cut => {}
        }
    }
}

/// Resolves when the connection reaches `max_age`, if it has one.
async fn max_age(calls: &Arc<OpenCalls>, max_age: Option<Duration>) {
    match max_age {
        Some(age) => tokio::time::sleep_until(calls.opened() + age).await,
        None => std::future::pending().await,
    }
}

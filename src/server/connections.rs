//! Serving each connection on its own (server/serve.rs), so that one can
//! be closed on its own: tonic's server closes connections gracefully
//! (GOAWAY, then the calls in flight finish) only all at once, when its
//! shutdown future resolves, and has no idle timeout. Here every
//! connection's server has its own shutdown future, which resolves when the
//! connection has had no call open for the idle timeout, when it reaches its
//! maximum age, or when the whole server stops. A connection that was told
//! to close and is still open after the grace period is cut.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use tokio::{sync::watch, task::JoinSet};

use super::{
    Limits,
    incoming::Incoming,
    open_calls::{OpenCalls, OpenCallsLayer},
    stream::BoundedStream,
};

/// After the server stops taking new connections: how long handshakes the
/// kernel had begun get to finish, and their connections to be accepted
/// and served, before the listener closes. One round trip is enough.
const SETTLE: Duration = Duration::from_millis(100);

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
/// stops accepting, closes every connection gracefully and returns once all
/// have closed.
///
/// Stopping does not reset a connection the kernel has taken: new ones are
/// refused first ([`Incoming::refuse_new`]), those already in the kernel's
/// queue are still accepted, served and closed gracefully like the rest,
/// and only then does the listener close.
///
/// `serve` serves one connection: with the layer that counts its calls
/// outermost, until the close signal resolves, then gracefully.
pub(super) async fn serve_each<S, F>(
    incoming: Incoming,
    lifetimes: Lifetimes,
    shutdown: impl Future<Output = ()>,
    serve: S,
) where
    S: Fn(BoundedStream, OpenCallsLayer, CloseSignal) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            stream = incoming.next() => {
                connections.spawn(connection(stream, lifetimes, stopped.clone(), &serve));
            }
            // Reaps the connections that have closed.
            Some(_) = connections.join_next() => {}
        }
    }
    let refusing = incoming.refuse_new();
    // Every connection open, and every one accepted from now on, is told
    // to close.
    let _ = stop.send(true);
    if refusing {
        let settle = tokio::time::sleep(SETTLE);
        let mut settle = std::pin::pin!(settle);
        let mut settled = false;
        while !settled || incoming.waiting() {
            tokio::select! {
                stream = incoming.next() => {
                    connections.spawn(connection(stream, lifetimes, stopped.clone(), &serve));
                }
                () = &mut settle, if !settled => settled = true,
                // Frees the slots a waiting connection needs.
                Some(_) = connections.join_next() => {}
            }
        }
    }
    // The listener closes: no new connections.
    drop(incoming);
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

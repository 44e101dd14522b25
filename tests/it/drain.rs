//! Draining: on the shutdown signal health turns NOT_SERVING at once while
//! calls are still served; then the listener closes, calls in flight finish,
//! and the shutdown timeout bounds how long they may take. A connection the
//! server's kernel had taken when it stopped is served, not reset: a proxy
//! in front (nginx) sends a call on a new connection as soon as it connects,
//! and does not send a POST again once the connection fails. Each step waits
//! on an event: a health change, a refused connection, the server's end.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use tokio::{io::AsyncReadExt, net::TcpStream};

use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest,
};

use crate::common::{GET_PRIVATE, Options, code, eventually, patience, spawn_app, spawn_app_with};

const SERVING: i32 = 1;
const NOT_SERVING: i32 = 2;

fn list() -> ServerReflectionRequest {
    ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    }
}

#[tokio::test]
async fn draining_says_not_serving_while_calls_still_pass_then_finishes_calls_in_flight() {
    let mut app = spawn_app().await;
    let addr = app.addr;
    let mut health = HealthClient::new(app.channel().await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().status, SERVING);

    // A streaming call that stays open across the whole shutdown.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut reflection = ServerReflectionClient::new(app.channel().await);
    tx.send(list()).await.unwrap();
    let mut responses = reflection
        .server_reflection_info(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    assert!(responses.next().await.unwrap().is_ok());

    app.drain();
    // The change is pushed to watchers at once...
    let changed = tokio::time::timeout(patience(), watch.message())
        .await
        .expect("health changed")
        .unwrap()
        .unwrap();
    assert_eq!(changed.status, NOT_SERVING);
    drop(watch);
    for service in ["", "authgate.v1.PrivateService"] {
        assert_eq!(
            crate::refresh::health_status(&app, service).await,
            Some(NOT_SERVING),
            "{service:?}"
        );
    }
    // Liveness stays SERVING: the process is alive and must not be restarted.
    assert_eq!(
        crate::refresh::health_status(&app, authgate::server::LIVENESS_SERVICE).await,
        Some(SERVING)
    );
    // ...while calls, on new connections too, are still served.
    for _ in 0..3 {
        assert_eq!(code(&app.call(&app.token()).await), Code::Ok);
    }

    app.close();
    let refused = eventually(patience(), || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert!(refused, "still accepting after the drain");
    assert!(
        !app.stopped_within(Duration::ZERO).await,
        "stopped with a call in flight"
    );
    // The call in flight still gets its answers, and the server ends with it.
    tx.send(list()).await.unwrap();
    assert!(responses.next().await.unwrap().is_ok());
    drop(tx);
    assert!(responses.next().await.is_none());
    drop((responses, reflection, health));
    assert!(
        app.stopped_within(patience()).await,
        "the server did not stop once the call ended"
    );
}

#[tokio::test]
async fn the_shutdown_timeout_ends_calls_that_outlive_it() {
    let mut app = spawn_app_with(Options {
        drain: authgate::server::Drain {
            delay: Duration::ZERO,
            timeout: Duration::from_millis(300),
        },
        ..Options::default()
    })
    .await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut reflection = ServerReflectionClient::new(app.channel().await);
    tx.send(list()).await.unwrap();
    let mut responses = reflection
        .server_reflection_info(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    assert!(responses.next().await.unwrap().is_ok());
    app.drain();
    app.close();
    // The stream never ends on its own: only the timeout can end the server.
    assert!(
        app.stopped_within(patience()).await,
        "a call that never ends held the server past its shutdown timeout"
    );
    drop(tx);
}

/// An HTTP/2 connection the h2 crate holds over `tcp`, as a proxy opens one:
/// its preface, SETTINGS and a GetPrivate call sent at once, without
/// waiting for the server, with `token`. The call's gRPC status, or what
/// failed.
async fn call_at_once(tcp: TcpStream, addr: SocketAddr, token: String) -> Result<u32, h2::Error> {
    let (send, connection) = h2::client::handshake(tcp).await?;
    let connection = tokio::spawn(connection);
    let request = http::Request::post(format!("http://{addr}{GET_PRIVATE}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    let mut send = send.ready().await?;
    let (response, mut body) = send.send_request(request, false)?;
    body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)?;
    let response = response.await?;
    let status = |headers: &http::HeaderMap| {
        headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok()?.parse::<u32>().ok())
    };
    if let Some(code) = status(response.headers()) {
        return Ok(code);
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        chunk?;
    }
    let trailers = body.trailers().await?;
    drop(send);
    // The server closes the connection once the call is answered: with a
    // GOAWAY, not a reset (the connection's task would end in an error).
    tokio::time::timeout(patience(), connection)
        .await
        .expect("the server closed the connection")
        .unwrap()?;
    Ok(trailers.as_ref().and_then(status).unwrap_or(2))
}

/// Waits until a new connection to `addr` is refused: the listener has
/// closed.
async fn listener_closed(addr: SocketAddr) -> bool {
    eventually(patience(), || async {
        TcpStream::connect(addr).await.is_err()
    })
    .await
}

#[tokio::test]
async fn a_connection_waiting_in_the_kernels_queue_at_the_stop_is_served_not_reset() {
    let mut app = spawn_app_with(Options {
        limits: authgate::server::Limits {
            max_connections: 1,
            ..authgate::server::Limits::default()
        },
        ..Options::default()
    })
    .await;
    // The one slot is taken: the server is serving this connection...
    let held = app.channel().await;
    let mut health = HealthClient::new(held);
    assert!(health.check(HealthCheckRequest::default()).await.is_ok());
    // ...so the next one waits in the kernel's accept queue, its call sent.
    let waiting = TcpStream::connect(app.addr).await.unwrap();
    let call = tokio::spawn(call_at_once(waiting, app.addr, app.token()));
    // The stop: the held connection is told to close, frees its slot, and
    // the waiting one is accepted and answered before the listener closes.
    app.drain();
    app.close();
    let answered = tokio::time::timeout(patience(), call)
        .await
        .expect("the waiting call was never answered")
        .unwrap();
    assert_eq!(
        answered.map_err(|e| e.to_string()),
        Ok(0),
        "the call waiting in the queue was not answered OK"
    );
    drop(health);
    assert!(
        listener_closed(app.addr).await,
        "still accepting after the stop"
    );
    assert!(
        app.stopped_within(patience()).await,
        "the server did not stop"
    );
}

#[tokio::test]
async fn a_connection_told_to_close_before_its_first_bytes_still_answers_them() {
    let mut app = spawn_app_with(Options {
        limits: authgate::server::Limits {
            max_connections_per_peer: 1,
            ..authgate::server::Limits::default()
        },
        ..Options::default()
    })
    .await;
    // A connection that has sent nothing yet...
    let silent = TcpStream::connect(app.addr).await.unwrap();
    // ...and has been accepted: it holds 127.0.0.1's one connection, so the
    // next one, behind it in the queue, is closed as soon as it is taken.
    let mut probe = TcpStream::connect(app.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(patience(), probe.read(&mut buf))
        .await
        .expect("the probe was kept open");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // The server stops: the connection is told to close before it has said
    // a word, and new connections are refused...
    app.drain();
    app.close();
    assert!(
        listener_closed(app.addr).await,
        "still accepting after the stop"
    );
    // ...and what it sends now, a call, is still answered.
    assert_eq!(
        call_at_once(silent, app.addr, app.token())
            .await
            .map_err(|e| e.to_string()),
        Ok(0),
        "the call on the connection told to close was not answered OK"
    );
    assert!(
        app.stopped_within(patience()).await,
        "the server did not stop"
    );
}

#[tokio::test]
async fn bytes_a_peer_sends_after_the_server_closes_draw_no_reset() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    // An HTTP/1.1 request that asks the server to close after answering.
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(patience(), tcp.read_to_end(&mut answer))
        .await
        .expect("the server closes after answering")
        .unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 "), "{answer:?}");
    // The server has closed its side (the FIN read above). What the peer
    // sends now is read and dropped while the server lingers: a socket
    // closed with bytes arriving answers with a TCP reset instead, and the
    // writes below then fail (the reset lands within a round trip on
    // loopback; 64 writes a millisecond apart leave it time to).
    for n in 0..64 {
        let wrote = tcp.write_all(&[b'x'; 1024]).await;
        assert!(wrote.is_ok(), "write {n} after the close: {wrote:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut rest = [0u8; 16];
    let read = tcp.read(&mut rest).await;
    assert!(matches!(read, Ok(0)), "reset while lingering: {read:?}");
}

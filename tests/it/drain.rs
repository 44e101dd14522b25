//! Draining: on the shutdown signal health turns NOT_SERVING at once while
//! calls are still served; then the listener closes, calls in flight finish,
//! and the shutdown timeout bounds how long they may take. Each step waits on
//! an event: a health change, a refused connection, the server's end.

use std::time::Duration;

use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest,
};

use crate::common::{Options, code, eventually, patience, spawn_app, spawn_app_with};

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

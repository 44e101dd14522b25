//! How long connections and calls may live when a client would keep them
//! forever: idle connections closed with GOAWAY, old ones too and then cut
//! after their grace, a peer's connections capped, public streams ended at
//! their maximum age, and idle sockets on the metrics port pushed out by a
//! scrape. Each test waits on events: a GOAWAY, a closed connection, a
//! stream's end, a call served.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use tokio::{io::AsyncReadExt, net::TcpStream, task::JoinHandle};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest,
};

use crate::common::{Options, TestApp, code, eventually, patience, spawn_app, spawn_app_with};

const SERVING: i32 = 1;

async fn app_with(limits: impl FnOnce(&mut authgate::server::Limits)) -> TestApp {
    let mut options = Options::default();
    limits(&mut options.limits);
    spawn_app_with(options).await
}

/// A raw HTTP/2 connection, as an attacker holds one: its handshake done,
/// its pings answered (by the h2 crate's connection task), no stream open
/// unless the test opens one.
struct RawConnection {
    send: h2::client::SendRequest<Bytes>,
    /// The connection's task: it ends when the server closes the connection.
    task: JoinHandle<Result<(), h2::Error>>,
}

impl RawConnection {
    /// Connects, and returns once the server has answered a ping: it has
    /// taken the connection into a slot and is serving it.
    async fn open(addr: SocketAddr) -> RawConnection {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (send, mut connection) = h2::client::handshake(tcp).await.unwrap();
        let mut ping_pong = connection.ping_pong().expect("the first ping_pong");
        let task = tokio::spawn(connection);
        tokio::time::timeout(patience(), ping_pong.ping(h2::Ping::opaque()))
            .await
            .expect("the server answers a ping")
            .expect("the server answers a ping");
        RawConnection { send, task }
    }

    /// Waits for the server to close the connection.
    async fn closed(&mut self) {
        tokio::time::timeout(patience(), &mut self.task)
            .await
            .expect("the server never closed the connection")
            .unwrap()
            .ok();
    }

    /// The GOAWAY the server sent, once the connection has closed: `true`
    /// for a graceful one (NO_ERROR), `false` if it closed without one.
    async fn said_goaway(self) -> bool {
        match self.send.ready().await {
            Ok(_) => panic!("the connection still takes streams"),
            Err(error) => error.is_go_away() && error.reason() == Some(h2::Reason::NO_ERROR),
        }
    }

    /// Opens a health `Watch` of the server's overall health, and returns
    /// once its first answer has arrived. The stream stays open while the
    /// returned parts are held.
    async fn watch(&mut self) -> (h2::RecvStream, h2::SendStream<Bytes>) {
        let request = http::Request::post("http://authgate/grpc.health.v1.Health/Watch")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (response, mut body) = self.send.send_request(request, false).unwrap();
        // An empty HealthCheckRequest: uncompressed, 0 bytes long, and the
        // request's end.
        body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)
            .unwrap();
        let mut stream = tokio::time::timeout(patience(), response)
            .await
            .expect("the watch is answered")
            .unwrap()
            .into_body();
        let first = tokio::time::timeout(patience(), stream.data())
            .await
            .expect("the watch sends its first status");
        assert!(first.is_some_and(|data| data.is_ok()));
        (stream, body)
    }
}

#[tokio::test]
async fn idle_connections_are_closed_with_goaway_and_free_their_slots() {
    let app = app_with(|l| {
        l.max_connections = 4;
        l.idle_timeout = Duration::from_secs(1);
    })
    .await;
    // Every slot is held by a connection that answers pings and calls nothing...
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(RawConnection::open(app.addr).await);
    }
    // ...until the idle timeout closes them: a caller is then served.
    assert_eq!(code(&app.call(&app.token()).await), Code::Ok);
    for mut connection in idle {
        connection.closed().await;
        assert!(connection.said_goaway().await, "closed without GOAWAY");
    }
}

#[tokio::test]
async fn a_connection_with_a_call_open_is_not_idle() {
    let app = app_with(|l| l.idle_timeout = Duration::from_secs(1)).await;
    let mut watching = RawConnection::open(app.addr).await;
    let watch = watching.watch().await;
    // A younger connection with no call goes idle and is closed...
    let mut younger = RawConnection::open(app.addr).await;
    younger.closed().await;
    assert!(younger.said_goaway().await);
    // ...while the older one, with its call open, still takes calls.
    assert!(!watching.task.is_finished(), "closed with a call open");
    let send = watching.send.clone().ready().await;
    assert!(send.is_ok(), "told to go away with a call open");
    // Once its call ends, it goes idle in turn.
    drop(watch);
    watching.closed().await;
    assert!(watching.said_goaway().await, "closed without GOAWAY");
}

#[tokio::test]
async fn an_old_connection_gets_goaway_then_is_cut_after_its_grace() {
    let app = app_with(|l| {
        l.max_connection_age = Some(Duration::from_secs(1));
        l.max_connection_age_grace = Duration::from_secs(1);
    })
    .await;
    let mut old = RawConnection::open(app.addr).await;
    let (mut watch, _request) = old.watch().await;
    // At its age the server says GOAWAY, and the call open goes on...
    let told = eventually(patience(), || {
        let send = old.send.clone();
        async move {
            match send.ready().await {
                Ok(_) => false,
                Err(error) => error.is_go_away(),
            }
        }
    })
    .await;
    assert!(told, "no GOAWAY at the maximum age");
    assert!(!old.task.is_finished(), "cut with no grace");
    // ...until the grace ends and the connection is cut, call and all.
    let ended = tokio::time::timeout(patience(), async {
        while let Some(Ok(_)) = watch.data().await {}
    })
    .await;
    assert!(ended.is_ok(), "the call outlived the grace");
    old.closed().await;
    // New connections are served.
    assert_eq!(code(&app.call(&app.token()).await), Code::Ok);
}

#[tokio::test]
async fn a_peer_past_its_connection_limit_is_refused_while_its_first_is_served() {
    let app = app_with(|l| l.max_connections_per_peer = 1).await;
    let mut first = app.client().await;
    assert!(first.get_private(authorized(&app)).await.is_ok());
    // A second connection from 127.0.0.1 is closed as soon as it is taken,
    // before the server says anything.
    let mut second = TcpStream::connect(app.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(patience(), second.read(&mut buf))
        .await
        .expect("the second connection was kept open");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // The first is still served.
    assert!(first.get_private(authorized(&app)).await.is_ok());
    // Once it closes, the peer may connect again.
    drop(first);
    let served = eventually(patience(), || async {
        app.call(&app.token()).await.is_ok()
    })
    .await;
    assert!(served, "the peer's closed connection still counts");
}

fn authorized(app: &TestApp) -> tonic::Request<authgate::pb::GetPrivateRequest> {
    let mut request = tonic::Request::new(authgate::pb::GetPrivateRequest {});
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", app.token()).parse().unwrap(),
    );
    request
}

#[tokio::test]
async fn public_streams_end_at_their_maximum_age_and_clients_call_again() {
    let app = app_with(|l| l.public_stream_max_age = Duration::from_secs(1)).await;
    let health = HealthClient::new(app.channel().await);
    let watch = || {
        let mut health = health.clone();
        async move {
            let request = HealthCheckRequest {
                service: String::new(),
            };
            health.watch(request).await.unwrap().into_inner()
        }
    };
    let mut watching = watch().await;
    assert_eq!(watching.message().await.unwrap().unwrap().status, SERVING);
    let ended = tokio::time::timeout(patience(), watching.message())
        .await
        .expect("the watch went on past its maximum age")
        .unwrap_err();
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    assert_eq!(ended.message(), "stream reached its maximum age");
    // What a health client does next, on the same channel.
    let mut again = watch().await;
    assert_eq!(again.message().await.unwrap().unwrap().status, SERVING);

    // Reflection's stream too, with its requests still open.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut reflection = ServerReflectionClient::new(app.channel().await);
    tx.send(ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    })
    .await
    .unwrap();
    let mut responses = reflection
        .server_reflection_info(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    assert!(responses.next().await.unwrap().is_ok());
    let ended = tokio::time::timeout(patience(), responses.next())
        .await
        .expect("the reflection stream went on past its maximum age")
        .expect("it ends with a status")
        .unwrap_err();
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    drop((tx, health));
}

#[tokio::test]
async fn idle_sockets_on_the_metrics_port_do_not_lock_scrapes_out() {
    let app = spawn_app().await;
    let addr = app.metrics_addr.expect("metrics are on");
    // Sockets that connect and say nothing, many more than the listener
    // holds at once, all opened before the scrape.
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // Prometheus gives a scrape 10 s by default; two in a row are answered
    // well within that.
    for _ in 0..2 {
        let text = tokio::time::timeout(Duration::from_secs(5), app.scrape())
            .await
            .expect("a scrape waited behind idle sockets");
        assert!(text.contains("authgate_build_info"));
    }
    drop(idle);
}

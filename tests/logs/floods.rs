//! Log lines a caller without a token can cause are bounded as refusals
//! are: a flood of paths the proxy refuses, or of calls to an upstream that
//! is down, writes at most `REFUSALS_LOGGED_PER_SECOND` lines of each a
//! second, however many requests come.

use std::time::{Duration, Instant};

use authgate::{
    IssuerConfig, REFUSALS_LOGGED_PER_SECOND,
    proxy::{Proxy, UpstreamConfig},
    server::{Application, ServerConfig},
};
use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};

use crate::common::{Options, held_address, patience, spawn_issuer};
use crate::redaction::with_logs_captured;

/// Requests of each kind: three times the budget of one second.
const FLOOD: usize = 3 * REFUSALS_LOGGED_PER_SECOND as usize;

#[test]
fn callers_without_a_token_cannot_flood_the_log() {
    let (seconds, logs) = with_logs_captured(async {
        let issuer = spawn_issuer().await;
        let (_held, down) = held_address();
        let mut config = ServerConfig::listening("127.0.0.1:0".parse().unwrap());
        config.issuers = vec![
            IssuerConfig::discovered(
                issuer.url(),
                vec![authgate::issuer::DevIssuerConfig::for_tests().audience],
                Duration::from_secs(30),
            )
            .unwrap(),
        ];
        config.refresh = Options::default().refresh;
        let proxy = Proxy::new(UpstreamConfig::new(&format!("http://{down}")).unwrap()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app = proxy
            .install(Application::builder(config))
            .await
            .with_listener(listener)
            .unwrap();
        let (addr, keys) = (app.local_addr(), app.keys());
        let server = tokio::spawn(app.run_until(std::future::pending()));
        tokio::time::timeout(patience(), keys.wait_loaded())
            .await
            .expect("the key set loads");

        let (mut client, connection) =
            h2::client::handshake(TcpStream::connect(addr).await.unwrap())
                .await
                .unwrap();
        tokio::spawn(connection);
        let started = Instant::now();
        for _ in 0..FLOOD {
            let request = http::Request::get(format!("http://{addr}/grpc.health.v1.Health/../x"))
                .body(())
                .unwrap();
            client = client.ready().await.unwrap();
            let (answer, _) = client.send_request(request, true).unwrap();
            assert_eq!(answer.await.unwrap().status(), 400);

            let request = http::Request::post(format!("http://{addr}/grpc.health.v1.Health/Check"))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(())
                .unwrap();
            client = client.ready().await.unwrap();
            let (answer, mut send) = client.send_request(request, false).unwrap();
            send.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)
                .unwrap();
            assert_eq!(answer.await.unwrap().headers()["grpc-status"], "14");
        }
        let seconds = started.elapsed().as_secs() as usize;
        server.abort();
        seconds
    });
    // Each second the flood spanned may log its budget.
    let budget = REFUSALS_LOGGED_PER_SECOND as usize * (seconds + 2);
    let count = |text: &str| logs.lines().filter(|l| l.contains(text)).count();
    let refused = count("request path refused");
    let failed = count("upstream unavailable");
    assert!(
        refused > 0 && failed > 0,
        "logged, up to the budget:\n{logs}"
    );
    assert!(
        refused <= budget.min(FLOOD - 1),
        "{refused} lines for {FLOOD} refused paths in {seconds} s"
    );
    assert!(
        failed <= budget.min(FLOOD - 1),
        "{failed} lines for {FLOOD} calls to an upstream that is down in {seconds} s"
    );
}

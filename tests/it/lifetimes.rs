//! How long connections and calls may live when a client would keep them
//! forever: idle sockets on the metrics port pushed out by a scrape. Each
//! test waits on events.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::common::spawn_app;

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

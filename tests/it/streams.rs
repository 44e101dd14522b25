//! Streams that outlive their token: the layer ends them with
//! UNAUTHENTICATED when the token's `exp` plus the leeway passes.

use std::time::Duration;

use authgate::{
    keys::{JwksSource, KeyStore, RefreshConfig, Refresher},
    {Gate, ScopePolicy, ValidationConfig, Validator},
};
use tonic::{Code, Request, Status, transport::Server};

use crate::common::{manual_clock, now, spawn_issuer};

#[path = "../../examples/streaming/ticker.rs"]
pub(crate) mod ticker;

use ticker::{
    Ticker,
    pb::{WatchRequest, ticker_client::TickerClient, ticker_server::TickerServer},
};

/// Watches the ticker with a token whose `exp` is `lifetime` seconds after
/// its `iat`, and returns the ticks received and how the stream ended. The
/// gate's clock stands still at `iat`, so the call is let in however long
/// the test took to get there; the stream then has `lifetime` seconds of
/// the runtime's clock, which is what the layer's timer counts.
async fn watch_with_token_lifetime(lifetime: i64) -> (u64, Status) {
    let (_, clock) = manual_clock!(now());
    let issuer = spawn_issuer().await;
    let keys = KeyStore::new();
    let source = JwksSource::Url(issuer.jwks_url().parse().unwrap());
    tokio::spawn(
        Refresher::new(keys.clone(), source, RefreshConfig::default())
            .unwrap()
            .run(),
    );
    keys.wait_loaded().await;
    let gate = Gate::new(
        Validator::new(ValidationConfig {
            issuer: issuer.url().into(),
            audiences: vec![issuer.audience().into()],
            leeway: Duration::ZERO,
            require_typ: None,
            ..Default::default()
        }),
        keys,
        ScopePolicy::default(),
    )
    .with_clock(clock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        Server::builder()
            .layer(gate.layer())
            .add_service(TickerServer::new(Ticker))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    let mut claims = issuer.claims("streamer", &[]);
    claims["iat"] = clock().into();
    claims["exp"] = (clock() + lifetime).into();
    let token = issuer.mint(&claims);
    let mut client = TickerClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut request = Request::new(WatchRequest { interval_ms: 20 });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let mut stream = client.watch(request).await.unwrap().into_inner();
    let mut ticks = 0;
    // Only a hang guard: a stream that goes on past its token's expiry runs
    // into it and fails the test.
    let ended = tokio::time::timeout(crate::common::patience(), async {
        loop {
            match stream.message().await {
                Ok(Some(tick)) => {
                    assert_eq!(tick.subject, "streamer");
                    ticks += 1;
                }
                Ok(None) => return Status::ok("the stream ended by itself"),
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("the stream went on after its token expired");
    (ticks, ended)
}

#[tokio::test]
async fn a_stream_ends_when_its_token_expires() {
    let (ticks, ended) = watch_with_token_lifetime(2).await;
    assert!(ticks > 0, "the stream ran before the token expired");
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
    assert_eq!(ended.message(), "token has expired");
    assert_eq!(
        ended
            .metadata()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some(
            r#"Bearer realm="authgate", error="invalid_token", error_description="token has expired""#
        )
    );
}

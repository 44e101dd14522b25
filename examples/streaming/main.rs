//! A guarded server-streaming method, and a stream that ends with its token.
//!
//! The gate checks a call once, when it starts. A stream opened with a token
//! that lives three seconds would otherwise tick on for as long as the
//! client likes; `GateLayer` ends it with `UNAUTHENTICATED` (`token has
//! expired`) when the token's `exp` plus the leeway passes.
//!
//! ```sh
//! cargo run --example streaming
//! ```
//!
//! It starts a dev issuer and a `Ticker` server on loopback, then watches
//! the ticker with a token that expires in three seconds.

use std::time::Duration;

use authgate::{
    issuer::{DevIssuer, DevIssuerConfig},
    keys::{Algorithm, JwksSource, KeyStore, RefreshConfig, Refresher},
    {Gate, ScopePolicy, ValidationConfig, Validator},
};
use tonic::{Request, transport::Server};

mod ticker;

use ticker::{
    Ticker,
    pb::{WatchRequest, ticker_client::TickerClient, ticker_server::TickerServer},
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = DevIssuerConfig::for_tests();
    config.algorithm = Algorithm::ES256;
    let issuer = DevIssuer::start(config).await?;

    // The gate, exactly as in front of any tonic service.
    let keys = KeyStore::new();
    let source = JwksSource::Url(issuer.jwks_url().parse()?);
    tokio::spawn(Refresher::new(keys.clone(), source, RefreshConfig::default())?.run());
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
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(
        Server::builder()
            .layer(gate.layer())
            .add_service(TickerServer::new(Ticker))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    // A token that expires three seconds from now.
    let mut claims = issuer.claims("streaming-example", &[]);
    claims["exp"] = (claims["iat"].as_u64().unwrap_or(0) + 3).into();
    let token = issuer.mint(&claims);

    let mut client = TickerClient::connect(format!("http://{addr}")).await?;
    let mut request = Request::new(WatchRequest { interval_ms: 500 });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let mut ticks = client.watch(request).await?.into_inner();
    loop {
        match ticks.message().await {
            Ok(Some(tick)) => println!("tick {} for {}", tick.n, tick.subject),
            Ok(None) => {
                println!("the stream ended by itself");
                break;
            }
            Err(status) => {
                println!("stream ended: {:?}: {}", status.code(), status.message());
                break;
            }
        }
    }
    Ok(())
}

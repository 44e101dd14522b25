//! Guarding a tonic service with authgate: the README's library snippet,
//! compiled by `cargo test` so that it cannot drift.
//!
//! ```sh
//! AUTHGATE_ISSUER=https://tenant.auth0.com/ AUTHGATE_AUDIENCE=https://api.example.com \
//!   cargo run --example guard
//! ```

use std::time::Duration;

use authgate::gate::{AuthInterceptor, ScopePolicy, ValidationConfig, Validator};
use authgate::keys::{JwksSource, KeyStore, RefreshConfig, Refresher};

// Stands in for your own service: authgate's demo `PrivateService`.
use authgate::pb::private_service_server::PrivateServiceServer;
use authgate::server::service::PrivateService;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = std::env::var("AUTHGATE_ISSUER")?; // e.g. https://tenant.auth0.com/
    let audience = std::env::var("AUTHGATE_AUDIENCE")?; // your API identifier
    let my_service = PrivateServiceServer::new(PrivateService);

    // README:begin
    // The issuer's keys, fetched and refreshed in the background; the
    // request path only reads them.
    let keys = KeyStore::new();
    let source = JwksSource::Discovery {
        issuer: issuer.clone(),
        url: issuer.parse()?,
    };
    tokio::spawn(Refresher::new(keys.clone(), source, RefreshConfig::default())?.run());

    let gate = AuthInterceptor::new(
        Validator::new(ValidationConfig {
            issuer,
            audiences: vec![audience],
            leeway: Duration::from_secs(30),
            require_typ: None,
        }),
        keys,
        ScopePolicy::new(["/authgate.v1.PrivateService/GetPrivate=read:private".parse()?]),
    );
    tonic::transport::Server::builder()
        .layer(gate.layer()) // every method guarded; health and reflection open
        .add_service(my_service)
        .serve("127.0.0.1:50051".parse()?)
        .await?;
    // In a handler, request.extensions().get::<authgate::gate::Principal>()
    // says who called.
    // README:end
    Ok(())
}

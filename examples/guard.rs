//! The gate in front of a plain tonic server, without authgate's server
//! assembly: the library snippet the README shows (between the markers),
//! compiled by `cargo test` so that it cannot drift.
//!
//! ```sh
//! AUTHGATE_ISSUER=https://tenant.auth0.com/ AUTHGATE_AUDIENCE=https://api.example.com \
//!   cargo run --example guard
//! ```

use authgate::Gate;
use tonic::transport::Server;

// Stands in for your own service: authgate's demo `PrivateService`.
use authgate::pb::private_service_server::PrivateServiceServer;
use authgate::server::PrivateService;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = std::env::var("AUTHGATE_ISSUER")?; // e.g. https://tenant.auth0.com/
    let audience = std::env::var("AUTHGATE_AUDIENCE")?; // your API identifier
    let my_service = PrivateServiceServer::new(PrivateService);

    // doc:begin
    let gate = Gate::from_oidc(&issuer, &audience)?; // keys fetched and refreshed in the background
    Server::builder()
        .layer(gate.layer()) // every method guarded; health and reflection open
        .add_service(my_service)
        .serve("127.0.0.1:50051".parse()?)
        .await?;
    // doc:end
    // The request path only reads the keys. In a handler,
    // request.extensions().get::<authgate::Principal>() says who called.
    Ok(())
}

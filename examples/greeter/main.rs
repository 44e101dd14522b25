//! Your own tonic service behind authgate: the library guide's example (the
//! crate's rustdoc, `src/lib.rs`, quotes it between the markers), compiled
//! by `cargo test` so that it cannot drift (tests/it/greeter.rs
//! runs the same assembly against a dev issuer).
//!
//! With `authgate dev --require-scope /greeter.v1.Greeter/SayHello=greet:hello`
//! running in another terminal (its issuer on 127.0.0.1:50052 then grants
//! the dev client `greet:hello`):
//!
//! ```sh
//! AUTHGATE_ISSUER=http://127.0.0.1:50052/ AUTHGATE_AUDIENCE=https://authgate.dev/api \
//!   cargo run --example greeter
//! ```
//!
//! then call it on 127.0.0.1:50060 with a token from
//! `authgate token --scope greet:hello`.

// doc:begin
use authgate::Gate;
use authgate::server::{Application, ServerConfig};

mod greeter; // your service: examples/greeter/greeter.rs
use greeter::MyGreeter;
use greeter::pb::{FILE_DESCRIPTOR_SET, greeter_server::GreeterServer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gate = Gate::builder()
        .issuer(std::env::var("AUTHGATE_ISSUER")?) // e.g. https://tenant.auth0.com/
        .audience(std::env::var("AUTHGATE_AUDIENCE")?) // your API identifier
        .require_scope("/greeter.v1.Greeter/SayHello=greet:hello")
        .build()?; // fetches and refreshes the issuer's keys in the background

    // Health, reflection, limits, metrics and draining around your service;
    // every method needs a valid token (deny by default), health and
    // reflection are open.
    Application::builder(ServerConfig::listening("127.0.0.1:50060".parse()?))
        .gate(gate)
        .add_service(GreeterServer::new(MyGreeter))
        .descriptor_set(FILE_DESCRIPTOR_SET) // reflection: grpcurl needs no .proto
        .serve(authgate::server::shutdown_signal()) // until SIGTERM or Ctrl-C
        .await?;
    // In a handler, request.extensions().get::<authgate::Principal>() says
    // who called.
    Ok(())
}
// doc:end

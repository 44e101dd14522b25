//! A service calling `GetPrivate` on another authgate service, machine to
//! machine: a client-credentials `TokenSource` and the `BearerInterceptor`.
//!
//! With `authgate dev` running, paste the `export` lines it prints, then:
//!
//! ```sh
//! cargo run --example service_to_service
//! ```
//!
//! Every call carries a bearer token; the issuer is asked for one once, and
//! again only shortly before it expires, in the background.

use std::time::Duration;

use authgate::{
    client::{BearerInterceptor, Secret, TokenEndpoint, TokenSource, TokenSourceConfig},
    pb::{GetPrivateRequest, private_service_client::PrivateServiceClient},
};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name} (authgate dev prints it)"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("AUTHGATE_ADDR").unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let mut config = TokenSourceConfig::new(
        TokenEndpoint::Issuer(env("AUTHGATE_ISSUER")?.parse()?),
        env("AUTHGATE_CLIENT_ID")?,
        Secret::new(env("AUTHGATE_CLIENT_SECRET")?),
    );
    config.audience = Some(env("AUTHGATE_AUDIENCE")?);

    // One source per client and audience, shared by every call.
    let tokens = TokenSource::new(config)?;
    // The first token is fetched up front; from then on the interceptor
    // reads the current one without waiting.
    tokens.token().await?;

    let channel = tonic::transport::Endpoint::from_shared(addr)?
        .timeout(Duration::from_secs(5))
        .connect()
        .await?;
    let mut private =
        PrivateServiceClient::with_interceptor(channel, BearerInterceptor::new(tokens));
    for call in 1..=5 {
        let response = private
            .get_private(GetPrivateRequest {})
            .await?
            .into_inner();
        println!(
            "call {call}: {} (subject {}, scopes {:?})",
            response.message, response.subject, response.scopes
        );
    }
    Ok(())
}

//! The load harness behind `benches/load.sh` and `benches/soak.sh`.
//!
//! - `fixture`: a dev issuer on a fixed address, and token files for it.
//! - `probe`: one call; prints the response's size on the wire, so h2load's
//!   byte counts can be turned into a count of calls that really answered OK.
//! - `run`: the HTTP/2 load generator, with one token or a pool of them.
//! - `wait`: polls health until the server is SERVING.

use std::{path::PathBuf, sync::Arc, time::Duration};

use authgate::{
    issuer::{DevIssuer, DevIssuerConfig},
    pb::{GetPrivateRequest, private_service_client::PrivateServiceClient},
};
use authgate_bench::{
    SCOPE,
    loadgen::{Call, EMPTY_MESSAGE, LoadConfig, run},
};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use prost::Message;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a dev issuer and write token files into DIR.
    Fixture {
        #[arg(long, default_value = "127.0.0.1:50099")]
        listen: std::net::SocketAddr,
        #[arg(long)]
        dir: PathBuf,
        /// How many distinct tokens to write to tokens.txt.
        #[arg(long, default_value_t = 5000)]
        tokens: usize,
    },
    /// Call GetPrivate once with the token in FILE; print the response's bytes on the wire.
    Probe {
        #[arg(long)]
        addr: String,
        #[arg(long)]
        token_file: PathBuf,
    },
    /// Drive load and print what answered.
    Run {
        #[arg(long)]
        addr: std::net::SocketAddr,
        #[arg(long, default_value = "/authgate.v1.PrivateService/GetPrivate")]
        path: String,
        /// `authorization: Bearer <line>` for each line, in turn; none without.
        #[arg(long)]
        tokens: Option<PathBuf>,
        #[arg(long, default_value_t = 8)]
        connections: usize,
        #[arg(long, default_value_t = 16)]
        streams: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 2)]
        warmup: u64,
        /// Send each token inside an ext_authz `CheckRequest`, as Envoy
        /// asks `authgate authz` (`--path /envoy.service.auth.v3.Authorization/Check`),
        /// instead of in `authorization`.
        #[arg(long)]
        check: bool,
    },
    /// Wait until health answers SERVING.
    Wait {
        #[arg(long)]
        addr: String,
    },
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    // One thread for the generator, as h2load runs with -t 1: the rest of the
    // machine is the server's.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Fixture { listen, dir, tokens } => fixture(listen, dir, tokens).await,
            Command::Probe { addr, token_file } => probe(addr, token_file).await,
            Command::Run {
                addr,
                path,
                tokens,
                connections,
                streams,
                seconds,
                warmup,
                check,
            } => {
                let calls = match tokens {
                    Some(file) => std::fs::read_to_string(file)?
                        .lines()
                        .filter(|l| !l.is_empty())
                        .map(|t| match check {
                            true => Call {
                                authorization: None,
                                expect: None,
                                class: "check",
                                body: Some(check_request(t)),
                            },
                            false => Call::bearer(t, None, "token"),
                        })
                        .collect(),
                    None => Vec::new(),
                };
                let report = run(LoadConfig {
                    addr,
                    path,
                    body: Bytes::from_static(&EMPTY_MESSAGE),
                    calls: Arc::new(calls),
                    connections,
                    streams,
                    duration: Duration::from_secs(seconds),
                    warmup: Duration::from_secs(warmup),
                })
                .await?;
                println!("{}", report.summary());
                println!(
                    "RESULT calls_per_second={:.0} p50_us={} p99_us={} ok={} refused={} transport_errors={}",
                    report.calls_per_second(),
                    report.quantile_us(0.5),
                    report.quantile_us(0.99),
                    report.ok,
                    report.refused.values().sum::<u64>(),
                    report.transport_errors
                );
                Ok(())
            }
            Command::Wait { addr } => wait(addr).await,
        }
    })
}

async fn fixture(
    listen: std::net::SocketAddr,
    dir: PathBuf,
    count: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let issuer = DevIssuer::start(DevIssuerConfig {
        listen,
        ..DevIssuerConfig::for_tests()
    })
    .await?;
    std::fs::create_dir_all(&dir)?;
    let mint = |n: usize| {
        let mut claims = issuer.claims(&format!("service-{n}@clients"), &[SCOPE]);
        claims["azp"] = format!("service-{n}").into();
        claims["gty"] = "client-credentials".into();
        issuer.mint(&claims)
    };
    std::fs::write(dir.join("token.txt"), mint(0) + "\n")?;
    let tokens: Vec<String> = (1..=count).map(mint).collect();
    std::fs::write(dir.join("tokens.txt"), tokens.join("\n") + "\n")?;
    std::fs::write(dir.join("issuer.txt"), format!("{}\n", issuer.url()))?;
    std::fs::write(dir.join("audience.txt"), format!("{}\n", issuer.audience()))?;
    println!(
        "fixture ready: issuer {} with {count} tokens in {}",
        issuer.url(),
        dir.display()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}

async fn probe(addr: String, token_file: PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let token = std::fs::read_to_string(token_file)?.trim().to_owned();
    let mut client = PrivateServiceClient::connect(addr).await?;
    let mut request = tonic::Request::new(GetPrivateRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let response = client.get_private(request).await?.into_inner();
    // The 5-byte frame header and the message: DATA bytes per OK call.
    println!("{}", 5 + response.encoded_len());
    Ok(())
}

async fn wait(addr: String) -> Result<(), Box<dyn std::error::Error>> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(addr.clone())?
            .connect()
            .await
            && let Ok(response) = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
            && response.into_inner().status == 1
        {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err("the server is not SERVING after 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A `CheckRequest` as Envoy fills it for `GET /items` with `token`,
/// length-prefixed as a gRPC message.
fn check_request(token: &str) -> Bytes {
    use envoy_types::pb::envoy::service::auth::v3::{
        AttributeContext, CheckRequest, attribute_context,
    };
    let http = attribute_context::HttpRequest {
        method: "GET".into(),
        path: "/items".into(),
        host: "api.example.com".into(),
        scheme: "https".into(),
        headers: [("authorization".to_owned(), format!("Bearer {token}"))].into(),
        ..Default::default()
    };
    let request = CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(attribute_context::Request {
                http: Some(http),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let message = request.encode_to_vec();
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    Bytes::from(framed)
}

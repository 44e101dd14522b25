//! The pieces of `benches/proxy.sh`, which compares gRPC reverse proxies in
//! front of one upstream:
//!
//! - `upstream`: the upstream every row calls, a minimal h2c tonic server
//!   answering `authgate.v1.PrivateService/GetPrivate` without any
//!   authentication (and gRPC health, which `authgate proxy` forwards);
//! - `mint`: RS256 tokens signed with an RSA key (PKCS#8 DER, made by
//!   openssl), and the JWKS that publishes its public half;
//! - `call`: one GetPrivate call with a token from a file; prints the gRPC
//!   code it ended with (exit status 0 only for OK);
//! - `idle`: opens N HTTP/2 connections, makes one call on each, then holds
//!   them open and idle, for measuring what an idle connection costs a proxy.
//!
//! Load itself is `load run` (benches/src/loadgen.rs), as in load.sh.

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use authgate::pb::{
    GetPrivateRequest, GetPrivateResponse,
    private_service_server::{PrivateService, PrivateServiceServer},
};
use aws_lc_rs::{rand::SystemRandom, signature};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use http::Request;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve GetPrivate and health over h2c, without authentication.
    Upstream {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Write token.txt, tokens.txt (N distinct tokens), the refused samples
    /// (expired.txt, wrong-audience.txt, wrong-issuer.txt, bad-signature.txt)
    /// and jwks.json into DIR.
    Mint {
        /// The RSA private key, PKCS#8 DER.
        #[arg(long)]
        key: PathBuf,
        #[arg(long, default_value = "bench-key")]
        kid: String,
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        audience: String,
        #[arg(long, default_value_t = 5000)]
        tokens: usize,
        /// Lifetime of the tokens.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        #[arg(long)]
        dir: PathBuf,
    },
    /// One GetPrivate call with the token in FILE (none without); prints the
    /// gRPC code's name.
    Call {
        #[arg(long)]
        addr: String,
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Open N connections, one call on each, then hold them idle: prints
    /// `READY <n>` and waits for its standard input to close.
    Idle {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        #[arg(long)]
        token_file: PathBuf,
        #[arg(long, default_value = "/authgate.v1.PrivateService/GetPrivate")]
        path: String,
    },
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    match cli.command {
        // The upstream takes the machine's threads, as any server would.
        Command::Upstream { listen } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(upstream(listen)),
        Command::Mint {
            key,
            kid,
            issuer,
            audience,
            tokens,
            ttl,
            dir,
        } => mint(&key, &kid, &issuer, &audience, tokens, ttl, &dir),
        Command::Call { addr, token_file } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let code = runtime.block_on(call(addr, token_file))?;
            println!("{code:?}");
            std::process::exit(if code == tonic::Code::Ok { 0 } else { 1 });
        }
        Command::Idle {
            addr,
            connections,
            token_file,
            path,
        } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(idle(addr, connections, token_file, path)),
    }
}

struct Upstream;

#[tonic::async_trait]
impl PrivateService for Upstream {
    async fn get_private(
        &self,
        request: tonic::Request<GetPrivateRequest>,
    ) -> Result<tonic::Response<GetPrivateResponse>, tonic::Status> {
        // What `authgate proxy` tells the upstream, when it does.
        let subject = request
            .metadata()
            .get("x-authgate-subject")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(tonic::Response::new(GetPrivateResponse {
            message: "This is private".into(),
            subject,
            scopes: Vec::new(),
        }))
    }
}

async fn upstream(listen: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<PrivateServiceServer<Upstream>>()
        .await;
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    println!("upstream serving on {listen}");
    tonic::transport::Server::builder()
        .add_service(health)
        .add_service(PrivateServiceServer::new(Upstream))
        .serve_with_shutdown(listen, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn mint(
    key: &std::path::Path,
    kid: &str,
    issuer: &str,
    audience: &str,
    count: usize,
    ttl: u64,
    dir: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let pair = signature::RsaKeyPair::from_pkcs8(&std::fs::read(key)?)
        .map_err(|e| format!("{}: {e}", key.display()))?;
    let other = signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)?;
    let rng = SystemRandom::new();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let header = URL_SAFE_NO_PAD
        .encode(serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": kid}).to_string());
    let sign = |pair: &signature::RsaKeyPair, claims: serde_json::Value| {
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut sig = vec![0; pair.public_modulus_len()];
        pair.sign(
            &signature::RSA_PKCS1_SHA256,
            &rng,
            input.as_bytes(),
            &mut sig,
        )
        .expect("an RSA signature");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    };
    // Shaped like an Auth0 client-credentials token; `aud` is one string,
    // which HAProxy's jwt_payload_query compares whole.
    let claims = |n: usize, iss: &str, aud: &str, exp: u64| {
        serde_json::json!({
            "iss": iss,
            "sub": format!("service-{n}@clients"),
            "aud": aud,
            "iat": now,
            "exp": exp,
            "azp": format!("service-{n}"),
            "scope": "read:private",
            "gty": "client-credentials",
        })
    };
    let good = |n: usize| sign(&pair, claims(n, issuer, audience, now + ttl));
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("token.txt"), good(0) + "\n")?;
    let tokens: Vec<String> = (1..=count).map(good).collect();
    std::fs::write(dir.join("tokens.txt"), tokens.join("\n") + "\n")?;
    let samples = [
        (
            "expired.txt",
            sign(&pair, claims(0, issuer, audience, now - 3600)),
        ),
        (
            "wrong-audience.txt",
            sign(&pair, claims(0, issuer, "https://other.example", now + ttl)),
        ),
        (
            "wrong-issuer.txt",
            sign(
                &pair,
                claims(0, "https://other.example/", audience, now + ttl),
            ),
        ),
        (
            "bad-signature.txt",
            sign(&other, claims(0, issuer, audience, now + ttl)),
        ),
    ];
    for (name, token) in samples {
        std::fs::write(dir.join(name), token + "\n")?;
    }
    let public = signature::KeyPair::public_key(&pair);
    let jwks = serde_json::json!({"keys": [{
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
        "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
    }]});
    std::fs::write(dir.join("jwks.json"), jwks.to_string())?;
    println!(
        "minted {} tokens for {issuer} ({audience}) into {}",
        count + 1,
        dir.display()
    );
    Ok(())
}

async fn call(
    addr: String,
    token_file: Option<PathBuf>,
) -> Result<tonic::Code, Box<dyn std::error::Error>> {
    use authgate::pb::private_service_client::PrivateServiceClient;
    let channel = tonic::transport::Endpoint::from_shared(addr)?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await?;
    let mut client = PrivateServiceClient::new(channel);
    let mut request = tonic::Request::new(GetPrivateRequest {});
    if let Some(file) = token_file {
        let token = std::fs::read_to_string(file)?.trim().to_owned();
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
    }
    Ok(match client.get_private(request).await {
        Ok(_) => tonic::Code::Ok,
        Err(status) => {
            eprintln!("{:?}: {}", status.code(), status.message());
            status.code()
        }
    })
}

async fn idle(
    addr: SocketAddr,
    connections: usize,
    token_file: PathBuf,
    path: String,
) -> Result<(), Box<dyn std::error::Error>> {
    let token = std::fs::read_to_string(token_file)?.trim().to_owned();
    let uri = format!("http://{addr}{path}");
    let mut held = Vec::with_capacity(connections);
    let mut failed = 0usize;
    for _ in 0..connections {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (client, connection) = h2::client::handshake(stream).await?;
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut client = client.ready().await?;
        let request = Request::post(&uri)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", format!("Bearer {token}"))
            .body(())?;
        let (response, mut send) = client.send_request(request, false)?;
        send.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)?;
        let response = response.await?;
        let mut ok = response.headers().get("grpc-status").map(|v| v == "0");
        let mut body = response.into_body();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        if let Some(trailers) = body.trailers().await? {
            ok = ok.or(trailers.get("grpc-status").map(|v| v == "0"));
        }
        if ok != Some(true) {
            failed += 1;
        }
        held.push((client, task));
    }
    println!("READY {} connections, {failed} calls not OK", held.len());
    // Hold until told: the caller closes our standard input.
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    })
    .await?;
    drop(held);
    Ok(())
}

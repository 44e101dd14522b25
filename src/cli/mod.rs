//! The command line: `authgate serve`, `proxy`, `dev`, `token` and `call`, their
//! flags and environment, parsed and checked here once and handed to the
//! library as typed configuration.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    client::{
        ClientAuth, Secret, TokenEndpoint, TokenError, TokenSource, TokenSourceConfig, file_cache,
    },
    error::{StartupError, error_chain},
    gate::{ScopePolicy, ScopeRule},
    issuer::{DevClient, DevIssuer, DevIssuerConfig, DevSigningKey, random_secret},
    keys::Algorithm,
    keys::{JwksSource, KeyStore, RefreshConfig, Refresher},
    net,
    server::{
        Application, CorsOrigins, Drain, Limits, ServerConfig, TlsFiles, shutdown_signal,
        stop_signals,
    },
};

mod client;
mod config;
mod dev;
mod proxy;
mod serve;
mod settings;
mod values;

pub use client::{CallArgs, ClientArgs, TokenArgs};
pub use dev::{DEV_METRICS_LISTEN, DEV_SCOPE_RULE, DevArgs};
pub use proxy::{ProtocolArg, ProxyArgs};
pub use serve::ServeArgs;
pub use settings::{IssuerSettings, Settings};
pub use values::{Dur, Parsed};

/// JWT authentication in front of a gRPC service.
#[derive(Debug, Parser)]
#[command(name = "authgate", version, about, long_about = None)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        env = "AUTHGATE_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines with key=value fields.
    Text,
    /// One JSON object per line.
    Json,
}

/// authgate's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the guarded gRPC service, validating tokens from an issuer such as Auth0.
    Serve(ServeArgs),
    /// Guard a service in any language: forward each request the gate lets
    /// in to --upstream, with the caller's identity in x-authgate-* headers.
    Proxy(ProxyArgs),
    /// Run a local issuer and the server wired to it: no account anywhere.
    Dev(DevArgs),
    /// Print an access token from the client-credentials grant.
    Token(TokenArgs),
    /// Call GetPrivate and print the response as JSON.
    Call(CallArgs),
}

/// A duration as every flag and config-file key takes it, at most
/// [`Limits::MAX_DURATION`] (100 years): longer ones overflow the deadlines
/// computed from them. Each setting may have a tighter bound of its own.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 90s, 10m, 1h: {e}"))?;
    if duration > Limits::MAX_DURATION {
        return Err(format!(
            "`{s}` must be at most 100 years, the longest duration authgate takes"
        ));
    }
    Ok(duration)
}

/// `IP:PORT`, or `HOST:PORT` resolved once at start (an IPv4 address when
/// the name has one, so `localhost` means 127.0.0.1 as clients expect).
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    let addrs: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|e| format!("`{s}` is not an address to listen on (IP:PORT or HOST:PORT): {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("`{s}` names no address to listen on"))
}

/// Secrets and tokens from the command line, kept out of `Debug`.
fn parse_secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    Algorithm::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
        format!("`{s}` is not one of {}", names.join(", "))
    })
}

/// Why a command failed, and so how it exits.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// The server could not start (exit 2 for settings, 1 otherwise).
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// No token (exit 1).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A setting of `token` or `call` is missing or wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Connecting to the server failed (exit 1).
    #[error("cannot connect to {addr}: {detail}")]
    Connect { addr: String, detail: String },
    /// The call answered with an error (exit 64 + its gRPC code, as grpcurl does).
    #[error("ERROR:\n  Code: {:?}\n  Message: {}", .0.code(), .0.message())]
    Call(tonic::Status),
}

impl Failure {
    fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Startup(
                StartupError::Config(_) | StartupError::Url(_) | StartupError::Tls(_),
            )
            | Failure::Usage(_) => ExitCode::from(2),
            Failure::Call(status) => ExitCode::from(64 + status.code() as u8),
            _ => ExitCode::FAILURE,
        }
    }
}

/// Runs a parsed command line to completion and says how it ended.
pub fn run(cli: Cli) -> ExitCode {
    let quiet = matches!(cli.command, Command::Token(_) | Command::Call(_));
    // Held to the end: dropping it flushes the logs still queued.
    let _logs = init_tracing(cli.log_format, if quiet { "warn" } else { "info" });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), Failure> = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => Ok(serve::serve(args).await?),
            Command::Proxy(args) => Ok(proxy::proxy(args).await?),
            Command::Dev(args) => Ok(dev::dev(args).await?),
            Command::Token(args) => client::token(args).await,
            Command::Call(args) => client::call(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure @ Failure::Call(_)) => {
            eprintln!("{failure}");
            failure.exit_code()
        }
        Err(failure) => {
            eprintln!("error: {}", error_chain(&failure));
            failure.exit_code()
        }
    }
}

/// Logs go to stderr through a background thread: a slow or blocked log
/// sink drops lines instead of stalling the threads that serve calls.
fn init_tracing(
    format: LogFormat,
    default_level: &str,
) -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    guard
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_written_in_the_contract() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("ten minutes").is_err());
        assert_eq!(parse_duration("100y"), Ok(Limits::MAX_DURATION));
        for long in ["101y", "500000000000y", "99999999999999999999s"] {
            let error = parse_duration(long).unwrap_err();
            assert!(error.contains(&format!("`{long}`")), "{error}");
        }
        assert!(
            parse_duration("101y")
                .unwrap_err()
                .contains("at most 100 years")
        );
    }
}

//! The command line: `authgate serve`, `proxy`, `authz`, `dev`, `token` and `call`, their
//! flags and environment, parsed and checked here once and handed to the
//! library as typed configuration.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    client::{ClientAuth, Secret, TokenEndpoint, TokenSource, TokenSourceConfig, file_cache},
    error::{StartupError, error_chain},
    gate::{ScopePolicy, ScopeRule},
    issuer::{DevClient, DevIssuer, DevIssuerConfig, DevSigningKey},
    keys::Algorithm,
    keys::{JwksSource, KeyStore, RefreshConfig, Refresher},
    net,
    server::{
        Application, CorsOrigins, Drain, Limits, ServerConfig, TlsFiles, shutdown_signal,
        stop_signals,
    },
};

mod authz;
mod banner;
mod client;
mod config;
mod dev;
mod failure;
mod flags;
mod proxy;
mod serve;
mod settings;
mod values;

pub use authz::AuthzArgs;
pub use client::{CallArgs, ClientArgs, TokenArgs};
pub use dev::{DEV_METRICS_LISTEN, DEV_SCOPE_RULE, DevArgs};
pub use proxy::{ProtocolArg, ProxyArgs};
pub use serve::ServeArgs;
pub use settings::{IssuerSettings, Settings};
pub use values::{Dur, Parsed};

use failure::Failure;

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
    /// Answer a proxy you already run (Envoy ext_authz Check, nginx
    /// auth_request, Traefik forwardAuth, Caddy forward_auth) whether a
    /// request may pass, and who made it, in x-authgate-* headers.
    Authz(AuthzArgs),
    /// Run a local issuer and the server wired to it: no account anywhere.
    Dev(DevArgs),
    /// Print an access token from the client-credentials grant.
    Token(TokenArgs),
    /// Call GetPrivate and print the response as JSON.
    Call(CallArgs),
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
            Command::Authz(args) => Ok(authz::authz(args).await?),
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
            eprintln!("error: {}", flags::worded(&error_chain(&failure)));
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

//! How a command ends: why it failed, and the exit code that says so.

use std::process::ExitCode;

use crate::{client::TokenError, error::StartupError};

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
    pub(super) fn exit_code(&self) -> ExitCode {
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

//! TLS: the certificate chain and key read and parsed before serving.

use std::{path::PathBuf, time::Duration};

use tonic::transport::{Identity, Server, ServerTlsConfig};

use super::TlsFiles;
use crate::error::StartupError;

pub(super) fn load_tls(
    files: &TlsFiles,
    handshake_timeout: Duration,
) -> Result<ServerTlsConfig, StartupError> {
    let read = |path: &PathBuf| {
        std::fs::read(path)
            .map_err(|e| StartupError::Tls(format!("cannot read {}: {e}", path.display())))
    };
    let identity = Identity::from_pem(read(&files.cert)?, read(&files.key)?);
    let config = ServerTlsConfig::new()
        .identity(identity)
        .timeout(handshake_timeout);
    // Parse the certificate and key now, so a bad file stops start-up
    // instead of the first handshake.
    Server::builder()
        .tls_config(config.clone())
        .map_err(|e| StartupError::Tls(e.to_string()))?;
    Ok(config)
}

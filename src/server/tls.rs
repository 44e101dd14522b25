//! TLS: the certificate chain and key read and parsed before serving, into
//! the rustls configuration every connection's handshake uses (ALPN `h2`
//! and `http/1.1`, on the aws-lc provider the gate verifies tokens with).

use std::{io::Cursor, path::PathBuf, sync::Arc};

use tokio_rustls::rustls::{
    ServerConfig,
    crypto::aws_lc_rs,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};

use crate::error::StartupError;

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

pub(super) fn load_tls(files: &TlsFiles) -> Result<Arc<ServerConfig>, StartupError> {
    let read = |path: &PathBuf| {
        std::fs::read(path)
            .map_err(|e| StartupError::Tls(format!("cannot read {}: {e}", path.display())))
    };
    let bad = |what: &str, path: &PathBuf, why: String| {
        StartupError::Tls(format!("{what} {}: {why}", path.display()))
    };
    let pem = read(&files.cert)?;
    let chain = CertificateDer::pem_reader_iter(&mut Cursor::new(&pem))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            bad(
                "cannot parse the certificate in",
                &files.cert,
                e.to_string(),
            )
        })?;
    if chain.is_empty() {
        return Err(bad(
            "no certificate in",
            &files.cert,
            "expected a PEM CERTIFICATE block".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_reader(&mut Cursor::new(read(&files.key)?))
        .map_err(|e| bad("cannot parse the private key in", &files.key, e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| StartupError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| StartupError::Tls(format!("the certificate and key do not serve: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

//! [`Dial`]: a connection to the upstream, over TCP and, for an `https://`
//! upstream, TLS (tokio-rustls on aws-lc, its certificate checked against
//! `--upstream-ca` or the system's roots), within the connect timeout.
//! Both clients use it: the HTTP/2 one for its one connection, the HTTP/1.1
//! one as its pool's connector.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use http::uri::Authority;
use hyper_util::{
    client::legacy::connect::{Connected, Connection},
    rt::TokioIo,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_rustls::{
    TlsConnector,
    client::TlsStream,
    rustls::{
        ClientConfig, RootCertStore,
        crypto::aws_lc_rs,
        pki_types::{CertificateDer, ServerName, pem::PemObject},
    },
};

use super::UpstreamConfig;
use crate::StartupError;

/// How to reach the upstream. Cheap to clone.
#[derive(Clone)]
pub(super) struct Dial {
    shared: Arc<Shared>,
}

struct Shared {
    /// `host:port`, as dialled.
    address: Box<str>,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    timeout: Duration,
}

impl Dial {
    /// Dials `upstream`, offering `alpn` over TLS.
    pub(super) fn new(upstream: &UpstreamConfig, alpn: &[u8]) -> Result<Dial, StartupError> {
        let authority = upstream.url.authority().cloned().ok_or_else(|| {
            StartupError::Config(format!("upstream {}: no host", upstream.display()))
        })?;
        let tls = match upstream.is_tls() {
            true => Some(tls(upstream, &authority, alpn)?),
            false => None,
        };
        let port = authority
            .port_u16()
            .unwrap_or(if tls.is_some() { 443 } else { 80 });
        Ok(Dial {
            shared: Arc::new(Shared {
                address: format!("{}:{port}", authority.host()).into(),
                tls,
                timeout: upstream.connect_timeout,
            }),
        })
    }

    /// A new connection, TLS when the upstream is `https://`.
    pub(super) async fn connect(&self) -> io::Result<Upstream> {
        let shared = &self.shared;
        let opened = async {
            let tcp = TcpStream::connect(&*shared.address).await?;
            tcp.set_nodelay(true)?;
            Ok(match &shared.tls {
                Some((connector, name)) => {
                    Upstream::Tls(Box::new(connector.connect(name.clone(), tcp).await?))
                }
                None => Upstream::Plain(tcp),
            })
        };
        match tokio::time::timeout(shared.timeout, opened).await {
            Ok(opened) => opened,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "connecting to {} took more than {:?}",
                    shared.address, shared.timeout
                ),
            )),
        }
    }
}

/// As hyper-util's pool asks for a connection: the URI is ignored, every
/// connection goes to the upstream.
impl tower_service::Service<http::Uri> for Dial {
    type Response = TokioIo<Upstream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<Upstream>>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let dial = self.clone();
        Box::pin(async move { dial.connect().await.map(TokioIo::new) })
    }
}

/// A connection to the upstream.
pub(super) enum Upstream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for Upstream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Upstream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Upstream::Tls(tls) => Pin::new(tls).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upstream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Upstream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Upstream::Tls(tls) => Pin::new(tls).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Upstream::Tls(tls) => Pin::new(tls).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Upstream::Tls(tls) => Pin::new(tls).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Upstream::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Upstream::Tls(tls) => Pin::new(tls).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Upstream::Plain(tcp) => tcp.is_write_vectored(),
            Upstream::Tls(tls) => tls.is_write_vectored(),
        }
    }
}

/// TLS to an `https://` upstream: its certificate checked against
/// `--upstream-ca` or the system's roots, for its host name; ALPN `alpn`.
fn tls(
    upstream: &UpstreamConfig,
    authority: &Authority,
    alpn: &[u8],
) -> Result<(TlsConnector, ServerName<'static>), StartupError> {
    let bad = |why: String| StartupError::Tls(format!("upstream {}: {why}", upstream.display()));
    let mut roots = RootCertStore::empty();
    match &upstream.ca_pem {
        Some(pem) => {
            let certificates = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("cannot parse the CA certificate: {e}")))?;
            if certificates.is_empty() {
                return Err(bad(
                    "no CA certificate: expected a PEM CERTIFICATE block".into()
                ));
            }
            for certificate in certificates {
                roots
                    .add(certificate)
                    .map_err(|e| bad(format!("the CA certificate is not usable: {e}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(bad("no system root certificates; give --upstream-ca".into()));
            }
        }
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let name = ServerName::try_from(host.to_owned()).map_err(|e| {
        bad(format!(
            "`{host}` is not a name to check a certificate for: {e}"
        ))
    })?;
    Ok((TlsConnector::from(Arc::new(config)), name))
}

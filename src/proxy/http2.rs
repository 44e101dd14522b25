//! [`Http2Upstream`]: one HTTP/2 connection to the upstream, opened by the
//! first call and again by the first call after it closes; every forwarded
//! call is a stream on it.
//!
//! Our own rather than tonic's `Channel`, which sets every request's
//! `:authority` to the upstream's (so `--preserve-host` could not reach an
//! HTTP/2 upstream) and sends each call through a queue to a worker task.
//! Here a call takes the live connection from an [`ArcSwapOption`] (no lock)
//! and sends on it; only opening a connection is serialised, so an upstream
//! that is down gets one attempt at a time, and the calls that waited on a
//! failed attempt fail with it rather than each trying in turn.

use std::{sync::Arc, time::Duration};

use arc_swap::ArcSwapOption;
use http::uri::{Authority, Scheme};
use hyper::{body::Incoming, client::conn::http2::SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::{net::TcpStream, sync::Mutex, time::Instant};
use tokio_rustls::{
    TlsConnector,
    rustls::{
        ClientConfig, RootCertStore,
        crypto::aws_lc_rs,
        pki_types::{CertificateDer, ServerName, pem::PemObject},
    },
};
use tonic::body::Body;

use super::UpstreamConfig;
use crate::{StartupError, error::error_chain};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The HTTP/2 client of one upstream. Cheap to clone: clones share the
/// connection.
#[derive(Clone)]
pub(super) struct Http2Upstream {
    shared: Arc<Shared>,
}

struct Shared {
    /// `host:port`, as dialled.
    address: Box<str>,
    scheme: Scheme,
    authority: Authority,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    connect_timeout: Duration,
    live: ArcSwapOption<SendRequest<Body>>,
    /// Held while a connection is opened; holds when and how the last
    /// attempt failed.
    opening: Mutex<Option<(Instant, Arc<str>)>>,
}

impl Http2Upstream {
    /// A client of `upstream`; connects on the first call.
    pub(super) fn new(upstream: &UpstreamConfig) -> Result<Http2Upstream, StartupError> {
        let url = &upstream.url;
        let authority = url.authority().cloned().ok_or_else(|| {
            StartupError::Config(format!("upstream {}: no host", upstream.display()))
        })?;
        let tls = match upstream.is_tls() {
            true => Some(tls(upstream, &authority)?),
            false => None,
        };
        let port = authority
            .port_u16()
            .unwrap_or(if tls.is_some() { 443 } else { 80 });
        Ok(Http2Upstream {
            shared: Arc::new(Shared {
                address: format!("{}:{port}", authority.host()).into(),
                scheme: url.scheme().cloned().unwrap_or(Scheme::HTTP),
                authority,
                tls,
                connect_timeout: upstream.connect_timeout,
                live: ArcSwapOption::empty(),
                opening: Mutex::new(None),
            }),
        })
    }

    /// Sends `request` (its path; the scheme is the upstream's, the
    /// authority `authority` or else the upstream's) as a stream on the
    /// connection, opening one when there is none.
    pub(super) async fn send(
        &self,
        mut request: http::Request<Body>,
        authority: Option<Authority>,
    ) -> Result<http::Response<Incoming>, BoxError> {
        let shared = &self.shared;
        let mut uri = std::mem::take(request.uri_mut()).into_parts();
        uri.scheme = Some(shared.scheme.clone());
        uri.authority = Some(authority.unwrap_or_else(|| shared.authority.clone()));
        if uri.path_and_query.is_none() {
            uri.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        *request.uri_mut() = http::Uri::from_parts(uri)?;
        *request.version_mut() = http::Version::HTTP_2;
        // A connection that closed between the check and the send gives the
        // request back unsent: once more, on a new connection.
        let mut sender = self.sender().await?;
        match sender.try_send_request(request).await {
            Ok(response) => Ok(response),
            Err(mut failed) => match failed.take_message() {
                Some(request) => Ok(self.sender().await?.send_request(request).await?),
                None => Err(failed.into_error().into()),
            },
        }
    }

    /// The live connection, or a new one.
    async fn sender(&self) -> Result<SendRequest<Body>, BoxError> {
        let shared = &self.shared;
        if let Some(live) = live(&shared.live) {
            return Ok(live);
        }
        let asked = Instant::now();
        let mut last_failure = shared.opening.lock().await;
        if let Some(live) = live(&shared.live) {
            return Ok(live);
        }
        if let Some((at, why)) = &*last_failure
            && *at >= asked
        {
            // An attempt made while this call waited has just failed.
            return Err(why.to_string().into());
        }
        match self.connect().await {
            Ok(sender) => {
                shared.live.store(Some(Arc::new(sender.clone())));
                *last_failure = None;
                Ok(sender)
            }
            Err(error) => {
                let why: Arc<str> = error_chain(&*error).into();
                *last_failure = Some((Instant::now(), why));
                Err(error)
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<Body>, BoxError> {
        let shared = &self.shared;
        let opened = async {
            let tcp = TcpStream::connect(&*shared.address).await?;
            tcp.set_nodelay(true)?;
            let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
            builder
                .timer(TokioTimer::new())
                .keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(10));
            match &shared.tls {
                Some((connector, name)) => {
                    let tls = connector.connect(name.clone(), tcp).await?;
                    let (sender, connection) = builder.handshake(TokioIo::new(tls)).await?;
                    tokio::spawn(connection);
                    Ok::<_, BoxError>(sender)
                }
                None => {
                    let (sender, connection) = builder.handshake(TokioIo::new(tcp)).await?;
                    tokio::spawn(connection);
                    Ok(sender)
                }
            }
        };
        match tokio::time::timeout(shared.connect_timeout, opened).await {
            Ok(opened) => opened,
            Err(_) => Err(format!(
                "connecting to {} took more than {:?}",
                shared.address, shared.connect_timeout
            )
            .into()),
        }
    }
}

/// The connection in `live`, unless it has closed.
fn live(live: &ArcSwapOption<SendRequest<Body>>) -> Option<SendRequest<Body>> {
    live.load()
        .as_deref()
        .filter(|sender| !sender.is_closed())
        .cloned()
}

/// TLS to an `https://` upstream: its certificate checked against
/// `--upstream-ca` or the system's roots, for its host name; ALPN `h2`.
fn tls(
    upstream: &UpstreamConfig,
    authority: &Authority,
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
    config.alpn_protocols = vec![b"h2".to_vec()];
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

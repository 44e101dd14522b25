//! `authgate proxy`: the server assembly in front of a service written in
//! any language. Every request the gate lets in is forwarded to the
//! upstream as it came, streams in both directions, with who called in
//! `x-authgate-*` headers; health and reflection are the upstream's.
//!
//! ```no_run
//! # use authgate::{proxy::{Proxy, UpstreamConfig}, server::{Application, ServerConfig}};
//! # async fn run(config: ServerConfig) -> Result<(), authgate::StartupError> {
//! let proxy = Proxy::new(UpstreamConfig::new("http://127.0.0.1:50052")?)?;
//! proxy
//!     .install(Application::builder(config))
//!     .await
//!     .serve(authgate::server::shutdown_signal())
//!     .await
//! # }
//! ```
//!
//! The parts: [`UpstreamConfig`] says where and how; [`Forward`] is the
//! tower service that forwards (over one HTTP/2 connection of its own,
//! `http2`, or hyper's pooled HTTP/1.1 client); `identity` writes the headers; `path`
//! refuses paths the upstream may read as another; `describe` asks the
//! upstream's reflection which methods it has, for the metrics.

use std::time::Duration;

use crate::{StartupError, server::ApplicationBuilder};

mod describe;
mod dial;
mod forward;
mod forwarded;
mod hop_by_hop;
mod http1;
mod http2;
pub(crate) mod identity;
mod trailers;
mod upstream;

pub use forward::Forward;
pub use forwarded::Cidr;
pub use identity::{CLAIMS_HEADER, IDENTITY_HEADERS, ISSUER_HEADER, SCOPES_HEADER, SUBJECT_HEADER};
pub use upstream::{DEFAULT_CONNECT_TIMEOUT, UpstreamConfig, UpstreamProtocol};

/// How long start-up waits for the upstream's reflection before serving
/// without its method names (calls to them are then counted as `unknown`).
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(3);

/// A configured proxy: the forwarding service, ready to be installed in a
/// server.
#[derive(Debug, Clone)]
pub struct Proxy {
    forward: Forward,
}

impl Proxy {
    /// A proxy to `upstream`. Nothing connects yet: the first call does, and
    /// each call after a failure tries again.
    pub fn new(upstream: UpstreamConfig) -> Result<Proxy, StartupError> {
        Ok(Proxy {
            forward: Forward::new(upstream)?,
        })
    }

    /// The forwarding service, for a server assembled by hand.
    pub fn forward(&self) -> Forward {
        self.forward.clone()
    }

    /// The upstream's services and methods as an encoded
    /// `FileDescriptorSet`, from its reflection (v1, else v1alpha), or why
    /// not; gives up after `within`.
    pub async fn describe(&self, within: Duration) -> Result<Vec<u8>, String> {
        match tokio::time::timeout(within, describe::describe(&self.forward)).await {
            Ok(described) => described,
            Err(_) => Err(format!(
                "no answer from its reflection within {}s",
                within.as_secs()
            )),
        }
    }

    /// Makes `app` forward to the upstream: [`ApplicationBuilder::forward_to`],
    /// with the methods the upstream's reflection lists named in the
    /// metrics when it answers within 3 seconds (a warning when it does not:
    /// the proxy serves anyway).
    pub async fn install(self, app: ApplicationBuilder) -> ApplicationBuilder {
        let app = match self.describe(DESCRIBE_TIMEOUT).await {
            Ok(set) => app.metrics_descriptor_set(set),
            Err(why) => {
                tracing::warn!(
                    upstream = %self.forward.upstream(),
                    "the upstream's methods are unknown ({why}); metrics count its calls \
                     as `unknown` but for those the scope rules and the public paths name"
                );
                app
            }
        };
        app.forward_to(self.forward)
    }
}

//! Server assembly: health, reflection, TLS, limits, metrics and draining
//! around any tonic services, behind the gate, on one port that answers
//! gRPC, gRPC-Web and plain HTTP (with CORS for the origins allowed). It
//! binds first (so port 0 works), then serves until a shutdown future
//! resolves.
//!
//! ```no_run
//! # use authgate::{Gate, server::{Application, ServerConfig}};
//! # async fn run(my_service: authgate::pb::private_service_server::PrivateServiceServer<authgate::server::PrivateService>) -> Result<(), authgate::StartupError> {
//! let gate = Gate::from_oidc("https://tenant.auth0.com/", "https://api.example.com")?;
//! Application::builder(ServerConfig::default())
//!     .gate(gate)
//!     .add_service(my_service)
//!     .serve(authgate::server::shutdown_signal())
//!     .await
//! # }
//! ```

mod application;
mod builder;
mod config;
mod connections;
mod decider;
mod fallback;
mod first_bytes;
mod health;
mod http;
mod incoming;
mod metrics;
mod open_calls;
mod peers;
mod rules;
mod serve;
mod service;
mod signals;
mod stack;
mod stream;
mod timeout;
mod tls;
mod web;

pub use application::Application;
pub use builder::ApplicationBuilder;
pub use config::{Drain, Limits, ServerConfig};
pub use health::LIVENESS_SERVICE;
#[cfg(feature = "proxy")]
pub(crate) use http::detail_response;
use http::{HttpGate, HttpRoutes};
#[cfg(feature = "authz")]
pub(crate) use http::{refusal_parts, refusal_response};
pub use metrics::{GrpcMetrics, GrpcMetricsLayer};
#[cfg(feature = "proxy")]
pub(crate) use serve::ArrivedOverTls;
pub use service::{GET_PRIVATE_METHOD, PRIVATE_MESSAGE, PrivateService};
pub use signals::{shutdown_signal, stop_signals};
pub use tls::TlsFiles;
pub(crate) use web::CorsOrigins;
#[cfg(feature = "proxy")]
pub(crate) use web::is_grpc;
use web::{OnePort, OnePortLayer};
#[cfg(feature = "authz")]
pub(crate) use {
    decider::{BuildDecider, Decider},
    fallback::fallback,
};

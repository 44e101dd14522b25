//! authgate: bearer-JWT authentication for gRPC services on tonic.
//!
//! A call reaches a guarded service only with a valid bearer JWT from an
//! OAuth 2.0 / OpenID Connect issuer such as Auth0: signature, algorithm,
//! issuer, audience, expiry and per-method scopes, checked against the
//! issuer's JWKS, which a background refresher keeps fresh so that the
//! request path never waits on the network.
//!
//! The gate in front of a tonic server, in one line (this is
//! `examples/guard.rs`, which the README quotes):
//!
#![doc = concat!("```no_run\n", include_str!("../examples/guard.rs"), "```")]
//!
//! The parts:
//!
//! - [`Gate`], built by [`Gate::builder`] or [`Gate::from_oidc`]: the
//!   request path, as a tower layer ([`GateLayer`]) or a tonic interceptor;
//!   what it lets in carries a [`Principal`]; scope rules are a
//!   [`ScopePolicy`]. Every refusal is an [`AuthError`], mapped to a gRPC
//!   status in one place.
//! - [`keys`]: the issuer's JWKS parsed key by key into a [`keys::KeySet`],
//!   the [`keys::KeyStore`] the request path reads with one atomic load,
//!   and the background [`keys::Refresher`].
//! - `server` (feature `server`): health, reflection, TLS, limits, metrics
//!   and draining around your services, and the demo service.
//! - `proxy` (feature `proxy`): the same server in front of an upstream
//!   in any language, forwarding what the gate lets in, with the caller's
//!   identity in `x-authgate-*` headers (`authgate proxy`).
//! - `client` (feature `client`): a client-credentials token source and the
//!   interceptor that attaches its token.
//! - `issuer` (feature `dev-issuer`): a local OIDC issuer for `authgate dev`
//!   and tests.
//!
//! The default features build all of it and the `authgate` command; with
//! `default-features = false` a library user gets the gate alone.

#![cfg_attr(docsrs, feature(doc_auto_cfg))]
#![deny(missing_docs)]
#![deny(unreachable_pub)]
#![warn(missing_debug_implementations)]

mod error;
mod gate;
pub mod keys;
mod net;
mod util;

#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "dev-issuer")]
pub mod issuer;
#[cfg(feature = "proxy")]
pub mod proxy;
#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "server")]
/// Code generated from `proto/authgate/v1/private.proto`.
#[allow(missing_docs, unreachable_pub, missing_debug_implementations)]
pub mod pb {
    tonic::include_proto!("authgate.v1");

    /// The encoded descriptor set that reflection serves.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/authgate_descriptor.bin"));
}

pub use error::{AuthError, FetchError, StartupError, UrlError};
pub use gate::bearer::bearer_token;
pub use gate::{
    ACCEPTED_TYPS, Clock, DEFAULT_AUDIENCE_CLAIM, DEFAULT_LEEWAY, DEFAULT_SCOPE_CLAIMS,
    DEFAULT_TOKEN_CACHE_ENTRIES, Gate, GateBuilder, GateFuture, GateLayer, GateService, GateStats,
    IssuerConfig, MAX_SCOPE_CLAIMS, MAX_TOKEN_BYTES, MAX_TOKEN_CACHE_ENTRIES, PUBLIC_SERVICES,
    Principal, REFUSALS_LOGGED_PER_SECOND, Refusal, ScopePolicy, ScopeRule, TrustedIssuer,
    ValidationConfig, Validator, Verified, system_clock,
};

/// Internals the integration tests, the fuzz targets and the benchmarks
/// reach into; not part of the API and not covered by semver.
#[doc(hidden)]
pub mod test_util {
    pub use crate::gate::cache::TokenCache;
    pub use crate::gate::validate::claimed_issuer;
}

/// The gate's old name, before 0.2.0.
#[deprecated(since = "0.2.0", note = "renamed to `Gate`")]
pub type AuthInterceptor = Gate;
/// [`GateLayer`]'s old name, before 0.2.0.
#[deprecated(since = "0.2.0", note = "renamed to `GateLayer`")]
pub type AuthLayer = GateLayer;
/// [`GateService`]'s old name, before 0.2.0.
#[deprecated(since = "0.2.0", note = "renamed to `GateService`")]
pub type AuthService<S> = GateService<S>;
/// [`GateFuture`]'s old name, before 0.2.0.
#[deprecated(since = "0.2.0", note = "renamed to `GateFuture`")]
pub type AuthFuture<F, R> = GateFuture<F, R>;

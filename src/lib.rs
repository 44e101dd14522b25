//! authgate: JWT authentication in front of a gRPC service.
//!
//! A call reaches the guarded service only with a bearer JWT from an OAuth 2.0
//! / OpenID Connect issuer such as Auth0. The parts:
//!
//! - [`keys`]: the issuer's JWKS, parsed key by key into a [`keys::KeySet`]
//!   of keys parsed once.
//! - [`refresher`]: the background [`refresher::Refresher`] that fetches and
//!   refreshes the key set and publishes it through arc-swap into the
//!   [`refresher::KeyStore`], which the request path only loads.
//! - [`validate`]: token validation, from compact JWS to [`validate::Principal`].
//! - [`cache`]: the verified-token cache, so a token is verified once.
//! - [`auth`]: the gate, [`auth::AuthInterceptor`] and [`auth::AuthLayer`],
//!   with the per-method [`auth::ScopePolicy`].
//! - [`service`]: the guarded `authgate.v1.PrivateService`.
//! - [`server`]: server assembly with health, reflection, TLS and shutdown;
//!   [`incoming`] bounds the connections it accepts.
//! - [`client`]: the calling side: a client-credentials
//!   [`client::TokenSource`] and the [`client::BearerInterceptor`].
//! - [`issuer`]: the dev issuer `authgate dev` and the tests run against.
//! - [`cli`]: the command line.
//! - [`error`]: every error, and the one mapping to `tonic::Status`.

pub mod auth;
pub mod cache;
pub mod cli;
pub mod client;
pub mod error;
pub mod incoming;
pub mod issuer;
pub mod keys;
pub mod net;
pub mod refresher;
pub mod server;
pub mod service;
pub mod validate;

/// Code generated from `proto/authgate/v1/private.proto`.
pub mod pb {
    tonic::include_proto!("authgate.v1");

    /// The encoded descriptor set that reflection serves.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/authgate_descriptor.bin"));
}

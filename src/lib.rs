//! authgate: JWT authentication in front of a gRPC service.
//!
//! Guarding a tonic service takes a key store, its background refresher and
//! the gate's layer (this is `examples/guard.rs`, which the README quotes):
//!
#![doc = concat!("```no_run\n", include_str!("../examples/guard.rs"), "```")]
//!
//! A call reaches the guarded service only with a bearer JWT from an OAuth 2.0
//! / OpenID Connect issuer such as Auth0. One folder per concern:
//!
//! - [`gate`]: the request path. [`gate::AuthInterceptor`] and
//!   [`gate::AuthLayer`] with the per-method [`gate::ScopePolicy`];
//!   [`gate::validate`], from compact JWS to [`gate::Principal`];
//!   [`gate::cache`], so a token is verified once.
//! - [`keys`]: the issuer's JWKS parsed key by key into a [`keys::KeySet`] of
//!   keys parsed once, and [`keys::refresher`], the background
//!   [`keys::Refresher`] that publishes it through arc-swap into the
//!   [`keys::KeyStore`] that the request path only loads.
//! - [`server`]: server assembly with health, reflection, TLS, metrics and
//!   draining, the guarded `authgate.v1.PrivateService` and its generated
//!   code.
//! - [`client`]: the calling side: a client-credentials
//!   [`client::TokenSource`] and the [`client::BearerInterceptor`].
//! - [`issuer`]: the dev issuer `authgate dev` and the tests run against.
//! - [`cli`]: the command line.
//! - [`error`] (every error, and the one mapping to `tonic::Status`) and
//!   [`net`] (the rules for fetching from an issuer) serve them all.
//!
//! Which cargo feature holds what: `gate`, `keys`, `error` and `net` are
//! always there; the features `client`, `server`, `dev-issuer` and `cli`
//! each switch on the folder of the same name (`cli` needs the other
//! three). The default has them all.

#![cfg_attr(docsrs, feature(doc_auto_cfg))]
#![deny(missing_docs)]
#![warn(unreachable_pub, missing_debug_implementations)]

pub mod error;
pub mod gate;
pub mod keys;
pub mod net;
mod util;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "dev-issuer")]
pub mod issuer;
#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "server")]
pub use server::pb;

//! authgate: bearer-JWT authentication for gRPC services on tonic.
//!
//! A call reaches a guarded service only with a valid bearer JWT from an
//! OAuth 2.0 / OpenID Connect issuer such as Auth0: signature, algorithm,
//! issuer, audience, expiry and per-method scopes, checked against the
//! issuer's JWKS, which a background refresher keeps fresh so that the
//! request path never waits on the network.
//!
//! The gate in front of a tonic server, in one line (this is
//! `examples/guard.rs`, whose heart the README quotes):
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
//!
//! # Using the library
//!
//! The gate for your own tonic services, the server assembly around them,
//! and a client side for service-to-service calls. Your `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! authgate = { version = "0.2", default-features = false, features = ["server"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! tonic = "0.14"
//! prost = "0.14"          # the code generated from your .proto uses these two
//! tonic-prost = "0.14"
//! tokio-stream = "0.1"    # the Greeter's streaming reply (examples/greeter/greeter.rs)
//!
//! [build-dependencies]   # your own .proto, compiled without a system protoc
//! protox = "0.10"
//! tonic-prost-build = "0.14"
//! ```
//!
//! ## Guarding your own service
//!
//! Your service, a `Greeter` with a unary and a server-streaming method,
//! behind the gate with health, reflection, limits, metrics and draining
//! ([`examples/greeter/`](https://github.com/authgate/authgate/blob/main/examples/greeter/main.rs), compiled by
//! `cargo test`, which also checks that this is that file's text; the
//! manifest above, this `main.rs` and the `build.rs` below are built as a
//! new crate by `tests/readme/run.sh`):
//!
//! ```rust,ignore
//! use authgate::Gate;
//! use authgate::server::{Application, ServerConfig};
//!
//! mod greeter; // your service: examples/greeter/greeter.rs
//! use greeter::MyGreeter;
//! use greeter::pb::{FILE_DESCRIPTOR_SET, greeter_server::GreeterServer};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let gate = Gate::builder()
//!         .issuer(std::env::var("AUTHGATE_ISSUER")?) // e.g. https://tenant.auth0.com/
//!         .audience(std::env::var("AUTHGATE_AUDIENCE")?) // your API identifier
//!         .require_scope("/greeter.v1.Greeter/SayHello=greet:hello")
//!         .build()?; // fetches and refreshes the issuer's keys in the background
//!
//!     // Health, reflection, limits, metrics and draining around your service;
//!     // every method needs a valid token (deny by default), health and
//!     // reflection are open.
//!     Application::builder(ServerConfig::listening("127.0.0.1:50060".parse()?))
//!         .gate(gate)
//!         .add_service(GreeterServer::new(MyGreeter))
//!         .descriptor_set(FILE_DESCRIPTOR_SET) // reflection: grpcurl needs no .proto
//!         .serve(authgate::server::shutdown_signal()) // until SIGTERM or Ctrl-C
//!         .await?;
//!     // In a handler, request.extensions().get::<authgate::Principal>() says
//!     // who called.
//!     Ok(())
//! }
//! ```
//!
//! `Gate::builder()` starts a background refresher per issuer: discovery,
//! the JWKS, refreshes, and backoff when the issuer fails; the request path
//! only reads the published key set. Its defaults, written down once in the
//! library: a leeway of 30 s on `exp` and `nbf`, `typ` absent, `JWT` or
//! `at+jwt`, no scope rules (a valid token suffices), 4096 verified tokens
//! cached, keys refreshed every 10 minutes and dropped after 24 hours of
//! failed fetches ([`keys::RefreshConfig::default()`]).
//! [`Gate::from_oidc(issuer, audience)`](Gate::from_oidc) is the same with
//! one issuer and no rules. Several issuers: call `.issuer(..)` (or
//! `.issuer_with_jwks(iss, url)`) once each; a token is checked only with
//! the keys of the issuer its `iss` names. What it gives back:
//! `gate.ready().await` waits for the first key set,
//! `gate.issuers()[i].keys().status()` tells how the keys fare,
//! `gate.stats()` counts decisions, and `gate.stop_refreshing()` (or
//! dropping the last clone) stops the refreshers.
//!
//! Your `build.rs`, so that your proto compiles with only the Rust toolchain
//! (authgate's own `build.rs` compiles the Greeter this way), and the
//! descriptor set that reflection serves:
//!
//! ```rust,ignore
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let mut protos = protox::Compiler::new(["proto"])?;
//!     protos.include_source_info(true).open_file("greeter.proto")?;
//!     let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
//!     std::fs::write(out.join("greeter_descriptor.bin"), protos.encode_file_descriptor_set())?;
//!     tonic_prost_build::configure().compile_fds(protos.file_descriptor_set())?;
//!     Ok(())
//! }
//! ```
//!
//! and in your code:
//! `pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/greeter_descriptor.bin"));`.
//!
//! Try it against `authgate dev`, whose issuer grants the dev client the
//! scopes its rules name:
//!
//! ```sh
//! authgate dev --require-scope /greeter.v1.Greeter/SayHello=greet:hello   # terminal 1
//! AUTHGATE_ISSUER=http://127.0.0.1:50052/ AUTHGATE_AUDIENCE=https://authgate.dev/api \
//!   cargo run --example greeter                                          # terminal 2
//! # terminal 3, with the client id and secret that `authgate dev` printed exported:
//! export AUTHGATE_ISSUER=http://127.0.0.1:50052/ AUTHGATE_AUDIENCE=https://authgate.dev/api
//! token=$(authgate token --scope greet:hello)
//! grpcurl -plaintext -H "authorization: Bearer $token" -d '{"name": "Ada"}' \
//!   127.0.0.1:50060 greeter.v1.Greeter/SayHello
//! # {
//! #   "message": "Hello Ada, from authgate-dev@clients"
//! # }
//! ```
//!
//! ## The gate in front of a plain tonic server
//!
//! Without the server assembly (`default-features = false`: the gate
//! alone), the gate is a tower layer: `examples/guard.rs`, at the top of this
//! page. Calls, streams included, end when their token does: a
//! server-streaming or bidirectional call checked at its start is ended by
//! the layer with `UNAUTHENTICATED` (`token has expired`) when the token's
//! `exp` plus the leeway passes
//! ([`examples/streaming/main.rs`](https://github.com/authgate/authgate/blob/main/examples/streaming/main.rs): `cargo run
//! --example streaming` watches a ticker with a token that lives three
//! seconds).
//!
//! `Gate` is also a `tonic::service::Interceptor` for a single service
//! (`MyServer::with_interceptor(svc, gate)`); tonic does not tell an
//! interceptor which method is called, so with per-method scope rules use
//! the layer. Only the layer ends expired streams.
//!
//! ## Calling a guarded service
//!
//! `client` (feature `client`) is the calling side: a `TokenSource` that
//! reuses its client-credentials token, refreshes it in the background ahead
//! of expiry and coalesces concurrent refreshes into one request, and a
//! `BearerInterceptor` that attaches the current token to every call without
//! waiting ([`examples/service_to_service.rs`](https://github.com/authgate/authgate/blob/main/examples/service_to_service.rs);
//! [in a Rust service](https://github.com/authgate/authgate/blob/main/docs/calling.md#in-a-rust-service)).
//!
//! ## Features, and what each part is
//!
//! | feature | adds | folder |
//! | --- | --- | --- |
//! | (none) | the gate: `Gate`, `GateBuilder`, `GateLayer`, `Principal`, `ScopePolicy`; `keys::{KeyStore, Refresher, KeySet}` | `src/gate/`, `src/keys/` |
//! | `client` | the calling side: `client::{TokenSource, BearerInterceptor}` | `src/client/` |
//! | `server` | `server::{Application, ServerConfig}`: health, reflection, TLS, limits, metrics and draining around your services; the demo `PrivateService` and `authgate::pb` | `src/server/` |
//! | `dev-issuer` | `issuer::DevIssuer`: discovery, JWKS and `/oauth/token` on loopback, for tests | `src/issuer/` |
//! | `proxy` | `proxy::{Proxy, UpstreamConfig, Forward}`: forwarding what the gate lets in to a service in any language, over tonic's `Channel` (HTTP/2) or hyper's HTTP/1.1 client; needs `server` | `src/proxy/` |
//! | `authz` | `authz::Authz`: the gate's decision answered to a proxy in front (Envoy's ext_authz `Check`, HTTP forward auth), on envoy-types' messages; needs `proxy` | `src/authz/` |
//! | `cli` | the `authgate` command; needs all of the above | `src/cli/` |
//!
//! Each type has one path: the gate's at the crate root (`authgate::Gate`,
//! `authgate::Principal`, `authgate::AuthError`), the rest at its feature's
//! module (`authgate::keys::KeyStore`, `authgate::server::Application`,
//! `authgate::client::TokenSource`). The command line's module is hidden and
//! not part of the API. The default has them all, so `cargo install` and
//! `cargo run -- dev` build the command; what each choice builds (116
//! packages for the gate alone, 202 for the default):
//! [what each feature builds](https://github.com/authgate/authgate/blob/main/benches/README.md#what-each-feature-builds).
//!
//! ## Seeing what it does
//!
//! authgate logs through [tracing](https://docs.rs/tracing): a key set that
//! fails to load, a key that is skipped, each refused call. A library user
//! who installs no subscriber sees none of it; install one
//! (`tracing_subscriber::fmt().init()`, with `RUST_LOG=authgate=info`) to see
//! them.
//!
//! Without a tracing subscriber a library user still sees how the keys fare:
//! `KeyStore::status()` reads, without waiting, whether a set is loaded, how
//! many usable keys it holds, when a fetch last succeeded, the last error
//! (its whole chain of causes, never a secret) and the fetch counts;
//! `Gate::stats()` counts decisions by reason and token cache hits and
//! misses. Both are plain atomics the refresher and the gate write.
//!
//! ```no_run
//! # fn show(gate: &authgate::Gate) {
//! let status = gate.issuers()[0].keys().status();
//! if !status.loaded {
//!     eprintln!("no keys yet: {:?}", status.last_error);   // Some((when, "request to https://… failed: …"))
//! }
//! # }
//! ```
//!
//! # The rest
//!
//! The command (`authgate serve`, `proxy`, `dev`), its configuration and
//! operations, what the gate checks, the architecture and the changelog:
//! the [README](https://github.com/authgate/authgate/blob/main/README.md) and [docs/](https://github.com/authgate/authgate/blob/main/docs/).

#![cfg_attr(docsrs, feature(doc_auto_cfg))]
#![deny(missing_docs)]
#![deny(unreachable_pub)]
#![warn(missing_debug_implementations)]

mod error;
mod gate;
pub mod keys;
mod net;
mod util;

#[cfg(feature = "authz")]
pub mod authz;
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

//! The gate: everything a request passes through. [`check`] holds the gate
//! itself, with [`policy`] (per-method scope rules), [`bearer`] parsing,
//! [`issuers`] routing and [`stats`]; [`layer`] and [`interceptor`] put it in
//! front of tonic; [`validate`] turns a compact JWS into a [`Principal`];
//! [`cache`] remembers verified tokens; [`expiry`] ends calls, streams
//! included, when their token expires.

pub mod bearer;
pub mod cache;
pub mod check;
pub mod clock;
pub mod expiry;
pub mod interceptor;
pub mod issuers;
pub mod layer;
pub mod policy;
pub mod stats;
pub mod validate;

pub use bearer::bearer_token;
pub use check::{AuthInterceptor, DEFAULT_TOKEN_CACHE_ENTRIES, Refusal};
pub use clock::{Clock, system_clock};
pub use issuers::TrustedIssuer;
pub use layer::{AuthFuture, AuthLayer, AuthService, PUBLIC_SERVICES};
pub use policy::{ScopePolicy, ScopeRule};
pub use stats::{GateStats, REFUSALS_LOGGED_PER_SECOND};
pub use validate::{Principal, ValidationConfig, Validator};

/// The gate's parts at their old path, `gate::auth`.
pub mod auth {
    pub use super::bearer::bearer_token;
    pub use super::check::{AuthInterceptor, DEFAULT_TOKEN_CACHE_ENTRIES, Refusal};
    pub use super::clock::{Clock, system_clock};
    pub use super::issuers::TrustedIssuer;
    pub use super::layer::{AuthFuture, AuthLayer, AuthService, PUBLIC_SERVICES};
    pub use super::policy::{ScopePolicy, ScopeRule};
    pub use super::stats::{GateStats, REFUSALS_LOGGED_PER_SECOND};
}

#[cfg(test)]
mod tests;

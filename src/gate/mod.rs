//! The gate: everything a request passes through. [`check`] holds the
//! [`Gate`] itself, with [`policy`] (per-method scope rules), [`methods`]
//! (the paths an issuer's tokens may call), [`pattern`] (the one form of a
//! path pattern, which both and public paths use), [`bearer`] parsing, [`issuers`]
//! routing and [`stats`]; [`builder`] constructs it with its refreshers,
//! from the issuers [`issuer_config`] describes and checks;
//! [`layer`] and [`interceptor`] put it in front of tonic; [`validate`]
//! turns a compact JWS into a [`Principal`]; [`cache`] remembers verified
//! tokens; [`expiry`] ends calls, streams included, when their token
//! expires.

pub(crate) mod bearer;
pub(crate) mod builder;
pub(crate) mod cache;
pub(crate) mod check;
pub(crate) mod clock;
pub(crate) mod expiry;
pub(crate) mod interceptor;
pub(crate) mod issuer_config;
pub(crate) mod issuers;
pub(crate) mod layer;
pub(crate) mod methods;
pub(crate) mod path;
pub(crate) mod pattern;
pub(crate) mod policy;
pub(crate) mod public;
pub(crate) mod stats;
pub(crate) mod validate;

pub use builder::{GateBuilder, MAX_TOKEN_CACHE_ENTRIES};
pub use check::{DEFAULT_TOKEN_CACHE_ENTRIES, Gate, Refusal};
pub use clock::{Clock, system_clock};
pub use issuer_config::IssuerConfig;
pub use issuers::TrustedIssuer;
pub use layer::{GateFuture, GateLayer, GateService, PUBLIC_SERVICES};
pub use policy::{ScopePolicy, ScopeRule};
pub use stats::{GateStats, REFUSALS_LOGGED_PER_SECOND};
pub use validate::{
    ACCEPTED_TYPS, DEFAULT_AUDIENCE_CLAIM, DEFAULT_LEEWAY, DEFAULT_SCOPE_CLAIMS, MAX_SCOPE_CLAIMS,
    MAX_TOKEN_BYTES, Principal, ValidationConfig, Validator, Verified,
};

#[cfg(test)]
mod tests;

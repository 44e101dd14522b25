//! The gate: everything a request passes through. [`auth`] holds the
//! interceptor, the layer and the per-method scope policy; [`validate`] turns
//! a compact JWS into a [`Principal`]; [`cache`] remembers verified tokens;
//! [`expiry`] ends calls, streams included, when their token expires.

pub mod auth;
pub mod cache;
pub mod expiry;
pub mod validate;

pub use auth::{AuthInterceptor, AuthLayer, GateStats, ScopePolicy, ScopeRule, TrustedIssuer};
pub use validate::{Principal, ValidationConfig, Validator};

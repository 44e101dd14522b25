//! One trusted issuer's configuration, [`IssuerConfig`], and the checks a
//! gate's issuers pass before it is built: at least one, none twice, each
//! with an audience, and claims that each mean one thing.

use std::time::Duration;

use super::{MAX_SCOPE_CLAIMS, pattern::method_pattern_error};
use crate::{StartupError, UrlError, ValidationConfig, keys::JwksSource, net};

/// One trusted issuer: what its tokens must say, and where its keys come from.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// The exact `iss`, the audiences accepted and the leeway.
    pub validation: ValidationConfig,
    /// Where its key set comes from.
    pub jwks: JwksSource,
}

impl IssuerConfig {
    /// An issuer whose keys come through its OIDC discovery (the usual
    /// `{issuer}.well-known/jwks.json` when it has none), every other rule
    /// at its [`ValidationConfig::default`]. `issuer` must be `https://`, or
    /// `http://` on loopback: an issuer that is not a URL
    /// (`accounts.google.com`) needs [`IssuerConfig::with_jwks`].
    pub fn discovered(
        issuer: &str,
        audiences: Vec<String>,
        leeway: Duration,
    ) -> Result<IssuerConfig, UrlError> {
        let url = net::parse_issuer_url("issuer", issuer).map_err(|error| match error {
            // No scheme at all: an `iss` that was never meant as a URL.
            UrlError::Invalid { what, url, .. } if !url.contains("://") => UrlError::Invalid {
                what,
                url,
                detail: "without one its keys cannot be discovered, so give its JWKS URL as \
                         well (`IssuerConfig::with_jwks`, or `GateBuilder::issuer_with_jwks`)"
                    .into(),
            },
            other => other,
        })?;
        Ok(IssuerConfig {
            validation: ValidationConfig {
                issuer: issuer.to_owned(),
                audiences,
                leeway,
                ..ValidationConfig::default()
            },
            jwks: JwksSource::Discovery {
                issuer: issuer.to_owned(),
                url,
            },
        })
    }

    /// An issuer whose keys are at `jwks_url` (no discovery), every other
    /// rule at its [`ValidationConfig::default`]. `issuer` is only compared
    /// with `iss`, so it need not be a URL: Google's `accounts.google.com`,
    /// or a service account's email; but one written as a URL is held to
    /// the same rule as `jwks_url`: `https://`, or `http://` on loopback.
    pub fn with_jwks(
        issuer: &str,
        jwks_url: &str,
        audiences: Vec<String>,
        leeway: Duration,
    ) -> Result<IssuerConfig, UrlError> {
        if issuer.contains("://") {
            net::parse_issuer_url("issuer", issuer)?;
        }
        Ok(IssuerConfig {
            validation: ValidationConfig {
                issuer: issuer.to_owned(),
                audiences,
                leeway,
                ..ValidationConfig::default()
            },
            jwks: JwksSource::Url(net::parse_issuer_url("JWKS URL", jwks_url)?),
        })
    }
}

/// At least one issuer, none configured twice, each with an audience.
pub(super) fn check_issuers(issuers: &[IssuerConfig]) -> Result<(), StartupError> {
    if issuers.is_empty() {
        return Err(StartupError::Config(
            "at least one issuer is required".into(),
        ));
    }
    for (i, issuer) in issuers.iter().enumerate() {
        let name = &issuer.validation.issuer;
        if issuers[..i].iter().any(|o| o.validation.issuer == *name) {
            return Err(StartupError::Config(format!(
                "issuer `{name}` is configured twice"
            )));
        }
        if issuer.validation.audiences.is_empty() {
            return Err(StartupError::Config(format!(
                "no audience for issuer `{name}`: give it one (`ValidationConfig::audiences`, \
                 or `GateBuilder::audience`); without one, tokens for any API of the issuer \
                 would pass"
            )));
        }
        check_claims(&issuer.validation)
            .map_err(|why| StartupError::Config(format!("issuer `{name}`: {why}")))?;
    }
    Ok(())
}

/// The claims a validator reads itself, which no setting may claim for
/// another use.
const REGISTERED_CLAIMS: [&str; 5] = ["iss", "sub", "exp", "nbf", "iat"];

/// An audience claim, `token_use`, scope claims and methods that mean what
/// they say: each claim put to one use, no more scope claims than are read,
/// and every method a path.
fn check_claims(config: &ValidationConfig) -> Result<(), String> {
    let audience = config.audience_claim.as_str();
    if audience.is_empty() || REGISTERED_CLAIMS.contains(&audience) {
        return Err(format!(
            "`{audience}` cannot be the audience claim (`aud`, or a claim such as `client_id`)"
        ));
    }
    if config.token_use.as_deref() == Some("") {
        return Err(
            "`ValidationConfig::token_use` is empty: name the `token_use` required, such as \
             `access`"
                .into(),
        );
    }
    if config.token_use.is_some() && audience == "token_use" {
        return Err(
            "`token_use` cannot be both the audience claim and `ValidationConfig::token_use`"
                .into(),
        );
    }
    if config.scope_claims.len() > MAX_SCOPE_CLAIMS {
        return Err(format!(
            "{} scope claims: at most {MAX_SCOPE_CLAIMS} are read",
            config.scope_claims.len()
        ));
    }
    for (i, claim) in config.scope_claims.iter().enumerate() {
        let claim = claim.as_str();
        let used = claim.is_empty()
            || REGISTERED_CLAIMS.contains(&claim)
            || claim == audience
            || (claim == "token_use" && config.token_use.is_some())
            || config.scope_claims[..i].iter().any(|c| c == claim);
        if used {
            return Err(format!(
                "`{claim}` cannot be a scope claim: it is empty, repeated, or read as something \
                 else"
            ));
        }
    }
    for method in config.methods.iter().flatten() {
        if let Some(why) = method_pattern_error(method) {
            return Err(format!("methods: {why}"));
        }
    }
    Ok(())
}

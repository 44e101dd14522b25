//! The signature algorithms authgate verifies, and the RSA sizes it trusts.

use std::fmt;

use aws_lc_rs::signature;

/// The signature algorithms authgate verifies. `none` and every HMAC
/// algorithm are absent on purpose: a public key set cannot vouch for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

impl Algorithm {
    /// Every algorithm authgate verifies.
    pub const ALL: [Algorithm; 9] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];
    pub(super) const RSA: [Algorithm; 6] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ];

    /// The algorithm a JWS `alg` names, if authgate verifies it. `Ed25519`,
    /// RFC 9864's fully specified name, is [`Algorithm::EdDSA`]: the only
    /// EdDSA curve authgate verifies with is Ed25519, so the two names mean
    /// the same verification with the same key.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "Ed25519" => Some(Algorithm::EdDSA),
            _ => Algorithm::ALL.into_iter().find(|alg| alg.name() == name),
        }
    }

    /// The JWS name (`RS256`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// aws-lc-rs's verification parameters. RSA accepts 2048 to 8192 bits;
    /// ECDSA takes the fixed-width `r || s` form that JWS uses.
    pub(crate) fn verification(self) -> &'static dyn signature::VerificationAlgorithm {
        match self {
            Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
            Algorithm::EdDSA => &signature::ED25519,
        }
    }

    pub(super) fn rsa_parameters(self) -> Option<&'static signature::RsaParameters> {
        Some(match self {
            Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            _ => return None,
        })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The smallest RSA modulus authgate trusts.
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus authgate verifies with: larger keys cost a
/// verification time that an attacker could spend for us.
pub const MAX_RSA_BITS: usize = 8192;

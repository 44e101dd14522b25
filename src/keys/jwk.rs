//! One JWK read and judged on its own: its purpose, its type, its parameters.

use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;

use super::{Algorithm, MAX_RSA_BITS, MIN_RSA_BITS, VerifyingKey};

/// The members of a JWK that authgate reads (RFC 7517, 7518, 8037). Every
/// member is optional here so that a key of any shape parses and can then be
/// judged, and skipped with a reason, on its own.
#[derive(Deserialize)]
pub(super) struct Jwk {
    kty: String,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    pub(super) kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    d: Option<serde::de::IgnoredAny>,
    p: Option<serde::de::IgnoredAny>,
}

impl Jwk {
    pub(super) fn material(&self) -> String {
        let part = |v: &Option<String>| v.as_deref().unwrap_or("").to_owned();
        [
            self.kty.clone(),
            part(&self.alg),
            part(&self.n),
            part(&self.e),
            part(&self.crv),
            part(&self.x),
            part(&self.y),
        ]
        .join(".")
    }

    /// Whether the key is meant for verifying signatures, and with which
    /// algorithm it says it is used, if any.
    pub(super) fn check_purpose(&self) -> Result<Option<Algorithm>, String> {
        match self.use_.as_deref() {
            None | Some("sig") => {}
            Some("enc") => {
                return Err("`use` is `enc`: an encryption key, not for signatures".into());
            }
            Some(_) => return Err("`use` is neither `sig` nor absent".into()),
        }
        if let Some(ops) = &self.key_ops
            && !ops.iter().any(|op| op == "verify")
        {
            return Err("`key_ops` does not include `verify`".into());
        }
        if self.d.is_some() || self.p.is_some() {
            return Err(
                "the JWK holds private key material; a key set that publishes it is compromised"
                    .into(),
            );
        }
        match self.alg.as_deref() {
            None => Ok(None),
            Some(name) => Algorithm::from_name(name).map(Some).ok_or_else(|| {
                format!("`alg` {name:?} is not a signature algorithm authgate verifies")
            }),
        }
    }

    /// Parses the key material into a verifier per algorithm it may verify.
    pub(super) fn into_verifying_key(
        self,
        declared: Option<Algorithm>,
    ) -> Result<VerifyingKey, String> {
        let allowed = |family: &[Algorithm]| -> Result<Vec<Algorithm>, String> {
            match declared {
                None => Ok(family.to_vec()),
                Some(alg) if family.contains(&alg) => Ok(vec![alg]),
                Some(alg) => Err(format!("`alg` {alg} does not fit a `{}` key", self.kty)),
            }
        };

        let verifiers: Vec<(Algorithm, ParsedPublicKey)> = match self.kty.as_str() {
            "RSA" => {
                let n = strip_leading_zeros(decode_member("n", self.n.as_deref())?);
                let e = strip_leading_zeros(decode_member("e", self.e.as_deref())?);
                let bits = bit_length(&n);
                if bits < MIN_RSA_BITS {
                    return Err(format!(
                        "RSA modulus of {bits} bits is weaker than {MIN_RSA_BITS}"
                    ));
                }
                if bits > MAX_RSA_BITS {
                    return Err(format!("RSA modulus of {bits} bits exceeds {MAX_RSA_BITS}"));
                }
                // e = 1 makes the "signature" the message itself; an even e
                // is no RSA key at all. Either would load and only ever fail
                // at verification, so say so now, with the key's kid.
                if e.last().is_none_or(|low| low & 1 == 0) || e == [1] {
                    return Err("RSA exponent `e` must be odd and greater than 1".into());
                }
                let components = RsaPublicKeyComponents {
                    n: &n[..],
                    e: &e[..],
                };
                allowed(&Algorithm::RSA)?
                    .into_iter()
                    .map(|alg| {
                        let params = alg.rsa_parameters().expect("RSA family");
                        components
                            .to_parsed_public_key(params)
                            .map(|key| (alg, key))
                            .map_err(|e| format!("RSA key rejected: {e}"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "EC" => {
                let (alg, size) = match self.crv.as_deref() {
                    Some("P-256") => (Algorithm::ES256, 32),
                    Some("P-384") => (Algorithm::ES384, 48),
                    Some(crv) => return Err(format!("EC curve {crv:?} is not supported")),
                    None => return Err("EC key has no `crv`".into()),
                };
                let alg = allowed(&[alg])?[0];
                let x = decode_member("x", self.x.as_deref())?;
                let y = decode_member("y", self.y.as_deref())?;
                if x.len() != size || y.len() != size {
                    return Err(format!("EC coordinates are not {size} bytes each"));
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let key = ParsedPublicKey::new(alg.verification(), point)
                    .map_err(|e| format!("EC key rejected: {e}"))?;
                vec![(alg, key)]
            }
            "OKP" => {
                match self.crv.as_deref() {
                    Some("Ed25519") => {}
                    Some(crv) => {
                        return Err(format!(
                            "OKP curve {crv:?} is not a signature curve authgate verifies"
                        ));
                    }
                    None => return Err("OKP key has no `crv`".into()),
                }
                let alg = allowed(&[Algorithm::EdDSA])?[0];
                let x = decode_member("x", self.x.as_deref())?;
                if x.len() != 32 {
                    return Err("Ed25519 key is not 32 bytes".into());
                }
                let key = ParsedPublicKey::new(alg.verification(), x)
                    .map_err(|e| format!("Ed25519 key rejected: {e}"))?;
                vec![(alg, key)]
            }
            "oct" => {
                return Err("symmetric (`oct`) keys are never used to verify tokens".into());
            }
            other => return Err(format!("key type {other:?} is not supported")),
        };

        let material = self.material().into_boxed_str();
        Ok(VerifyingKey {
            kid: self.kid.map(String::into_boxed_str),
            material,
            verifiers: verifiers.into_boxed_slice(),
        })
    }
}

pub(super) fn decode_member(name: &str, value: Option<&str>) -> Result<Vec<u8>, String> {
    let value = value.ok_or_else(|| format!("missing `{name}`"))?;
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| format!("`{name}` is not base64url"))
}

pub(super) fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

pub(super) fn bit_length(be: &[u8]) -> usize {
    match be.first() {
        None => 0,
        Some(top) => be.len() * 8 - top.leading_zeros() as usize,
    }
}

//! Writes the fixed key set and the valid tokens that seed the fuzzers and
//! the mutation tests: `tests/fixtures/fuzz/{jwks.json,tokens.txt,jwks-*.json}`.
//! The private keys are thrown away; the tokens last until 2100.
//!
//! `cargo run -p authgate-bench --bin fuzz_seeds` (from the repository root)

use authgate::{
    issuer::{DevIssuer, DevIssuerConfig},
    keys::Algorithm,
};
use serde_json::json;

/// What the fuzz gate requires: see tests/it/fuzz.rs and fuzz/fuzz_targets/.
const ISSUER: &str = "https://fuzz.authgate.test/";
const AUDIENCE: &str = "https://api.fuzz.test";
const EXP_2100: i64 = 4_102_444_800;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = DevIssuer::start(DevIssuerConfig::for_tests()).await?;
    let dir = std::path::Path::new("tests/fixtures/fuzz");
    std::fs::create_dir_all(dir)?;
    let mut jwks = Vec::new();
    let mut tokens = Vec::new();
    for alg in Algorithm::ALL {
        let kid = issuer.add_key(alg);
        jwks.push(issuer.jwk(&kid).unwrap());
        let header = json!({"alg": alg.name(), "typ": "JWT", "kid": kid}).to_string();
        let variants = [
            json!({"iss": ISSUER, "sub": format!("{alg}-user"), "aud": AUDIENCE, "iat": 1_700_000_000, "exp": EXP_2100, "scope": "read:private"}),
            json!({"iss": ISSUER, "sub": "rbac-user", "aud": ["other", AUDIENCE], "nbf": 1_700_000_000, "exp": EXP_2100, "permissions": ["read:private", "write:x"]}),
        ];
        for claims in variants {
            tokens.push(issuer.sign_raw(
                &kid,
                alg,
                header.as_bytes(),
                claims.to_string().as_bytes(),
            ));
        }
    }
    // One token without the scope, for PERMISSION_DENIED.
    let kid = issuer.current_kid();
    let unscoped = json!({"iss": ISSUER, "sub": "nobody", "aud": AUDIENCE, "exp": EXP_2100});
    tokens.push(issuer.mint_with(&kid, &unscoped));
    jwks.push(issuer.jwk(&kid).unwrap());

    std::fs::write(
        dir.join("jwks.json"),
        serde_json::to_string_pretty(&json!({ "keys": jwks }))?,
    )?;
    std::fs::write(dir.join("tokens.txt"), tokens.join("\n") + "\n")?;
    let mut junk = jwks[..2].to_vec();
    junk.extend([
        json!({"kty": "oct", "k": "c2VjcmV0"}),
        json!({"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "OKP", "crv": "X25519", "x": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}),
        json!(17),
    ]);
    std::fs::write(
        dir.join("jwks-mixed.json"),
        json!({ "keys": junk }).to_string(),
    )?;
    println!(
        "wrote {} tokens and {} keys to {}",
        tokens.len(),
        jwks.len(),
        dir.display()
    );
    Ok(())
}

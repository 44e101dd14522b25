//! The validation path, measured beside its floor and its peer:
//!
//! - `<alg>/bare_parsed`: aws-lc-rs verifying the token's signature with a key
//!   parsed once: the cost no JWT library can go below.
//! - `<alg>/bare_unparsed`: the same, parsing the key on every call, as
//!   jsonwebtoken's backends do.
//! - `<alg>/authgate_cold`: authgate's whole check of a token it has not seen.
//! - `<alg>/jsonwebtoken_decode`: jsonwebtoken 12's `decode` (aws-lc-rs).
//! - `<alg>/jsonwebtoken_verify_<backend>`: jsonwebtoken's signature check
//!   alone, through each crypto backend.
//! - `gate/*`: a cache hit, and the interceptor's whole call (an HTTP request
//!   through `GateService` to a service that answers at once), hit and cold.
//!
//! `cargo bench -p authgate-bench --bench validation`

use std::{
    future::Future,
    hint::black_box,
    task::{Context, Poll, Waker},
    time::Duration,
};

use authgate::keys::Algorithm;
use authgate_bench::{Fixture, METHOD, member, signed_parts};
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents, UnparsedPublicKey};
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::crypto::{CryptoProvider, aws_lc, rust_crypto};
use tower_service::Service;

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct JwtClaims {
    sub: String,
    scope: Option<String>,
    exp: u64,
}

fn jwt_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    match alg {
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::PS256 => jsonwebtoken::Algorithm::PS256,
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::ES384 => jsonwebtoken::Algorithm::ES384,
        Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        other => unimplemented!("{other}"),
    }
}

fn decoding_key(jwk: &serde_json::Value) -> jsonwebtoken::DecodingKey {
    let s = |name: &str| jwk[name].as_str().unwrap();
    match s("kty") {
        "RSA" => jsonwebtoken::DecodingKey::from_rsa_components(s("n"), s("e")).unwrap(),
        "EC" => jsonwebtoken::DecodingKey::from_ec_components(s("x"), s("y")).unwrap(),
        _ => jsonwebtoken::DecodingKey::from_ed_components(s("x")).unwrap(),
    }
}

/// Verifies a signature, parsing the key on every call.
type UnparsedVerify = Box<dyn Fn(&[u8], &[u8]) -> bool>;

/// The floor: the token's signature verified by aws-lc-rs alone.
fn bare_keys(fixture: &Fixture, alg: Algorithm) -> (ParsedPublicKey, UnparsedVerify) {
    let jwk = fixture.jwk(alg);
    match alg {
        Algorithm::RS256 | Algorithm::PS256 => {
            let (n, e) = (member(&jwk, "n"), member(&jwk, "e"));
            let params = if alg == Algorithm::RS256 {
                &signature::RSA_PKCS1_2048_8192_SHA256
            } else {
                &signature::RSA_PSS_2048_8192_SHA256
            };
            let parsed = RsaPublicKeyComponents {
                n: &n[..],
                e: &e[..],
            }
            .to_parsed_public_key(params)
            .unwrap();
            let unparsed = move |m: &[u8], s: &[u8]| {
                RsaPublicKeyComponents {
                    n: &n[..],
                    e: &e[..],
                }
                .verify(params, m, s)
                .is_ok()
            };
            (parsed, Box::new(unparsed))
        }
        _ => {
            let (verification, bytes): (&'static dyn signature::VerificationAlgorithm, Vec<u8>) =
                match alg {
                    Algorithm::EdDSA => (&signature::ED25519, member(&jwk, "x")),
                    _ => {
                        let mut point = vec![4u8];
                        point.extend(member(&jwk, "x"));
                        point.extend(member(&jwk, "y"));
                        let v: &'static dyn signature::VerificationAlgorithm =
                            if alg == Algorithm::ES256 {
                                &signature::ECDSA_P256_SHA256_FIXED
                            } else {
                                &signature::ECDSA_P384_SHA384_FIXED
                            };
                        (v, point)
                    }
                };
            let parsed = ParsedPublicKey::new(verification, &bytes).unwrap();
            let unparsed = move |m: &[u8], s: &[u8]| {
                UnparsedPublicKey::new(verification, &bytes)
                    .verify(m, s)
                    .is_ok()
            };
            (parsed, Box::new(unparsed))
        }
    }
}

/// The algorithms benchmarked one by one.
const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
];

fn per_algorithm(c: &mut Criterion) {
    let fixture = Fixture::new();
    let keys = fixture.keys();
    let _ = CryptoProvider::install_default(&aws_lc::DEFAULT_PROVIDER);
    for alg in ALGORITHMS {
        let token = fixture.token(alg, 0);
        let (message, sig) = signed_parts(&token);
        let (parsed, unparsed) = bare_keys(&fixture, alg);
        assert!(parsed.verify_sig(message, &sig).is_ok() && unparsed(message, &sig));
        let now = authgate_bench::unix_now();
        assert!(fixture.validator.validate(&token, &keys, now).is_ok());

        let mut group = c.benchmark_group(alg.name());
        group.bench_function("bare_parsed", |b| {
            b.iter(|| {
                parsed
                    .verify_sig(black_box(message), black_box(&sig))
                    .is_ok()
            })
        });
        group.bench_function("bare_unparsed", |b| {
            b.iter(|| unparsed(black_box(message), black_box(&sig)))
        });
        group.bench_function("authgate_cold", |b| {
            b.iter(|| {
                fixture
                    .validator
                    .validate(black_box(&token), &keys, now)
                    .is_ok()
            })
        });

        let key = decoding_key(&fixture.jwk(alg));
        let mut validation = jsonwebtoken::Validation::new(jwt_alg(alg));
        validation.set_audience(&[fixture.issuer.audience()]);
        validation.set_issuer(&[fixture.issuer.url()]);
        assert!(jsonwebtoken::decode::<JwtClaims>(&token, &key, &validation).is_ok());
        group.bench_function("jsonwebtoken_decode", |b| {
            b.iter(|| {
                jsonwebtoken::decode::<JwtClaims>(black_box(&token), &key, &validation).is_ok()
            })
        });
        let sig_vec = sig.clone();
        // RustCrypto's verification is measured last (`rust_crypto_backend`):
        // its big-integer churn leaves the heap in a state that slowed the
        // benches that ran after it.
        let verifier = (aws_lc::DEFAULT_PROVIDER.verifier_factory)(&jwt_alg(alg), &key).unwrap();
        assert!(verifier.verify(message, &sig_vec).is_ok());
        group.bench_function("jsonwebtoken_verify_aws_lc", |b| {
            b.iter(|| {
                verifier
                    .verify(black_box(message), black_box(&sig_vec))
                    .is_ok()
            })
        });
        group.finish();
    }
}

fn rust_crypto_backend(c: &mut Criterion) {
    let fixture = Fixture::new();
    for alg in ALGORITHMS {
        let token = fixture.token(alg, 0);
        let (message, sig) = signed_parts(&token);
        let key = decoding_key(&fixture.jwk(alg));
        let verifier =
            (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(&jwt_alg(alg), &key).unwrap();
        assert!(verifier.verify(message, &sig).is_ok());
        c.benchmark_group(alg.name())
            .bench_function("jsonwebtoken_verify_rust_crypto", |b| {
                b.iter(|| verifier.verify(black_box(message), black_box(&sig)).is_ok())
            });
    }
}

fn gate(c: &mut Criterion) {
    let fixture = Fixture::new();
    let token = fixture.token(Algorithm::RS256, 0);
    let value = format!("Bearer {token}");
    let cached = fixture.interceptor(4096);
    let uncached = fixture.interceptor(0);
    assert!(cached.check(METHOD, [value.as_bytes()]).is_ok());

    let mut group = c.benchmark_group("gate");
    group.bench_function("cache_hit", |b| {
        b.iter(|| cached.authenticate([black_box(value.as_bytes())]).is_ok())
    });
    group.bench_function("cold_rs256", |b| {
        b.iter(|| uncached.authenticate([black_box(value.as_bytes())]).is_ok())
    });

    // The whole call through the tower layer, to a service that answers at once.
    let inner = tower::service_fn(|request: http::Request<tonic::body::Body>| async move {
        assert!(request.extensions().get::<authgate::Principal>().is_some());
        Ok::<_, std::convert::Infallible>(http::Response::new(()))
    });
    let mut waker_cx = Context::from_waker(Waker::noop());
    for (name, interceptor) in [("call_hit", &cached), ("call_cold_rs256", &uncached)] {
        let mut service = tower_layer::Layer::layer(&interceptor.layer(), inner);
        group.bench_function(name, |b| {
            b.iter(|| {
                let request = http::Request::builder()
                    .method("POST")
                    .uri(METHOD)
                    .header("content-type", "application/grpc")
                    .header("authorization", value.as_str())
                    .body(tonic::body::Body::empty())
                    .unwrap();
                let mut future = std::pin::pin!(service.call(request));
                match future.as_mut().poll(&mut waker_cx) {
                    Poll::Ready(Ok(response)) => response.status().is_success(),
                    _ => unreachable!("the inner service answers at once"),
                }
            })
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! { name = benches; config = config(); targets = per_algorithm, gate, rust_crypto_backend }
criterion_main!(benches);

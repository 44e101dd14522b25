//! Runs one operation of the validation path N times, for callgrind to count
//! its instructions: a measure that, unlike time on a shared 2-core machine,
//! is the same on every run. `benches/instructions.sh` counts only inside
//! `measured` (`--toggle-collect`), so set-up (key generation) is left out.
//!
//! usage: instructions OPERATION N

use std::{
    future::Future,
    hint::black_box,
    task::{Context, Poll, Waker},
};

use authgate::{
    keys::Algorithm,
    server::{GrpcMetrics, GrpcMetricsLayer},
};
use authgate_bench::{Fixture, METHOD, member, signed_parts};
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use tower_service::Service;

fn main() {
    let mut args = std::env::args().skip(1);
    let op = args.next().expect("an operation");
    let n: usize = args.next().expect("a count").parse().expect("a number");
    let fixture = Fixture::new();
    let keys = fixture.keys();
    let now = authgate_bench::unix_now();
    let (alg, params): (Algorithm, &'static signature::RsaParameters) = if op.ends_with("ps256") {
        (Algorithm::PS256, &signature::RSA_PSS_2048_8192_SHA256)
    } else {
        (Algorithm::RS256, &signature::RSA_PKCS1_2048_8192_SHA256)
    };
    let token = fixture.token(alg, 0);
    let (message, sig) = signed_parts(&token);
    let jwk = fixture.jwk(alg);
    let (n_bytes, e_bytes) = (member(&jwk, "n"), member(&jwk, "e"));
    let parsed: ParsedPublicKey = RsaPublicKeyComponents {
        n: &n_bytes[..],
        e: &e_bytes[..],
    }
    .to_parsed_public_key(params)
    .unwrap();
    let value = format!("Bearer {token}");
    let gate = fixture.interceptor(4096);
    assert!(gate.authenticate([value.as_bytes()]).is_ok());
    // The whole gate without its cache, trusting one issuer, then three
    // (the token's issuer last).
    let gate_one = fixture.interceptor_trusting(1, 0);
    let gate_three = fixture.interceptor_trusting(3, 0);
    let gate_three_cached = fixture.interceptor_trusting(3, 4096);
    for gate in [&gate_one, &gate_three, &gate_three_cached] {
        assert!(gate.authenticate([value.as_bytes()]).is_ok());
    }
    let jwt_key = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap(),
        jwk["e"].as_str().unwrap(),
    )
    .unwrap();
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
    );
    let mut validation = jsonwebtoken::Validation::new(if alg == Algorithm::PS256 {
        jsonwebtoken::Algorithm::PS256
    } else {
        jsonwebtoken::Algorithm::RS256
    });
    validation.set_audience(&[fixture.issuer.audience()]);
    validation.set_issuer(&[fixture.issuer.url()]);

    // The server's request path as tower layers, with and without the gRPC
    // metrics layer in front: the difference is what metrics cost a call.
    let inner = tower::service_fn(|_: http::Request<tonic::body::Body>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(()))
    });
    let mut layered = tower_layer::Layer::layer(&gate.layer(), inner);
    let grpc_metrics = std::sync::Arc::new(
        GrpcMetrics::from_descriptor_sets(&[authgate::pb::FILE_DESCRIPTOR_SET]).unwrap(),
    );
    let mut with_metrics = tower_layer::Layer::layer(
        &GrpcMetricsLayer::new(grpc_metrics),
        tower_layer::Layer::layer(&gate.layer(), inner),
    );
    let request = || {
        http::Request::builder()
            .method("POST")
            .uri(METHOD)
            .header("authorization", value.as_str())
            .body(tonic::body::Body::empty())
            .unwrap()
    };
    let mut cx = Context::from_waker(Waker::noop());

    let ok = measured(n, || match op.as_str() {
        "layer_hit" => {
            let mut future = std::pin::pin!(layered.call(black_box(request())));
            matches!(future.as_mut().poll(&mut cx), Poll::Ready(Ok(_)))
        }
        "metrics_layer_hit" => {
            let mut future = std::pin::pin!(with_metrics.call(black_box(request())));
            matches!(future.as_mut().poll(&mut cx), Poll::Ready(Ok(_)))
        }
        "bare_rs256" | "bare_ps256" => parsed
            .verify_sig(black_box(message), black_box(&sig))
            .is_ok(),
        "cold_rs256" | "cold_ps256" => fixture
            .validator
            .validate(black_box(&token), &keys, now)
            .is_ok(),
        "jsonwebtoken_rs256" | "jsonwebtoken_ps256" => {
            jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &jwt_key, &validation)
                .is_ok()
        }
        "cache_hit" => gate.authenticate([black_box(value.as_bytes())]).is_ok(),
        "gate_cold_rs256_1_issuer" => gate_one.authenticate([black_box(value.as_bytes())]).is_ok(),
        "gate_cold_rs256_3_issuers" => gate_three
            .authenticate([black_box(value.as_bytes())])
            .is_ok(),
        "cache_hit_3_issuers" => gate_three_cached
            .authenticate([black_box(value.as_bytes())])
            .is_ok(),
        other => panic!("unknown operation {other}"),
    });
    assert_eq!(ok, n);
}

/// The loop callgrind counts.
#[inline(never)]
fn measured(n: usize, mut op: impl FnMut() -> bool) -> usize {
    (0..n).filter(|_| op()).count()
}

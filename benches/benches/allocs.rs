//! Heap allocations per authenticated call, counted by a wrapping global
//! allocator: what the request path allocates beyond what it must.
//!
//! `cargo bench -p authgate-bench --bench allocs`

use std::{
    alloc::{GlobalAlloc, Layout, System},
    future::Future,
    sync::atomic::{AtomicUsize, Ordering},
    task::{Context, Poll, Waker},
};

use authgate::{
    keys::Algorithm,
    server::{GrpcMetrics, GrpcMetricsLayer},
};
use authgate_bench::{Fixture, METHOD};
use tower_service::Service;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` `n` times after a warm-up; returns allocations and bytes per run.
fn per_call(n: usize, mut f: impl FnMut(usize)) -> (f64, f64) {
    for i in 0..100 {
        f(i);
    }
    let (a0, b0) = (
        ALLOCATIONS.load(Ordering::SeqCst),
        BYTES.load(Ordering::SeqCst),
    );
    for i in 0..n {
        f(i);
    }
    let (a1, b1) = (
        ALLOCATIONS.load(Ordering::SeqCst),
        BYTES.load(Ordering::SeqCst),
    );
    ((a1 - a0) as f64 / n as f64, (b1 - b0) as f64 / n as f64)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let fixture = Fixture::new();
    let keys = fixture.keys();
    let now = authgate_bench::unix_now();
    let token = fixture.token(Algorithm::RS256, 0);
    let value = format!("Bearer {token}");
    let cached = fixture.interceptor(4096);
    let uncached = fixture.interceptor(0);
    let distinct: Vec<String> = (0..2000)
        .map(|i| format!("Bearer {}", fixture.token(Algorithm::ES256, i)))
        .collect();

    println!("heap allocations per call (bytes per call):");
    let report = |name: &str, (allocs, bytes): (f64, f64)| {
        println!("  {name:<46} {allocs:>6.2}  ({bytes:.0} B)");
    };
    report(
        "Validator::validate, cold RS256",
        per_call(2000, |_| {
            assert!(fixture.validator.validate(&token, &keys, now).is_ok())
        }),
    );
    report(
        "Gate::check, cache hit",
        per_call(20000, |_| {
            assert!(cached.check(METHOD, [value.as_bytes()]).is_ok())
        }),
    );
    report(
        "Gate::check, no cache (RS256)",
        per_call(2000, |_| {
            assert!(uncached.check(METHOD, [value.as_bytes()]).is_ok())
        }),
    );
    let three = fixture.interceptor_trusting(3, 4096);
    let three_uncached = fixture.interceptor_trusting(3, 0);
    report(
        "  three issuers, cache hit",
        per_call(20000, |_| {
            assert!(three.check(METHOD, [value.as_bytes()]).is_ok())
        }),
    );
    report(
        "  three issuers, no cache (RS256)",
        per_call(2000, |_| {
            assert!(three_uncached.check(METHOD, [value.as_bytes()]).is_ok())
        }),
    );
    report(
        "Gate::check, distinct tokens (insert)",
        per_call(1900, |i| {
            assert!(
                cached
                    .check(METHOD, [distinct[i % 2000].as_bytes()])
                    .is_ok()
            )
        }),
    );

    let inner = tower::service_fn(|_: http::Request<tonic::body::Body>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(()))
    });
    let mut cx = Context::from_waker(Waker::noop());
    let mut call = |interceptor: &authgate::Gate, build: bool| {
        let mut service = tower_layer::Layer::layer(&interceptor.layer(), inner);
        let request = || {
            http::Request::builder()
                .method("POST")
                .uri(METHOD)
                .header("authorization", value.as_str())
                .body(tonic::body::Body::empty())
                .unwrap()
        };
        let empty = per_call(20000, |_| drop(std::hint::black_box(request())));
        let full = per_call(20000, |_| {
            let mut future = std::pin::pin!(service.call(request()));
            // A refusal is a response too, without the inner service: only
            // a response without `grpc-status` was served, and may count.
            match future.as_mut().poll(&mut cx) {
                Poll::Ready(Ok(response)) => assert!(
                    response.headers().get("grpc-status").is_none(),
                    "refused, not served: {:?}",
                    response.headers().get("grpc-message")
                ),
                _ => panic!("the call did not complete at once"),
            }
        });
        if build {
            report("  building the http::Request alone", empty);
        }
        (full.0 - empty.0, full.1 - empty.1)
    };
    report(
        "GateService::call, cache hit (beyond the request)",
        call(&cached, true),
    );
    report(
        "GateService::call, no cache (beyond the request)",
        call(&uncached, false),
    );

    // The server's whole stack: the gRPC metrics layer in front of the gate.
    let grpc = std::sync::Arc::new(
        GrpcMetrics::from_descriptor_sets(&[authgate::pb::FILE_DESCRIPTOR_SET]).unwrap(),
    );
    let gate = tower_layer::Layer::layer(&cached.layer(), inner);
    let mut service = tower_layer::Layer::layer(&GrpcMetricsLayer::new(grpc.clone()), gate);
    let request = || {
        http::Request::builder()
            .method("POST")
            .uri(METHOD)
            .header("authorization", value.as_str())
            .body(tonic::body::Body::empty())
            .unwrap()
    };
    let empty = per_call(20000, |_| drop(std::hint::black_box(request())));
    let full = per_call(20000, |_| {
        let mut future = std::pin::pin!(service.call(request()));
        let Poll::Ready(Ok(response)) = future.as_mut().poll(&mut cx) else {
            panic!("the call did not complete")
        };
        drop(response);
    });
    report(
        "metrics layer + GateService::call, cache hit",
        (full.0 - empty.0, full.1 - empty.1),
    );
    let counted = grpc.methods()[0].started();
    assert!(
        counted >= 20000,
        "the metrics layer counted {counted} calls"
    );

    whole_calls();
}

/// Whole calls over loopback, everything in one thread (client, servers,
/// dev issuer) so that every allocation is counted: `GetPrivate` to a plain
/// tonic server with the gate as a layer (the library's form), to `authgate
/// serve`'s assembly, and through `authgate proxy`'s in front of that
/// assembly. The proxy's share of a forwarded call is the third less the
/// second; the assembly's, the second less the first.
fn whole_calls() {
    use authgate::{
        IssuerConfig,
        issuer::{DevIssuer, DevIssuerConfig},
        pb::private_service_client::PrivateServiceClient,
        proxy::{Proxy, UpstreamConfig},
        server::{Application, Limits, PrivateService, ServerConfig},
    };
    use std::time::Duration;

    const CALLS: usize = 2000;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let issuer = DevIssuer::start(DevIssuerConfig::for_tests()).await.unwrap();
        let audience = DevIssuerConfig::for_tests().audience;
        let config = || {
            let mut config = ServerConfig::listening("127.0.0.1:0".parse().unwrap());
            config.issuers = vec![
                IssuerConfig::discovered(issuer.url(), vec![audience.clone()], Duration::from_secs(30))
                    .unwrap(),
            ];
            config
        };
        let token = issuer.mint(&issuer.claims("bench", &["read:private"]));
        let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();

        // The library's form: tonic's server, the gate as a layer.
        let gate = authgate::Gate::from_oidc(issuer.url(), &audience).unwrap();
        gate.ready().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let library = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .layer(gate.layer())
                .add_service(PrivateService::server(&Limits::default()))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );

        // `authgate serve`'s assembly.
        let served = Application::builder(config()).add_demo_service().bind().await.unwrap();
        let served_addr = served.local_addr();
        let keys = served.keys();
        tokio::spawn(served.run_until(std::future::pending()));
        keys.wait_loaded().await;

        // `authgate proxy`'s, in front of it.
        let mut proxy_config = config();
        proxy_config.listen = "127.0.0.1:0".parse().unwrap();
        // The assembly behind checks the token again: it is forwarded.
        let mut upstream = UpstreamConfig::new(&format!("http://{served_addr}")).unwrap();
        upstream.forward_authorization = true;
        let proxy = Proxy::new(upstream).unwrap();
        let proxied = proxy
            .install(Application::builder(proxy_config))
            .await
            .bind()
            .await
            .unwrap();
        let proxied_addr = proxied.local_addr();
        let keys = proxied.keys();
        tokio::spawn(proxied.run_until(std::future::pending()));
        keys.wait_loaded().await;

        println!("whole GetPrivate calls over loopback, client and servers counted ({CALLS} calls):");
        let mut rows = Vec::new();
        for (name, addr) in [
            ("tonic server + GateLayer (library)", library),
            ("authgate serve (the assembly)", served_addr),
            ("authgate proxy -> authgate serve", proxied_addr),
        ] {
            let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut client = PrivateServiceClient::new(channel);
            for _ in 0..100 {
                get_private(&mut client, &bearer).await;
            }
            let (a0, b0) = (ALLOCATIONS.load(Ordering::SeqCst), BYTES.load(Ordering::SeqCst));
            for _ in 0..CALLS {
                get_private(&mut client, &bearer).await;
            }
            let (a1, b1) = (ALLOCATIONS.load(Ordering::SeqCst), BYTES.load(Ordering::SeqCst));
            let per = ((a1 - a0) as f64 / CALLS as f64, (b1 - b0) as f64 / CALLS as f64);
            println!("  {name:<46} {:>6.1}  ({:.0} B)", per.0, per.1);
            rows.push(per);
        }
        println!(
            "  the assembly's share of a served call: {:.1}; the proxy's of a forwarded call: {:.1}",
            rows[1].0 - rows[0].0,
            rows[2].0 - rows[1].0
        );
    });
}

async fn get_private(
    client: &mut authgate::pb::private_service_client::PrivateServiceClient<
        tonic::transport::Channel,
    >,
    bearer: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
) {
    let mut request = tonic::Request::new(authgate::pb::GetPrivateRequest {});
    request
        .metadata_mut()
        .insert("authorization", bearer.clone());
    client.get_private(request).await.expect("the call passes");
}

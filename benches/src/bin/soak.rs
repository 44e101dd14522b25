//! Load, soak and faults against a release `authgate serve`, behind
//! `benches/soak.sh`.
//!
//! - `soak`: for MINUTES, a mix of valid tokens (distinct and repeated),
//!   invalid ones (bad signature, expired, wrong audience, `alg: none`,
//!   garbage), tokens without the scope, and a flood of unknown `kid`s; every
//!   call must end with the code its class calls for. The server's resident
//!   memory is sampled throughout.
//! - `faults`: valid load while the JWKS goes down (connection refused),
//!   answers 500, answers garbage, hangs, recovers, and a key is rotated in
//!   and the old one withdrawn; per step, valid calls refused and latency.
//!   Then the two ways the key set stops serving: the issuer withdraws every
//!   key by listing none, and, on a second server with `--jwks-max-stale
//!   10s`, fetches fail for longer than that; per step, calls by code.
//!
//! The issuer runs in this process; the server reaches its JWKS through a
//! proxy here that can refuse connections, as a JWKS host that is down does.

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use authgate::{
    issuer::{DevIssuer, DevIssuerConfig, JwksFault},
    keys::Algorithm,
};
use authgate_bench::{
    METHOD, SCOPE,
    loadgen::{Call, EMPTY_MESSAGE, LoadConfig, LoadReport, run},
};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use serde_json::json;
use tokio::{net::TcpListener, task::JoinSet};

#[derive(Parser)]
struct Cli {
    /// The authgate binary to run.
    #[arg(long, default_value = "target/release/authgate")]
    authgate: String,
    #[arg(long, default_value_t = 8)]
    connections: usize,
    #[arg(long, default_value_t = 16)]
    streams: usize,
    #[command(subcommand)]
    command: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Mixed valid and hostile load for MINUTES, memory sampled.
    Soak {
        #[arg(long, default_value_t = 10)]
        minutes: u64,
    },
    /// Valid load through JWKS faults and a key rotation.
    Faults {
        #[arg(long, default_value_t = 15)]
        step_seconds: u64,
    },
}

const OK: u32 = 0;
const UNAUTHENTICATED: u32 = 16;
const PERMISSION_DENIED: u32 = 7;
const UNAVAILABLE: u32 = 14;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    // The generator and the issuer share one thread; the server has the rest.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let issuer = DevIssuer::start(DevIssuerConfig::for_tests()).await?;
        let proxy = JwksProxy::start(issuer.addr()).await?;
        let jwks_url = format!("http://{}/.well-known/jwks.json", proxy.addr);
        let server = Server::start(&cli.authgate, &issuer, &jwks_url, &[])?;
        let result = match cli.command {
            Mode::Soak { minutes } => soak(&cli, &issuer, &server, minutes).await,
            Mode::Faults { step_seconds } => {
                faults(&cli, &issuer, &proxy, &server, step_seconds).await
            }
        };
        drop(server);
        result
    })
}

/// `authgate serve` as a child process, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(
        binary: &str,
        issuer: &DevIssuer,
        jwks_url: &str,
        extra: &[&str],
    ) -> Result<Server, Box<dyn std::error::Error>> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let child = Command::new(binary)
            .args([
                "serve",
                "--listen",
                &addr.to_string(),
                "--issuer",
                issuer.url(),
            ])
            .args(["--audience", issuer.audience()])
            .args(["--jwks-url", jwks_url])
            .args(["--require-scope", &format!("{METHOD}={SCOPE}")])
            // Short periods, so that the refresher works hard during the run.
            .args([
                "--jwks-refresh-interval",
                "5s",
                "--jwks-min-refresh-interval",
                "1s",
            ])
            .args(["--jwks-fetch-timeout", "2s"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Server { child, addr })
    }

    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    async fn wait_ready(&self, issuer: &DevIssuer) {
        let token = issuer.mint(&issuer.claims("probe", &[SCOPE]));
        let calls = Arc::new(vec![Call::bearer(&token, Some(OK), "probe")]);
        for _ in 0..300 {
            let report = run(load(
                self.addr,
                calls.clone(),
                1,
                1,
                Duration::from_millis(50),
            ))
            .await;
            if report.map(|r| r.ok > 0).unwrap_or(false) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the server never answered OK");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy to the issuer that can go down (refusing connections and
/// cutting open ones) and come back on the same port.
struct JwksProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    running: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl JwksProxy {
    async fn start(upstream: SocketAddr) -> std::io::Result<JwksProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy = JwksProxy {
            addr: listener.local_addr()?,
            upstream,
            running: Mutex::new(None),
        };
        proxy.serve(listener);
        Ok(proxy)
    }

    fn serve(&self, listener: TcpListener) {
        let upstream = self.upstream;
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        *self.running.lock().unwrap() = Some(task);
    }

    /// Refuses connections and cuts the open ones.
    fn down(&self) {
        if let Some(task) = self.running.lock().unwrap().take() {
            task.abort();
        }
    }

    async fn up(&self) {
        for _ in 0..50 {
            if let Ok(listener) = TcpListener::bind(self.addr).await {
                self.serve(listener);
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("cannot rebind the JWKS proxy");
    }
}

fn load(
    addr: SocketAddr,
    calls: Arc<Vec<Call>>,
    connections: usize,
    streams: usize,
    duration: Duration,
) -> LoadConfig {
    LoadConfig {
        addr,
        path: METHOD.to_owned(),
        body: Bytes::from_static(&EMPTY_MESSAGE),
        calls,
        connections,
        streams,
        duration,
        warmup: Duration::ZERO,
    }
}

/// Valid tokens from `kid`, distinct ones and one repeated.
fn valid_calls(issuer: &DevIssuer, kid: &str, distinct: usize) -> Vec<Call> {
    let mut calls: Vec<Call> = (0..distinct)
        .map(|i| {
            let mut claims = issuer.claims(&format!("service-{i}@clients"), &[SCOPE]);
            claims["azp"] = format!("service-{i}").into();
            Call::bearer(&issuer.mint_with(kid, &claims), Some(OK), "valid")
        })
        .collect();
    let repeated = issuer.mint_with(kid, &issuer.claims("hot@clients", &[SCOPE]));
    calls.extend((0..distinct).map(|_| Call::bearer(&repeated, Some(OK), "valid")));
    calls
}

/// Invalid tokens, each class with the code it must get.
fn hostile_calls(issuer: &DevIssuer) -> Vec<Call> {
    let mut calls = Vec::new();
    let good = issuer.mint(&issuer.claims("x", &[SCOPE]));
    let (head, _) = good.rsplit_once('.').unwrap();
    calls.push(Call::bearer(
        &format!("{head}.AAAA{}", "A".repeat(338)),
        Some(UNAUTHENTICATED),
        "bad signature",
    ));
    let mut expired = issuer.claims("x", &[SCOPE]);
    expired["exp"] = 1_000_000_000.into();
    calls.push(Call::bearer(
        &issuer.mint(&expired),
        Some(UNAUTHENTICATED),
        "expired",
    ));
    let mut wrong_aud = issuer.claims("x", &[SCOPE]);
    wrong_aud["aud"] = "https://elsewhere/api".into();
    calls.push(Call::bearer(
        &issuer.mint(&wrong_aud),
        Some(UNAUTHENTICATED),
        "wrong audience",
    ));
    let (_, payload) = head.split_once('.').unwrap();
    calls.push(Call::bearer(
        &format!("eyJhbGciOiJub25lIn0.{payload}."),
        Some(UNAUTHENTICATED),
        "alg none",
    ));
    calls.push(Call::bearer("garbage", Some(UNAUTHENTICATED), "garbage"));
    calls.push(Call {
        authorization: None,
        expect: Some(UNAUTHENTICATED),
        class: "no token",
        body: None,
    });
    calls.push(Call::bearer(
        &issuer.mint(&issuer.claims("x", &[])),
        Some(PERMISSION_DENIED),
        "no scope",
    ));
    calls
}

/// Tokens with a `kid` the issuer never published, each one different.
fn unknown_kid_calls(issuer: &DevIssuer, n: usize) -> Vec<Call> {
    let attacker = issuer.add_unpublished_key(Algorithm::ES256);
    let claims = issuer.claims("intruder", &[SCOPE]).to_string();
    (0..n)
        .map(|i| {
            let header = json!({"alg": "ES256", "kid": format!("random-{i}")}).to_string();
            let token = issuer.sign_raw(
                &attacker,
                Algorithm::ES256,
                header.as_bytes(),
                claims.as_bytes(),
            );
            Call::bearer(&token, Some(UNAUTHENTICATED), "unknown kid")
        })
        .collect()
}

async fn soak(
    cli: &Cli,
    issuer: &DevIssuer,
    server: &Server,
    minutes: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    server.wait_ready(issuer).await;
    let kid = issuer.current_kid();
    let valid = valid_calls(issuer, &kid, 2000);
    let hostile = hostile_calls(issuer);
    let flood = unknown_kid_calls(issuer, 2000);
    // Interleave: per 20 calls, 14 valid, 3 hostile, 3 unknown kids.
    let mut calls = Vec::new();
    for i in 0..4000 {
        for j in 0..14 {
            calls.push(valid[(i * 14 + j) % valid.len()].clone());
        }
        for j in 0..3 {
            calls.push(hostile[(i * 3 + j) % hostile.len()].clone());
            calls.push(flood[(i * 3 + j) % flood.len()].clone());
        }
    }
    let calls = Arc::new(calls);
    println!(
        "soak: {minutes} min against {}, {} connections x {} streams",
        server.addr, cli.connections, cli.streams
    );
    let start_hits = issuer.jwks_hits();
    let started = Instant::now();
    let mut total = LoadReport::default();
    let mut first_rss = None;
    let mut rss = Vec::new();
    // One-minute rounds: each a load run, then a memory sample.
    for round in 1..=minutes {
        let report = run(load(
            server.addr,
            calls.clone(),
            cli.connections,
            cli.streams,
            Duration::from_secs(60),
        ))
        .await?;
        let sample = server.rss_kib();
        first_rss.get_or_insert(sample);
        rss.push(sample);
        println!(
            "  minute {round:>2}: {}  rss {} KiB",
            report.summary(),
            sample
        );
        total.elapsed += report.elapsed;
        total.absorb(report);
    }
    total.latencies_us.sort_unstable();
    let fetches = issuer.jwks_hits() - start_hits;
    println!(
        "soak total over {:?}: {}",
        started.elapsed(),
        total.summary()
    );
    println!("  calls by class: {:?}", total.by_class);
    println!(
        "  calls that did not end as their class must: {}",
        total.unexpected.values().sum::<u64>()
    );
    println!(
        "  server RSS: first minute {} KiB, last minute {} KiB, max {} KiB",
        first_rss.unwrap_or(0),
        rss.last().copied().unwrap_or(0),
        rss.iter().max().copied().unwrap_or(0)
    );
    println!(
        "  JWKS fetches: {fetches} in {} s (refresh every 5 s, unknown-kid fetches at most 1/s)",
        started.elapsed().as_secs()
    );
    Ok(())
}

async fn faults(
    cli: &Cli,
    issuer: &DevIssuer,
    proxy: &JwksProxy,
    server: &Server,
    step_seconds: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    server.wait_ready(issuer).await;
    let old_kid = issuer.current_kid();
    let old = Arc::new(valid_calls(issuer, &old_kid, 1000));
    let step = Duration::from_secs(step_seconds);
    let measure =
        |calls: Arc<Vec<Call>>| run(load(server.addr, calls, cli.connections, cli.streams, step));
    println!(
        "faults: {step_seconds} s per step against {}, {} connections x {} streams; valid tokens only",
        server.addr, cli.connections, cli.streams
    );
    println!("  {:<44} valid calls: refused / all, latency", "step");
    let print = |name: &str, r: &LoadReport, hits: usize| {
        let refused: u64 = r.unexpected.values().sum();
        println!(
            "  {name:<44} {refused} / {}, {:.0} calls/s, p50 {} us, p99 {} us, max {} us  (JWKS requests {hits})",
            r.calls(),
            r.calls_per_second(),
            r.quantile_us(0.5),
            r.quantile_us(0.99),
            r.latencies_us.last().copied().unwrap_or(0)
        );
    };
    let steps = [
        ("baseline", None),
        ("JWKS host down (connections refused)", None),
        ("JWKS answers 500", Some(JwksFault::Status(500))),
        ("JWKS answers garbage", Some(JwksFault::Garbage)),
        ("JWKS hangs", Some(JwksFault::Hang)),
        ("JWKS recovers", Some(JwksFault::None)),
    ];
    for (i, (name, fault)) in steps.into_iter().enumerate() {
        match (i, fault) {
            (1, _) => proxy.down(),
            (2, Some(fault)) => {
                proxy.up().await;
                issuer.set_jwks_fault(fault);
            }
            (_, Some(fault)) => issuer.set_jwks_fault(fault),
            _ => {}
        }
        let hits = issuer.jwks_hits();
        let report = measure(old.clone()).await?;
        print(name, &report, issuer.jwks_hits() - hits);
    }

    // Rotation, as Auth0 does it: the new key is published first; the
    // server picks it up on its next refresh; then it signs.
    let new_kid = issuer.add_key(Algorithm::RS256);
    let published = Instant::now();
    let hits = issuer.jwks_hits();
    let new = Arc::new(valid_calls(issuer, &new_kid, 1000));
    let report = measure(old.clone()).await?;
    print(
        "new key published (old key signs)",
        &report,
        issuer.jwks_hits() - hits,
    );
    let mixed: Vec<Call> = old
        .iter()
        .zip(new.iter())
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    let hits = issuer.jwks_hits();
    let report = measure(Arc::new(mixed)).await?;
    print("both keys sign", &report, issuer.jwks_hits() - hits);
    issuer.set_published(&old_kid, false);
    let hits = issuer.jwks_hits();
    let report = measure(new.clone()).await?;
    print(
        "old key withdrawn (new key signs)",
        &report,
        issuer.jwks_hits() - hits,
    );
    // Once the server has fetched the set without it, old tokens must fail.
    let withdrawn_at = issuer.jwks_hits();
    while issuer.jwks_hits() == withdrawn_at {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let late = run(load(server.addr, old.clone(), 1, 4, Duration::from_secs(1))).await?;
    let refused = late.refused.get(&UNAUTHENTICATED).copied().unwrap_or(0);
    println!(
        "  old-key tokens after withdrawal: {refused} of {} refused (they must all be)",
        late.calls()
    );
    if late.calls() == 0 || refused != late.calls() || late.transport_errors > 0 {
        return Err(format!(
            "old-key tokens after withdrawal: {} passed, {refused} of {} refused \
             UNAUTHENTICATED, {} transport errors",
            late.ok,
            late.calls(),
            late.transport_errors
        )
        .into());
    }
    println!(
        "  (the new key was published {:?} before it first signed)",
        step
    );
    let _ = published;

    // Withdrawal by an empty set: the issuer's JWKS now lists no key. Once
    // the server has fetched it, every call gets UNAVAILABLE (none may pass),
    // and when keys are listed again, calls pass again.
    let any = |calls: &[Call]| -> Arc<Vec<Call>> {
        Arc::new(
            calls
                .iter()
                .map(|c| Call {
                    expect: None,
                    ..c.clone()
                })
                .collect(),
        )
    };
    let by_code = |r: &LoadReport| {
        let unavailable = r.refused.get(&UNAVAILABLE).copied().unwrap_or(0);
        let other: u64 = r.refused.values().sum::<u64>() - unavailable + r.transport_errors;
        (r.ok, unavailable, other)
    };
    let print_codes = |name: &str, r: &LoadReport, hits: usize| {
        let (ok, unavailable, other) = by_code(r);
        println!(
            "  {name:<44} OK {ok}, UNAVAILABLE {unavailable}, other {other}; p99 {} us  (JWKS requests {hits})",
            r.quantile_us(0.99)
        );
    };
    let hits = issuer.jwks_hits();
    issuer.set_jwks_fault(JwksFault::Empty);
    let report = measure(any(&new)).await?;
    print_codes(
        "JWKS lists no key (withdrawal by an empty set)",
        &report,
        issuer.jwks_hits() - hits,
    );
    let late = run(load(server.addr, any(&new), 1, 4, Duration::from_secs(1))).await?;
    let (ok, unavailable, other) = by_code(&late);
    println!(
        "  valid tokens once the empty set was fetched: {unavailable} of {} UNAVAILABLE (they must all be; OK {ok}, other {other})",
        late.calls()
    );
    let hits = issuer.jwks_hits();
    issuer.set_jwks_fault(JwksFault::None);
    let report = measure(any(&new)).await?;
    print_codes(
        "JWKS lists the key again",
        &report,
        issuer.jwks_hits() - hits,
    );

    // --jwks-max-stale expiring, on a server of its own with its own issuer:
    // fetches fail from just after a successful one; the set must serve until
    // max-stale has passed, then every call gets UNAVAILABLE until a fetch
    // succeeds again.
    let max_stale = Duration::from_secs(10);
    let stale_issuer = DevIssuer::start(DevIssuerConfig::for_tests()).await?;
    let stale_server = Server::start(
        &cli.authgate,
        &stale_issuer,
        &stale_issuer.jwks_url(),
        &["--jwks-max-stale", "10s"],
    )?;
    stale_server.wait_ready(&stale_issuer).await;
    let stale_kid = stale_issuer.current_kid();
    let calls = any(&valid_calls(&stale_issuer, &stale_kid, 1000));
    let slice = |calls: Arc<Vec<Call>>| {
        run(load(
            stale_server.addr,
            calls,
            cli.connections,
            cli.streams,
            Duration::from_secs(1),
        ))
    };
    let fetched = stale_issuer.jwks_hits();
    while stale_issuer.jwks_hits() == fetched {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stale_issuer.set_jwks_fault(JwksFault::Status(503));
    let failing_since = Instant::now();
    let mut total = LoadReport::default();
    let mut dropped_after = None;
    // Whole seconds until the first UNAVAILABLE, then `step` more.
    while dropped_after.is_none_or(|at: Duration| failing_since.elapsed() < at + step) {
        let report = slice(calls.clone()).await?;
        if dropped_after.is_none() && report.refused.contains_key(&UNAVAILABLE) {
            dropped_after = Some(failing_since.elapsed());
        }
        total.elapsed += report.elapsed;
        total.absorb(report);
        if failing_since.elapsed() > max_stale * 3 {
            break;
        }
    }
    total.latencies_us.sort_unstable();
    print_codes(
        "JWKS fails past --jwks-max-stale (10s)",
        &total,
        stale_issuer.jwks_hits() - fetched,
    );
    println!(
        "  the key set was dropped within the second ending {:.0} s after the last successful fetch (max-stale {:?})",
        dropped_after.map_or(f64::NAN, |d| d.as_secs_f64()),
        max_stale
    );
    let hits = stale_issuer.jwks_hits();
    stale_issuer.set_jwks_fault(JwksFault::None);
    let recovering = Instant::now();
    let mut total = LoadReport::default();
    let mut back_after = None;
    while back_after.is_none_or(|at: Duration| recovering.elapsed() < at + step) {
        let report = slice(calls.clone()).await?;
        if back_after.is_none() && report.ok > 0 {
            back_after = Some(recovering.elapsed());
        }
        total.elapsed += report.elapsed;
        total.absorb(report);
        if recovering.elapsed() > max_stale * 3 {
            break;
        }
    }
    total.latencies_us.sort_unstable();
    print_codes(
        "JWKS recovers after max-stale",
        &total,
        stale_issuer.jwks_hits() - hits,
    );
    println!(
        "  calls passed again within the second ending {:.0} s after the JWKS recovered",
        back_after.map_or(f64::NAN, |d| d.as_secs_f64())
    );
    drop(stale_server);
    Ok(())
}

//! A fleet of `authgate serve` replicas behind a real L7 balancer (HAProxy,
//! with `deploy/haproxy/haproxy.cfg`, or nginx, with
//! `deploy/nginx/authgate.conf`), under load, behind `benches/fleet.sh`.
//!
//! The dev issuer runs in this process; three release replicas and the
//! balancer run on loopback. While the load generator drives valid calls
//! through the balancer (counting each by the `grpc-status` it ended with),
//! one step at a time:
//!
//! - rolling restarts (`--restarts`, each its own step): every replica is
//!   restarted in turn (SIGTERM, its drain, start again), paced so that the
//!   restarts together carry at least `--restart-calls` calls;
//! - the issuer rotates its key: publish a new one, sign with it, withdraw
//!   the old one;
//! - one replica is killed with SIGKILL.
//!
//! Each step waits on events (the balancer's view of a replica, a replica's
//! health and metrics, the calls made so far), never on a fixed pause. Then
//! the calls by status per step, and throughput through the balancer
//! against one replica direct.
//!
//! HAProxy takes a replica out on its gRPC health before it stops
//! accepting. nginx has no active health checks: it learns of a drain only
//! from the replica's GOAWAY and its refused connects, so what its run
//! measures is the drain itself. Its `error.log` is read after each step and
//! its lines counted by what they say.
//!
//! With `--proxy`, each replica is `authgate proxy` in front of an upstream
//! of its own (`proxybench upstream`: GetPrivate and health over h2c, no
//! authentication), as sidecars run: the same steps restart, rotate and kill
//! the proxies while the upstreams run on.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use authgate::{issuer::DevIssuer, issuer::DevIssuerConfig, keys::Algorithm};
use authgate_bench::{
    METHOD, SCOPE,
    loadgen::{Call, EMPTY_MESSAGE, LoadConfig, LoadReport, run, run_counting, run_until},
};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    process::{Child, Command},
    sync::oneshot,
};

type Error = Box<dyn std::error::Error>;

#[derive(Parser)]
struct Cli {
    /// The authgate binary the replicas run.
    #[arg(long, default_value = "target/release/authgate")]
    authgate: PathBuf,
    /// Which balancer the replicas run behind.
    #[arg(long, value_enum, default_value_t = Kind::Haproxy)]
    balancer: Kind,
    /// HAProxy's configuration.
    #[arg(long, default_value = "deploy/haproxy/haproxy.cfg")]
    haproxy_config: PathBuf,
    /// nginx's configuration: an http-block file, as in /etc/nginx/conf.d/.
    #[arg(long, default_value = "deploy/nginx/authgate.conf")]
    nginx_config: PathBuf,
    /// Where logs and the stats socket go.
    #[arg(long, default_value = "target/fleet")]
    work: PathBuf,
    /// How long the steady steps measure.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Rolling restarts, one after the other, each restarting every replica.
    #[arg(long, default_value_t = 3)]
    restarts: u32,
    /// Calls the rolling restarts carry at least, all together: each waits,
    /// before each replica's SIGTERM and at its end, for its share.
    #[arg(long, default_value_t = 1_000_000)]
    restart_calls: u64,
    /// The replicas' --drain-delay.
    #[arg(long, default_value = "3s")]
    drain_delay: String,
    #[arg(long, default_value_t = 8)]
    connections: usize,
    #[arg(long, default_value_t = 16)]
    streams: usize,
    /// Replicas are `authgate proxy`, each in front of an upstream of its own.
    #[arg(long)]
    proxy: bool,
    /// The upstreams' binary, with `--proxy`.
    #[arg(long, default_value = "target/release/proxybench")]
    proxybench: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    Haproxy,
    Nginx,
}

/// Distinct valid tokens in the load, each sent in turn.
const TOKENS: usize = 500;
/// How long any one event may take before the run is called a failure.
const PATIENCE: Duration = Duration::from_secs(60);
/// How long a rolling restart may take to carry its share of the calls.
const PATIENCE_FOR_CALLS: Duration = Duration::from_secs(600);

fn main() -> Result<(), Error> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(fleet(cli))
}

async fn fleet(cli: Cli) -> Result<(), Error> {
    std::fs::create_dir_all(&cli.work)?;
    let issuer = DevIssuer::start(DevIssuerConfig::for_tests()).await?;
    let mut replicas = Vec::new();
    for name in ["r1", "r2", "r3"] {
        let mut replica = Replica::new(name, &cli)?;
        replica.start_upstream(&cli).await?;
        replica.start(&cli, &issuer)?;
        replicas.push(replica);
    }
    for replica in &replicas {
        replica.wait_serving().await?;
    }
    let mut balancer = Balancer::start(&cli, &replicas).await?;
    for replica in &replicas {
        balancer.wait_state(replica.name, "UP").await?;
    }
    println!(
        "fleet: 3 replicas of {}{} behind {} on {}; {} connections x {} streams; {TOKENS} valid tokens in turn",
        cli.authgate.display(),
        if cli.proxy {
            " proxy, each in front of an upstream of its own (proxybench upstream),"
        } else {
            ""
        },
        balancer.version(),
        balancer.addr,
        cli.connections,
        cli.streams,
    );
    println!(
        "replicas: --drain-delay {}, {}\n",
        cli.drain_delay,
        match cli.balancer {
            Kind::Haproxy => "health checked by HAProxy every 500 ms (fall 2, rise 2)",
            Kind::Nginx =>
                "behind nginx's keepalive upstream (no health checks: passive failover only)",
        }
    );

    let old_kid = issuer.current_kid();
    let tokens = |kid: &str| -> Arc<Vec<Call>> {
        Arc::new(
            (0..TOKENS)
                .map(|n| {
                    let mut claims = issuer.claims(&format!("service-{n}@clients"), &[SCOPE]);
                    claims["azp"] = format!("service-{n}").into();
                    Call::bearer(&issuer.mint_with(kid, &claims), Some(0), "valid")
                })
                .collect(),
        )
    };
    // Steady steps warm up for a second; steps around an event count every
    // call from the start (load_now).
    let load = |addr: SocketAddr, calls: Arc<Vec<Call>>| LoadConfig {
        addr,
        path: METHOD.to_owned(),
        body: Bytes::from_static(&EMPTY_MESSAGE),
        calls,
        connections: cli.connections,
        streams: cli.streams,
        duration: Duration::from_secs(cli.seconds),
        warmup: Duration::from_secs(1),
    };
    let load_now = |addr: SocketAddr, calls: Arc<Vec<Call>>| LoadConfig {
        warmup: Duration::ZERO,
        ..load(addr, calls)
    };
    let mut steps: Vec<(String, LoadReport)> = Vec::new();
    // What the balancer logged during each step, by what it said.
    let mut logged: Vec<BTreeMap<String, u64>> = Vec::new();

    // The bearer reaches the replicas unchanged, even at authgate's 8 KiB limit.
    let big = big_token(&issuer, &old_kid, 8000);
    let subject = call_once(balancer.addr, &big).await?;
    println!(
        "a {}-byte token through the balancer: OK, subject {subject}",
        big.len()
    );

    let old_tokens = tokens(&old_kid);
    let cpu_before = replicas[0].cpu_seconds();
    let direct = run(load(replicas[0].addr, old_tokens.clone())).await?;
    let cpu = replicas[0].cpu_seconds() - cpu_before;
    // Warm-up included in the CPU time, so count its calls too: the
    // replica's own count of calls answered.
    let served = replicas[0].answered_ok().await.unwrap_or(0.0);
    println!(
        "sizing: r1 used {cpu:.1} s of CPU for {served:.0} calls ({:.1} us a call, {:.2} cores at 1000 calls/s); peak RSS {} KiB",
        cpu * 1e6 / served.max(1.0),
        cpu * 1000.0 / served.max(1.0),
        replicas[0].peak_rss_kib()
    );
    steps.push(("one replica, direct (no balancer)".into(), direct));
    logged.push(BTreeMap::new());
    let through = run(load(balancer.addr, old_tokens.clone())).await?;
    steps.push(("through the balancer, steady".into(), through));
    logged.push(balancer.logged_since_last()?);

    // Rolling restarts: one replica at a time, each drained by SIGTERM, each
    // restart paced by the calls made so far so that each carries its share.
    let restarts = cli.restarts.max(1);
    let share = cli.restart_calls.div_ceil(u64::from(restarts));
    for round in 1..=restarts {
        let progress = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(run_counting(
            load_now(balancer.addr, old_tokens.clone()),
            async {
                let _ = stopped.await;
            },
            progress.clone(),
        ));
        let mut notes = Vec::new();
        let count = replicas.len() as u64;
        for (i, replica) in replicas.iter_mut().enumerate() {
            wait_progress(&progress, share * i as u64 / count).await?;
            let asked = Instant::now();
            replica.signal(libc::SIGTERM);
            let out = match balancer.kind {
                Kind::Haproxy => {
                    balancer.wait_state(replica.name, "DOWN").await?;
                    format!(
                        "out of the balancer {:.1} s after SIGTERM, ",
                        asked.elapsed().as_secs_f64()
                    )
                }
                Kind::Nginx => String::new(),
            };
            let status = replica.wait_exit().await?;
            let exited = asked.elapsed();
            if !status.success() {
                return Err(format!("{} exited with {status} on SIGTERM", replica.name).into());
            }
            replica.start(&cli, &issuer)?;
            replica.wait_serving().await?;
            let serving = asked.elapsed();
            match balancer.kind {
                Kind::Haproxy => balancer.wait_state(replica.name, "UP").await?,
                // Back in nginx's turn once calls through it reach the replica.
                Kind::Nginx => replica.wait_calls(100).await?,
            }
            notes.push(format!(
                "{}: {out}exited 0 at {:.1} s, serving at {:.1} s, answering calls through the balancer at {:.1} s",
                replica.name,
                exited.as_secs_f64(),
                serving.as_secs_f64(),
                asked.elapsed().as_secs_f64()
            ));
        }
        wait_progress(&progress, share).await?;
        let _ = stop.send(());
        steps.push((
            format!("rolling restart {round} of {restarts} (SIGTERM, drain, start)"),
            running.await??,
        ));
        logged.push(balancer.logged_since_last()?);
        for note in notes {
            println!("  restart {round}, {note}");
        }
    }

    // Key rotation at the issuer: publish, sign with the new, withdraw the old.
    let (stop, stopped) = oneshot::channel::<()>();
    let before = tokio::spawn(run_until(
        load_now(balancer.addr, old_tokens.clone()),
        async {
            let _ = stopped.await;
        },
    ));
    let new_kid = issuer.add_key(Algorithm::RS256);
    for replica in &replicas {
        replica.wait_keys(&issuer, 2).await?;
    }
    // Each replica serves old-key tokens with both keys loaded...
    for replica in &replicas {
        replica.wait_calls(500).await?;
    }
    let _ = stop.send(());
    let mut rotation = before.await??;
    let new_tokens = tokens(&new_kid);
    let (stop, stopped) = oneshot::channel::<()>();
    let after = tokio::spawn(run_until(
        load_now(balancer.addr, new_tokens.clone()),
        async {
            let _ = stopped.await;
        },
    ));
    // ...then new-key tokens, with both keys still listed...
    for replica in &replicas {
        replica.wait_calls(500).await?;
    }
    issuer.set_published(&old_kid, false);
    for replica in &replicas {
        replica.wait_keys(&issuer, 1).await?;
    }
    // ...and with the old key withdrawn.
    for replica in &replicas {
        replica.wait_calls(500).await?;
    }
    let _ = stop.send(());
    let after = after.await??;
    let span = rotation.elapsed + after.elapsed;
    rotation.absorb(after);
    rotation.elapsed = span;
    steps.push((
        "key rotation (publish, sign with new, withdraw old)".into(),
        rotation,
    ));
    logged.push(balancer.logged_since_last()?);
    let mut refused = run(LoadConfig {
        duration: Duration::from_secs(1),
        ..load(balancer.addr, old_tokens.clone())
    })
    .await?;
    refused.latencies_us.clear();
    println!(
        "  old-key tokens after the withdrawal: {} of {} refused UNAUTHENTICATED (they must all be)",
        refused.refused.get(&16).copied().unwrap_or(0),
        refused.calls() + refused.transport_errors
    );
    for (what, n) in balancer.logged_since_last()? {
        println!("    the balancer meanwhile: {n} x {what}");
    }

    // One replica killed outright.
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(run_until(
        load_now(balancer.addr, new_tokens.clone()),
        async {
            let _ = stopped.await;
        },
    ));
    // Let the load settle across the three first: the balancer's view of
    // r2 is UP and it answers calls.
    replicas[1].wait_calls(200).await?;
    replicas[1].signal(libc::SIGKILL);
    let killed = Instant::now();
    // nginx has no view to wait on: it finds out on its next connect.
    if balancer.kind == Kind::Haproxy {
        balancer.wait_state("r2", "DOWN").await?;
    }
    let out = killed.elapsed();
    // Two more seconds on the two replicas left, so the step shows them
    // carrying the load, not only the moment of the kill.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop.send(());
    steps.push(("one replica killed (SIGKILL)".into(), running.await??));
    logged.push(balancer.logged_since_last()?);
    let _ = replicas[1].wait_exit().await;
    if balancer.kind == Kind::Haproxy {
        println!(
            "  r2: SIGKILLed, out of the balancer {:.1} s later",
            out.as_secs_f64()
        );
    }

    println!(
        "\n{:<56} {:>10} {:>10}  calls by status",
        "step", "calls/s", "p99 us"
    );
    for ((name, report), logged) in steps.iter().zip(&logged) {
        println!(
            "{name:<56} {:>10.0} {:>10}  {}",
            report.calls_per_second(),
            report.quantile_us(0.99),
            by_status(report)
        );
        for (what, n) in logged {
            println!("{:<56}   {n} x {what}", "");
        }
    }
    let direct = steps[0].1.calls_per_second();
    let through = steps[1].1.calls_per_second();
    println!(
        "\nthroughput through the balancer / one replica direct: {:.2} ({through:.0} / {direct:.0} calls/s)",
        through / direct
    );
    let rolling = &steps[2..2 + restarts as usize];
    let carried: u64 = rolling
        .iter()
        .map(|(_, r)| r.calls() + r.transport_errors)
        .sum();
    let rolling_failed: u64 = rolling.iter().map(|(_, r)| failed(r)).sum();
    let rotation_failed = failed(&steps[2 + restarts as usize].1);
    let during = rolling_failed + rotation_failed;
    let killed = failed(&steps[3 + restarts as usize].1);
    println!(
        "calls through {restarts} rolling restarts: {carried} (goal at least {}), {rolling_failed} failed (goal 0)",
        cli.restart_calls
    );
    println!(
        "failed calls: {during} in the rolling restarts and the rotation (goal 0); {killed} when a replica was killed \
         (at most the {} calls in flight at once could be)",
        cli.connections * cli.streams
    );
    let peaks: Vec<String> = replicas
        .iter()
        .filter(|r| r.child.is_some())
        .map(|r| format!("{} {} KiB", r.name, r.peak_rss_kib()))
        .collect();
    println!(
        "peak RSS of the replicas still running: {}",
        peaks.join(", ")
    );
    balancer.stop().await;
    drop(replicas);
    if during > 0 {
        return Err("calls failed during a rolling restart or a rotation".into());
    }
    if carried < cli.restart_calls {
        return Err("the rolling restarts carried fewer calls than --restart-calls".into());
    }
    Ok(())
}

/// Waits until `progress` has counted `calls`, for at most [`PATIENCE_FOR_CALLS`].
async fn wait_progress(progress: &AtomicU64, calls: u64) -> Result<(), Error> {
    let deadline = Instant::now() + PATIENCE_FOR_CALLS;
    while progress.load(Ordering::Relaxed) < calls {
        if Instant::now() > deadline {
            return Err(format!(
                "timed out waiting for {calls} calls ({} made)",
                progress.load(Ordering::Relaxed)
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn failed(report: &LoadReport) -> u64 {
    report.refused.values().sum::<u64>() + report.transport_errors
}

fn by_status(report: &LoadReport) -> String {
    let mut parts = vec![format!("OK {}", report.ok)];
    let names: BTreeMap<u32, &str> = [
        (1, "CANCELLED"),
        (2, "UNKNOWN"),
        (4, "DEADLINE_EXCEEDED"),
        (7, "PERMISSION_DENIED"),
        (13, "INTERNAL"),
        (14, "UNAVAILABLE"),
        (16, "UNAUTHENTICATED"),
    ]
    .into();
    for (code, n) in &report.refused {
        parts.push(format!(
            "{} {n}",
            names.get(code).copied().unwrap_or("other")
        ));
    }
    if report.transport_errors > 0 {
        parts.push(format!(
            "stream/connection errors {}",
            report.transport_errors
        ));
    }
    parts.join(", ")
}

/// A token of about `bytes` bytes, padded by a claim, signed by `kid`.
fn big_token(issuer: &DevIssuer, kid: &str, bytes: usize) -> String {
    let mut claims = issuer.claims("big@clients", &[SCOPE]);
    let mut pad = 0;
    loop {
        claims["pad"] = "x".repeat(pad).into();
        let token = issuer.mint_with(kid, &claims);
        if token.len() >= bytes {
            return token;
        }
        pad += (bytes - token.len()) * 3 / 4 + 1;
    }
}

/// One GetPrivate call through `addr`; the subject it answered with.
async fn call_once(addr: SocketAddr, token: &str) -> Result<String, Error> {
    use authgate::pb::{GetPrivateRequest, private_service_client::PrivateServiceClient};
    let mut client = PrivateServiceClient::connect(format!("http://{addr}")).await?;
    let mut request = tonic::Request::new(GetPrivateRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(client.get_private(request).await?.into_inner().subject)
}

/// A free port on loopback (bound, then released).
fn free_addr() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Polls `check` every 50 ms until it holds, for at most [`PATIENCE`].
async fn until<F, Fut>(what: &str, mut check: F) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// One `authgate serve` replica; it keeps its ports across restarts.
struct Replica {
    name: &'static str,
    addr: SocketAddr,
    metrics: SocketAddr,
    log: PathBuf,
    child: Option<Child>,
    /// With `--proxy`: the upstream this replica forwards to, and its process.
    upstream: Option<(SocketAddr, Child)>,
}

impl Replica {
    fn new(name: &'static str, cli: &Cli) -> std::io::Result<Replica> {
        Ok(Replica {
            name,
            addr: free_addr()?,
            metrics: free_addr()?,
            log: cli.work.join(format!("{name}.log")),
            child: None,
            upstream: None,
        })
    }

    /// With `--proxy`, starts this replica's upstream and waits until it
    /// answers health; without, does nothing.
    async fn start_upstream(&mut self, cli: &Cli) -> Result<(), Error> {
        if !cli.proxy {
            return Ok(());
        }
        let addr = free_addr()?;
        let log = cli.work.join(format!("{}-upstream.log", self.name));
        let child = Command::new(&cli.proxybench)
            .args(["upstream", "--listen", &addr.to_string()])
            .stdout(std::fs::File::create(&log)?)
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        self.upstream = Some((addr, child));
        wait_health(&format!("{}'s upstream", self.name), addr).await
    }

    fn start(&mut self, cli: &Cli, issuer: &DevIssuer) -> std::io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut command = Command::new(&cli.authgate);
        match &self.upstream {
            Some((upstream, _)) => command
                .args(["proxy", "--listen", &self.addr.to_string()])
                .args(["--upstream", &format!("http://{upstream}")]),
            None => command.args(["serve", "--listen", &self.addr.to_string()]),
        };
        let child = command
            .args(["--issuer", issuer.url(), "--audience", issuer.audience()])
            .args(["--require-scope", &format!("{METHOD}={SCOPE}")])
            .args(["--metrics-listen", &self.metrics.to_string()])
            .args([
                "--drain-delay",
                &cli.drain_delay,
                "--shutdown-timeout",
                "10s",
            ])
            // Short, so that a rotation is seen within seconds.
            .args([
                "--jwks-refresh-interval",
                "1s",
                "--jwks-min-refresh-interval",
                "1s",
            ])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    /// CPU time the process has used, user and system, in seconds.
    fn cpu_seconds(&self) -> f64 {
        let Some(pid) = self.child.as_ref().and_then(Child::id) else {
            return 0.0;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name, which is in parentheses.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|i| fields.get(*i)?.parse::<f64>().ok())
            .sum();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        ticks / hz
    }

    /// The most resident memory the process has had, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let Some(pid) = self.child.as_ref().and_then(Child::id) else {
            return 0;
        };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    fn signal(&self, signal: libc::c_int) {
        if let Some(pid) = self.child.as_ref().and_then(Child::id) {
            // SAFETY: kill(2) on the pid of a child this process started.
            unsafe { libc::kill(pid as libc::pid_t, signal) };
        }
    }

    async fn wait_exit(&mut self) -> Result<std::process::ExitStatus, Error> {
        let mut child = self.child.take().ok_or("not running")?;
        Ok(tokio::time::timeout(PATIENCE, child.wait()).await??)
    }

    async fn wait_serving(&self) -> Result<(), Error> {
        wait_health(self.name, self.addr).await
    }

    /// One series from this replica's `/metrics`.
    async fn metric(&self, series: &str) -> Option<f64> {
        let text = http_get(self.metrics, "/metrics").await.ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    }

    async fn wait_keys(&self, issuer: &DevIssuer, keys: usize) -> Result<(), Error> {
        let series = format!("authgate_jwks_keys{{issuer=\"{}\"}}", issuer.url());
        until(&format!("{} to hold {keys} keys", self.name), || async {
            self.metric(&series).await == Some(keys as f64)
        })
        .await
    }

    /// The GetPrivate calls this replica has answered OK. A proxy whose
    /// upstream has no reflection knows the method from its scope rule but
    /// not its type, so the series is found whatever its `grpc_type`.
    async fn answered_ok(&self) -> Option<f64> {
        let text = http_get(self.metrics, "/metrics").await.ok()?;
        text.lines()
            .filter(|line| line.starts_with("grpc_server_handled_total{"))
            .filter(|line| {
                line.contains(
                    r#"grpc_service="authgate.v1.PrivateService",grpc_method="GetPrivate",grpc_code="OK"}"#,
                )
            })
            .find_map(|line| line.rsplit_once(' ')?.1.parse().ok())
    }

    /// Waits until this replica has answered `n` more calls OK.
    async fn wait_calls(&self, n: u64) -> Result<(), Error> {
        let start = self.answered_ok().await.unwrap_or(0.0);
        until(&format!("{} to answer calls", self.name), || async {
            self.answered_ok().await.unwrap_or(0.0) >= start + n as f64
        })
        .await
    }
}

/// Waits until the server at `addr` answers health `""` SERVING.
async fn wait_health(name: &str, addr: SocketAddr) -> Result<(), Error> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let url = format!("http://{addr}");
    until(&format!("{name} to be SERVING"), || async {
        let Ok(channel) = tonic::transport::Endpoint::from_shared(url.clone())
            .expect("a URL")
            .connect()
            .await
        else {
            return false;
        };
        HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .is_ok_and(|r| r.into_inner().status == 1)
    })
    .await
}

/// The balancer in front of the replicas: HAProxy or nginx, with the
/// repository's configuration.
struct Balancer {
    kind: Kind,
    addr: SocketAddr,
    /// HAProxy's admin socket.
    socket: PathBuf,
    /// nginx's directory: its configuration, pid file and logs.
    dir: PathBuf,
    /// How much of nginx's error.log the steps have read.
    log_read: u64,
    child: Option<Child>,
}

impl Balancer {
    async fn start(cli: &Cli, replicas: &[Replica]) -> Result<Balancer, Error> {
        match cli.balancer {
            Kind::Haproxy => Balancer::start_haproxy(cli, replicas).await,
            Kind::Nginx => Balancer::start_nginx(cli, replicas).await,
        }
    }

    async fn start_haproxy(cli: &Cli, replicas: &[Replica]) -> Result<Balancer, Error> {
        let addr = free_addr()?;
        let socket = std::path::absolute(cli.work.join("haproxy.sock"))?;
        let _ = std::fs::remove_file(&socket);
        let log = std::fs::File::create(cli.work.join("haproxy.log"))?;
        let child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&cli.haproxy_config)
            .env("AUTHGATE_LB_BIND", addr.to_string())
            .env("AUTHGATE_LB_STATS_SOCKET", &socket)
            .env("AUTHGATE_REPLICA_1", replicas[0].addr.to_string())
            .env("AUTHGATE_REPLICA_2", replicas[1].addr.to_string())
            .env("AUTHGATE_REPLICA_3", replicas[2].addr.to_string())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let balancer = Balancer {
            kind: Kind::Haproxy,
            addr,
            socket,
            dir: PathBuf::new(),
            log_read: 0,
            child: Some(child),
        };
        until("HAProxy's stats socket", || async {
            balancer.state("r1").await.is_some()
        })
        .await?;
        Ok(balancer)
    }

    /// nginx as Debian's package runs it, but in a directory of its own
    /// (`-p`, `-c`) rather than as the system service: a main configuration
    /// like Debian's /etc/nginx/nginx.conf that includes the repository's
    /// file, its example addresses replaced by the replicas' and a free port.
    async fn start_nginx(cli: &Cli, replicas: &[Replica]) -> Result<Balancer, Error> {
        let addr = free_addr()?;
        let dir = std::path::absolute(cli.work.join("nginx"))?;
        std::fs::create_dir_all(&dir)?;
        let mut site = std::fs::read_to_string(&cli.nginx_config)?;
        let mut places = vec![("listen 8443 ".to_owned(), format!("listen {addr} "))];
        for (i, replica) in replicas.iter().enumerate() {
            places.push((
                format!("server 127.0.0.1:{} ", 50051 + i),
                format!("server {} ", replica.addr),
            ));
        }
        for (example, real) in places {
            if !site.contains(&example) {
                return Err(format!(
                    "{} has no `{example}` to replace",
                    cli.nginx_config.display()
                )
                .into());
            }
            site = site.replace(&example, &real);
        }
        std::fs::write(dir.join("authgate.conf"), site)?;
        let error_log = dir.join("error.log");
        std::fs::write(&error_log, "")?;
        let d = dir.display();
        // Debian's nginx.conf, less what serves files, with every path here.
        // The access log is off: one line per call would cost the balancer
        // more than the calls.
        let main = format!(
            "worker_processes auto;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log;\n\
             daemon off;\n\
             events {{\n    worker_connections 768;\n}}\n\
             http {{\n\
             \x20   access_log off;\n\
             \x20   client_body_temp_path {d}/body;\n\
             \x20   proxy_temp_path {d}/proxy;\n\
             \x20   fastcgi_temp_path {d}/fastcgi;\n\
             \x20   uwsgi_temp_path {d}/uwsgi;\n\
             \x20   scgi_temp_path {d}/scgi;\n\
             \x20   include {d}/authgate.conf;\n\
             }}\n"
        );
        std::fs::write(dir.join("nginx.conf"), main)?;
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log"))?)
            .kill_on_drop(true)
            .spawn()?;
        let mut balancer = Balancer {
            kind: Kind::Nginx,
            addr,
            socket: PathBuf::new(),
            dir,
            log_read: 0,
            child: Some(child),
        };
        let listening = until("nginx to listen", || async {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        if let Err(error) = listening {
            let exited = balancer.child.as_mut().map(Child::try_wait);
            let stderr = std::fs::read_to_string(balancer.dir.join("stderr.log"))?;
            return Err(format!("{error} (nginx: {exited:?}; {stderr})").into());
        }
        Ok(balancer)
    }

    /// The balancer's name and version, as it prints them.
    fn version(&self) -> String {
        let (program, flag) = match self.kind {
            Kind::Haproxy => ("haproxy", "-v"),
            Kind::Nginx => ("nginx", "-v"),
        };
        let Ok(out) = std::process::Command::new(program).arg(flag).output() else {
            return program.to_owned();
        };
        // nginx prints its version on stderr.
        let text = [out.stdout, out.stderr].concat();
        String::from_utf8_lossy(&text)
            .lines()
            .next()
            .unwrap_or(program)
            .trim()
            .to_owned()
    }

    /// The balancer's view of a replica: `UP`, `DOWN`, `UP 1/2` (going
    /// down), `DOWN 1/2` (coming up)...
    async fn state(&self, server: &str) -> Option<String> {
        let stat = unix_request(&self.socket, "show stat\n").await.ok()?;
        stat.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (fields.first() == Some(&"authgate") && fields.get(1) == Some(&server))
                .then(|| fields.get(17).map(|s| s.to_string()))
                .flatten()
        })
    }

    /// Waits for HAProxy's view of a replica; nginx has none to wait on.
    async fn wait_state(&self, server: &str, want: &str) -> Result<(), Error> {
        if self.kind != Kind::Haproxy {
            return Ok(());
        }
        until(&format!("HAProxy to see {server} {want}"), || async {
            self.state(server).await.as_deref() == Some(want)
        })
        .await
    }

    /// nginx's error.log since the last call, its lines counted by what
    /// they say (`[error] connect() failed (111: Connection refused) while
    /// connecting to upstream`, ...), without the time, the connection and
    /// the request. Empty for HAProxy, whose log holds its health checks.
    fn logged_since_last(&mut self) -> std::io::Result<BTreeMap<String, u64>> {
        use std::io::{Read, Seek};
        let mut counts = BTreeMap::new();
        if self.kind != Kind::Nginx {
            return Ok(counts);
        }
        let mut file = std::fs::File::open(self.dir.join("error.log"))?;
        file.seek(std::io::SeekFrom::Start(self.log_read))?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        // Whole lines only; a line nginx is writing is read next time.
        let whole = text.rfind('\n').map_or(0, |end| end + 1);
        self.log_read += whole as u64;
        for line in text[..whole].lines() {
            *counts.entry(what_nginx_said(line)).or_default() += 1;
        }
        Ok(counts)
    }

    /// Stops the balancer and waits for it: nginx's workers outlive a
    /// master killed outright, so nginx is asked to stop (SIGTERM).
    async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            // SAFETY: kill(2) on the pid of a child this process started.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
}

impl Drop for Balancer {
    /// On an early return: as [`Balancer::stop`], waiting a few seconds at
    /// most.
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            // SAFETY: as in `stop`.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
        for _ in 0..100 {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// What one line of nginx's error.log says: its level and message, less
/// the time, the process and connection numbers, and the request's details
/// after `, client:`.
fn what_nginx_said(line: &str) -> String {
    // 2026/11/01 17:00:00 [error] 123#123: *456 recv() failed (104: ...) while ..., client: ...
    let level = line
        .split_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .map_or("", |(level, _)| level);
    let message = line.split_once(": ").map_or(line, |(_, rest)| rest);
    let message = match message.strip_prefix('*') {
        Some(rest) => rest.split_once(' ').map_or(rest, |(_, rest)| rest),
        None => message,
    };
    let message = message.split(", client:").next().unwrap_or(message);
    format!("[{level}] {message}")
}

async fn unix_request(socket: &Path, request: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::UnixStream::connect(socket).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

/// A bare HTTP/1.0 GET: the body, for a 200.
async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP head"))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(
            head.lines().next().unwrap_or("").to_owned(),
        ));
    }
    Ok(body.to_owned())
}

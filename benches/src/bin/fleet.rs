//! A fleet of `authgate serve` replicas behind a real L7 balancer (HAProxy,
//! with `deploy/haproxy/haproxy.cfg`), under load, behind
//! `benches/fleet.sh`.
//!
//! The dev issuer runs in this process; three release replicas and HAProxy
//! run on loopback. While the load generator drives valid calls through the
//! balancer (counting each by the `grpc-status` it ended with), one step at a
//! time:
//!
//! - every replica is restarted in turn: SIGTERM, its drain, start again;
//! - the issuer rotates its key: publish a new one, sign with it, withdraw
//!   the old one;
//! - one replica is killed with SIGKILL.
//!
//! Each step waits on events (the balancer's view of a replica, a replica's
//! health and metrics), never on a fixed pause. Then the calls by status per
//! step, and throughput through the balancer against one replica direct.
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
    sync::Arc,
    time::{Duration, Instant},
};

use authgate::{issuer::DevIssuer, issuer::DevIssuerConfig, keys::Algorithm};
use authgate_bench::{
    METHOD, SCOPE,
    loadgen::{Call, EMPTY_MESSAGE, LoadConfig, LoadReport, run, run_until},
};
use bytes::Bytes;
use clap::Parser;
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
    /// The balancer's configuration.
    #[arg(long, default_value = "deploy/haproxy/haproxy.cfg")]
    haproxy_config: PathBuf,
    /// Where logs and the stats socket go.
    #[arg(long, default_value = "target/fleet")]
    work: PathBuf,
    /// How long the steady steps measure.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
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

/// Distinct valid tokens in the load, each sent in turn.
const TOKENS: usize = 500;
/// How long any one event may take before the run is called a failure.
const PATIENCE: Duration = Duration::from_secs(60);

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
    let balancer = Balancer::start(&cli, &replicas).await?;
    for replica in &replicas {
        balancer.wait_state(replica.name, "UP").await?;
    }
    let version = std::process::Command::new("haproxy").arg("-v").output()?;
    let version = String::from_utf8_lossy(&version.stdout);
    println!(
        "fleet: 3 replicas of {}{} behind {} on {}; {} connections x {} streams; {TOKENS} valid tokens in turn",
        cli.authgate.display(),
        if cli.proxy {
            " proxy, each in front of an upstream of its own (proxybench upstream),"
        } else {
            ""
        },
        version.lines().next().unwrap_or("HAProxy").trim(),
        balancer.addr,
        cli.connections,
        cli.streams,
    );
    println!(
        "replicas: --drain-delay {}, health checked by HAProxy every 500 ms (fall 2, rise 2)\n",
        cli.drain_delay
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
    let through = run(load(balancer.addr, old_tokens.clone())).await?;
    steps.push(("through the balancer, steady".into(), through));

    // Rolling restart: one replica at a time, each drained by SIGTERM.
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(run_until(
        load_now(balancer.addr, old_tokens.clone()),
        async {
            let _ = stopped.await;
        },
    ));
    let mut notes = Vec::new();
    for replica in &mut replicas {
        let asked = Instant::now();
        replica.signal(libc::SIGTERM);
        balancer.wait_state(replica.name, "DOWN").await?;
        let out = asked.elapsed();
        let status = replica.wait_exit().await?;
        let exited = asked.elapsed();
        if !status.success() {
            return Err(format!("{} exited with {status} on SIGTERM", replica.name).into());
        }
        replica.start(&cli, &issuer)?;
        replica.wait_serving().await?;
        balancer.wait_state(replica.name, "UP").await?;
        notes.push(format!(
            "{}: out of the balancer {:.1} s after SIGTERM, exited 0 at {:.1} s, back in at {:.1} s",
            replica.name,
            out.as_secs_f64(),
            exited.as_secs_f64(),
            asked.elapsed().as_secs_f64()
        ));
    }
    let _ = stop.send(());
    steps.push((
        "rolling restart (SIGTERM, drain, start; one at a time)".into(),
        running.await??,
    ));
    for note in notes {
        println!("  {note}");
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
    balancer.wait_state("r2", "DOWN").await?;
    let out = killed.elapsed();
    // Two more seconds on the two replicas left, so the step shows them
    // carrying the load, not only the moment of the kill.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop.send(());
    steps.push(("one replica killed (SIGKILL)".into(), running.await??));
    let _ = replicas[1].wait_exit().await;
    println!(
        "  r2: SIGKILLed, out of the balancer {:.1} s later",
        out.as_secs_f64()
    );

    println!(
        "\n{:<56} {:>10} {:>10}  calls by status",
        "step", "calls/s", "p99 us"
    );
    for (name, report) in &steps {
        println!(
            "{name:<56} {:>10.0} {:>10}  {}",
            report.calls_per_second(),
            report.quantile_us(0.99),
            by_status(report)
        );
    }
    let direct = steps[0].1.calls_per_second();
    let through = steps[1].1.calls_per_second();
    println!(
        "\nthroughput through the balancer / one replica direct: {:.2} ({through:.0} / {direct:.0} calls/s)",
        through / direct
    );
    let during: u64 = steps[2..4].iter().map(|(_, r)| failed(r)).sum();
    let killed = failed(&steps[4].1);
    println!(
        "failed calls: {during} in the rolling restart and the rotation (goal 0); {killed} when a replica was killed \
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
    drop(balancer);
    drop(replicas);
    if during > 0 {
        return Err("calls failed during a rolling restart or a rotation".into());
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

/// HAProxy with the repository's configuration.
struct Balancer {
    addr: SocketAddr,
    socket: PathBuf,
    _child: Child,
}

impl Balancer {
    async fn start(cli: &Cli, replicas: &[Replica]) -> Result<Balancer, Error> {
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
            addr,
            socket,
            _child: child,
        };
        until("HAProxy's stats socket", || async {
            balancer.state("r1").await.is_some()
        })
        .await?;
        Ok(balancer)
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

    async fn wait_state(&self, server: &str, want: &str) -> Result<(), Error> {
        until(&format!("HAProxy to see {server} {want}"), || async {
            self.state(server).await.as_deref() == Some(want)
        })
        .await
    }
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

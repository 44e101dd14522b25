//! The `authgate` binary as a user runs it: refusals before serving, `dev`'s
//! printed token and command, and exit 0 on SIGTERM and SIGINT.

use std::process::{Command, ExitStatus, Stdio};

use authgate::pb::{GetPrivateRequest, private_service_client::PrivateServiceClient};
use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt, BufReader, Lines},
    process::Child,
};
use tonic::Request;

use crate::common::{GET_PRIVATE, SCOPE, eventually, patience, spawn_issuer};

pub(crate) fn authgate() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_authgate"));
    for name in [
        "AUTH0_DOMAIN",
        "AUTH0_AUDIENCE",
        "AUTHGATE_ISSUER",
        "AUTHGATE_AUDIENCE",
        "AUTHGATE_CONFIG",
        "AUTHGATE_LISTEN",
        "AUTHGATE_JWKS_URL",
        "AUTHGATE_REQUIRE_SCOPE",
    ] {
        command.env_remove(name);
    }
    command.env("RUST_LOG", "warn");
    command
}

/// Starts `command` as a child this test waits on, killed if the test ends
/// first.
pub(crate) fn spawn(command: &mut Command) -> Child {
    let mut command = tokio::process::Command::from(std::mem::replace(command, authgate()));
    command.kill_on_drop(true);
    command.spawn().unwrap()
}

/// Waits for `child` to exit; only a hang waits out the patience.
pub(crate) async fn wait(child: &mut Child) -> ExitStatus {
    tokio::time::timeout(patience(), child.wait())
        .await
        .expect("authgate did not exit")
        .unwrap()
}

pub(crate) fn signal(child: &Child, signal: libc::c_int) {
    let pid = child.id().expect("the child is running");
    // SAFETY: kill(2) with the pid of a child we own and have not reaped.
    let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(rc, 0);
}

/// `authgate serve` as `command` starts it, listening where its arguments or
/// configuration say (port 0 for any), and the addresses its start-up line
/// names: no port is picked before the server binds it.
pub(crate) struct Served {
    pub child: Child,
    /// Where gRPC is served.
    pub addr: String,
    /// Where metrics are served, if they are.
    pub metrics: Option<String>,
}

/// Reads `lines` up to and including the first for which `done` holds, and
/// returns all it read; fewer if the stream ends first. Fails the test if
/// neither happens within the patience.
pub(crate) async fn lines_until<R: AsyncBufRead + Unpin>(
    lines: &mut Lines<R>,
    mut done: impl FnMut(&str) -> bool,
) -> Vec<String> {
    let mut read = Vec::new();
    let reading = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let last = done(&line);
            read.push(line);
            if last {
                break;
            }
        }
    };
    tokio::time::timeout(patience(), reading)
        .await
        .expect("the line waited for within the patience");
    read
}

pub(crate) async fn serve(mut command: Command) -> Served {
    command
        .env("RUST_LOG", "warn,authgate::cli=info")
        .stderr(Stdio::piped());
    let mut child = spawn(&mut command);
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let said = lines_until(&mut stderr, |line| line.contains("authgate serving")).await;
    let line = match said.last() {
        Some(line) if line.contains("authgate serving") => line.clone(),
        _ => panic!("authgate serve stopped before serving: {said:?}"),
    };
    // Keep reading, so that its logging never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|field| field.strip_prefix(name))
            .map(str::to_owned)
    };
    Served {
        child,
        addr: field("listen=").expect("a listen= field"),
        metrics: field("metrics=Some(").map(|m| m.trim_end_matches(')').to_owned()),
    }
}

pub(crate) async fn call(addr: &str, token: &str) -> Result<String, tonic::Status> {
    let mut client = PrivateServiceClient::connect(format!("http://{addr}"))
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut request = Request::new(GetPrivateRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    Ok(client.get_private(request).await?.into_inner().subject)
}

#[test]
fn serve_refuses_insecure_or_incomplete_settings_before_serving() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["--issuer", "http://tenant.auth0.com/", "--audience", "a"],
            "must use https",
        ),
        (
            &[
                "--issuer",
                "https://t.auth0.com/",
                "--audience",
                "a",
                "--jwks-url",
                "http://192.168.1.9/jwks.json",
            ],
            "must use https",
        ),
        (&["--issuer", "https://t.auth0.com/"], "no audience"),
        (&["--audience", "a"], "no issuer"),
        (
            &[
                "--issuer",
                "https://t.auth0.com/",
                "--audience",
                "a",
                "--require-scope",
                "GetPrivate=x",
            ],
            "full method path",
        ),
    ];
    for (args, says) in cases {
        let output = authgate().arg("serve").args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn auth0_environment_variables_configure_serve() {
    // AUTH0_DOMAIN alone is not enough: an audience is still required, and the
    // message says which variable would give it.
    let output = authgate()
        .arg("serve")
        .env("AUTH0_DOMAIN", "tenant.auth0.com")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("AUTH0_AUDIENCE"));
}

#[tokio::test]
async fn serve_answers_with_the_environments_rules_and_exits_zero_on_sigterm() {
    let issuer = spawn_issuer().await;
    let mut command = authgate();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--issuer", issuer.url()])
        .args(["--audience", issuer.audience()])
        // Two rules for one method, `;`-separated: both must hold.
        .env(
            "AUTHGATE_REQUIRE_SCOPE",
            format!("{GET_PRIVATE}={SCOPE}; {GET_PRIVATE}=audit"),
        );
    let Served {
        mut child, addr, ..
    } = serve(command).await;
    let one = issuer.mint(&issuer.claims("cli-user", &[SCOPE]));
    let both = issuer.mint(&issuer.claims("cli-user", &[SCOPE, "audit"]));
    // The server answers once its key set has loaded.
    let answered = eventually(patience(), || async {
        !matches!(call(&addr, &one).await, Err(s) if s.code() == tonic::Code::Unavailable)
    })
    .await;
    assert!(answered, "authgate serve never loaded its keys");
    let refused = call(&addr, &one).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert_eq!(refused.message(), "missing required scope `audit`");
    assert_eq!(call(&addr, &both).await.unwrap(), "cli-user");

    signal(&child, libc::SIGTERM);
    let status = wait(&mut child).await;
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[tokio::test]
async fn serve_drains_on_sigterm_then_exits_zero() {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let issuer = spawn_issuer().await;
    let mut command = authgate();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--issuer", issuer.url()])
        .args(["--audience", issuer.audience()])
        .args(["--metrics-listen", "127.0.0.1:0"])
        // Longer than any test runs: only a second signal ends it.
        .args(["--drain-delay", "1h", "--shutdown-timeout", "10s"]);
    let Served {
        mut child,
        addr,
        metrics,
    } = serve(command).await;
    let metrics = metrics.expect("metrics are served");
    let token = issuer.mint(&issuer.claims("cli-user", &[SCOPE]));
    let ok = eventually(patience(), || async { call(&addr, &token).await.is_ok() }).await;
    assert!(ok, "authgate serve never answered");
    let scrape = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(scrape.contains("authgate_build_info{"), "{scrape}");

    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().status, 1);
    signal(&child, libc::SIGTERM);
    let changed = tokio::time::timeout(patience(), watch.message())
        .await
        .expect("health changed on SIGTERM")
        .unwrap()
        .unwrap();
    assert_eq!(changed.status, 2, "NOT_SERVING");
    drop((watch, health));
    // Within the drain delay, calls are still answered.
    assert_eq!(call(&addr, &token).await.unwrap(), "cli-user");
    // A second signal ends the hour's drain: the server exits now, and 0.
    signal(&child, libc::SIGTERM);
    let status = wait(&mut child).await;
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// Starts `authgate dev` with `args` and reads its banner up to the last line.
pub(crate) async fn dev_banner(args: &[&str]) -> (Child, Vec<String>) {
    let args: Vec<&str> = ["--issuer-listen", "127.0.0.1:0"]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    dev_banner_with_issuer(&args).await
}

/// [`dev_banner`], where `args` say where the issuer listens.
async fn dev_banner_with_issuer(args: &[&str]) -> (Child, Vec<String>) {
    let mut command = authgate();
    command
        .args(["dev", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = spawn(&mut command);
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let lines = lines_until(&mut stdout, |line| line.starts_with("Ctrl-C")).await;
    (child, lines)
}

#[tokio::test]
async fn dev_prints_a_token_and_a_grpcurl_command_that_work() {
    let (child, lines) = dev_banner(&[]).await;
    let mut child = child;
    let grpcurl = lines
        .iter()
        .find(|l| l.trim_start().starts_with("grpcurl -plaintext -H"))
        .expect("a grpcurl command");
    let words: Vec<&str> = grpcurl.split_whitespace().collect();
    // grpcurl -plaintext -H 'authorization: Bearer TOKEN' ADDR METHOD
    let token = words[5].trim_end_matches('\'');
    let addr = words[6];
    assert_eq!(words[7], "authgate.v1.PrivateService/GetPrivate");
    assert!(
        lines.iter().any(|l| l.trim() == token),
        "the token is printed alone too"
    );
    assert!(lines.iter().any(|l| l.contains("client secret")));
    assert_eq!(call(addr, token).await.unwrap(), "authgate-dev@clients");
    // Metrics are on, on a free port since --listen asked for one.
    let metrics = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("metrics"))
        .expect("a metrics line")
        .trim();
    assert!(metrics.starts_with("http://127.0.0.1:") && metrics.ends_with("/metrics"));
    assert!(!metrics.contains(":50053/"), "{metrics}");
    let scrape = reqwest::get(metrics).await.unwrap().text().await.unwrap();
    assert!(
        scrape.contains(r#"authgate_auth_decisions_total{result="allowed",reason="none"} 1"#),
        "{scrape}"
    );
    let refused = call(addr, "not-a-token").await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    signal(&child, libc::SIGINT);
    let status = wait(&mut child).await;
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[tokio::test]
async fn dev_with_a_second_issuer_prints_a_working_token_from_each() {
    let (mut child, lines) =
        dev_banner(&["--second-issuer", "--second-issuer-listen", "127.0.0.1:0"]).await;
    let field = |name: &str| {
        lines
            .iter()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no `{name}` line in {lines:#?}"))
    };
    let (first, second) = (field("issuer "), field("second issuer "));
    assert_ne!(first, second);
    let commands: Vec<Vec<&str>> = lines
        .iter()
        .filter(|l| l.trim_start().starts_with("grpcurl -plaintext -H"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(commands.len(), 2, "{lines:#?}");
    let mut issuers = Vec::new();
    for words in &commands {
        let (token, addr) = (words[5].trim_end_matches('\''), words[6]);
        assert_eq!(call(addr, token).await.unwrap(), "authgate-dev@clients");
        let payload = token.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                .unwrap(),
        )
        .unwrap();
        issuers.push(claims["iss"].as_str().unwrap().to_owned());
    }
    assert_eq!(issuers, [first, second], "one token from each issuer");

    signal(&child, libc::SIGINT);
    let status = wait(&mut child).await;
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// `authgate token`/`call` against `issuer`, caching tokens in `cache`.
pub(crate) fn client_command(
    issuer: &authgate::issuer::DevIssuer,
    cache: &std::path::Path,
) -> Command {
    let mut command = authgate();
    command
        .env("AUTHGATE_ISSUER", issuer.url())
        .env("AUTHGATE_AUDIENCE", issuer.audience())
        .env("AUTHGATE_CLIENT_ID", "test-client")
        .env("AUTHGATE_CLIENT_SECRET", "test-secret")
        .env("AUTHGATE_CACHE_DIR", cache);
    command
}

pub(crate) fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("authgate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test]
async fn token_and_call_reuse_one_cached_token_across_runs() {
    let app = crate::common::spawn_app().await;
    let cache = temp_dir("cache");
    let run = |args: &[&str]| {
        let (issuer, cache) = (&app.issuer, cache.clone());
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut command = client_command(issuer, &cache);
        command.args(&args);
        tokio::task::spawn_blocking(move || command.output().unwrap())
    };
    let first = run(&["token"]).await.unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let token = String::from_utf8(first.stdout).unwrap().trim().to_owned();
    assert_eq!(token.split('.').count(), 3);
    let second = run(&["token"]).await.unwrap();
    assert_eq!(String::from_utf8(second.stdout).unwrap().trim(), token);
    let addr = app.url();
    let called = run(&["call", "--addr", &addr]).await.unwrap();
    assert!(
        called.status.success(),
        "{}",
        String::from_utf8_lossy(&called.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&called.stdout).unwrap();
    assert_eq!(json["message"], "This is private");
    assert_eq!(json["subject"], "test-client@clients");
    assert_eq!(json["scopes"], serde_json::json!([SCOPE]));
    assert_eq!(app.issuer.token_hits(), 1, "three runs, one token request");

    // The cache file is the user's alone and holds no secret.
    let files: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(!text.contains("test-secret"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
        0o700
    );

    // Other scopes are another cache entry, and another request.
    let other = run(&["token", "--scope", "read:private"]).await.unwrap();
    assert!(other.status.success());
    assert_eq!(app.issuer.token_hits(), 2);
    let _ = std::fs::remove_dir_all(&cache);
}

#[tokio::test]
async fn call_prints_the_code_and_message_and_exits_non_zero() {
    let app = crate::common::spawn_app().await;
    let cache = temp_dir("nocache");
    let addr = app.url();
    let mut command = client_command(&app.issuer, &cache);
    command.args(["call", "--addr", &addr, "--token", "not.a.token"]);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64 + 16), "{stderr}");
    assert!(stderr.contains("Code: Unauthenticated"), "{stderr}");
    assert!(stderr.contains("Message: token is malformed"), "{stderr}");
    assert!(!stderr.contains("not.a.token"));

    // A token without the scope: PERMISSION_DENIED, named. (The issuer
    // refuses to grant a client a scope it lacks, so another client.)
    app.issuer.add_client(authgate::issuer::DevClient {
        id: "other-client".into(),
        secret: "other-secret".into(),
        scopes: vec!["read:other".into()],
    });
    let mut command = client_command(&app.issuer, &cache);
    command
        .args(["call", "--addr", &addr, "--no-cache"])
        .env("AUTHGATE_CLIENT_ID", "other-client")
        .env("AUTHGATE_CLIENT_SECRET", "other-secret");
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64 + 7), "{stderr}");
    assert!(
        stderr.contains("missing required scope `read:private`"),
        "{stderr}"
    );

    // A wrong secret: a clear error, the secret not echoed.
    let mut command = client_command(&app.issuer, &cache);
    command
        .env("AUTHGATE_CLIENT_SECRET", "hunter2")
        .args(["token", "--no-cache"]);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("invalid_client"), "{stderr}");
    assert!(!stderr.contains("hunter2"));
    assert!(!cache.exists(), "--no-cache wrote a cache");
}

#[tokio::test]
async fn call_reaches_a_tls_server_through_a_private_ca() {
    let (app, ca) = crate::common::spawn_tls_app("cli").await;
    let addr = format!("https://localhost:{}", app.addr.port());
    let token = app.token();
    let mut command = authgate();
    command.args(["call", "--addr", &addr, "--token", &token]);
    command.arg("--ca").arg(&ca);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["message"], "This is private");
    // Without the CA, the server's certificate is not trusted.
    let mut command = authgate();
    command.args(["call", "--addr", &addr, "--token", &token]);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(!output.status.success());
}

/// What `authgate` wrote on stderr, started with `args` at `RUST_LOG=debug`,
/// from its start up to a key set fetched, then through SIGTERM to its exit.
async fn debug_lines_to_a_fetch(args: &[String]) -> Vec<String> {
    let mut command = authgate();
    command
        .args(args)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = spawn(&mut command);
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut serving, mut fetched) = (false, false);
    let mut said = lines_until(&mut stderr, |line| {
        serving |= line.contains("authgate serving");
        fetched |= line.contains("fetched the JWKS");
        serving && fetched
    })
    .await;
    assert!(serving && fetched, "{args:?} never served keys: {said:#?}");
    signal(&child, libc::SIGTERM);
    said.extend(lines_until(&mut stderr, |_| false).await);
    let status = wait(&mut child).await;
    assert_eq!(status.code(), Some(0), "{args:?}: {status:?}");
    said
}

/// No line `serve` or `proxy` writes, in either log format, tells a URL's
/// query, whether the URL came from a flag, the config file or discovery,
/// and whether it is the JWKS URL or the issuer; a URL with userinfo is
/// refused without telling it either. The URLs are still named, redacted.
#[tokio::test]
async fn no_line_tells_a_urls_query_or_userinfo() {
    const SECRET: &str = "hunter2";
    let issuer = spawn_issuer().await;
    let signed = format!(
        "{}?sig={SECRET}-sig&api_key={SECRET}-key",
        issuer.jwks_url()
    );
    let discovering = spawn_issuer().await;
    discovering.set_discovery_member(
        "jwks_uri",
        serde_json::json!(format!("{}?sig={SECRET}-found", discovering.jwks_url())),
    );
    let dir = temp_dir("start-up-secrets");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("authgate.toml");
    std::fs::write(
        &file,
        format!(
            "audience = \"{}\"\n[[issuer]]\nurl = \"{}?tenant={SECRET}-issuer\"\njwks-url = \"{signed}\"\n",
            issuer.audience(),
            issuer.url()
        ),
    )
    .unwrap();
    let flags = |issuer: &authgate::issuer::DevIssuer, jwks: Option<&str>| {
        let mut args = vec!["--issuer", issuer.url(), "--audience", issuer.audience()];
        args.extend(jwks.map(|url| ["--jwks-url", url]).into_iter().flatten());
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let sources = [
        ("--jwks-url", flags(&issuer, Some(&signed))),
        (
            "--config",
            vec!["--config".into(), file.display().to_string()],
        ),
        ("discovery", flags(&discovering, None)),
    ];
    // Refused at once: the proxy starts without its upstream.
    let (_held, upstream) = crate::common::held_address();
    for command in ["serve", "proxy"] {
        for format in ["text", "json"] {
            for (source, settings) in &sources {
                let mut args: Vec<String> = [command, "--listen", "127.0.0.1:0"]
                    .into_iter()
                    .chain(["--log-format", format])
                    .map(str::to_owned)
                    .collect();
                if command == "proxy" {
                    args.extend(["--upstream".into(), format!("http://{upstream}")]);
                }
                args.extend(settings.iter().cloned());
                let said = debug_lines_to_a_fetch(&args).await;
                let case = format!("{command} --log-format {format}, from {source}");
                for line in &said {
                    assert!(!line.contains(SECRET), "{case}: {line}");
                }
                let trusting = said
                    .iter()
                    .find(|line| line.contains("trusting issuer"))
                    .unwrap_or_else(|| panic!("{case}: no `trusting issuer` line"));
                if *source != "discovery" {
                    assert!(
                        trusting.contains("jwks.json?<redacted>"),
                        "{case}: {trusting}"
                    );
                }
            }
        }
    }

    // Userinfo is refused, from a flag or the file, without being told.
    let with_userinfo = format!(
        "http://jwks:{SECRET}-password@{}/jwks.json?sig={SECRET}-sig",
        issuer.addr()
    );
    std::fs::write(
        &file,
        format!(
            "audience = \"a\"\n[[issuer]]\nurl = \"{}\"\njwks-url = \"{with_userinfo}\"\n",
            issuer.url()
        ),
    )
    .unwrap();
    let refusals = [
        flags(&issuer, Some(&with_userinfo)),
        vec!["--config".into(), file.display().to_string()],
    ];
    for settings in refusals {
        for command in [&["serve"][..], &["serve", "--check"]] {
            let output = authgate()
                .args(command)
                .args(&settings)
                .env("RUST_LOG", "debug")
                .output()
                .unwrap();
            let (stdout, stderr) = (
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
            );
            assert_eq!(output.status.code(), Some(2), "{settings:?}: {stderr}");
            assert!(stderr.contains("<redacted>@"), "{settings:?}: {stderr}");
            assert!(!stderr.contains(SECRET), "{settings:?}: {stderr}");
            assert!(!stdout.contains(SECRET), "{settings:?}: {stdout}");
        }
    }

    // Discovery that names another issuer stops the server, naming both
    // issuers redacted.
    discovering.set_discovery_member(
        "issuer",
        serde_json::json!(format!("{}?tenant={SECRET}-named", discovering.url())),
    );
    let mut command = authgate();
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(flags(&discovering, None));
    // Off this thread: the issuer answers on it.
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("?<redacted>`, not the configured"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `authgate dev --signing-key FILE` keeps its key across a restart: FILE is
/// made with mode 0600, the `kid` stays, and a token issued before the
/// restart is still accepted after it; a restart without the flag makes a
/// new key, which refuses that token.
#[tokio::test]
async fn dev_keeps_its_signing_key_in_a_file_across_restarts() {
    let dir = temp_dir("signing-key");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("dev-key.pem");
    let key = key.to_str().unwrap();
    /// The issuer's URL, the gRPC address and the token the banner shows.
    fn read(lines: &[String]) -> (String, String, String) {
        let issuer = lines
            .iter()
            .find_map(|l| l.trim().strip_prefix("issuer "))
            .expect("an issuer line")
            .trim()
            .to_owned();
        let grpcurl: Vec<&str> = lines
            .iter()
            .find(|l| l.trim_start().starts_with("grpcurl -plaintext -H"))
            .expect("a grpcurl command")
            .split_whitespace()
            .collect();
        let token = grpcurl[5].trim_end_matches('\'').to_owned();
        (issuer, grpcurl[6].to_owned(), token)
    }
    fn kid(token: &str) -> String {
        let header = token.split('.').next().unwrap();
        let header: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header)
                .unwrap(),
        )
        .unwrap();
        header["kid"].as_str().unwrap().to_owned()
    }
    async fn stop(mut child: Child) {
        signal(&child, libc::SIGINT);
        let status = wait(&mut child).await;
        assert_eq!(status.code(), Some(0), "{status:?}");
    }

    let (child, lines) =
        dev_banner_with_issuer(&["--issuer-listen", "127.0.0.1:0", "--signing-key", key]).await;
    let (issuer, addr, before) = read(&lines);
    assert_eq!(call(&addr, &before).await.unwrap(), "authgate-dev@clients");
    stop(child).await;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");

    // The same issuer URL, so that the old token's `iss` still names it.
    let listen = issuer
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix('/'))
        .expect("http://ADDR/");
    let (child, lines) =
        dev_banner_with_issuer(&["--issuer-listen", listen, "--signing-key", key]).await;
    let (again, addr, after) = read(&lines);
    assert_eq!(again, issuer);
    assert_eq!(kid(&after), kid(&before), "the restart kept the key");
    assert_eq!(call(&addr, &before).await.unwrap(), "authgate-dev@clients");
    stop(child).await;

    let (child, lines) = dev_banner_with_issuer(&["--issuer-listen", listen]).await;
    let (_, addr, fresh) = read(&lines);
    assert_ne!(kid(&fresh), kid(&before), "without the file, a new key");
    let refused = call(&addr, &before).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    stop(child).await;

    // A key file that others may read is refused before anything starts.
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = authgate()
        .args([
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--issuer-listen",
            "127.0.0.1:0",
        ])
        .args(["--signing-key", key])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--signing-key") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn dev_authz_prints_a_question_that_is_answered() {
    let (mut child, lines) = dev_banner(&["--authz"]).await;
    let curl = lines
        .iter()
        .find(|l| l.contains("X-Forwarded-Uri"))
        .expect("a curl that asks authz");
    // curl -i -H 'Authorization: Bearer TOKEN' -H 'X-Forwarded-Uri: /items' URL
    let words: Vec<&str> = curl.split_whitespace().collect();
    let token = words[5].trim_end_matches('\'');
    let url = words[9];
    let ask = |token: Option<&str>| {
        let mut request = reqwest::Client::new()
            .get(url)
            .header("x-forwarded-uri", "/items");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let allowed = ask(Some(token)).await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        allowed.headers()["x-authgate-subject"],
        "authgate-dev@clients"
    );
    assert_eq!(ask(None).await.unwrap().status(), 401);
    assert!(lines.iter().any(|l| l.contains("auth_request /_authgate;")));

    signal(&child, libc::SIGINT);
    let status = wait(&mut child).await;
    assert_eq!(status.code(), Some(0), "{status:?}");
}

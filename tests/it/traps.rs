//! Traps a newcomer met, each kept from coming back: what the docs show is
//! what the binary prints (`authgate dev`'s banner in docs/dev.md, the
//! errors of `call` and grpcurl in docs/calling.md), a wrong secret is never
//! served from the cache, a restarted issuer's new key has a new `kid`, and
//! errors say why.

use std::process::{Command, Output, Stdio};

use authgate::{AuthError, keys::Algorithm};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::{
    cli::{authgate, call, client_command, dev_banner, lines_until, signal, spawn, temp_dir, wait},
    common::{SCOPE, eventually, patience, spawn_app, spawn_issuer},
};

/// The page that shows `authgate dev`'s banner.
const DEV_PAGE: (&str, &str) = ("docs/dev.md", include_str!("../../docs/dev.md"));
/// The page that shows what calling the server answers.
const CALLING_PAGE: (&str, &str) = ("docs/calling.md", include_str!("../../docs/calling.md"));

async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `page` shows `text` as a command's output, each line behind `# `.
fn assert_shows((name, page): (&str, &str), text: &str) {
    for line in text.lines() {
        let shown = format!("# {line}");
        assert!(
            page.lines().any(|l| l.trim_end() == shown.trim_end()),
            "{name} does not show `{shown}`, which the binary prints"
        );
    }
}

#[tokio::test]
async fn the_readme_shows_the_errors_the_binary_prints() {
    let app = spawn_app().await;
    let mut command = authgate();
    command.args(["call", "--addr", &app.url(), "--token", "not.a.token"]);
    let output = run(command).await;
    assert_eq!(output.status.code(), Some(80));
    assert_shows(CALLING_PAGE, stderr(&output).trim_end());
    assert!(CALLING_PAGE.1.contains("# exit 80"));

    // Nothing listens on port 1: the cause is said once, down to the OS.
    let mut command = authgate();
    command.args(["call", "--addr", "http://127.0.0.1:1", "--token", "x"]);
    let output = run(command).await;
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert_eq!(text.matches("Connection refused").count(), 1, "{text}");
    assert!(
        !text.contains("tcp connect error: tcp connect error"),
        "{text}"
    );
    assert_shows(CALLING_PAGE, text.trim_end());

    // grpcurl's answer without a token, as the page shows it.
    assert!(
        CALLING_PAGE
            .1
            .contains(&format!("#   Message: {}", AuthError::MissingAuthorization))
    );
}

#[tokio::test]
async fn the_readme_shows_the_banner_dev_prints() {
    let (mut child, banner) = dev_banner(&[]).await;
    signal(&child, libc::SIGTERM);
    wait(&mut child).await;

    let (name, page) = DEV_PAGE;
    let start = page
        .find("authgate dev: a local issuer")
        .unwrap_or_else(|| panic!("{name} shows the banner"));
    let shown: Vec<String> = page[start..]
        .lines()
        .take_while(|l| !l.starts_with("```"))
        .map(normalize)
        .collect();
    let printed: Vec<String> = banner.iter().map(|l| normalize(l)).collect();
    assert_eq!(shown, printed, "{name}'s sample of `authgate dev`");
}

/// A banner line with what differs between runs (tokens, secrets, ports,
/// the program's path) replaced by placeholders.
fn normalize(line: &str) -> String {
    let mut out = Vec::new();
    for word in line.split(' ') {
        let word = if let Some(i) = word.find("eyJ") {
            format!("{}TOKEN", &word[..i])
        } else if let Some(i) = word.find("127.0.0.1:") {
            format!("{}ADDR", &word[..i])
        } else if word.ends_with("/authgate") {
            "authgate".to_owned()
        } else if let Some(i) = word.find("SECRET=") {
            format!("{}SECRET=…", &word[..i])
        } else {
            word.to_owned()
        };
        out.push(word);
    }
    let line = out.join(" ");
    match line.find("client secret  ") {
        Some(i) => format!("{}client secret  …", &line[..i]),
        None => line,
    }
}

#[tokio::test]
async fn a_wrong_secret_is_never_served_from_the_cache() {
    let app = spawn_app().await;
    let cache = temp_dir("wrong-secret");
    let mut command = client_command(&app.issuer, &cache);
    command.arg("token");
    let first = run(command).await;
    assert!(first.status.success(), "{}", stderr(&first));

    let mut command = client_command(&app.issuer, &cache);
    command.env("AUTHGATE_CLIENT_SECRET", "wrong").arg("token");
    let second = run(command).await;
    assert_eq!(second.status.code(), Some(1), "a wrong secret got a token");
    assert!(second.stdout.is_empty());
    assert!(
        stderr(&second).contains("invalid_client"),
        "{}",
        stderr(&second)
    );
    assert!(!stderr(&second).contains("wrong\n"));
    for file in std::fs::read_dir(&cache).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        assert!(!text.contains("test-secret"), "the cache holds the secret");
    }
    let _ = std::fs::remove_dir_all(&cache);
}

#[tokio::test]
async fn dev_keys_are_named_by_their_rfc7638_thumbprint() {
    let (a, b) = (spawn_issuer().await, spawn_issuer().await);
    assert_ne!(a.current_kid(), b.current_kid(), "a new key, a new kid");
    for issuer in [&a, &b] {
        let kid = issuer.current_kid();
        let jwk = issuer.jwk(&kid).unwrap();
        // RFC 7638 §3.2: the required members, in lexicographic order.
        let canonical = format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            jwk["e"].as_str().unwrap(),
            jwk["n"].as_str().unwrap()
        );
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        assert_eq!(kid, URL_SAFE_NO_PAD.encode(digest.as_ref()));
    }
    let ec = a.add_key(Algorithm::ES256);
    let jwk = a.jwk(&ec).unwrap();
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap()
    );
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    assert_eq!(ec, URL_SAFE_NO_PAD.encode(digest.as_ref()));
}

#[tokio::test]
async fn call_replaces_a_cached_token_the_server_refuses_once() {
    let app = spawn_app().await;
    let cache = temp_dir("refused-cache");
    let mut command = client_command(&app.issuer, &cache);
    command.arg("token");
    assert!(run(command).await.status.success());
    assert_eq!(app.issuer.token_hits(), 1);

    // The issuer moves to a new key and withdraws the one the cached token
    // names, as a restarted `authgate dev` does; the server follows.
    let old = app.issuer.current_kid();
    app.issuer.rotate(Algorithm::RS256);
    app.issuer.set_published(&old, false);
    let fresh = app.issuer.mint(&app.issuer.claims("user|1", &[SCOPE]));
    let addr = app.addr.to_string();
    assert!(
        eventually(patience(), || async { call(&addr, &fresh).await.is_ok() }).await,
        "the server loads the new key"
    );

    let mut command = client_command(&app.issuer, &cache);
    command.args(["call", "--addr", &app.url()]);
    let output = run(command).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(app.issuer.token_hits(), 2, "one new token, asked for once");

    // A token given with --token is the caller's: it is not replaced.
    let mut command = client_command(&app.issuer, &cache);
    command.args(["call", "--addr", &app.url(), "--token", "not.a.token"]);
    assert_eq!(run(command).await.status.code(), Some(80));
    assert_eq!(app.issuer.token_hits(), 2);
    let _ = std::fs::remove_dir_all(&cache);
}

#[tokio::test]
async fn serve_names_the_issuer_discovery_reports_and_exits() {
    let issuer = spawn_issuer().await;
    let without_slash = issuer.url().trim_end_matches('/').to_owned();
    let mut command = authgate();
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--issuer",
            &without_slash,
            "--audience",
            "a",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = spawn(&mut command);
    let mut stderr = child.stderr.take().unwrap();
    let mut text = String::new();
    // A server that kept retrying instead would never close its stderr.
    tokio::time::timeout(
        patience(),
        tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text),
    )
    .await
    .expect("authgate serve kept running")
    .unwrap();
    let status = wait(&mut child).await;
    assert_eq!(status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!("names issuer `{}`", issuer.url())),
        "{text}"
    );
    assert!(issuer.discovery_hits() >= 1);
}

#[tokio::test]
async fn serve_says_no_key_set_has_loaded_and_why() {
    let mut command = authgate();
    command
        .args([
            "serve",
            "--listen",
            "localhost:0",
            "--issuer",
            "http://127.0.0.1:1/",
            "--audience",
            "a",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = spawn(&mut command);
    let mut stderr =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stderr.take().unwrap()));
    let said = lines_until(&mut stderr, |line| line.contains("JWKS fetch failed")).await;
    let line = said.last().expect("a failed fetch is logged");
    signal(&child, libc::SIGTERM);
    let status = wait(&mut child).await;
    assert_eq!(status.code(), Some(0), "--listen localhost:0 served");
    assert!(line.contains("no key set has loaded yet"), "{line}");
    assert!(!line.contains("keeping the last good key set"), "{line}");
    assert!(line.contains("Connection refused"), "{line}");
}

#[tokio::test]
async fn tls_flags_and_help_say_what_is_needed() {
    let mut command = authgate();
    command.args([
        "serve",
        "--issuer",
        "https://t.auth0.com/",
        "--audience",
        "a",
        "--tls-cert",
        "cert.pem",
    ]);
    let output = run(command).await;
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("--tls-cert needs --tls-key"), "{text}");
    assert!(!text.contains("--listen <LISTEN>"), "{text}");

    let mut command = authgate();
    command.args(["serve", "--help"]);
    let help = String::from_utf8(run(command).await.stdout).unwrap();
    assert!(
        help.contains("/authgate.v1.PrivateService/GetPrivate=read:private"),
        "{help}"
    );
    assert!(help.contains("AUTHGATE_AUDIENCE (`a,b`)"), "{help}");
    assert!(help.contains("HOST:PORT"), "{help}");

    let mut command = authgate();
    command.args(["dev", "--help"]);
    let help = String::from_utf8(run(command).await.stdout).unwrap();
    assert!(help.contains(authgate::cli::DEV_SCOPE_RULE), "{help}");
}

/// The value `authgate dev` printed beside `name` in its banner.
fn banner_value(lines: &[String], name: &str) -> String {
    lines
        .iter()
        .find_map(|l| l.trim_start().strip_prefix(name))
        .unwrap_or_else(|| panic!("the banner has no {name}: {lines:?}"))
        .trim()
        .to_owned()
}

/// The `scope` claim of a token, read without verifying (the test's own).
fn scope_claim(token: &str) -> String {
    let payload = URL_SAFE_NO_PAD
        .decode(token.split('.').nth(1).unwrap())
        .unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    claims["scope"].as_str().unwrap_or_default().to_owned()
}

/// A newcomer guarding their own method ran `authgate dev --require-scope
/// /greeter.v1.Greeter/SayHello=greet:hello`, asked `authgate token --scope
/// greet:hello`, and got a token with an empty scope that every call
/// refused. The dev client is now granted the scopes dev's rules name (and
/// each `--grant-scope`), and a scope it cannot grant is refused as RFC 6749
/// says, `invalid_scope`, instead of dropped.
#[tokio::test]
async fn dev_grants_the_scopes_its_rules_name_and_refuses_others() {
    let (mut child, lines) = dev_banner(&[
        "--require-scope",
        "/greeter.v1.Greeter/SayHello=greet:hello",
        "--grant-scope",
        "greet:admin",
    ])
    .await;
    let issuer = banner_value(&lines, "issuer");
    let token = |scope: &str| {
        let mut command = authgate();
        command
            .args(["token", "--no-cache", "--scope", scope])
            .env("AUTHGATE_ISSUER", &issuer)
            .env("AUTHGATE_AUDIENCE", banner_value(&lines, "audience"))
            .env("AUTHGATE_CLIENT_ID", banner_value(&lines, "client id"))
            .env(
                "AUTHGATE_CLIENT_SECRET",
                banner_value(&lines, "client secret"),
            );
        run(command)
    };
    let granted = token("greet:hello").await;
    assert!(granted.status.success(), "{}", stderr(&granted));
    let printed = String::from_utf8(granted.stdout).unwrap();
    assert_eq!(scope_claim(printed.trim()), "greet:hello");
    let extra = token("greet:admin read:private").await;
    assert!(extra.status.success(), "{}", stderr(&extra));
    let printed = String::from_utf8(extra.stdout).unwrap();
    assert_eq!(scope_claim(printed.trim()), "read:private greet:admin");

    let refused = token("greet:hello delete:everything").await;
    assert!(!refused.status.success());
    let said = stderr(&refused);
    assert!(said.contains("invalid_scope"), "{said}");
    assert!(said.contains("delete:everything"), "{said}");
    // The banner's ready token carries every granted scope.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("scope read:private greet:hello greet:admin")),
        "{lines:?}"
    );
    signal(&child, libc::SIGINT);
    wait(&mut child).await;
}

/// `authgate token` handed out a cached token whose key the issuer no
/// longer published (a restarted `authgate dev`); `call` recovered by
/// retrying, `token` did not. Now `token` checks the issuer's JWKS for the
/// cached token's `kid` and asks for a new token when it is gone, and only
/// then.
#[tokio::test]
async fn token_replaces_a_cached_token_whose_key_is_withdrawn() {
    let issuer = spawn_issuer().await;
    let cache = temp_dir("withdrawn-cache");
    let token = || {
        let mut command = client_command(&issuer, &cache);
        command.arg("token");
        run(command)
    };
    let first = token().await;
    assert!(first.status.success(), "{}", stderr(&first));
    let again = token().await;
    assert_eq!(again.stdout, first.stdout, "the cached token is reused");
    assert_eq!(issuer.token_hits(), 1);

    let old = issuer.current_kid();
    let new = issuer.rotate(Algorithm::RS256);
    issuer.set_published(&old, false);
    let replaced = token().await;
    assert!(replaced.status.success(), "{}", stderr(&replaced));
    assert_ne!(replaced.stdout, first.stdout, "a token of a withdrawn key");
    assert_eq!(issuer.token_hits(), 2, "asked for once");
    let header = String::from_utf8(replaced.stdout.clone()).unwrap();
    let header = URL_SAFE_NO_PAD
        .decode(header.trim().split('.').next().unwrap())
        .unwrap();
    assert!(String::from_utf8_lossy(&header).contains(&new));
    let kept = token().await;
    assert_eq!(
        kept.stdout, replaced.stdout,
        "a published key's token stays"
    );
    assert_eq!(issuer.token_hits(), 2);
    let _ = std::fs::remove_dir_all(&cache);
}

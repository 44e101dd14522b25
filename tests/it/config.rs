//! The `--config` file, through the binary as users run it: the example in
//! the repository loads, an unknown key is an error that names its line, the
//! flags and environment override the file, `--check` redacts, and a server
//! started from a file trusts each of its issuers with its own settings.

use std::{path::PathBuf, time::Duration};

use authgate::{
    cli::Settings,
    issuer::{DevIssuer, DevIssuerConfig},
};

use crate::{
    cli::{Served, authgate, call, serve, signal, wait},
    common::{SCOPE, dev_issuer_config, eventually, patience, spawn_issuer},
};

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/authgate.toml")
}

fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("authgate-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `authgate serve --check` with these arguments: exit code, stdout, stderr.
fn check(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = authgate()
        .args(["serve", "--check"])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_example_file_loads_and_checks() {
    let settings = Settings::load(&example()).unwrap();
    assert_eq!(settings.issuers.len(), 3);
    let config = settings.with_defaults().server_config().unwrap();
    config.check().unwrap();
    let partner = &config.issuers[2].validation;
    assert_eq!(partner.audiences, ["https://api.example.com/partners"]);
    assert_eq!(partner.leeway, Duration::from_secs(60));
    assert_eq!(
        config.issuers[0].validation.audiences,
        ["https://api.example.com"]
    );

    let (code, stdout, stderr) = check(&["--config", example().to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("the configuration is valid"), "{stdout}");
    // What it prints is a config file with the same effective settings.
    let printed = Settings::parse(&stdout).unwrap();
    assert_eq!(printed, Settings::load(&example()).unwrap().with_defaults());
}

#[test]
fn an_unknown_key_is_an_error_that_names_its_line() {
    let path = write(
        "typo.toml",
        "audience = \"https://api.example.com\"\n\
         require-scopes = [\"/a.S/M=x\"]\n\
         [[issuer]]\nurl = \"https://t.auth0.com/\"\n",
    );
    let (code, stdout, stderr) = check(&["--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{stdout}");
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(
        stderr.contains("unknown field `require-scopes`"),
        "{stderr}"
    );
    assert!(stdout.is_empty());

    let path = write(
        "issuer-typo.toml",
        "audience = \"a\"\n[[issuer]]\nurl = \"https://t.auth0.com/\"\nleway = \"5s\"\n",
    );
    let (code, _, stderr) = check(&["--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("line 4") && stderr.contains("`leway`"),
        "{stderr}"
    );

    let (code, _, stderr) = check(&["--config", "/nonexistent/authgate.toml"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read the config file"), "{stderr}");
}

#[test]
fn flags_beat_environment_beat_the_file() {
    let path = write(
        "precedence.toml",
        "listen = \"127.0.0.1:7001\"\n\
         audience = \"from-file\"\n\
         leeway = \"11s\"\n\
         require-scope = \"/authgate.v1.PrivateService/GetPrivate=file\"\n\
         [[issuer]]\nurl = \"https://one.example/\"\n\
         [[issuer]]\nurl = \"https://two.example/\"\naudience = \"two-own\"\nleeway = \"3s\"\n",
    );
    let config = path.to_str().unwrap();
    let effective = |args: &[&str], env: &[(&str, &str)]| {
        let (code, stdout, stderr) = check(args, env);
        assert_eq!(code, 0, "{args:?} {env:?}: {stderr}");
        Settings::parse(&stdout).unwrap()
    };

    // The file alone; AUTHGATE_CONFIG names it as --config does.
    let s = effective(&[], &[("AUTHGATE_CONFIG", config)]);
    assert_eq!(s.listen, Some("127.0.0.1:7001".parse().unwrap()));
    assert_eq!(s.issuers[0].audience, ["from-file"]);
    assert_eq!(s.issuers[1].audience, ["two-own"]);
    assert_eq!(s.issuers[0].leeway.unwrap().0, Duration::from_secs(11));
    assert_eq!(s.issuers[1].leeway.unwrap().0, Duration::from_secs(3));

    // The environment beats the file; the flag beats the environment. An
    // issuer's own audience and leeway still beat the top-level ones.
    let env = [
        ("AUTHGATE_AUDIENCE", "from-env"),
        ("AUTHGATE_LISTEN", "127.0.0.1:7002"),
    ];
    let s = effective(&["--config", config], &env);
    assert_eq!(s.listen, Some("127.0.0.1:7002".parse().unwrap()));
    assert_eq!(s.issuers[0].audience, ["from-env"]);
    assert_eq!(s.issuers[1].audience, ["two-own"]);
    let s = effective(
        &[
            "--config",
            config,
            "--audience",
            "from-flag",
            "--listen",
            "127.0.0.1:7003",
            "--leeway",
            "7s",
        ],
        &env,
    );
    assert_eq!(s.listen, Some("127.0.0.1:7003".parse().unwrap()));
    assert_eq!(s.issuers[0].audience, ["from-flag"]);
    assert_eq!(s.issuers[0].leeway.unwrap().0, Duration::from_secs(7));
    assert_eq!(s.issuers[1].leeway.unwrap().0, Duration::from_secs(3));

    // --issuer replaces the file's list; an issuer in both keeps its table.
    let s = effective(
        &[
            "--config",
            config,
            "--issuer",
            "https://two.example/",
            "--issuer",
            "https://three.example/",
        ],
        &[],
    );
    let urls: Vec<&str> = s.issuers.iter().map(|i| i.url.as_str()).collect();
    assert_eq!(urls, ["https://two.example/", "https://three.example/"]);
    assert_eq!(s.issuers[0].audience, ["two-own"]);
    let s = effective(
        &["--config", config],
        &[("AUTHGATE_ISSUER", "https://a.example/,https://b.example/")],
    );
    assert_eq!(s.issuers.len(), 2);
    assert_eq!(s.issuers[1].url, "https://b.example/");

    // Scope rules add up: the command line's never drop the file's.
    let s = effective(
        &[
            "--config",
            config,
            "--require-scope",
            "/authgate.v1.PrivateService/*=flag",
        ],
        &[],
    );
    let rules: Vec<String> = s.require_scope.iter().map(|r| r.0.to_string()).collect();
    assert_eq!(
        rules,
        [
            "/authgate.v1.PrivateService/GetPrivate=file",
            "/authgate.v1.PrivateService/*=flag"
        ]
    );
}

#[test]
fn check_refuses_what_serve_would_and_exits_two() {
    let cases: [(&str, &[&str], &str); 5] = [
        (
            "audience = \"a\"\n[[issuer]]\nurl = \"http://t.example/\"\n",
            &[],
            "must use https",
        ),
        ("audience = \"a\"\n", &[], "no issuer"),
        (
            "[[issuer]]\nurl = \"https://t.example/\"\n",
            &[],
            "no audience for issuer `https://t.example/`",
        ),
        (
            "audience = \"a\"\n[[issuer]]\nurl = \"https://a.example/\"\n[[issuer]]\nurl = \"https://b.example/\"\n",
            &["--jwks-url", "https://a.example/jwks"],
            "is for one issuer",
        ),
        (
            "audience = \"a\"\ntls-cert = \"/nonexistent/cert.pem\"\ntls-key = \"/nonexistent/key.pem\"\n[[issuer]]\nurl = \"https://a.example/\"\n",
            &[],
            "cannot read /nonexistent/cert.pem",
        ),
    ];
    for (i, (text, args, says)) in cases.into_iter().enumerate() {
        let path = write(&format!("bad-{i}.toml"), text);
        let mut all = vec!["--config", path.to_str().unwrap()];
        all.extend(args);
        let (code, stdout, stderr) = check(&all, &[]);
        assert_eq!(code, 2, "{text}: {stdout}");
        assert!(stderr.contains(says), "{text}: {stderr}");
    }
}

#[test]
fn check_prints_urls_with_their_queries_redacted() {
    let path = write(
        "secret.toml",
        "audience = \"a\"\n[[issuer]]\nurl = \"https://t.example/\"\n\
         jwks-url = \"https://keys.example/jwks.json?sig=s3cr3t-signature&exp=1\"\n",
    );
    let (code, stdout, stderr) = check(&["--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !stdout.contains("s3cr3t") && !stderr.contains("s3cr3t"),
        "{stdout}"
    );
    assert!(
        stdout.contains("jwks-url = \"https://keys.example/jwks.json?<redacted>\""),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_server_from_a_file_trusts_each_issuer_with_its_own_audience() {
    let first = spawn_issuer().await;
    let partner = DevIssuer::start(DevIssuerConfig {
        audience: "https://partners.authgate.test/api".into(),
        ..dev_issuer_config()
    })
    .await
    .unwrap();
    let path = write(
        "serve.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\n\
             audience = \"{}\"\n\
             require-scope = [\"/authgate.v1.PrivateService/GetPrivate={SCOPE}|admin\"]\n\
             [[issuer]]\nurl = \"{}\"\n\
             [[issuer]]\nurl = \"{}\"\naudience = \"{}\"\n",
            first.audience(),
            first.url(),
            partner.url(),
            partner.audience(),
        ),
    );
    let mut command = authgate();
    command.args(["serve", "--config", path.to_str().unwrap()]);
    let Served {
        mut child, addr, ..
    } = serve(command).await;
    let partner_token = partner.mint(&partner.claims("partner", &["admin"]));
    let up = eventually(patience(), || async {
        call(&addr, &partner_token).await.is_ok()
    })
    .await;
    assert!(up, "the server never accepted the partner's token");
    let first_token = first.mint(&first.claims("first", &[SCOPE]));
    assert!(
        eventually(patience(), || async {
            call(&addr, &first_token).await.is_ok()
        })
        .await
    );

    // Each issuer's audience is its own: a partner token for the first
    // issuer's audience is refused, and so on.
    let mut claims = partner.claims("partner", &[SCOPE]);
    claims["aud"] = first.audience().into();
    let status = call(&addr, &partner.mint(&claims)).await.unwrap_err();
    assert_eq!(status.message(), "token audience is not accepted");
    let mut claims = first.claims("first", &[SCOPE]);
    claims["aud"] = partner.audience().into();
    let status = call(&addr, &first.mint(&claims)).await.unwrap_err();
    assert_eq!(status.message(), "token audience is not accepted");
    // The file's rule holds.
    let status = call(&addr, &first.mint(&first.claims("first", &["other"])))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);

    signal(&child, libc::SIGTERM);
    let status = wait(&mut child).await;
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// An `AUTHGATE_ISSUER` left in the environment replaces the file's
/// issuers: `--check` says so, naming the variable, and says nothing when
/// only the file speaks.
#[test]
fn check_says_what_the_environment_overrode_in_the_file() {
    let path = write(
        "overridden.toml",
        "listen = \"127.0.0.1:7101\"\naudience = \"a\"\nleeway = \"5s\"\n\
         [[issuer]]\nurl = \"https://file.example/\"\n",
    );
    let config = path.to_str().unwrap();
    let (code, stdout, stderr) = check(&["--config", config], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("over the config file"), "{stdout}");

    let (code, stdout, stderr) = check(
        &["--config", config, "--leeway", "9s"],
        &[
            ("AUTHGATE_ISSUER", "https://env.example/"),
            ("AUTHGATE_LISTEN", "127.0.0.1:7102"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let note = stdout
        .lines()
        .find(|l| l.contains("over the config file"))
        .unwrap_or_else(|| panic!("no override note:\n{stdout}"));
    for said in [
        "issuer (from AUTHGATE_ISSUER)",
        "listen (from AUTHGATE_LISTEN)",
        "leeway",
    ] {
        assert!(note.contains(said), "{said}: {note}");
    }
    assert!(!note.contains("audience"), "{note}");
    // The printout is still a config file that loads.
    Settings::parse(&stdout).unwrap();
}

/// Issue 19, finding 5: a typo in a scope rule passed `--check` and serve
/// started with GetPrivate open to any valid token. A rule must name a
/// method the server has; both `--check` and start-up refuse one that does
/// not, and say which methods there are.
#[test]
fn a_scope_rule_for_a_method_the_server_lacks_is_refused() {
    let base = ["--issuer", "https://t.example/", "--audience", "a"];
    for rule in [
        "/authgate.v1.PrivateService/GetPrivat=read:private",
        "/authgate.v1.PrivateServic/GetPrivate=read:private",
        "/authgate.v1.PrivateServic/*=read:private",
    ] {
        let args: Vec<&str> = base
            .iter()
            .copied()
            .chain(["--require-scope", rule])
            .collect();
        let (code, _, stderr) = check(&args, &[]);
        assert_eq!(code, 2, "{rule} passed --check");
        assert!(stderr.contains("does not have"), "{rule}: {stderr}");
        assert!(
            stderr.contains("/authgate.v1.PrivateService/GetPrivate"),
            "{rule}: the message lists the methods: {stderr}"
        );
        let started = authgate()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(started.status.code(), Some(2), "{rule} started serve");
    }
    for rule in [
        "/authgate.v1.PrivateService/GetPrivate=read:private",
        "/authgate.v1.PrivateService/*=read:private|admin",
        "/grpc.health.v1.Health/Check=health",
    ] {
        let args: Vec<&str> = base
            .iter()
            .copied()
            .chain(["--require-scope", rule])
            .collect();
        let (code, _, stderr) = check(&args, &[]);
        assert_eq!(code, 0, "{rule}: {stderr}");
    }
}

/// Issue 19, finding 6: values so large they switch a defence off passed
/// `--check`: `--leeway 500y` (expiry never checked), `--jwks-max-stale
/// 1000y` (withdrawn keys kept through any outage), `--handshake-timeout
/// 100y`. And a plaintext listener off loopback was only warned about in
/// serve's logs, never by `--check`.
#[test]
fn check_refuses_defences_switched_off_and_says_what_serve_would_warn() {
    let base = ["--issuer", "https://t.example/", "--audience", "a"];
    for extra in [
        &["--leeway", "500y"][..],
        &["--jwks-max-stale", "1000y"],
        &["--handshake-timeout", "100y"],
        &["--request-timeout", "100y"],
        &["--keepalive-interval", "100y"],
        &[
            "--jwks-refresh-interval",
            "100y",
            "--jwks-max-stale",
            "200y",
        ],
    ] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let (code, _, stderr) = check(&args, &[]);
        assert_eq!(code, 2, "{extra:?} passed --check");
        assert!(stderr.contains("must be at most"), "{extra:?}: {stderr}");
    }
    let per_issuer = write(
        "leeway.toml",
        "audience = \"a\"\n[[issuer]]\nurl = \"https://t.example/\"\nleeway = \"11m\"\n",
    );
    let (code, _, stderr) = check(&["--config", per_issuer.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "an issuer's own leeway of 11m passed");
    assert!(stderr.contains("--leeway"), "{stderr}");

    let args: Vec<&str> = base
        .iter()
        .chain(&["--listen", "0.0.0.0:50051", "--leeway", "10m"])
        .copied()
        .collect();
    let (code, stdout, stderr) = check(&args, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("# Warning, as serve would log it: serving plaintext on 0.0.0.0:50051"),
        "{stdout}"
    );
    Settings::parse(&stdout).unwrap();
    let (_, stdout, _) = check(&base, &[]);
    assert!(!stdout.contains("Warning"), "{stdout}");
}

/// Issue 27: values that crash the server or shut it were accepted
/// (`--max-connection-age 500000000000y` panicked every connection on an
/// `Instant` overflow, `--max-connections 9223372036854775807` panicked at
/// start, `--max-header-list-size 0` refused every request), and
/// `--max-connections 18446744073709551615` made `--check` itself panic.
/// Every duration and count, from a flag or the config file, is now
/// refused past what the server can hold, exit 2 and the bound named, by
/// `--check` and by start-up alike.
#[test]
fn check_refuses_durations_and_counts_the_server_cannot_hold() {
    const DURATIONS: [&str; 15] = [
        "max-connection-age",
        "max-connection-age-grace",
        "idle-timeout",
        "drain-delay",
        "shutdown-timeout",
        "jwks-refresh-interval",
        "jwks-min-refresh-interval",
        "jwks-fetch-timeout",
        "jwks-max-stale",
        "leeway",
        "public-stream-max-age",
        "request-timeout",
        "handshake-timeout",
        "keepalive-interval",
        "keepalive-timeout",
    ];
    let mut cases: Vec<(&str, String, &str)> = Vec::new();
    for key in DURATIONS {
        for long in ["101y", "500000000000y"] {
            cases.push((key, format!("\"{long}\""), "must be at most 100 years"));
        }
    }
    for (key, value, bound) in [
        (
            "max-connections",
            "9223372036854775807",
            "from 1 to 2305843009213693951",
        ),
        (
            "max-connections",
            "18446744073709551615",
            "from 1 to 2305843009213693951",
        ),
        ("max-connections", "0", "from 1 to 2305843009213693951"),
        (
            "max-connections-per-peer",
            "18446744073709551615",
            "from 0 to 2305843009213693951",
        ),
        ("max-header-list-size", "0", "from 8192 to 16777216"),
        ("max-header-list-size", "8191", "from 8192 to 16777216"),
        (
            "max-header-list-size",
            "4294967295",
            "from 8192 to 16777216",
        ),
        (
            "max-message-size",
            "18446744073709551615",
            "from 0 to 4294967295",
        ),
        ("max-concurrent-streams", "0", "from 1 to 1073741824"),
        (
            "max-concurrent-streams",
            "4294967295",
            "from 1 to 1073741824",
        ),
        (
            "token-cache-entries",
            "18446744073709551615",
            "from 0 to 1048576",
        ),
    ] {
        cases.push((key, value.to_owned(), bound));
    }
    let base = ["--issuer", "https://t.example/", "--audience", "a"];
    for (key, value, bound) in &cases {
        let flag = format!("--{key}");
        let unquoted = value.trim_matches('"');
        let args: Vec<&str> = base
            .iter()
            .copied()
            .chain([flag.as_str(), unquoted])
            .collect();
        let (code, _, stderr) = check(&args, &[]);
        assert_eq!(code, 2, "{flag} {unquoted}: {stderr}");
        assert!(
            stderr.contains(&flag) && stderr.contains(bound),
            "{flag} {unquoted}: {stderr}"
        );

        let file = write(
            &format!("{key}.toml"),
            &format!(
                "audience = \"a\"\n{key} = {value}\n[[issuer]]\nurl = \"https://t.example/\"\n"
            ),
        );
        let (code, _, stderr) = check(&["--config", file.to_str().unwrap()], &[]);
        assert_eq!(code, 2, "{key} = {value}: {stderr}");
        assert!(
            stderr.contains("line 2") && stderr.contains(bound),
            "{key} = {value}: {stderr}"
        );
    }
    // Start-up reads them the same way: no panic, the same refusal.
    let serve = |extra: [&'static str; 2]| [&["serve"][..], &base, &extra].concat();
    for args in [
        serve(["--max-connections", "9223372036854775807"]),
        serve(["--max-connection-age", "500000000000y"]),
        vec!["dev", "--token-ttl", "500000000000y"],
        vec!["call", "--timeout", "500000000000y"],
    ] {
        let output = authgate().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("must be"), "{args:?}: {stderr}");
    }
    // At the bounds, the settings pass.
    let args: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--max-connections", "2305843009213693951"])
        .chain([
            "--max-header-list-size",
            "8192",
            "--max-connection-age",
            "100y",
        ])
        .collect();
    let (code, _, stderr) = check(&args, &[]);
    assert_eq!(code, 0, "{stderr}");
}

/// The issuers people use, as the config file writes them: Cognito's
/// `client_id` and `token_use`, Azure AD's `roles`, a partner kept to its
/// methods, and Google's `iss` that is not a URL (fine with its JWKS URL,
/// refused without one).
#[test]
fn per_issuer_claims_and_methods_come_from_the_file() {
    let path = write(
        "shapes.toml",
        "audience = \"a\"\n\
         [[issuer]]\nurl = \"https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_x\"\n\
         audience-claim = \"client_id\"\ntoken-use = \"access\"\n\
         [[issuer]]\nurl = \"https://login.microsoftonline.com/t/v2.0\"\n\
         scope-claims = [\"scp\", \"roles\"]\n\
         methods = [\"/authgate.v1.PrivateService/*\"]\n\
         [[issuer]]\nurl = \"accounts.google.com\"\n\
         jwks-url = \"https://www.googleapis.com/oauth2/v3/certs\"\n",
    );
    let (code, stdout, stderr) = check(&["--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{stderr}");
    let s = Settings::parse(&stdout).unwrap();
    assert_eq!(s.issuers[0].audience_claim.as_deref(), Some("client_id"));
    assert_eq!(s.issuers[0].token_use.as_deref(), Some("access"));
    assert_eq!(
        s.issuers[1].scope_claims.as_deref(),
        Some(&["scp".to_owned(), "roles".to_owned()][..])
    );
    assert_eq!(s.issuers[2].url, "accounts.google.com");

    let bad = write(
        "google-no-jwks.toml",
        "audience = \"a\"\n[[issuer]]\nurl = \"accounts.google.com\"\n",
    );
    let (code, _, stderr) = check(&["--config", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("JWKS URL"), "{stderr}");
    let (code, _, stderr) = check(&["--issuer", "http://idp.example/", "--audience", "a"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("must use https"), "{stderr}");
}

/// Connection and stream lifetimes are settings like any other: flags,
/// config-file keys, defaults from the library, bounds checked.
#[test]
fn connection_lifetimes_are_flags_and_config_keys() {
    let base = ["--issuer", "https://t.example/", "--audience", "a"];
    let (code, stdout, stderr) = check(&base, &[]);
    assert_eq!(code, 0, "{stderr}");
    let s = Settings::parse(&stdout).unwrap();
    assert_eq!(s.idle_timeout.unwrap().0, Duration::from_secs(300));
    assert_eq!(s.max_connection_age, None);
    assert_eq!(
        s.max_connection_age_grace.unwrap().0,
        Duration::from_secs(30)
    );
    assert_eq!(s.max_connections_per_peer, Some(0));
    assert_eq!(
        s.public_stream_max_age.unwrap().0,
        Duration::from_secs(1800)
    );

    let path = write(
        "lifetimes.toml",
        "idle-timeout = \"2m\"\nmax-connection-age = \"1h\"\nmax-connections-per-peer = 8\n",
    );
    let args: Vec<&str> = base
        .iter()
        .copied()
        .chain([
            "--config",
            path.to_str().unwrap(),
            "--public-stream-max-age",
            "5m",
        ])
        .collect();
    let (code, stdout, stderr) = check(&args, &[]);
    assert_eq!(code, 0, "{stderr}");
    let s = Settings::parse(&stdout).unwrap();
    assert_eq!(s.idle_timeout.unwrap().0, Duration::from_secs(120));
    assert_eq!(s.max_connection_age.unwrap().0, Duration::from_secs(3600));
    assert_eq!(s.max_connections_per_peer, Some(8));
    assert_eq!(s.public_stream_max_age.unwrap().0, Duration::from_secs(300));

    for extra in [
        &["--idle-timeout", "0s"][..],
        &["--max-connection-age", "0s"],
        &["--public-stream-max-age", "100y"],
    ] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        assert_eq!(check(&args, &[]).0, 2, "{extra:?} passed");
    }
}

/// The origins `--check` printed, read back as a config file.
fn printed_origins(stdout: &str) -> Vec<String> {
    let printed = Settings::parse(stdout).unwrap();
    assert!(stdout.contains("cors-allow-origin = "), "{stdout}");
    printed.cors_allow_origin
}

#[test]
fn cors_origins_come_from_flags_the_environment_or_the_file_and_check_prints_them() {
    let issuer = ["--issuer", "https://t.auth0.com/", "--audience", "a"];
    let (code, stdout, stderr) = check(
        &issuer,
        &[(
            "AUTHGATE_CORS_ALLOW_ORIGIN",
            "https://a.example,http://localhost:8080",
        )],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        printed_origins(&stdout),
        ["https://a.example", "http://localhost:8080"]
    );

    let mut args = issuer.to_vec();
    args.extend(["--cors-allow-origin", "*"]);
    let (code, stdout, stderr) = check(&args, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(printed_origins(&stdout), ["*"]);

    let path = write(
        "cors.toml",
        "audience = \"a\"\ncors-allow-origin = \"https://app.example.com\"\n\
         [[issuer]]\nurl = \"https://t.auth0.com/\"\n",
    );
    let (code, stdout, stderr) = check(&["--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(printed_origins(&stdout), ["https://app.example.com"]);

    // A URL with a path, or a trailing slash, is not an origin: the browser
    // never sends one, so it would allow nothing.
    let mut args = issuer.to_vec();
    args.extend(["--cors-allow-origin", "https://app.example.com/"]);
    let (code, _, stderr) = check(&args, &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("is not an origin"), "{stderr}");
}

#[test]
fn rules_name_an_http_method_and_one_that_binds_no_grpc_call_is_refused() {
    let base = ["--issuer", "https://t.example/", "--audience", "a"];
    let with = |rule: &str| {
        let mut args = base.to_vec();
        args.extend(["--require-scope", rule]);
        check(&args, &[])
    };
    let (code, stdout, stderr) = with("POST /authgate.v1.PrivateService/GetPrivate=write");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("\"POST /authgate.v1.PrivateService/GetPrivate=write\""),
        "{stdout}"
    );
    // gRPC calls are POST: a GET rule on a gRPC method guards nothing.
    let (code, _, stderr) = with("GET /authgate.v1.PrivateService/GetPrivate=read");
    assert_ne!(code, 0);
    assert!(stderr.contains("calls are all POST"), "{stderr}");
    let (code, _, stderr) = with("POST  /items=x");
    assert_ne!(code, 0);
    assert!(stderr.contains("not a request path"), "{stderr}");
}

//! A JWKS URL's secrets (a signed URL's query, userinfo before the host)
//! reach no log line, no fetch error, no key status and no metric: through
//! real servers whose fetches succeed, fail in every way a fetch can, and
//! follow discovery to such a URL.

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::json;

use crate::common::{
    Options, TestApp, eventually, held_address, patience, spawn_app_for, spawn_app_with,
    spawn_issuer,
};
use authgate::issuer::{DevIssuer, JwksFault};

/// Every secret below holds it, and nothing else the servers say does.
const SECRET: &str = "hunter2";

/// What a subscriber wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `test` on a runtime of its own, on this thread alone, under a
/// subscriber that keeps every line logged: at every level by authgate,
/// from `debug` by the crates under it. The refresher's tasks and the
/// servers' run on this thread, so nothing they log escapes it.
pub(crate) fn with_logs_captured<T>(test: impl Future<Output = T>) -> (T, String) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug,authgate=trace"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let result = tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(test)
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    (result, logs)
}

/// `http://NAME:hunter2-NAME@HOST:PORT/.well-known/jwks.json?sig=...&api_key=...`
/// for `issuer`'s address: its JWKS, which ignores the credentials.
fn secret_url(issuer: &DevIssuer, name: &str) -> String {
    format!(
        "http://{name}:{SECRET}-{name}-password@{}/.well-known/jwks.json?sig={SECRET}-{name}-sig&api_key={SECRET}-{name}-key",
        issuer.addr()
    )
}

/// Waits until the last error of `app`'s key store says `why`, and returns
/// it: each fault below overwrites the one before.
pub(crate) async fn fails_with(app: &TestApp, why: &str) -> String {
    let said = eventually(patience(), || async {
        let status = app.keys.status();
        status.last_error.is_some_and(|(_, e)| e.contains(why))
    })
    .await;
    let status = app.keys.status();
    assert!(said, "never failed with {why:?}: {status:?}");
    format!("{status:?}")
}

/// What each server told outside the logs: its key status and its metrics.
async fn told(app: &TestApp) -> String {
    format!("{:?}\n{}", app.keys.status(), app.scrape().await)
}

#[test]
fn a_jwks_urls_secrets_reach_no_log_error_status_or_metric() {
    let (shown, logs) = with_logs_captured(async {
        const LIMIT: usize = 64 * 1024;
        let mut shown = Vec::new();

        // A JWKS URL given outright, with its secrets: loads, then fails
        // every way a fetch can, then loads again.
        let mut options = Options::default();
        options.refresh.fetch_timeout = Duration::from_millis(300);
        options.refresh.max_document_bytes = LIMIT;
        // Failures follow one another: keep the backoff between them short.
        options.refresh.interval = Duration::from_millis(500);
        let issuer = spawn_issuer().await;
        options.jwks_url = Some(secret_url(&issuer, "given"));
        let given = spawn_app_for(issuer, options).await;
        let elsewhere = spawn_issuer().await;
        let faults = [
            (JwksFault::Status(500), "HTTP 500"),
            (JwksFault::Garbage, "valid JWKS"),
            (JwksFault::Padded(LIMIT + 1), "more than"),
            (JwksFault::Hang, "timed out"),
            (
                JwksFault::Redirect(secret_url(&elsewhere, "redirect")),
                "another origin",
            ),
        ];
        for (fault, why) in faults {
            given.issuer.set_jwks_fault(fault);
            shown.push(fails_with(&given, why).await);
        }
        assert_eq!(elsewhere.jwks_hits(), 0);
        given.issuer.set_jwks_fault(JwksFault::None);
        let loads = given.keys.status().fetch_successes;
        assert!(
            eventually(patience(), || async {
                given.keys.status().fetch_successes > loads
            })
            .await
        );
        shown.push(told(&given).await);

        // An issuer that is down: connections refused, no key set loaded.
        let (_held, down) = held_address();
        let mut options = Options {
            wait_for_keys: false,
            ..Options::default()
        };
        options.jwks_url = Some(format!(
            "http://down:{SECRET}-down-password@{down}/jwks.json?sig={SECRET}-down-sig"
        ));
        options.refresh.interval = Duration::from_millis(500);
        let refused = spawn_app_with(options).await;
        assert!(
            eventually(patience(), || async {
                refused.keys.status().fetch_failures >= 2
            })
            .await
        );
        shown.push(told(&refused).await);

        // Discovery names a JWKS URL with a secret query; then one over plain
        // http off loopback, which is refused, naming it.
        let issuer = spawn_issuer().await;
        let signed = format!("{}?sig={SECRET}-discovered-sig", issuer.jwks_url());
        issuer.set_discovery_member("jwks_uri", json!(signed));
        let mut options = Options::default();
        options.refresh.interval = Duration::from_millis(500);
        let discovered = spawn_app_for(issuer, options).await;
        let insecure = format!(
            "http://0.0.0.0:{}/jwks.json?sig={SECRET}-insecure-sig",
            discovered.issuer.addr().port()
        );
        discovered.issuer.set_jwks_fault(JwksFault::Status(503));
        shown.push(fails_with(&discovered, "HTTP 503").await);
        discovered
            .issuer
            .set_discovery_member("jwks_uri", json!(insecure));
        shown.push(fails_with(&discovered, "must use https").await);
        shown.push(told(&discovered).await);

        for app in [given, refused, discovered] {
            app.stop().await;
        }
        shown
    });

    // The logs told what happened.
    for said in [
        "fetched the JWKS",
        "keeping the last good key set",
        "no key set has loaded yet",
        "Connection refused",
    ] {
        assert!(logs.contains(said), "the logs never said {said:?}");
    }
    for line in logs.lines() {
        assert!(!line.contains(SECRET), "a log line tells a secret: {line}");
    }
    for text in &shown {
        assert!(
            !text.contains(SECRET),
            "a status or metric tells a secret: {text}"
        );
    }
    // And named the URLs, redacted.
    for said in [
        "/.well-known/jwks.json?<redacted>",
        "http://<redacted>@127.0.0.1:",
    ] {
        assert!(logs.contains(said), "the logs never said {said:?}");
    }
}

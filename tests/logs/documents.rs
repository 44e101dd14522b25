//! A document the issuer serves that does not parse, as a JWKS or as a
//! discovery document, reaches the logs, the fetch error and the key status
//! only as why it failed and where: never quoted, whatever it holds.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::json;

use crate::{
    common::{Options, TestApp, eventually, patience, spawn_app_with},
    redaction::with_logs_captured,
};

/// What each document holds, and nothing else the servers say does.
const SECRET: &str = "hunter2";

/// The key status once `app` has failed twice more: at least one whole
/// fetch of what the issuer serves now.
async fn fails_again(app: &TestApp) -> String {
    let before = app.keys.status().fetch_failures;
    let failed = eventually(patience(), || async {
        app.keys.status().fetch_failures >= before + 2
    })
    .await;
    assert!(failed, "no fetch failed: {:?}", app.keys.status());
    format!("{:?}", app.keys.status())
}

#[test]
fn a_document_that_does_not_parse_is_never_quoted() {
    let (shown, logs) = with_logs_captured(async {
        let mut shown = Vec::new();

        // A JWKS URL that serves whatever `body` holds.
        let body = Arc::new(Mutex::new(String::new()));
        let served = body.clone();
        let jwks = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let body = served.lock().unwrap().clone();
                async move { ([("content-type", "application/json")], body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, jwks).await });
        let mut options = Options {
            wait_for_keys: false,
            ..Options::default()
        };
        options.jwks_url = Some(format!("http://{addr}/jwks.json"));
        // Failures follow one another: keep the backoff between them short.
        options.refresh.interval = Duration::from_millis(500);
        let app = spawn_app_with(options).await;
        for (document, why) in [
            (
                format!("{{\"keys\": \"{SECRET}-keys\"}}"),
                "JSON of another shape",
            ),
            (
                format!("\"{SECRET}-string\""),
                "another shape, at line 1 column 16",
            ),
            (
                format!("{{\"keys\": [\"{SECRET}-cut"),
                "JSON that ends early",
            ),
            (format!("{SECRET}-junk"), "not JSON"),
        ] {
            *body.lock().unwrap() = document;
            shown.push((fails_again(&app).await, why));
        }

        // A discovery document whose `issuer` is a number: serde quotes it.
        let mut options = Options {
            wait_for_keys: false,
            ..Options::default()
        };
        options.refresh.interval = Duration::from_millis(500);
        let discovered = spawn_app_with(options).await;
        discovered
            .issuer
            .set_discovery_member("issuer", json!(2_718_281_828u64));
        shown.push((
            fails_again(&discovered).await,
            "valid discovery document: JSON of another shape",
        ));

        app.stop().await;
        discovered.stop().await;
        shown
    });

    assert!(logs.contains("JWKS fetch failed"), "{logs}");
    for line in logs.lines() {
        assert!(
            !line.contains(SECRET),
            "a log line quotes the document: {line}"
        );
        assert!(
            !line.contains("2718281828"),
            "a log line quotes the document: {line}"
        );
    }
    for (text, why) in &shown {
        assert!(
            !text.contains(SECRET),
            "a status quotes the document: {text}"
        );
        assert!(
            !text.contains("2718281828"),
            "a status quotes the document: {text}"
        );
        assert!(text.contains(why), "a status does not say {why:?}: {text}");
    }
}

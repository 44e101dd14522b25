//! The client side against the real dev issuer and server: token reuse,
//! refresh ahead of expiry, coalescing, retries, clean refusals, and a
//! service-to-service call through the bearer interceptor.

use std::time::Duration;

use authgate::{
    client::{
        BearerInterceptor, ClientAuth, Secret, TokenEndpoint, TokenError, TokenSource,
        TokenSourceConfig,
    },
    issuer::{DevIssuer, TokenFault},
    pb::{GetPrivateRequest, private_service_client::PrivateServiceClient},
};

use crate::common::{SCOPE, eventually, patience, spawn_app, spawn_issuer};

/// A source for the test issuer's client, asking by discovery.
fn source_config(issuer: &DevIssuer) -> TokenSourceConfig {
    let mut config = TokenSourceConfig::new(
        TokenEndpoint::Issuer(issuer.url().parse().unwrap()),
        "test-client",
        Secret::new("test-secret"),
    );
    config.audience = Some(issuer.audience().to_owned());
    config.initial_backoff = Duration::from_millis(50);
    config
}

#[tokio::test]
async fn a_token_is_reused_until_near_expiry() {
    let issuer = spawn_issuer().await;
    let source = TokenSource::new(source_config(&issuer)).unwrap();
    let first = source.token().await.unwrap();
    for _ in 0..50 {
        let again = source.token().await.unwrap();
        assert_eq!(again.secret(), first.secret());
    }
    assert_eq!(issuer.token_hits(), 1);
}

#[tokio::test]
async fn a_thousand_concurrent_callers_cause_one_token_request() {
    let issuer = spawn_issuer().await;
    let source = TokenSource::new(source_config(&issuer)).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let source = source.clone();
        tasks.push(tokio::spawn(async move {
            source.token().await.map(|t| t.secret().to_owned())
        }));
    }
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.unwrap().unwrap());
    }
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_eq!(issuer.token_hits(), 1);
}

#[tokio::test]
async fn the_token_is_refreshed_in_the_background_before_it_expires() {
    let issuer = spawn_issuer().await;
    // Four seconds: callers stop using it one second (a quarter) before it
    // expires, and the background task fetches the next a little earlier.
    issuer.set_token_ttl(Duration::from_secs(4));
    let source = TokenSource::new(source_config(&issuer)).unwrap();
    let first = source.token().await.unwrap();
    let refreshed = eventually(patience(), || async {
        source
            .current()
            .is_some_and(|t| t.secret() != first.secret())
    })
    .await;
    assert!(refreshed, "no background refresh");
    assert_eq!(issuer.token_hits(), 2, "callers fetched for themselves");
    // The issuer minted the second token before the first expired.
    let second = source.current().unwrap();
    let claim = |token: &str, name: &str| {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let payload = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&payload).unwrap()[name]
            .as_i64()
            .unwrap()
    };
    assert!(
        claim(second.secret(), "iat") < claim(first.secret(), "exp"),
        "refreshed only after the first token expired"
    );
}

#[tokio::test]
async fn retry_after_is_honoured_over_the_backoff() {
    let issuer = spawn_issuer().await;
    // Retry-After: 0 against a backoff of two hours: only the header lets
    // the second attempt come now.
    issuer.push_token_fault(TokenFault {
        status: 429,
        retry_after: Some(0),
    });
    let mut config = source_config(&issuer);
    config.initial_backoff = Duration::from_secs(7200);
    config.max_backoff = Duration::from_secs(7200);
    let source = TokenSource::new(config).unwrap();
    tokio::time::timeout(patience(), source.token())
        .await
        .expect("the retry waited on the backoff, not on Retry-After")
        .expect("a token after one retry");
    assert_eq!(issuer.token_hits(), 2);
}

#[tokio::test]
async fn throttling_and_outages_are_retried() {
    let issuer = spawn_issuer().await;
    issuer.push_token_fault(TokenFault {
        status: 429,
        retry_after: Some(0),
    });
    issuer.push_token_fault(TokenFault {
        status: 503,
        retry_after: None,
    });
    let source = TokenSource::new(source_config(&issuer)).unwrap();
    source.token().await.expect("a token after two retries");
    assert_eq!(issuer.token_hits(), 3);
}

#[tokio::test]
async fn callers_queued_behind_a_failed_fetch_share_its_failure() {
    let issuer = spawn_issuer().await;
    for _ in 0..50 {
        issuer.push_token_fault(TokenFault {
            status: 503,
            retry_after: None,
        });
    }
    let mut config = source_config(&issuer);
    config.max_attempts = 2;
    let source = TokenSource::new(config).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let source = source.clone();
        tasks.push(tokio::spawn(async move { source.token().await }));
    }
    for task in tasks {
        assert!(task.await.unwrap().is_err());
    }
    // One fetch of two attempts answered all 200 callers.
    assert_eq!(issuer.token_hits(), 2);
}

#[tokio::test]
async fn retries_end_after_max_attempts() {
    let issuer = spawn_issuer().await;
    for _ in 0..5 {
        issuer.push_token_fault(TokenFault {
            status: 502,
            retry_after: None,
        });
    }
    let mut config = source_config(&issuer);
    config.max_attempts = 3;
    let error = TokenSource::new(config).unwrap().token().await.unwrap_err();
    assert!(
        matches!(error, TokenError::Unavailable { attempts: 3, .. }),
        "{error}"
    );
    assert_eq!(issuer.token_hits(), 3);
}

#[tokio::test]
async fn invalid_client_is_an_immediate_clear_error() {
    let issuer = spawn_issuer().await;
    let mut config = source_config(&issuer);
    config.client_secret = Secret::new("wrong-secret");
    // A retry would wait an hour.
    config.initial_backoff = Duration::from_secs(3600);
    let error = tokio::time::timeout(patience(), TokenSource::new(config).unwrap().token())
        .await
        .expect("a refusal was retried")
        .unwrap_err();
    match &error {
        TokenError::Rejected { status, error, .. } => {
            assert_eq!(*status, 401);
            assert_eq!(error, "invalid_client");
        }
        other => panic!("expected a rejection, got {other}"),
    }
    assert!(
        !error.to_string().contains("wrong-secret"),
        "the secret leaked: {error}"
    );
    assert_eq!(issuer.token_hits(), 1, "a refusal must not be retried");

    let mut config = source_config(&issuer);
    config.audience = Some("https://someone-else/api".into());
    let error = TokenSource::new(config).unwrap().token().await.unwrap_err();
    assert!(error.to_string().contains("access_denied"), "{error}");
    assert_eq!(issuer.token_hits(), 2);
}

#[tokio::test]
async fn rfc6749_form_and_basic_and_an_explicit_token_url() {
    let issuer = spawn_issuer().await;
    let mut config = source_config(&issuer);
    config.endpoint = TokenEndpoint::Url(issuer.token_url().parse().unwrap());
    config.auth = ClientAuth::Basic;
    config.scope = Some(SCOPE.into());
    let token = TokenSource::new(config).unwrap().token().await.unwrap();
    assert_eq!(token.secret().split('.').count(), 3);
    assert_eq!(issuer.discovery_hits(), 0, "the token URL was given");
}

#[tokio::test]
async fn service_to_service_through_the_bearer_interceptor() {
    let app = spawn_app().await;
    let source = TokenSource::new(source_config(&app.issuer)).unwrap();
    source.token().await.unwrap();
    let mut client =
        PrivateServiceClient::with_interceptor(app.channel().await, BearerInterceptor::new(source));
    for _ in 0..20 {
        let response = client
            .get_private(GetPrivateRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.subject, "test-client@clients");
        assert_eq!(response.scopes, [SCOPE]);
    }
    assert_eq!(app.issuer.token_hits(), 1);
}

#[tokio::test]
async fn the_interceptor_refuses_locally_without_a_token() {
    let app = spawn_app().await;
    let source = TokenSource::new(source_config(&app.issuer)).unwrap();
    let mut client =
        PrivateServiceClient::with_interceptor(app.channel().await, BearerInterceptor::new(source));
    let status = client.get_private(GetPrivateRequest {}).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert_eq!(app.issuer.token_hits(), 0);
}

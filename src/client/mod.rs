//! The client side, for services that call an authgate-guarded service
//! machine to machine: a client-credentials [`TokenSource`] that reuses its
//! token until shortly before it expires and refreshes it ahead of time in
//! the background, and a [`BearerInterceptor`] that attaches it to calls.

mod config;
pub(crate) mod file_cache;
mod interceptor;
mod source;
mod token;

pub use config::{ClientAuth, Secret, TokenEndpoint, TokenSourceConfig};
pub use interceptor::BearerInterceptor;
pub use source::TokenSource;
pub use token::{AccessToken, TokenError};

#[cfg(test)]
mod tests {
    use super::token::{rejected, retry_after};
    use super::*;
    use reqwest::{StatusCode, header};
    use std::time::{Duration, SystemTime};

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let after = |value: &str| {
            let mut h = header::HeaderMap::new();
            h.insert(header::RETRY_AFTER, value.parse().unwrap());
            retry_after(&h, now)
        };
        assert_eq!(after("3"), Some(Duration::from_secs(3)));
        let date = |at| httpdate::fmt_http_date(at);
        assert_eq!(
            after(&date(now + Duration::from_secs(100))),
            Some(Duration::from_secs(100))
        );
        // A date gone by: retry now.
        assert_eq!(
            after(&date(now - Duration::from_secs(5))),
            Some(Duration::ZERO)
        );
        assert_eq!(after("soon"), None);
        assert_eq!(retry_after(&header::HeaderMap::new(), now), None);
    }

    #[test]
    fn secrets_and_tokens_stay_out_of_debug() {
        let mut config = TokenSourceConfig::new(
            TokenEndpoint::Url("https://t.auth0.com/oauth/token".parse().unwrap()),
            "id",
            Secret::new("hunter2-secret"),
        );
        config.audience = Some("aud".into());
        assert!(!format!("{config:?}").contains("hunter2"));
        let token = AccessToken::new(
            "eyJ.secret-token.sig".into(),
            SystemTime::now() + Duration::from_secs(600),
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(!format!("{token:?}").contains("secret-token"));
    }

    #[test]
    fn the_margin_is_at_most_a_quarter_of_the_lifetime() {
        let margin = |token: &AccessToken| token.expires_at.duration_since(token.usable_until);
        // A long lifetime: the margin asked for, exactly; the background
        // refresh comes up to half a margin before it.
        let expires_at = SystemTime::now() + Duration::from_secs(600);
        let token = AccessToken::new("t".into(), expires_at, Duration::from_secs(60)).unwrap();
        assert_eq!(margin(&token).unwrap(), Duration::from_secs(60));
        assert!(token.refresh_at <= token.usable_until);
        assert!(token.refresh_at >= token.usable_until - Duration::from_secs(30));
        assert!(token.is_fresh());
        // A short one: a quarter of what was left of it when it was made,
        // which lies between these two readings of the clock.
        let before = SystemTime::now();
        let expires_at = before + Duration::from_secs(8);
        let token = AccessToken::new("t".into(), expires_at, Duration::from_secs(60)).unwrap();
        let after = SystemTime::now();
        let quarter = |from: SystemTime| expires_at.duration_since(from).unwrap() / 4;
        let margin = margin(&token).unwrap();
        assert!(
            quarter(after) <= margin && margin <= quarter(before),
            "{margin:?}"
        );
        assert!(token.refresh_at <= token.usable_until);
    }

    #[test]
    fn oauth_errors_are_read_from_the_body() {
        let e = rejected(
            StatusCode::UNAUTHORIZED,
            br#"{"error":"invalid_client","error_description":"wrong secret"}"#,
        );
        assert_eq!(
            e.to_string(),
            "the token endpoint refused the request (HTTP 401): invalid_client: wrong secret"
        );
        let e = rejected(StatusCode::FORBIDDEN, b"<html>");
        assert!(e.to_string().contains("Forbidden"));
    }
}
